"""Incremental identity runs on the generator's SF 0.01 data (real Spark + Delta).

The warehouse first holds every batch but the last one, and a full run resolves it. Then the
last batch arrives, one bank customer changes mobile, one retail member is gone, and an
e-commerce account types one person's mobile on many orders (the value becomes noise). From
there two copies of the warehouse go on: one by an incremental run, one by a run re-scoring
everything with the same model. Their results must be the same.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.identity import run_state
from profilehouse.identity.run_state import IdentityStateError
from profilehouse.identity.settings import load_identity_settings
from profilehouse.identity.stage import (
    IdentityResult,
    chosen_mode,
    identity_table,
    run_identity_stage,
)
from tests.conftest import Ingested, copy_warehouse

NOISY_ORDERS = 70  # above the mobile cap of 60 records per source


@dataclass(frozen=True)
class Runs:
    incremental: IdentityResult
    rescore: IdentityResult
    again: IdentityResult  # incremental once more, nothing changed
    inc_catalog: TableCatalog
    re_catalog: TableCatalog
    first_members: dict[str, str]
    noisy_mobile: str
    gone: str
    moved: str


def _silver_names(settings) -> list[str]:
    return list(settings.records)


def _last_batch(spark: SparkSession, catalog: TableCatalog, names: list[str]) -> str:
    batches = [
        delta_io.read_table(spark, catalog.table(Layer.SILVER, n)).agg(F.max("_batch")).first()[0]
        for n in names
    ]
    return max(b for b in batches if b is not None)


def _silver(spark: SparkSession, catalog: TableCatalog, name: str) -> DeltaTable:
    return DeltaTable.forPath(spark, catalog.table(Layer.SILVER, name).location)


def _copied(ingested: Ingested, target: Path):
    """(env, catalog) of a copy of the ingested warehouse without identity tables."""
    catalog = copy_warehouse(
        ingested.env.warehouse, target, ignore=shutil.ignore_patterns("identity", "checkpoints")
    )
    return ingested.env.model_copy(update={"warehouse": str(target)}), catalog


def _members(spark: SparkSession, catalog: TableCatalog) -> dict[str, str]:
    table = delta_io.read_table(spark, identity_table(catalog, "master_members"))
    return {
        r["record_id"]: r["master_id"] for r in table.select("record_id", "master_id").collect()
    }


@pytest.fixture(scope="module")
def runs(spark: SparkSession, ingested: Ingested, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    settings = load_identity_settings()
    root = tmp_path_factory.mktemp("incremental")
    env, catalog = _copied(ingested, root / "inc")
    names = _silver_names(settings)
    last = _last_batch(spark, catalog, names)
    versions = {n: _silver(spark, catalog, n).history(1).first()["version"] for n in names}
    for name in names:  # the warehouse before the last batch
        _silver(spark, catalog, name).delete(F.col("_batch") == last)
    run_identity_stage(spark, env, run_id="run-1")
    first_members = _members(spark, catalog)
    for name in names:  # the last batch arrives
        _silver(spark, catalog, name).restoreToVersion(versions[name])

    customers = delta_io.read_table(spark, catalog.table(Layer.SILVER, "bank_customers"))
    mobiles = customers.where("mobile_valid").select("cust_no", "mobile_token").limit(2).collect()
    moved = mobiles[0]["cust_no"]  # takes the second customer's mobile
    _silver(spark, catalog, "bank_customers").update(
        F.col("cust_no") == moved, {"mobile_token": F.lit(mobiles[1]["mobile_token"])}
    )
    members = delta_io.read_table(spark, catalog.table(Layer.SILVER, "retail_members"))
    gone = members.select("member_id").orderBy("member_id").first()["member_id"]
    _silver(spark, catalog, "retail_members").delete(F.col("member_id") == gone)
    orders = delta_io.read_table(spark, catalog.table(Layer.SILVER, "retail_ecom_orders"))
    noisy = mobiles[1]["mobile_token"]
    template = orders.limit(1)
    copies = spark.range(NOISY_ORDERS).crossJoin(template.drop("order_id", "mobile_token"))
    copies = copies.withColumns(
        {
            "order_id": F.concat(F.lit("NOISE-"), F.col("id").cast("string")),
            "mobile_token": F.lit(noisy),
            "mobile_valid": F.lit(True),
        }
    ).select(*orders.columns)
    copies.write.format("delta").mode("append").save(
        catalog.table(Layer.SILVER, "retail_ecom_orders").location
    )

    re_catalog = copy_warehouse(root / "inc", root / "re")
    re_env = ingested.env.model_copy(update={"warehouse": str(root / "re")})
    incremental = run_identity_stage(spark, env, run_id="run-2", mode="incremental")
    rescore = run_identity_stage(spark, re_env, run_id="run-2", mode="rescore")
    again = run_identity_stage(spark, env, run_id="run-3", mode="incremental")
    return Runs(
        incremental,
        rescore,
        again,
        catalog,
        re_catalog,
        first_members,
        f"token:{noisy}",
        f"retail_members|{gone}",
        f"bank_customers|{moved}",
    )


def test_the_batch_was_processed_incrementally(runs):
    figures = runs.incremental.figures
    assert figures["mode"] == "incremental"
    assert figures["changed_records"] > 0
    # only a share of the person pairs is re-scored, and of the records re-linked
    assert 0 < figures["rescored_pairs"] < figures["candidate_pairs"]
    assert 0 < figures["dirty_records"] < figures["records"]


def test_incremental_gives_the_master_ids_a_full_rescore_gives(spark, runs):
    incremental = _members(spark, runs.inc_catalog)
    rescore = _members(spark, runs.re_catalog)
    assert runs.gone not in incremental
    assert incremental == rescore


def test_incremental_scores_the_pairs_a_full_rescore_scores(spark, runs):
    def pairs(catalog):
        table = delta_io.read_table(spark, identity_table(catalog, "scored_pairs"))
        return table.select(
            "record_id_l", "record_id_r", "rule", F.round("match_weight", 9).alias("w")
        )

    inc, full = pairs(runs.inc_catalog), pairs(runs.re_catalog)
    assert inc.count() == full.count() > 0
    assert inc.exceptAll(full).count() == 0


def test_incremental_phase1_clusters_and_labels_equal_a_full_rescore(spark, runs):
    def phase1(catalog):
        return delta_io.read_table(spark, identity_table(catalog, "phase1_clusters"))

    inc, full = phase1(runs.inc_catalog), phase1(runs.re_catalog)
    assert inc.count() == full.count()
    assert inc.exceptAll(full).count() == 0


def test_a_value_turned_noise_is_reported_in_both(spark, runs):
    for catalog in (runs.inc_catalog, runs.re_catalog):
        noise = delta_io.read_table(spark, identity_table(catalog, "noisy_identifiers"))
        assert noise.where(F.col("value") == runs.noisy_mobile).count() >= 1


def test_unchanged_records_keep_their_master_ids(spark, runs):
    before, after = runs.first_members, _members(spark, runs.inc_catalog)
    kept = sum(1 for record, master in before.items() if after.get(record) == master)
    assert kept / len(before) > 0.98


def test_an_incremental_run_without_changes_changes_nothing(spark, runs):
    figures = runs.again.figures
    assert figures["changed_records"] == 0
    assert figures["rescored_pairs"] == 0
    assert figures["dirty_records"] == 0
    assert _members(spark, runs.inc_catalog) == _members(spark, runs.re_catalog)


def test_incremental_without_an_earlier_run_names_what_to_do(spark, ingested, tmp_path):
    env, catalog = _copied(ingested, tmp_path / "w")
    with pytest.raises(IdentityStateError, match="--mode full"):
        run_identity_stage(spark, env, mode="incremental")
    assert not delta_io.table_exists(spark, identity_table(catalog, "master_members"))


def test_changed_settings_refuse_the_old_state(spark, runs, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(Path(__file__).parents[2] / "conf", conf)
    identity = conf / "identity.yaml"
    identity.write_text(
        identity.read_text().replace("match_threshold: 0.99", "match_threshold: 0.95"),
        encoding="utf-8",
    )
    settings = load_identity_settings(conf)
    with pytest.raises(IdentityStateError, match="changed since run run-3"):
        run_state.load(spark, runs.inc_catalog, settings)


def test_auto_mode_goes_incremental_while_the_state_and_model_are_fresh(spark, runs, tmp_path):
    settings = load_identity_settings()
    mode, before = chosen_mode(spark, runs.inc_catalog, settings, "auto")
    assert mode == "incremental"
    assert before is not None and before.run_id == "run-3" and before.trained_in == "run-1"
    stale = settings.model_copy(update={"linkage_retrain_after_days": 0})
    assert chosen_mode(spark, runs.inc_catalog, stale, "auto") == ("full", None)
    empty = TableCatalog((tmp_path / "nothing").as_uri())
    assert chosen_mode(spark, empty, settings, "auto") == ("full", None)
