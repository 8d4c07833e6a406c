"""Bronze: rows as received, mapped columns, schema errors naming file and column, exactly-once
file loads (also after a crash between commits)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.errors import ProfilehouseError, SchemaError
from profilehouse.ingest import bronze
from profilehouse.ingest.bronze import (
    bronze_table,
    file_log_table,
    load_bronze_source,
    load_bronze_sources,
)
from profilehouse.ingest.source_config import SourceSpec
from tests.ingest.conftest import CUSTOMER_HEADER, Landing, customers_spec

ROWS = [
    "C001,张伟,138 0013 8000,ZW@QQ.COM,110101199003070037,M,1990-03-07,1000.50,2020-01-01,C2",
    "C002,李娜,,,,,,,2021-05-06,C9",
    "C003,王芳,13900139000",  # truncated: malformed
]


def _bronze_rows(spark: SparkSession, landing: Landing, spec: SourceSpec) -> list:
    ref = bronze_table(landing.catalog, spec)
    return delta_io.read_table(spark, ref).orderBy("cust_no").collect()


def _versions(spark: SparkSession, landing: Landing, spec: SourceSpec) -> tuple[int, int]:
    cat = landing.catalog
    return (
        delta_io.table_version(spark, bronze_table(cat, spec)),
        delta_io.table_version(spark, file_log_table(cat)),
    )


def test_rows_are_kept_as_received_under_logical_names(
    spark: SparkSession, landing: Landing
) -> None:
    spec = customers_spec()
    path = landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, ROWS)
    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)

    assert (load.files, load.rows, load.batches) == (1, 3, {"2025-01-01": 3})
    rows = _bronze_rows(spark, landing, spec)
    first = rows[0].asDict()
    assert first["cust_no"] == "C001"  # exported as KHH
    assert first["mobile"] == "138 0013 8000"  # not standardised: as received
    assert first["annual_income"] == "1000.50"  # exported as income, kept as text
    assert first["_corrupt_record"] is None
    assert first["_batch"] == "2025-01-01"
    assert first["_source_file"].endswith(str(path))
    assert first["_load_id"] == 1
    assert len(first["_row_hash"]) == 64
    malformed = rows[2]
    assert malformed["_corrupt_record"] == "C003,王芳,13900139000"
    assert len({r["_row_hash"] for r in rows}) == 3


def test_missing_required_column_names_file_and_column(
    spark: SparkSession, landing: Landing
) -> None:
    header = CUSTOMER_HEADER.replace("open_date", "opened")
    path = landing.write_csv("bank/customers", "2025-01-01", "bad.csv", header, ROWS[:1])
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    message = str(err.value)
    assert str(path) in message
    assert "lacks required column(s) open_date" in message
    assert not delta_io.table_exists(spark, bronze_table(landing.catalog, customers_spec()))


def test_missing_mapped_column_is_named_by_its_export_name(
    spark: SparkSession, landing: Landing
) -> None:
    header = CUSTOMER_HEADER.replace("KHH", "cust_no")
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", header, ROWS[:1])
    with pytest.raises(SchemaError, match=r"lacks required column\(s\) KHH \(logical cust_no\)"):
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)


def test_extra_column_fails_when_configured(spark: SparkSession, landing: Landing) -> None:
    path = landing.write_csv(
        "bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER + ",vip", [ROWS[0] + ",Y"]
    )
    spec = customers_spec(extra_columns="fail")
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert str(path) in str(err.value)
    assert "unexpected column(s) vip" in str(err.value)


def test_extra_column_is_rescued_when_configured(spark: SparkSession, landing: Landing) -> None:
    spec = customers_spec(extra_columns="rescue")
    landing.write_csv(
        "bank/customers",
        "2025-01-01",
        "a.csv",
        CUSTOMER_HEADER + ",vip,note",
        [ROWS[0] + ",Y,", ROWS[1] + ",,"],
    )
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    rows = _bronze_rows(spark, landing, spec)
    assert json.loads(rows[0]["_rescued_data"]) == {"vip": "Y"}
    assert rows[1]["_rescued_data"] is None


def test_files_with_different_column_orders_land_in_one_schema(
    spark: SparkSession, landing: Landing
) -> None:
    spec = customers_spec()
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", "KHH,open_date", ["C1,2020-01-01"])
    landing.write_csv(
        "bank/customers", "2025-01-02", "b.csv", "open_date,name,KHH", ["2021-02-02,赵四,C2"]
    )
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    got = [
        (r["cust_no"], r["name"], r["open_date"], r["_batch"])
        for r in _bronze_rows(spark, landing, spec)
    ]
    assert got == [
        ("C1", None, "2020-01-01", "2025-01-01"),
        ("C2", "赵四", "2021-02-02", "2025-01-02"),
    ]


def test_empty_file_loads_no_rows_but_is_logged(spark: SparkSession, landing: Landing) -> None:
    landing.write("bank/customers", "2025-01-01", "empty.csv", "")
    load = load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    assert (load.files, load.rows) == (1, 0)
    again = load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    assert again.files == 0


def test_missing_landing_folder_is_an_error(spark: SparkSession, landing: Landing) -> None:
    with pytest.raises(SchemaError, match=r"landing folder .*bank/customers does not exist"):
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)


def test_hidden_and_marker_files_are_skipped(spark: SparkSession, landing: Landing) -> None:
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, ROWS[:1])
    landing.write("bank/customers", "2025-01-01", "_SUCCESS", "")
    landing.write("bank/customers", "2025-01-01", ".a.csv.crc", "garbage")
    load = load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    assert (load.files, load.rows) == (1, 1)


def test_each_file_is_loaded_once(spark: SparkSession, landing: Landing) -> None:
    spec = customers_spec()
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, ROWS)
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    before = _versions(spark, landing, spec)

    again = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (again.files, again.rows, again.load_ids) == (0, 0, [])
    assert _versions(spark, landing, spec) == before  # nothing committed

    landing.write_csv(
        "bank/customers", "2025-01-02", "a.csv", CUSTOMER_HEADER, [ROWS[1].replace("C002", "C004")]
    )
    third = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (third.files, third.rows, third.load_ids) == (1, 1, [2])
    ids = [r["cust_no"] for r in _bronze_rows(spark, landing, spec)]
    assert ids == ["C001", "C002", "C003", "C004"]


def test_a_run_over_several_sources_logs_in_two_commits_and_a_bad_file_stops_only_its_source(
    spark: SparkSession, landing: Landing
) -> None:
    """All sources' claims in one file-log commit and their loaded marks in one more, whatever
    the number of sources; a source whose file is bad fails alone (its claim stays pending and
    the next run tries it again); a run with nothing new commits nothing."""
    specs = [
        customers_spec(),
        customers_spec(table="customers_b", location="bank/customers_b"),
        customers_spec(table="customers_c", location="bank/customers_c"),
    ]
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, ROWS[:2])
    landing.write_csv("bank/customers_b", "2025-01-01", "b.csv", CUSTOMER_HEADER, ROWS[:1])
    landing.write_csv("bank/customers_c", "2025-01-01", "c.csv", "name,mobile", ["x,1"])
    load_bronze_source(spark, landing.catalog, specs[0], landing.uri)  # the log exists
    landing.write_csv("bank/customers", "2025-01-02", "a2.csv", CUSTOMER_HEADER, ROWS[1:2])
    log = file_log_table(landing.catalog)
    before = delta_io.table_version(spark, log)

    first = load_bronze_sources(spark, landing.catalog, specs, landing.uri)
    assert delta_io.table_version(spark, log) == before + 2
    assert [(r.files, r.rows, r.load_ids) for r in first[:2]] == [(1, 1, [2]), (1, 1, [1])]
    assert isinstance(first[2], SchemaError) and "c.csv" in str(first[2])
    statuses = {
        (r["source"], r["status"])
        for r in delta_io.read_table(spark, log).select("source", "status").collect()
    }
    assert ("bank_customers_c", "pending") in statuses
    assert ("bank_customers_c", "loaded") not in statuses

    again = load_bronze_sources(spark, landing.catalog, specs, landing.uri)
    assert [(r.files, r.rows) for r in again[:2]] == [(0, 0), (0, 0)]
    assert isinstance(again[2], SchemaError) and "c.csv" in str(again[2])  # tried again
    assert delta_io.table_version(spark, log) == before + 2


def test_a_file_changed_after_loading_is_refused(spark: SparkSession, landing: Landing) -> None:
    spec = customers_spec()
    path = landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, ROWS[:1])
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    path.write_text(path.read_text() + ROWS[1] + "\n")
    with pytest.raises(ProfilehouseError, match=r"changed after they were loaded.*a\.csv \(size"):
        load_bronze_source(spark, landing.catalog, spec, landing.uri)


class CrashError(RuntimeError):
    pass


@pytest.mark.parametrize("crash_in", ["_write_bronze", "_mark_loaded"])
def test_crash_between_commits_neither_loses_nor_duplicates(
    spark: SparkSession, landing: Landing, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    """Die before the bronze append (files logged as pending) or after it (before the file log
    says loaded): the next run finishes the load exactly once, then loads the new file."""
    spec = customers_spec()
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, ROWS)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise CrashError(crash_in)

    with monkeypatch.context() as patch:
        patch.setattr(bronze, crash_in, crash)
        with pytest.raises(CrashError):
            load_bronze_source(spark, landing.catalog, spec, landing.uri)

    landing.write_csv(
        "bank/customers", "2025-01-02", "b.csv", CUSTOMER_HEADER, [ROWS[1].replace("C002", "C009")]
    )
    resumed = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert resumed.resumed_pending == 1
    assert resumed.load_ids == [1, 2]
    ids = sorted(r["cust_no"] for r in _bronze_rows(spark, landing, spec))
    assert ids == ["C001", "C002", "C003", "C009"]
    log = delta_io.read_table(spark, file_log_table(landing.catalog))
    loaded = log.where("status = 'loaded'").select("file_path", "load_id", "rows").collect()
    assert sorted((Path(r.file_path).name, r.load_id, r.rows) for r in loaded) == [
        ("a.csv", 1, 3),
        ("b.csv", 2, 1),
    ]


JSON_SPEC = {
    "system": "retail",
    "table": "orders",
    "format": "jsonl",
    "location": "retail/orders",
    "columns": {
        "order_id": {"required": True},
        "mobile": {"pii": "mobile", "standardize": "mobile"},
        "ts": {"type": "timestamp", "required": True, "epoch": "millis"},
        "items": {"type": "array<struct<sku:string,qty:int>>"},
        "amount": {"type": "decimal(12,2)"},
    },
    "business_key": ["order_id"],
}


def test_json_lines_nested_values_and_rescued_fields(spark: SparkSession, landing: Landing) -> None:
    spec = SourceSpec.model_validate(JSON_SPEC)
    first = {
        "order_id": "O1",
        "ts": 1735689600000,
        "items": [{"sku": "A", "qty": 2}],
        "amount": 12.5,
        "coupon": "X1",
    }
    records = [first, {"order_id": "O2", "ts": "1735689600000", "mobile": None}, "{not json", ""]
    landing.write_jsonl("retail/orders", "2025-01-01", "a.json", records)
    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert load.rows == 3  # the blank line is not a row
    ref = bronze_table(landing.catalog, spec)
    bad, o1, o2 = delta_io.read_table(spark, ref).orderBy("order_id").collect()
    assert bad["_corrupt_record"] == "{not json"
    assert json.loads(o1["items"]) == [{"sku": "A", "qty": 2}]  # raw JSON text
    assert (o1["ts"], o1["amount"]) == ("1735689600000", "12.5")
    assert json.loads(o1["_rescued_data"]) == {"coupon": "X1"}
    assert o2["_rescued_data"] is None
    assert o2["_corrupt_record"] is None


def test_json_file_without_a_required_field_is_an_error(
    spark: SparkSession, landing: Landing
) -> None:
    spec = SourceSpec.model_validate(JSON_SPEC)
    records = [{"order_id": "O1"}, {"order_id": "O2"}]
    path = landing.write_jsonl("retail/orders", "2025-01-01", "a.json", records)
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert str(path) in str(err.value)
    assert "required column(s) ts" in str(err.value)


def test_parquet_values_are_rendered_as_text_without_loss(
    spark: SparkSession, landing: Landing
) -> None:
    spec = SourceSpec.model_validate(
        {
            "system": "bank",
            "table": "balances",
            "format": "parquet",
            "location": "bank/balances",
            "columns": {
                "account_no": {"required": True},
                "as_of": {"type": "timestamp", "required": True},
                "balance": {"type": "decimal(18,2)"},
            },
            "business_key": ["account_no", "as_of"],
        }
    )
    folder = landing.root / "landing" / "bank" / "balances" / "batch=2025-01-31"
    instant = dt.datetime(2025, 1, 31, 15, 59, 59, 123456)
    spark.createDataFrame(
        [("A1", instant, Decimal("12.30"))],
        "account_no string, as_of timestamp, balance decimal(18,2)",
    ).coalesce(1).write.parquet(str(folder))
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    row = delta_io.read_table(spark, bronze_table(landing.catalog, spec)).first()
    assert row["balance"] == "12.30"
    text = F.lit(row["as_of"])
    parsed = spark.range(1).select(F.to_timestamp(text, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"))
    assert parsed.first()[0] == instant  # the same instant, whatever the session time zone


def test_an_unreadable_parquet_file_is_named(spark: SparkSession, landing: Landing) -> None:
    spec = SourceSpec.model_validate(
        {
            "system": "bank",
            "table": "balances",
            "format": "parquet",
            "location": "bank/balances",
            "columns": {"account_no": {"required": True}},
            "business_key": ["account_no"],
        }
    )
    path = landing.write("bank/balances", "2025-01-31", "part-0.parquet", "not a parquet file")
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, spec, landing.uri)
    message = str(err.value)
    assert message.startswith("cannot read Parquet file ")
    assert str(path) in message
