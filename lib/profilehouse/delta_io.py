"""Delta IO: every read, write, MERGE and table property goes through here.

Transforms never touch storage; jobs call these functions with a :class:`TableRef` from the
catalog, so storage and environment differences stay out of the logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from profilehouse.catalog import TableRef

WriteMode = Literal["overwrite", "append", "error", "ignore"]


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    """True when a Delta table exists at ``ref``'s location."""
    return DeltaTable.isDeltaTable(spark, ref.location)


def write_table(
    df: DataFrame,
    ref: TableRef,
    mode: WriteMode = "overwrite",
    partition_by: Sequence[str] = (),
    properties: dict[str, str] | None = None,
    overwrite_schema: bool = False,
) -> None:
    """Write ``df`` as the Delta table ``ref`` (atomically: readers see all of it or none).

    ``properties`` become Delta table properties (``delta.enableChangeDataFeed`` etc.).
    """
    writer = df.write.format("delta").mode(mode)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if overwrite_schema:
        writer = writer.option("overwriteSchema", "true")
    for key, value in (properties or {}).items():
        writer = writer.option(key, value)
    writer.save(ref.location)


def read_table(
    spark: SparkSession,
    ref: TableRef,
    version: int | None = None,
    timestamp: str | None = None,
) -> DataFrame:
    """Read the Delta table ``ref``, optionally as of a version or timestamp (time travel)."""
    if version is not None and timestamp is not None:
        raise ValueError("pass at most one of version and timestamp")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    if timestamp is not None:
        reader = reader.option("timestampAsOf", timestamp)
    return reader.load(ref.location)


def table_version(spark: SparkSession, ref: TableRef) -> int:
    """Latest committed version of the Delta table ``ref``."""
    last = DeltaTable.forPath(spark, ref.location).history(1).select("version").first()
    if last is None:
        raise ValueError(f"Delta table {ref.qualified_name} at {ref.location} has no history")
    return int(last["version"])


def register_table(spark: SparkSession, ref: TableRef) -> None:
    """Register ``ref`` in the Spark catalog as ``layer.name`` pointing at its location."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{ref.layer.value}`")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS `{ref.layer.value}`.`{ref.name}` "
        f"USING DELTA LOCATION '{ref.location}'"
    )
