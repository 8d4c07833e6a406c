"""Bronze + silver over the generator's dirty data (SF 0.01, every source): nothing lost,
every batch reconciled, malformed rows quarantined exactly, no raw PII in silver, tokens shared
across sources, and a second run changes nothing."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.generator import read_truth_records
from profilehouse.ingest.bronze import bronze_table
from profilehouse.ingest.silver import (
    quarantine_table,
    reconciliation_table,
    silver_table,
    vault_table,
)
from profilehouse.ingest.stages import run_bronze_stage, run_silver_stage
from tests.conftest import Generated, Ingested


def test_every_generated_row_reaches_bronze(generated: Generated, ingested: Ingested) -> None:
    generated_rows = {s.name.replace(".", "_"): s.rows for s in generated.report.sources}
    bronze_rows = {b.source: b.rows for b in ingested.bronze}
    assert bronze_rows == generated_rows


def test_every_batch_reconciles(spark: SparkSession, ingested: Ingested) -> None:
    recon = delta_io.read_table(spark, reconciliation_table(ingested.catalog))
    assert recon.where("status != 'passed'").count() == 0
    assert recon.where("rows_in != accepted + quarantined").count() == 0
    per_source = {
        r["source"]: r["rows"]
        for r in recon.groupBy("source").agg(F.sum("rows_in").alias("rows")).collect()
    }
    assert per_source == {b.source: b.rows for b in ingested.bronze}
    batches = recon.select("source", "batch").distinct().count()
    assert batches == sum(len(b.batches) for b in ingested.bronze)


def test_every_load_reports_where_its_time_went(ingested: Ingested) -> None:
    for bronze in ingested.bronze:
        assert {"claim", "write", "row_counts", "mark_loaded"} <= set(bronze.seconds_by_step)
        assert sum(bronze.seconds_by_step.values()) <= bronze.seconds + 0.5
    for silver in ingested.silver:
        steps = silver.seconds_by_step
        assert {"validate", "silver", "set_aside", "quarantine", "reconciliation"} <= set(steps)
        assert sum(steps.values()) <= silver.seconds + 0.5


def test_malformed_rows_are_exactly_the_generators(
    spark: SparkSession, generated: Generated, ingested: Ingested
) -> None:
    truth = (
        read_truth_records(spark, generated.truth)
        .where("malformed")
        .groupBy(F.regexp_replace("source", r"\.", "_").alias("source"))
        .count()
    )
    expected = {r["source"]: r["count"] for r in truth.collect()}
    got = {s.source: s.errors.get("malformed_row", 0) for s in ingested.silver}
    assert {k: v for k, v in got.items() if v} == expected


def _string_values(df: DataFrame) -> DataFrame:
    strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
    return df.select(F.explode(F.array(*[F.col(c) for c in strings])).alias("value")).where(
        F.col("value").isNotNull()
    )


def test_no_raw_pii_in_any_silver_string_column(spark: SparkSession, ingested: Ingested) -> None:
    """Every PII value as received (bronze) and as normalised (vault) is absent from silver."""
    raw_parts = [
        delta_io.read_table(spark, bronze_table(ingested.catalog, spec)).select(
            F.trim(F.col(name)).alias("value")
        )
        for spec in ingested.sources
        for name, col in spec.columns.items()
        if col.pii and not col.pii_when
    ]
    vault = delta_io.read_table(spark, vault_table(ingested.catalog)).select("value")
    pii = raw_parts[0]
    for part in [*raw_parts[1:], vault]:
        pii = pii.unionByName(part)
    pii = pii.where(F.length("value") >= 4).distinct()
    assert pii.count() > 1000  # the check below has something to find
    for spec in ingested.sources:
        silver = delta_io.read_table(spark, silver_table(ingested.catalog, spec))
        leaked = _string_values(silver).join(pii, "value", "left_semi")
        assert leaked.count() == 0, (spec.name, leaked.limit(3).collect())


def test_the_same_mobile_has_one_token_in_every_source(
    spark: SparkSession, ingested: Ingested
) -> None:
    vault = delta_io.read_table(spark, vault_table(ingested.catalog))
    assert vault.groupBy("kind", "value").count().where("count > 1").count() == 0
    tokens = {}
    for name in ("bank_customers", "retail_members", "retail_ecom_orders"):
        spec = next(s for s in ingested.sources if s.name == name)
        silver = delta_io.read_table(spark, silver_table(ingested.catalog, spec))
        tokens[name] = silver.select(F.col("mobile_token").alias("t")).where("t IS NOT NULL")
    shared = tokens["bank_customers"].join(tokens["retail_members"], "t", "left_semi")
    assert shared.distinct().count() > 50  # persons who bank and shop share their token
    across = tokens["retail_ecom_orders"].join(tokens["retail_members"], "t", "left_semi")
    assert across.distinct().count() > 50
    all_tokens = tokens["bank_customers"].unionByName(tokens["retail_members"])
    assert all_tokens.join(vault.select(F.col("token").alias("t")), "t", "left_anti").count() == 0


def test_silver_keys_are_unique(spark: SparkSession, ingested: Ingested) -> None:
    from profilehouse.ingest.silver import key_sql

    for spec in ingested.sources:
        silver = delta_io.read_table(spark, silver_table(ingested.catalog, spec)).alias("s")
        keys = [F.expr(k) for k in key_sql(spec, "s")]
        assert silver.groupBy(*keys).count().where("count > 1").count() == 0, spec.name


def test_quarantine_keeps_every_rejected_row(spark: SparkSession, ingested: Ingested) -> None:
    quarantine = delta_io.read_table(spark, quarantine_table(ingested.catalog))
    got = {r["source"]: r["count"] for r in quarantine.groupBy("source").count().collect()}
    assert got == {s.source: s.quarantined for s in ingested.silver if s.quarantined}
    assert quarantine.where("raw IS NULL OR size(reasons) = 0").count() == 0


def test_a_second_run_changes_nothing(spark: SparkSession, ingested: Ingested) -> None:
    refs = [bronze_table(ingested.catalog, s) for s in ingested.sources]
    refs += [silver_table(ingested.catalog, s) for s in ingested.sources]
    refs += [quarantine_table(ingested.catalog), vault_table(ingested.catalog)]
    before = [delta_io.table_version(spark, r) for r in refs]
    again_bronze = run_bronze_stage(spark, ingested.env, ingested.sources)
    again_silver = run_silver_stage(spark, ingested.env, ingested.sources)
    assert sum(b.files for b in again_bronze) == 0
    assert sum(s.rows_in for s in again_silver) == 0
    assert [delta_io.table_version(spark, r) for r in refs] == before


@pytest.mark.parametrize(
    ("source", "key"), [("bank_customers", "cust_no"), ("retail_members", "member_id")]
)
def test_corrected_redeliveries_replace_the_first_delivery(
    spark: SparkSession, generated: Generated, ingested: Ingested, source: str, key: str
) -> None:
    """The generator re-sends some master records corrected in a later daily batch: silver holds
    one row per key, and it is the re-delivered version."""
    truth = read_truth_records(spark, generated.truth)
    redelivered = truth.where(
        (F.col("source") == source.replace("_", ".", 1))
        & F.array_contains("patterns", "corrected_redelivery")
        & ~F.col("malformed")
    ).select(F.col("record_key").alias(key), F.col("batch").alias("want_batch"))
    assert redelivered.count() > 0
    spec = next(s for s in ingested.sources if s.name == source)
    silver = delta_io.read_table(spark, silver_table(ingested.catalog, spec))
    joined = redelivered.join(silver.select(key, "_batch"), key, "left")
    wrong = joined.where(F.col("_batch").isNull() | (F.col("_batch") != F.col("want_batch")))
    assert wrong.count() == 0, wrong.limit(5).collect()
