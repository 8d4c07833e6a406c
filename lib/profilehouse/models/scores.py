"""Model scores written back to the lakehouse: ``gold.model_scores`` and its history.

``gold.model_scores`` holds the *current* score of every customer for every model: one row per
``(master_id, model)``. :func:`write_scores` MERGEs a model's scored population into it:

- matched rows whose values changed are updated in place; new customers are inserted;
- customers of that model who are not in the scored population any more (left, or merged away
  by identity resolution) are deleted: ``WHEN NOT MATCHED BY SOURCE AND t.model = <model>
  THEN DELETE``, so the other models' rows stay as they are;
- a population of an older snapshot than the one the table holds for the model (a backfill)
  goes to the history only.

The MERGE condition names the model as a literal and both tables are partitioned by ``model``,
so a model's MERGE reads and rewrites only that model's files.

``gold.model_scores_history`` keeps every scoring: its rows are appended once per ``(model,
version, snapshot_date)``, as an idempotent append (Delta ``txnAppId`` =
``gold.model_scores_history/<model>/<version>/<snapshot_date>``: a retried append is skipped).
It is written last, so it is also the record that a scoring is complete: one aggregate over the
model's history rows tells whether this scoring is there already (then the re-score is a
no-op: no commit on either table) and the newest snapshot the current table shows (a backfill
of an older one goes to the history only).

The population is checked and measured in one aggregate: bad scores and duplicate customers
are counted (every problem reported at once), and the score deciles computed by
``percentile_approx`` (mergeable sketches, no shuffle of the rows, where ``percent_rank`` /
``ntile`` over an unpartitioned window would move every row to a single partition). Nine
thresholds reach the driver; each row's decile (1 = highest scores) is a sum of comparisons
against them. Equal scores share a decile, so deciles are of equal size only when scores are
distinct.

Both tables (and the other BI-facing gold tables, through :data:`BI_READABLE_PROPERTIES` and
:func:`create_bi_table`) stay readable by non-Spark Delta readers (delta-rs, polars): created
with deletion vectors and column mapping explicitly off, whatever the session's defaults
(``spark.databricks.delta.properties.defaults.*``) say, so their protocol stays at reader
version 1 and MERGE / DELETE rewrite files instead of writing deletion vectors.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.errors import ProfilehouseError, SchemaError

SCORES = "model_scores"
SCORES_HISTORY = "model_scores_history"

MASTER_ID = "master_id"
MODEL = "model"
VERSION = "version"
SNAPSHOT_DATE = "snapshot_date"
SCORE = "score"
DECILE = "decile"
REASONS = "reasons"
SCORED_AT = "scored_at"

REASON_TYPE = T.StructType(
    [
        T.StructField("feature", T.StringType()),
        T.StructField("name", T.StringType()),
        T.StructField("contribution", T.DoubleType()),
    ]
)
REASONS_TYPE = T.ArrayType(REASON_TYPE)
SCORES_SCHEMA = T.StructType(
    [
        T.StructField(MASTER_ID, T.StringType()),
        T.StructField(MODEL, T.StringType()),
        T.StructField(VERSION, T.IntegerType()),
        T.StructField(SNAPSHOT_DATE, T.DateType()),
        T.StructField(SCORE, T.DoubleType()),
        T.StructField(DECILE, T.IntegerType()),
        T.StructField(REASONS, REASONS_TYPE),
        T.StructField(SCORED_AT, T.TimestampType()),
    ]
)
DECILES = 10
QUANTILE_ACCURACY = 100_000  # percentile_approx accuracy: relative rank error 1e-5

# Table properties every BI-facing gold table is created with: delta-rs (the `deltalake`
# package, and polars through it) reads neither deletion vectors nor column mapping, and a
# session may turn deletion vectors on for new tables by default.
BI_READABLE_PROPERTIES = {
    "delta.enableDeletionVectors": "false",
    "delta.columnMapping.mode": "none",
}
# Table features (DESCRIBE DETAIL ``tableFeatures``) a BI-facing table must not have.
BI_UNREADABLE_FEATURES = frozenset({"deletionVectors", "columnMapping"})

_MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMERIC_TYPE = re.compile(r"^(tinyint|smallint|int|bigint|float|double|decimal(\(.*\))?)$")


class ScoreError(ProfilehouseError):
    """A scored population cannot be written: bad scores or a customer scored twice."""


@dataclass(frozen=True)
class ScoreWrite:
    """What :func:`write_scores` did. ``skipped``: the scoring was there already, nothing was
    written; ``current_updated``: false for a skipped or older-snapshot (backfill) scoring."""

    model: str
    version: int
    snapshot_date: dt.date
    skipped: bool
    scored: int = 0
    current_updated: bool = False
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    thresholds: tuple[float, ...] = ()


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------


def scores_table(catalog: TableCatalog) -> TableRef:
    """``gold.model_scores``: the current score per customer per model."""
    return catalog.table(Layer.GOLD, SCORES)


def scores_history_table(catalog: TableCatalog) -> TableRef:
    """``gold.model_scores_history``: every scoring, once per model, version and snapshot."""
    return catalog.table(Layer.GOLD, SCORES_HISTORY)


def create_bi_table(
    spark: SparkSession, ref: TableRef, rows: DataFrame, partition_by: tuple[str, ...] = ()
) -> None:
    """Create ``ref`` empty with ``rows``' schema and :data:`BI_READABLE_PROPERTIES` when it is
    absent (later writes MERGE into it; two creators racing both append nothing)."""
    if delta_io.table_exists(spark, ref):
        return
    delta_io.write_table(
        rows.limit(0),
        ref,
        mode="append",
        partition_by=partition_by,
        properties=BI_READABLE_PROPERTIES,
    )


def bi_readability_problems(spark: SparkSession, ref: TableRef) -> list[str]:
    """Why non-Spark readers cannot read ``ref`` (empty when they can): a table feature of
    :data:`BI_UNREADABLE_FEATURES`, or a property that a later MERGE would turn into one."""
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{ref.location}`").first()
    if detail is None:
        return [f"{ref.qualified_name}: no table at {ref.location}"]
    features = set(detail["tableFeatures"] or ()) & BI_UNREADABLE_FEATURES
    properties = detail["properties"] or {}
    problems = [f"{ref.qualified_name}: table feature {f}" for f in sorted(features)]
    problems += [
        f"{ref.qualified_name}: property {key} = {properties.get(key)!r} (expected {value!r})"
        for key, value in BI_READABLE_PROPERTIES.items()
        if properties.get(key, value) != value
    ]
    return problems


def merge_replacing(
    spark: SparkSession,
    ref: TableRef,
    rows: DataFrame,
    on: str,
    update_when: str,
    delete_when: str | None,
    evolve_schema: bool = False,
) -> dict[str, int]:
    """MERGE ``rows`` (alias ``s``) into ``ref`` (alias ``t``) on ``on``: update matched rows
    where ``update_when`` holds, insert new ones, delete target rows no source row matches
    (only those where ``delete_when`` holds; all when it is None). ``evolve_schema``: columns
    of ``rows`` the table lacks are added to it. Returns the commit's operation metrics.
    Retried on concurrent commits (it is idempotent)."""

    def merge() -> None:
        builder = (
            DeltaTable.forPath(spark, ref.location)
            .alias("t")
            .merge(rows.alias("s"), on)
            .whenMatchedUpdateAll(condition=update_when)
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete(condition=delete_when)
        )
        if evolve_schema:
            builder = builder.withSchemaEvolution()
        builder.execute()

    delta_io.retry_on_conflict(merge)
    return delta_io.last_operation_metrics(spark, ref)


# ---------------------------------------------------------------------------------------------
# validation and deciles
# ---------------------------------------------------------------------------------------------


def validate_model_name(model: str) -> None:
    """ValueError unless ``model`` is a lower-case identifier (it names profile columns)."""
    if not _MODEL_NAME.match(model):
        raise ValueError(f"model name must be a lower-case identifier, got {model!r}")


@dataclass(frozen=True)
class ScoredPopulation:
    """A valid scored population's size and score deciles (10 %, 20 % … 90 %, ascending)."""

    rows: int
    thresholds: tuple[float, ...]


