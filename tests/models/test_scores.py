"""Scores written back: validation, deciles, the current table and its history, re-scoring, and
reading the table with non-Spark Delta readers (delta-rs, polars).

The write scenario runs once per module (a few MERGEs on real Delta tables in a temp folder)
with the session's default for new tables set to *enable* deletion vectors, as a Databricks-like
cluster would: the tables must come out readable all the same.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import deltalake
import polars as pl
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.errors import SchemaError
from profilehouse.models.scores import (
    BI_READABLE_PROPERTIES,
    SCORES_SCHEMA,
    ScoreError,
    ScoreWrite,
    bi_readability_problems,
    build_score_rows,
    scored_population,
    scores_history_table,
    scores_table,
    write_scores,
)

DV_DEFAULT = "spark.databricks.delta.properties.defaults.enableDeletionVectors"
REASONS_DDL = "array<struct<feature:string,name:string,contribution:double>>"
DAY_1 = dt.date(2025, 12, 31)
DAY_0 = dt.date(2025, 12, 1)
CHURN = "churn_90d"
LOAN = "deposit_to_loan"


def scored_frame(spark: SparkSession, scores: dict[str, float | None]) -> DataFrame:
    """``master_id, score, reasons`` with one reason per row."""
    rows = [(m, s, [("aum", "资产规模", 0.25)]) for m, s in scores.items()]
    return spark.createDataFrame(rows, f"master_id string, score double, reasons {REASONS_DDL}")


def ids(n: int, start: int = 0) -> list[str]:
    return [f"m{i:03d}" for i in range(start, start + n)]


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def test_scores_outside_zero_one_null_or_nan_are_rejected_naming_the_model_and_count(
    spark: SparkSession,
) -> None:
    # each kind of bad score once, among good ones at the bounds: the count says none is missed
    bad = {"above one": 1.5, "below zero": -0.01, "null": None, "NaN": math.nan}
    good = {"zero": 0.0, "one": 1.0, "middle": 0.2}
    scored = scored_frame(spark, bad | good)
    with pytest.raises(ScoreError) as caught:
        scored_population(scored, CHURN)
    assert str(caught.value) == (
        "scores of model 'churn_90d': 4 row(s) with a null score or one outside [0, 1]"
    )
    assert scored_population(scored_frame(spark, good), CHURN).rows == 3


def test_a_customer_scored_twice_is_rejected_with_every_problem_at_once(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [("a", 0.1), ("a", 0.2), ("b", 0.3), ("b", 0.3), ("b", 2.0), (None, 0.5)]
    scored = spark.createDataFrame(rows, "master_id string, score double").withColumn(
        "reasons", F.lit(None).cast(REASONS_DDL)
    )
    catalog = TableCatalog(str(tmp_path))
    with pytest.raises(ScoreError) as caught:
        write_scores(spark, catalog, scored, LOAN, 1, DAY_1)
    assert str(caught.value) == (
        "scores of model 'deposit_to_loan': 1 row(s) with a null score or one outside [0, 1]; "
        "1 row(s) without a master_id; 3 extra row(s) for master_ids scored more than once"
    )
    assert not delta_io.table_exists(spark, scores_table(catalog))


def test_missing_columns_and_bad_model_names_are_rejected(
    spark: SparkSession, tmp_path: Path
) -> None:
    catalog = TableCatalog(str(tmp_path))
    no_reasons = spark.createDataFrame([("a", 0.5)], "master_id string, score double")
    with pytest.raises(
        SchemaError, match=r"missing column\(s\) reasons \(present: master_id, score\)"
    ):
        write_scores(spark, catalog, no_reasons, CHURN, 1, DAY_1)
    with pytest.raises(ValueError, match="lower-case identifier, got 'Churn-90d'"):
        write_scores(spark, catalog, scored_frame(spark, {"a": 0.5}), "Churn-90d", 1, DAY_1)


# ---------------------------------------------------------------------------------------------
# deciles
# ---------------------------------------------------------------------------------------------


def _deciles(spark: SparkSession, scores: dict[str, float | None]) -> list[tuple[float, int]]:
    scored = scored_frame(spark, scores)
    population = scored_population(scored, CHURN)
    assert population.rows == len(scores)
    rows = build_score_rows(scored, CHURN, 1, DAY_1, population.thresholds, dt.datetime(2026, 1, 1))
    assert rows.schema.simpleString() == SCORES_SCHEMA.simpleString()
    return [(r["score"], r["decile"]) for r in rows.select("score", "decile").collect()]


def test_deciles_are_equal_tenths_with_decile_one_the_highest_scores(spark: SparkSession) -> None:
    # 100 distinct scores in a scrambled order
    scores = {f"m{i:03d}": ((i * 37) % 100) / 100 for i in range(100)}
    deciles = _deciles(spark, scores)
    assert Counter(d for _, d in deciles) == dict.fromkeys(range(1, 11), 10)
    by_decile = {d: [s for s, dd in deciles if dd == d] for d in range(1, 11)}
    assert min(by_decile[1]) == 0.90  # the top tenth: 0.90 … 0.99
    for d in range(1, 10):
        assert min(by_decile[d]) > max(by_decile[d + 1]), d


def test_equal_scores_share_a_decile(spark: SparkSession) -> None:
    scores = {f"m{i:03d}": (0.5 if i < 30 else i / 100) for i in range(100)}
    deciles = _deciles(spark, scores)
    assert len({d for s, d in deciles if s == 0.5}) == 1
    assert {d for s, d in deciles if s == 0.99} == {1}


# ---------------------------------------------------------------------------------------------
# the write scenario
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    catalog: TableCatalog
    first: ScoreWrite  # churn v1 at DAY_1, customers m000..m019
    other_model: ScoreWrite  # deposit_to_loan v1, m000..m009
    repeat: ScoreWrite  # churn v1 at DAY_1 again (other scores)
    versions_before_repeat: tuple[int, int]
    versions_after_repeat: tuple[int, int]
    second: ScoreWrite  # churn v2: m000..m014 rescored, m015..m019 left, m020..m021 new
    backfill: ScoreWrite  # churn v2 at DAY_0 (older snapshot)
    first_current: list[tuple]
    current_before_second: list[tuple]
    current_after_second: list[tuple]
    current_after_backfill: list[tuple]


def _current(spark: SparkSession, catalog: TableCatalog) -> list[tuple]:
    table = delta_io.read_table(spark, scores_table(catalog))
    cols = ["master_id", "model", "version", "snapshot_date", "score", "decile", "scored_at"]
    return sorted(tuple(r) for r in table.select(*cols).collect())


def _versions(spark: SparkSession, catalog: TableCatalog) -> tuple[int, int]:
    return (
        delta_io.table_version(spark, scores_table(catalog)),
        delta_io.table_version(spark, scores_history_table(catalog)),
    )


@pytest.fixture(scope="module")
def scenario(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    catalog = TableCatalog(str(tmp_path_factory.mktemp("scores")))
    saved = spark.conf.get(DV_DEFAULT, None)
    spark.conf.set(DV_DEFAULT, "true")
    try:
        churn_v1 = {m: (i % 20) / 20 for i, m in enumerate(ids(20))}
        first = write_scores(spark, catalog, scored_frame(spark, churn_v1), CHURN, 1, DAY_1)
        first_current = _current(spark, catalog)
        loan = dict.fromkeys(ids(10), 0.5)
        other = write_scores(spark, catalog, scored_frame(spark, loan), LOAN, 1, DAY_1)
        before = _versions(spark, catalog)
        rescored = dict.fromkeys(ids(20), 0.99)
        repeat = write_scores(spark, catalog, scored_frame(spark, rescored), CHURN, 1, DAY_1)
        after = _versions(spark, catalog)
        current_before_second = _current(spark, catalog)
        churn_v2 = {m: 1 - (i / 20) for i, m in enumerate(ids(15) + ids(2, start=20))}
        second = write_scores(spark, catalog, scored_frame(spark, churn_v2), CHURN, 2, DAY_1)
        current_after_second = _current(spark, catalog)
        older = dict.fromkeys(ids(5), 0.01)
        backfill = write_scores(spark, catalog, scored_frame(spark, older), CHURN, 2, DAY_0)
    finally:
        if saved is None:
            spark.conf.unset(DV_DEFAULT)
        else:
            spark.conf.set(DV_DEFAULT, saved)
    return Scenario(
        catalog,
        first,
        other,
        repeat,
        before,
        after,
        second,
        backfill,
        first_current,
        current_before_second,
        current_after_second,
        _current(spark, catalog),
    )


def test_the_first_scoring_inserts_one_row_per_customer(scenario: Scenario) -> None:
    assert scenario.first.skipped is False
    assert (scenario.first.scored, scenario.first.inserted) == (20, 20)
    assert len(scenario.first_current) == 20
    assert {r[0] for r in scenario.first_current} == set(ids(20))
    assert all(0 <= r[4] <= 1 and 1 <= r[5] <= 10 for r in scenario.first_current)


def test_a_rescore_of_the_same_version_and_snapshot_makes_no_commit(scenario: Scenario) -> None:
    assert scenario.repeat == ScoreWrite(CHURN, 1, DAY_1, skipped=True)
    assert scenario.versions_after_repeat == scenario.versions_before_repeat


def test_a_new_version_updates_in_place_and_removes_customers_who_left(
    scenario: Scenario,
) -> None:
    second = scenario.second
    assert (second.skipped, second.current_updated) == (False, True)
    assert (second.inserted, second.updated, second.deleted) == (2, 15, 5)
    churn = [r for r in scenario.current_after_second if r[1] == CHURN]
    assert [r[0] for r in churn] == ids(15) + ids(2, start=20)
    assert {(r[2], r[3]) for r in churn} == {(2, DAY_1)}
    # the other model's rows are untouched, scored_at included
    loan_before = [r for r in scenario.current_before_second if r[1] == LOAN]
    loan_after = [r for r in scenario.current_after_second if r[1] == LOAN]
    assert len(loan_after) == 10
    assert loan_after == loan_before


def test_an_older_snapshot_goes_to_the_history_only(scenario: Scenario) -> None:
    assert scenario.backfill.skipped is False
    assert scenario.backfill.current_updated is False
    assert scenario.current_after_backfill == scenario.current_after_second


def test_the_history_keeps_every_scoring(spark: SparkSession, scenario: Scenario) -> None:
    history = delta_io.read_table(spark, scores_history_table(scenario.catalog))
    counts = {
        (r["model"], r["version"], r["snapshot_date"]): r["count"]
        for r in history.groupBy("model", "version", "snapshot_date").count().collect()
    }
    assert counts == {
        (CHURN, 1, DAY_1): 20,
        (LOAN, 1, DAY_1): 10,
        (CHURN, 2, DAY_1): 17,
        (CHURN, 2, DAY_0): 5,
    }
    # the skipped re-score (all 0.99) left no trace
    assert history.where(F.col("score") == 0.99).count() == 0


# ---------------------------------------------------------------------------------------------
# readable by non-Spark Delta readers
# ---------------------------------------------------------------------------------------------


def _features(spark: SparkSession, location: str) -> tuple[int, int, list[str], dict[str, str]]:
    d = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
    assert d is not None
    return d["minReaderVersion"], d["minWriterVersion"], sorted(d["tableFeatures"]), d["properties"]


@pytest.mark.parametrize("table", ["current", "history"])
def test_score_tables_have_no_feature_delta_rs_lacks(
    spark: SparkSession, scenario: Scenario, table: str
) -> None:
    ref = (scores_table if table == "current" else scores_history_table)(scenario.catalog)
    reader, _, features, properties = _features(spark, ref.location)
    assert reader == 1
    assert not {"deletionVectors", "columnMapping"} & set(features)
    assert {k: properties.get(k) for k in BI_READABLE_PROPERTIES} == BI_READABLE_PROPERTIES
    assert bi_readability_problems(spark, ref) == []


def test_a_deletion_vector_table_is_reported_unreadable(
    spark: SparkSession, tmp_path: Path
) -> None:
    ref = TableCatalog(str(tmp_path)).table("gold", "dv_table")
    delta_io.write_table(spark.range(3), ref, properties={"delta.enableDeletionVectors": "true"})
    assert bi_readability_problems(spark, ref) == [
        "gold.dv_table: table feature deletionVectors",
        "gold.dv_table: property delta.enableDeletionVectors = 'true' (expected 'false')",
    ]


def test_the_merged_scores_read_the_same_with_deltalake_and_polars(
    spark: SparkSession, scenario: Scenario
) -> None:
    location = scores_table(scenario.catalog).location
    spark_rows = sorted(
        (r["master_id"], r["model"], r["version"], r["score"], r["decile"])
        for r in delta_io.read_table(spark, scores_table(scenario.catalog)).collect()
    )
    arrow = deltalake.DeltaTable(location).to_pyarrow_table()
    arrow_rows = sorted(
        zip(
            *(
                arrow.column(c).to_pylist()
                for c in ("master_id", "model", "version", "score", "decile")
            ),
            strict=True,
        )
    )
    frame = pl.read_delta(location)
    polars_rows = sorted(
        frame.select("master_id", "model", "version", "score", "decile").iter_rows()
    )
    assert len(spark_rows) == 27  # 17 churn + 10 deposit_to_loan, after updates and deletes
    assert arrow_rows == spark_rows
    assert polars_rows == spark_rows
    assert frame.schema["reasons"] == pl.List(
        pl.Struct({"feature": pl.String, "name": pl.String, "contribution": pl.Float64})
    )
