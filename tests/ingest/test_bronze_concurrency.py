"""Two bronze runs of one source at once, a new file landing between them: every file lands in
bronze exactly once, also when one run's file log is stale (the lock bypassed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.config import LockSettings
from profilehouse.ingest.bronze import bronze_table, file_log_table, load_bronze_source
from profilehouse.locks import current_owner
from tests.ingest.conftest import CUSTOMER_HEADER, Landing, customers_spec

WAIT = LockSettings(lease_seconds=600, wait_seconds=600, poll_seconds=0.5)


def _write(landing: Landing, name: str, rows: int) -> None:
    lines = [f"{name}-{i},n,,,,,,,2021-05-06,C1" for i in range(rows)]
    landing.write_csv("bank/customers", "2025-01-01", f"{name}.csv", CUSTOMER_HEADER, lines)


def _assert_each_file_once(spark: SparkSession, landing: Landing, expected: dict[str, int]):
    """Bronze rows per file equal the file's rows; the log says each file loaded once."""
    spec = customers_spec()
    rows = delta_io.read_table(spark, bronze_table(landing.catalog, spec))
    per_file = {
        Path(r["_source_file"]).stem: r["count"]
        for r in rows.groupBy("_source_file").count().collect()
    }
    assert per_file == expected
    log = delta_io.read_table(spark, file_log_table(landing.catalog)).where("status = 'loaded'")
    loaded = log.groupBy("file_path").agg(F.count("*").alias("n"), F.max("rows").alias("rows"))
    assert {Path(r["file_path"]).stem: (r["n"], r["rows"]) for r in loaded.collect()} == {
        name: (1, n) for name, n in expected.items()
    }


def test_a_run_with_a_stale_file_log_does_not_reuse_a_taken_load_id(
    spark: SparkSession, landing: Landing
) -> None:
    """The second run read the log before the first committed (as a run whose lock lease
    expired would): it picks load ID 1 again, sees the claim is not its own, starts over."""
    spec = customers_spec()
    _write(landing, "a", 3)
    _write(landing, "b", 2)
    first = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert first.load_ids == [1]
    _write(landing, "c", 4)  # arrives between the runs
    second = load_bronze_source(spark, landing.catalog, spec, landing.uri, log=[])
    assert (second.files, second.rows) == (1, 4)
    _assert_each_file_once(spark, landing, {"a": 3, "b": 2, "c": 4})


def test_two_concurrent_runs_load_every_file_exactly_once(
    spark: SparkSession, landing: Landing
) -> None:
    spec = customers_spec()
    _write(landing, "a", 3)
    _write(landing, "b", 2)
    results: dict[str, object] = {}

    def run(name: str, log: list | None) -> None:
        try:
            results[name] = load_bronze_source(
                spark, landing.catalog, spec, landing.uri, log, lock_settings=WAIT
            )
        except Exception as exc:  # reported by the assertion below
            results[name] = exc

    first = threading.Thread(target=run, args=("first", None))
    first.start()
    deadline = time.monotonic() + 300
    while current_owner(spark, landing.catalog, "bronze:bank_customers") is None:
        assert time.monotonic() < deadline and first.is_alive(), results
        time.sleep(0.2)
    _write(landing, "c", 4)  # a new file lands while the first run holds the lock
    second = threading.Thread(target=run, args=("second", []))  # its log read before: stale
    second.start()
    first.join()
    second.join()

    assert not any(isinstance(r, Exception) for r in results.values()), results
    assert sum(r.rows for r in results.values()) == 9  # type: ignore[attr-defined]
    _assert_each_file_once(spark, landing, {"a": 3, "b": 2, "c": 4})