def scored_population(
    scored: DataFrame, model: str, accuracy: int = QUANTILE_ACCURACY
) -> ScoredPopulation:
    """Check ``scored`` and measure it in one aggregate: its size and its score deciles by
    ``percentile_approx`` (exact for populations smaller than ``accuracy``).

    Raises ScoreError listing every problem at once, naming the model: scores null or outside
    [0, 1] (NaN included), null master IDs, master IDs scored more than once; SchemaError when
    a column is missing or of the wrong type.
    """
    _require_scored_columns(scored)
    score = F.col(SCORE).cast("double")
    bad = score.isNull() | F.isnan(score) | (score < 0) | (score > 1)
    cuts = [k / DECILES for k in range(1, DECILES)]
    row = scored.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(bad).alias("bad_scores"),
        F.count_if(F.col(MASTER_ID).isNull()).alias("null_ids"),
        F.count_distinct(MASTER_ID).alias("ids"),
        F.percentile_approx(score, cuts, accuracy).alias("q"),
    ).first()
    assert row is not None  # a global aggregate has one row
    problems = []
    if row["bad_scores"]:
        problems.append(f"{row['bad_scores']} row(s) with a null score or one outside [0, 1]")
    if row["null_ids"]:
        problems.append(f"{row['null_ids']} row(s) without a master_id")
    duplicates = row["rows"] - row["null_ids"] - row["ids"]
    if duplicates:
        problems.append(f"{duplicates} extra row(s) for master_ids scored more than once")
    if problems:
        raise ScoreError(f"scores of model {model!r}: " + "; ".join(problems))
    return ScoredPopulation(int(row["rows"]), tuple(float(q) for q in row["q"] or ()))


