"""Writes generated sources as real exports: CSV, JSON lines or Parquet, one folder per batch.

Layout: ``<landing>/<system>/<table>/batch=<YYYY-MM-DD>/part-*.{csv,json,parquet}``. The full
history arrives in the first batch (several files at scale); each later daily batch is one file.
CSV lines are built here (quoting only where a value needs it) so that malformed lines — truncated,
with extra fields, or garbage — can be planted at a known rate, as broken exports really look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.generator import rand

Format = Literal["csv", "jsonl", "parquet"]
MALFORMED_KINDS = ("truncated", "extra_fields", "garbage")
ROWS_PER_FILE = 1_000_000


@dataclass(frozen=True)
class SourceSpec:
    """How one source table is exported."""

    system: str  # bank / retail / marketing
    table: str
    fmt: Format
    columns: tuple[str, ...]
    key: str  # column holding the record key (for draws and ground truth)

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}"

    def path(self, landing_root: str) -> str:
        return f"{landing_root.rstrip('/')}/{self.system}/{self.table}"


def csv_field_expr(value: Column) -> Column:
    """A value as one CSV field: empty for null, quoted (with doubled quotes) when needed."""
    s = F.coalesce(value.cast("string"), F.lit(""))
    needs_quotes = s.contains(",") | s.contains('"') | s.contains("\n")
    quoted = F.concat(F.lit('"'), F.regexp_replace(s, '"', '""'), F.lit('"'))
    return F.when(needs_quotes, quoted).otherwise(s)


def malformed_line_expr(line: Column, kind: Column, n_fields: int) -> Column:
    """A broken version of ``line``: truncated, with extra fields, or garbage."""
    keep = max(1, n_fields // 2)
    return (
        F.when(kind == "truncated", F.substring_index(line, ",", keep))
        .when(kind == "extra_fields", F.concat(line, F.lit(",,#EXTRA#,")))
        .otherwise(F.lit("### export interrupted ### ERR-0x1F"))
    )


def with_malformed(df: DataFrame, rate: float, seed: int, spec: SourceSpec) -> DataFrame:
    """Add ``malformed`` (bool) and ``malformed_kind`` columns drawn per record."""
    flag = rand.uniform(seed, f"{spec.name}:malformed", spec.key) < rate
    kind = rand.choice(MALFORMED_KINDS, seed, f"{spec.name}:malformed_kind", spec.key)
    if spec.fmt == "parquet":  # a Parquet file cannot hold a broken row
        flag = F.lit(False)
    return df.withColumn("malformed", flag).withColumn("malformed_kind", F.when(flag, kind))


def write_source(
    df: DataFrame,
    spec: SourceSpec,
    landing_root: str,
    initial_batch: str,
    expected_rows: int,
) -> None:
    """Write ``df`` (with ``batch``, ``malformed``, ``malformed_kind`` and ``spec.columns``)."""
    out = spec.path(landing_root)
    n_files = max(1, -(-expected_rows // ROWS_PER_FILE))
    slot = F.when(
        F.col("batch") == initial_batch, F.pmod(F.xxhash64(F.col(spec.key)), F.lit(n_files))
    ).otherwise(F.lit(0))
    cols = [F.col(c) for c in spec.columns]
    if spec.fmt == "csv":
        line = F.concat_ws(",", *[csv_field_expr(c) for c in cols])
        body = F.when(
            F.col("malformed"), malformed_line_expr(line, F.col("malformed_kind"), len(cols))
        ).otherwise(line)
        data = df.select(
            "batch",
            F.lit(0).alias("_slot") if n_files == 1 else slot.alias("_slot"),
            body.alias(",".join(spec.columns)),
        )
    elif spec.fmt == "jsonl":
        line = F.to_json(F.struct(*cols))
        body = F.when(
            F.col("malformed"),
            F.when(F.col("malformed_kind") == "garbage", F.lit('{"broken": ### ERR')).otherwise(
                F.substring(line, 1, 30)
            ),
        ).otherwise(line)
        data = df.select("batch", slot.alias("_slot"), body.alias("value"))
    else:
        data = df.select("batch", slot.alias("_slot"), *cols)
    data = data.repartition(max(n_files, 1) + 4, "batch", "_slot").drop("_slot")
    writer = data.write.mode("overwrite").partitionBy("batch")
    if spec.fmt == "csv":
        (
            writer.option("header", "true")
            .option("sep", "\u0001")
            .option("quote", "\u0000")
            .option("escapeQuotes", "false")
            .option("encoding", "UTF-8")
            .csv(out)
        )
    elif spec.fmt == "jsonl":
        writer.option("compression", "none").text(out)
    else:
        writer.parquet(out)


def batch_of_expr(event_date: Column, initial_batch: str) -> Column:
    """Batch date string for a record whose business date is ``event_date``."""
    return F.when(event_date <= F.lit(initial_batch).cast("date"), F.lit(initial_batch)).otherwise(
        F.date_format(event_date, "yyyy-MM-dd")
    )


def select_for_truth(df: DataFrame, spec: SourceSpec, extra: Sequence[str] = ()) -> DataFrame:
    """Ground-truth rows for a source: record key → person, batch and applied patterns."""
    return df.select(
        F.lit(spec.name).alias("source"),
        F.col(spec.key).cast("string").alias("record_key"),
        "person_id",
        "batch",
        "malformed",
        *extra,
    )
