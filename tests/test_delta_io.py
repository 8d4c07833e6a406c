"""Delta IO: retries on concurrent commits, idempotent appends, concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog


def test_retry_on_conflict_retries_only_concurrent_commit_failures() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("io.delta.exceptions.ConcurrentAppendException: Files were added")
        return "done"

    assert delta_io.retry_on_conflict(flaky) == "done"
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise ValueError("a real bug")

    calls.clear()
    with pytest.raises(ValueError, match="a real bug"):
        delta_io.retry_on_conflict(broken)
    assert len(calls) == 1


def test_retry_on_conflict_gives_up_after_the_last_attempt() -> None:
    def always() -> None:
        raise RuntimeError("[DELTA_CONCURRENT_APPEND] ConcurrentAppendException")

    with pytest.raises(RuntimeError, match="DELTA_CONCURRENT_APPEND"):
        delta_io.retry_on_conflict(always, attempts=2)


def test_idempotent_append_is_applied_once(spark: SparkSession, tmp_path: Path) -> None:
    ref = TableCatalog(str(tmp_path)).table("ops", "appends")
    rows = spark.createDataFrame([(1,)], "n int")
    for _ in range(3):
        delta_io.write_table(
            rows, ref, mode="append", options=delta_io.idempotent_options("app", 7)
        )
    assert delta_io.read_table(spark, ref).count() == 1


def test_concurrent_writers_creating_one_table_all_land(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Eight threads append to a table none of them finds existing (the first ingest run)."""
    ref = TableCatalog(str(tmp_path)).table("ops", "shared")

    def append(i: int) -> None:
        rows = spark.createDataFrame([(i,)], "n int")
        delta_io.write_table(
            rows, ref, mode="append", options=delta_io.idempotent_options(f"writer-{i}", 1)
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(append, range(8)))
    got = sorted(r["n"] for r in delta_io.read_table(spark, ref).collect())
    assert got == list(range(8))