def _require_scored_columns(scored: DataFrame) -> None:
    types = dict(scored.dtypes)
    missing = [c for c in (MASTER_ID, SCORE, REASONS) if c not in types]
    if missing:
        raise SchemaError(
            f"scored rows: missing column(s) {', '.join(missing)} "
            f"(present: {', '.join(scored.columns)})"
        )
    if not _NUMERIC_TYPE.match(types[SCORE]):
        raise SchemaError(f"scored rows: {SCORE} must be numeric, got {types[SCORE]}")
    if types[REASONS] not in (REASONS_TYPE.simpleString(), "void"):
        raise SchemaError(
            f"scored rows: {REASONS} must be {REASONS_TYPE.simpleString()}, got {types[REASONS]}"
        )


def decile_expr(score: Column, thresholds: tuple[float, ...]) -> Column:
    """Decile of ``score`` among a population with ``thresholds`` (:func:`scored_population`):
    1 for the top tenth (above the 90 % threshold), 10 for the bottom one (at or below the 10 %
    threshold)."""
    above = sum((F.when(score > F.lit(q), 1).otherwise(0) for q in thresholds), F.lit(0))
    return (F.lit(len(thresholds) + 1) - above).cast("int")


def build_score_rows(
    scored: DataFrame,
    model: str,
    version: int,
    snapshot_date: dt.date,
    thresholds: tuple[float, ...],
    scored_at: dt.datetime,
) -> DataFrame:
    """``scored`` as rows of :data:`SCORES_SCHEMA`: model, version, snapshot, decile, time."""
    score = F.col(SCORE).cast("double")
    return scored.select(
        F.col(MASTER_ID).cast("string").alias(MASTER_ID),
        F.lit(model).alias(MODEL),
        F.lit(version).cast("int").alias(VERSION),
        F.lit(snapshot_date).alias(SNAPSHOT_DATE),
        score.alias(SCORE),
        decile_expr(score, thresholds).alias(DECILE),
        F.col(REASONS).cast(REASONS_TYPE).alias(REASONS),
        F.lit(scored_at).cast("timestamp").alias(SCORED_AT),
    )


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def write_scores(
    spark: SparkSession,
    catalog: TableCatalog,
    scored: DataFrame,
    model: str,
    version: int,
    snapshot_date: dt.date,
) -> ScoreWrite:
    """Write a model's scored population (``master_id``, ``score``, ``reasons``) as the
    current scores of ``model`` and once into the history; see the module docstring.

    ``version``: the model's registry version. Raises ScoreError (bad scores, duplicates),
    SchemaError (missing columns), ValueError (a model name that is not an identifier).
    """
    validate_model_name(model)
    history = scores_history_table(catalog)
    recorded, newest = _history_state(spark, history, model, version, snapshot_date)
    if recorded:
        return ScoreWrite(model, version, snapshot_date, skipped=True)
    kept = scored.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        population = scored_population(kept, model)
        scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = build_score_rows(
            kept, model, version, snapshot_date, population.thresholds, scored_at
        )
        current = scores_table(catalog)
        create_bi_table(spark, current, rows, partition_by=(MODEL,))
        create_bi_table(spark, history, rows, partition_by=(MODEL,))
        metrics: dict[str, int] = {}
        if newest is None or snapshot_date >= newest:
            metrics = _merge_current(spark, current, rows, model)
        app_id = f"{history.qualified_name}/{model}/{version}/{snapshot_date.isoformat()}"
        delta_io.write_table(
            rows, history, mode="append", options=delta_io.idempotent_options(app_id, 1)
        )
    finally:
        kept.unpersist()
    return ScoreWrite(
        model,
        version,
        snapshot_date,
        skipped=False,
        scored=population.rows,
        current_updated=bool(metrics),
        inserted=metrics.get("numTargetRowsInserted", 0),
        updated=metrics.get("numTargetRowsUpdated", 0),
        deleted=metrics.get("numTargetRowsDeleted", 0),
        thresholds=population.thresholds,
    )


