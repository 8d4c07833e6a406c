"""Delta IO: every read, write, MERGE and table property goes through here.

Transforms never touch storage; jobs call these functions with a :class:`TableRef` from the
catalog, so storage and environment differences stay out of the logic.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession

from profilehouse.catalog import TableRef

WriteMode = Literal["overwrite", "append", "error", "ignore"]
T = TypeVar("T")
# Delta's optimistic-concurrency failures: another writer committed first. Every write here is
# idempotent (txn-tagged appends, conditional MERGEs), so trying again is safe.
_CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentWriteException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DELTA_CONCURRENT_",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)
CONFLICT_ATTEMPTS = 6


def is_conflict(exc: BaseException) -> bool:
    """True when ``exc`` is Delta's optimistic-concurrency failure (another writer won)."""
    return any(name in str(exc) for name in _CONFLICTS)


def retry_on_conflict(action: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run ``action``; when a concurrent Delta commit makes it fail, wait briefly and retry."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not any(name in str(exc) for name in _CONFLICTS):
                raise
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    raise AssertionError("unreachable")


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
    options: dict[str, str] | None = None,
) -> None:
    """Write ``df`` as the Delta table ``ref`` (atomically: readers see all of it or none).

    ``properties`` become Delta table properties (``delta.enableChangeDataFeed`` etc.);
    ``options`` are writer options (``mergeSchema``, or :func:`idempotent_options`).
    """
    writer = df.write.format("delta").mode(mode)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if overwrite_schema:
        writer = writer.option("overwriteSchema", "true")
    for key, value in {**(properties or {}), **(options or {})}.items():
        writer = writer.option(key, value)
    retry_on_conflict(lambda: writer.save(ref.location))


def idempotent_options(app_id: str, version: int) -> dict[str, str]:
    """Writer options making an append idempotent: Delta skips it when ``app_id`` has already
    committed ``version`` (or a later one) to the table, so a retried write never duplicates."""
    return {"txnAppId": app_id, "txnVersion": str(version)}


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


CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def read_changes(
    spark: SparkSession, ref: TableRef, after_version: int, up_to_version: int
) -> DataFrame:
    """The rows of ``ref`` changed by the commits after ``after_version`` up to
    ``up_to_version`` (Change Data Feed: inserts, deletes, and both images of updates), with the
    table's own columns only. Fails when the feed was not enabled over those versions."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after_version + 1)
        .option("endingVersion", up_to_version)
        .load(ref.location)
        .drop(*CHANGE_COLUMNS)
    )


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


def merge_rows(
    spark: SparkSession,
    ref: TableRef,
    rows: DataFrame,
    on: str,
    update_when: str | None,
    update_set: dict[str, str] | None = None,
    insert_values: dict[str, str] | None = None,
) -> dict[str, int]:
    """MERGE ``rows`` (alias ``s``) into the table ``ref`` (alias ``t``) on the SQL ``on``.

    Unmatched rows are inserted; matched rows are replaced when ``update_when`` holds (never
    when it is None). ``update_set`` / ``insert_values`` (target column → SQL over ``s`` and
    ``t``) replace "every column from ``s``" when a column must be computed, e.g. to keep a
    target value; ``rows`` may then carry helper columns the table does not have.
    Returns the commit's operation metrics (``numTargetRowsInserted``, ...).
    """

    def merge() -> None:
        builder = DeltaTable.forPath(spark, ref.location).alias("t").merge(rows.alias("s"), on)
        if update_when is not None and update_set is not None:
            builder = builder.whenMatchedUpdate(condition=update_when, set=update_set)
        elif update_when is not None:
            builder = builder.whenMatchedUpdateAll(condition=update_when)
        if insert_values is not None:
            builder.whenNotMatchedInsert(values=insert_values).execute()
        else:
            builder.whenNotMatchedInsertAll().execute()

    retry_on_conflict(merge)
    return last_operation_metrics(spark, ref)


def insert_once(spark: SparkSession, ref: TableRef, rows: DataFrame, on: str) -> None:
    """Add ``rows`` (alias ``s``) to the table ``ref`` (alias ``t``) in one commit, except the
    rows for which a row satisfying the SQL ``on`` is there already.

    The idempotent append of many writers' rows at once: keyed by load, say, a load logged by
    an earlier (or concurrent) run is skipped whole, where ``txnAppId`` covers one writer per
    commit. An insert-only MERGE; a concurrent commit is retried against its result. The table
    is created empty first when absent (two creators appending rows would both land), and a
    table lacking some of ``rows``' columns gains them (schema evolution).
    """
    if not table_exists(spark, ref):
        write_table(rows.limit(0), ref, mode="append")
    retry_on_conflict(
        lambda: (
            DeltaTable.forPath(spark, ref.location)
            .alias("t")
            .merge(rows.alias("s"), on)
            .whenNotMatchedInsertAll()
            .withSchemaEvolution()
            .execute()
        )
    )


def delete_rows(spark: SparkSession, ref: TableRef, condition: Column) -> None:
    """Delete the rows of the table ``ref`` where ``condition`` holds (retried on conflicts)."""
    table = DeltaTable.forPath(spark, ref.location)
    retry_on_conflict(lambda: table.delete(condition))


def last_operation_metrics(spark: SparkSession, ref: TableRef) -> dict[str, int]:
    """The operation metrics of the latest commit of ``ref`` (numeric values only)."""
    last = DeltaTable.forPath(spark, ref.location).history(1).select("operationMetrics").first()
    metrics = (last["operationMetrics"] if last else None) or {}
    return {k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}


def last_operation_metric(spark: SparkSession, ref: TableRef, name: str) -> int:
    """One operation metric of the latest commit of ``ref`` (0 when absent)."""
    return last_operation_metrics(spark, ref).get(name, 0)
