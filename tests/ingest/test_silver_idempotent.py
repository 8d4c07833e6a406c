"""Silver's commits are idempotent: a run stopped after any commit of any load, then re-run,
leaves silver, vault, quarantine, rule counts and reconciliation exactly as an uninterrupted run;
a load that keeps failing its reject rate is recorded once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.ingest import silver
from profilehouse.ingest.bronze import load_bronze_source
from profilehouse.ingest.silver import (
    RejectRateError,
    load_silver_source,
    quarantine_table,
    reconciliation_table,
    rule_counts_table,
    silver_table,
    vault_table,
)
from profilehouse.ingest.source_config import SourceSpec
from tests.conftest import copy_warehouse
from tests.ingest.conftest import CUSTOMER_HEADER, Landing, customers_spec
from tests.ingest.test_silver import ROWS

# load 2: a correction of C001 and a new key from a file without the e-mail column, a bad row
NO_EMAIL_HEADER = CUSTOMER_HEADER.replace(",email", "")
SECOND = [
    "C001,张伟,13900139000,,,,,2020-01-01,C3",
    "C010,钱二,,,,,,2021-05-06,C1",
    "C011,,,,,,,x,C1",
]
CLOCK = ["quarantined_at", "processed_at", "first_seen_at"]


@dataclass(frozen=True)
class Template:
    """A warehouse holding two bronze loads of one source (copied for each case)."""

    warehouse: Path
    spec: SourceSpec


@pytest.fixture(scope="module")
def template(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Template:
    spec = customers_spec()
    landing = Landing(tmp_path_factory.mktemp("idempotent"))
    (landing.root / "landing").mkdir()
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, list(ROWS.values()))
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    landing.write_csv("bank/customers", "2025-01-02", "b.csv", NO_EMAIL_HEADER, SECOND)
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    return Template(landing.root / "warehouse", spec)


def _copy(template: Template, target: Path) -> TableCatalog:
    return copy_warehouse(template.warehouse, target)


def _snapshot(spark: SparkSession, catalog: TableCatalog, spec: SourceSpec) -> dict[str, DataFrame]:
    """Every table silver writes, without the columns that record wall-clock time."""
    refs = {
        "silver": silver_table(catalog, spec),
        "vault": vault_table(catalog),
        "quarantine": quarantine_table(catalog),
        "rule_counts": rule_counts_table(catalog),
        "reconciliation": reconciliation_table(catalog),
    }
    tables = {}
    for name, ref in refs.items():
        df = delta_io.read_table(spark, ref)
        tables[name] = df.drop(*[c for c in CLOCK if c in df.columns])
    return tables


@pytest.fixture(scope="module")
def uninterrupted(
    spark: SparkSession, template: Template, tmp_path_factory: pytest.TempPathFactory, token_key
) -> dict[str, list]:
    catalog = _copy(template, tmp_path_factory.mktemp("uninterrupted") / "warehouse")
    result = load_silver_source(spark, catalog, template.spec, token_key)
    assert result.load_ids == [1, 2]
    assert result.absent_columns and result.quarantined == 5
    return {name: df.collect() for name, df in _snapshot(spark, catalog, template.spec).items()}


class CrashError(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("commit", "load_id"),
    [("silver", 1), ("silver", 2)]
    + [(c, None) for c in ("vault", "quarantine", "rule_counts", "reconciliation")],
)
def test_a_run_stopped_after_any_commit_and_rerun_equals_an_uninterrupted_run(
    spark: SparkSession,
    template: Template,
    uninterrupted: dict[str, list],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    token_key: bytes,
    commit: str,
    load_id: int | None,
) -> None:
    """Silver is committed per load; the other commits hold both loads (``load_id`` None)."""
    assert commit in silver.COMMITS
    catalog = _copy(template, tmp_path / "warehouse")

    def crash(done: str, done_load: int | None) -> None:
        if (done, done_load) == (commit, load_id):
            raise CrashError(f"after {done} of load {done_load}")

    with monkeypatch.context() as patch:
        patch.setattr(silver, "AFTER_COMMIT", crash)
        with pytest.raises(CrashError):
            load_silver_source(spark, catalog, template.spec, token_key)
    load_silver_source(spark, catalog, template.spec, token_key)

    got = _snapshot(spark, catalog, template.spec)
    for name, df in got.items():
        want = spark.createDataFrame(uninterrupted[name], df.schema)
        assert_df_equality(df, want, ignore_row_order=True, ignore_nullable=True)


def test_a_load_failing_its_reject_rate_twice_is_recorded_once(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = customers_spec(reject_rate_threshold=0.2, reject_min_rows=3)
    rows = [ROWS["good"], ROWS["bad_rule"], ROWS["malformed"], ROWS["no_key"]]
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, rows)
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    for _attempt in range(2):
        with pytest.raises(RejectRateError):
            load_silver_source(spark, landing.catalog, spec, token_key)
    ref = reconciliation_table(landing.catalog)
    assert [r["status"] for r in delta_io.read_table(spark, ref).collect()] == ["failed"]

    relaxed = customers_spec(reject_rate_threshold=0.8, reject_min_rows=3)
    load_silver_source(spark, landing.catalog, relaxed, token_key)
    statuses = delta_io.read_table(spark, ref).groupBy("status").count().collect()
    assert sorted((r["status"], r["count"]) for r in statuses) == [("failed", 1), ("passed", 1)]
    assert delta_io.read_table(spark, ref).where(F.col("load_id") != 1).count() == 0