def _history_state(
    spark: SparkSession, history: TableRef, model: str, version: int, snapshot_date: dt.date
) -> tuple[bool, dt.date | None]:
    """Whether the history holds ``model`` at ``version`` for ``snapshot_date``, and the newest
    snapshot it holds of ``model`` (the one the current table shows), in one aggregate."""
    if not delta_io.table_exists(spark, history):
        return False, None
    this = (F.col(VERSION) == version) & (F.col(SNAPSHOT_DATE) == F.lit(snapshot_date))
    row = (
        delta_io.read_table(spark, history)
        .where(F.col(MODEL) == model)
        .agg(F.count_if(this).alias("rows"), F.max(SNAPSHOT_DATE).alias("newest"))
        .first()
    )
    assert row is not None  # a global aggregate has one row
    return row["rows"] > 0, row["newest"]


def _merge_current(
    spark: SparkSession, current: TableRef, rows: DataFrame, model: str
) -> dict[str, int]:
    """MERGE ``rows`` of ``model`` into the current table: changed rows updated, new ones
    inserted, that model's customers missing from ``rows`` deleted."""
    this_model = f"t.{MODEL} = '{model}'"  # a literal: MERGE prunes to the model's partition
    changed = " OR ".join(
        f"NOT (t.{c} <=> s.{c})" for c in (VERSION, SNAPSHOT_DATE, SCORE, DECILE, REASONS)
    )
    return merge_replacing(
        spark,
        current,
        rows,
        on=f"{this_model} AND t.{MASTER_ID} = s.{MASTER_ID} AND t.{MODEL} = s.{MODEL}",
        update_when=changed,
        delete_when=this_model,
    )
