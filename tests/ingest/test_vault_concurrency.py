"""Sources loaded side by side share PII values (an account number in accounts, balances and
transactions): the vault must hold each token once however their writes interleave."""

from __future__ import annotations

import threading
from pathlib import Path

from pyspark.sql import SparkSession

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.ingest import silver
from profilehouse.tables import vault_table

SCHEMA = "kind string, token string, value string, first_source string"


def test_sources_creating_the_vault_at_once_store_each_token_once(
    spark: SparkSession, tmp_path: Path
) -> None:
    catalog = TableCatalog(str(tmp_path / "warehouse"))
    shared = [("account_no", f"t{i:03d}", f"62220000{i:08d}") for i in range(20)]
    frames = {
        source: spark.createDataFrame([(*row, source) for row in shared], SCHEMA)
        for source in ("bank_accounts", "bank_balances", "bank_transactions")
    }
    start = threading.Barrier(len(frames))
    errors: list[BaseException] = []

    def merge(source: str) -> None:
        try:
            start.wait()
            silver._merge_vault(spark, catalog, frames[source])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(s,)) for s in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    vault = delta_io.read_table(spark, vault_table(catalog))
    assert vault.count() == len(shared)
    assert vault.select("token").distinct().count() == len(shared)
