"""An identity run that crashes after a write, then is run again, leaves every table as an
uninterrupted run would (chispa on sorted tables; the same master IDs, aliases and lineage).

Small input: three sources of the SF 0.01 silver (bank customers, retail members, bank
accounts) through a trimmed conf/identity.yaml. Run 1 resolves them; then a customer record is
corrected to another person's (their resident-ID token, name, birth date and gender, as a bank
fixes a mistyped account opening), so run 2 merges two masters (an alias and a 'merged' lineage
row). The two are customers that are the only person of their master, so the merge does not depend on
which master ID survives. A record that only took the other's resident ID would not merge: the
conflicting-holders guard keeps an ID shared by two different persons from linking.
Run 2 is made twice: uninterrupted (the reference), and as a chain of crashes, each re-run dying
at the next boundary, until a re-run completes. The boundaries are one of each kind of write:

* ``pending_run``: the run's plan (run ID, seq, pinned input versions) — nothing else written;
* ``scored_pairs``: a staged table overwritten and read back (as are records,
  record_identifiers, changed_records, rescored_pairs, dirty_records, oversize_blocks: each
  re-run rewrites them from the same pinned inputs);
* ``master_members``: the first current-state table overwritten, aliases not yet appended (the
  window that lost aliases; identifier_map … golden_records are overwrites of the same kind);
* ``master_aliases``: between the two idempotent appends (lineage not yet);
* ``identity_metrics``: everything written but run_state, the commit that makes the run visible.

A chain is stronger than separate crash/re-run pairs (each re-run also resumes after the crashes
before it) and costs about four runs instead of ten. Each re-run passes a new run ID: the crashed
run must be finished under its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.identity import run_state
from profilehouse.identity.settings import load_identity_settings
from profilehouse.identity.stage import (
    InjectedCrashError,
    crash_after,
    identity_metrics_table,
    identity_table,
    run_identity_stage,
)
from tests.conftest import Ingested, copy_warehouse

SOURCES = ("bank_customers", "retail_members", "bank_accounts")
# what a corrected customer record takes from the other person's
TAKEN = ("id_no_token", "id_no_masked", "name_token", "name_masked", "birth_date", "gender")
CHAIN = ("pending_run", "scored_pairs", "master_members", "master_aliases", "identity_metrics")
COMPARED = (
    "records",
    "record_identifiers",
    "changed_records",
    "rescored_pairs",
    "dirty_records",
    "scored_pairs",
    "oversize_blocks",
    "master_members",
    "identifier_map",
    "match_links",
    "identifier_links",
    "noisy_identifiers",
    "golden_records",
    "master_aliases",
    "master_lineage",
    "phase1_clusters",
    "term_frequencies",
)


def _small_conf(target: Path) -> Path:
    conf = Path(__file__).parents[2] / "conf"
    shutil.copytree(conf, target)
    identity = yaml.safe_load((conf / "identity.yaml").read_text(encoding="utf-8"))
    identity["records"] = {k: v for k, v in identity["records"].items() if k in SOURCES}
    (target / "identity.yaml").write_text(yaml.safe_dump(identity, allow_unicode=True), "utf-8")
    return target


def _warehouse(ingested: Ingested, target: Path):
    # without the identity state other tests' runs left in the shared warehouse (their run-1
    # metrics row would stand in for this module's run 1, whose idempotent append it skips)
    catalog = copy_warehouse(
        ingested.env.warehouse,
        target,
        ignore=shutil.ignore_patterns("identity", "_checkpoints", "identity_metrics"),
    )
    return ingested.env.model_copy(update={"warehouse": str(target)}), catalog


@pytest.fixture(scope="module")
def after_run_1(spark: SparkSession, ingested: Ingested, tmp_path_factory):
    """A warehouse resolved once (run-1), then changed so that run 2 merges two masters."""
    root = tmp_path_factory.mktemp("identity-crash")
    conf = _small_conf(root / "conf")
    env, catalog = _warehouse(ingested, root / "base")
    run_identity_stage(spark, env, conf, run_id="run-1")
    customers = catalog.table(Layer.SILVER, "bank_customers")
    # Two customers each the only person of their master: the corrected one's whole master
    # (the customer and its accounts) joins the other's, so run 2 retires one of the two IDs
    # whichever survives. (A master holding another person record, say a retail member linked
    # by the mobile the correction keeps, would split instead, and whether the moved records
    # took the old or the new ID would hang on how the master IDs happen to sort.)
    persons = delta_io.read_table(spark, identity_table(catalog, "master_members")).where(
        "role = 'person'"
    )
    alone = (
        persons.groupBy("master_id")
        .count()
        .where("count = 1")
        .join(persons, "master_id")
        .where(F.col("source") == "bank_customers")
        .select(F.element_at(F.split("record_id", r"\|"), -1).alias("cust_no"))
    )
    two = (
        delta_io.read_table(spark, customers)
        .where("id_no_valid")
        .join(alone, "cust_no", "left_semi")
        .select("cust_no", *TAKEN)
        .orderBy("cust_no")
        .limit(2)
        .collect()
    )
    DeltaTable.forPath(spark, customers.location).update(
        F.col("cust_no") == two[0]["cust_no"], {c: F.lit(two[1][c]) for c in TAKEN}
    )
    return root, conf


def _copy(root: Path, name: str, ingested: Ingested):
    catalog = copy_warehouse(root / "base", root / name)
    return ingested.env.model_copy(update={"warehouse": str(root / name)}), catalog


def _table(spark: SparkSession, catalog: TableCatalog, name: str) -> DataFrame | None:
    ref = identity_table(catalog, name)
    if not delta_io.table_exists(spark, ref):
        return None
    df = delta_io.read_table(spark, ref)
    # maps (match weights and levels) as sorted entries: chispa sorts rows, and maps do not sort
    return df.select(
        *[
            F.array_sort(F.map_entries(f.name)).alias(f.name)
            if isinstance(f.dataType, T.MapType)
            else F.col(f.name)
            for f in sorted(df.schema.fields, key=lambda f: f.name)
        ]
    )


def test_a_crash_at_each_write_boundary_then_a_rerun_equals_an_uninterrupted_run(
    spark: SparkSession, ingested: Ingested, after_run_1
):
    root, conf = after_run_1
    ref_env, ref_catalog = _copy(root, "reference", ingested)
    reference = run_identity_stage(spark, ref_env, conf, run_id="run-2", mode="auto")
    assert reference.figures["mode"] == "incremental"
    aliases = _table(spark, ref_catalog, "master_aliases")
    assert aliases is not None and aliases.where("run_id = 'run-2'").count() >= 1

    env, catalog = _copy(root, "crashed", ingested)
    for attempt, boundary in enumerate(CHAIN):
        # the first attempt is run 2; each re-run comes under a new ID and finishes run 2
        run_id = "run-2" if attempt == 0 else f"retry-{attempt}"
        with crash_after(boundary), pytest.raises(InjectedCrashError, match=boundary):
            run_identity_stage(spark, env, conf, run_id=run_id, mode="auto")
    finished = run_identity_stage(spark, env, conf, run_id="retry-last", mode="auto")
    assert finished.run_id == "run-2"  # the interrupted run, finished under its own ID

    for name in COMPARED:
        expected, actual = _table(spark, ref_catalog, name), _table(spark, catalog, name)
        assert (expected is None) == (actual is None), name
        if expected is not None:
            assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    state = ["run_id", "mode", "trained_in", "trained_at", "settings_hash", "model", "seq"]
    assert_df_equality(
        _table(spark, catalog, "run_state").select(state),
        _table(spark, ref_catalog, "run_state").select(state),
    )

    def metric_runs(catalog: TableCatalog) -> list[str]:
        metrics = delta_io.read_table(spark, identity_metrics_table(catalog)).select("run_id")
        return sorted(r["run_id"] for r in metrics.collect())

    assert metric_runs(catalog) == metric_runs(ref_catalog)
    assert metric_runs(catalog).count("run-2") == 1


def test_an_interrupted_run_is_finished_as_planned_or_withdrawn(spark: SparkSession, tmp_path):
    """Cheap, without an identity run: the plan pins input versions; it is finished while it
    is the latest uncommitted run under the same settings; under other settings it is withdrawn
    (its appended rows deleted) and the new run takes the next sequence number."""
    catalog = TableCatalog(str(tmp_path))
    settings = load_identity_settings()
    silver = catalog.table(Layer.SILVER, "people")
    delta_io.write_table(spark.range(3), silver)
    aliases = identity_table(catalog, "master_aliases")
    delta_io.write_table(spark.createDataFrame([("old",), ("run-x",)], "run_id string"), aliases)

    planned = run_state.plan_run(spark, catalog, settings, "run-x", "full", [silver], [aliases])
    assert (planned.seq, planned.inputs) == (1, {"silver.people": 0})
    delta_io.write_table(spark.range(3, 5), silver, mode="append")  # newer input arrives
    assert run_state.interrupted_run(spark, catalog, settings) == planned

    other = settings.model_copy(update={"records": dict(list(settings.records.items())[:2])})
    assert run_state.interrupted_run(spark, catalog, other) is None
    newer = run_state.plan_run(spark, catalog, other, "run-y", "full", [silver], [aliases])
    assert (newer.seq, newer.inputs) == (2, {"silver.people": 1})
    assert [r["run_id"] for r in delta_io.read_table(spark, aliases).collect()] == ["old"]
