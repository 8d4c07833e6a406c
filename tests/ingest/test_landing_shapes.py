"""Landing files as they really arrive: other encodings, blank first lines, in-flight uploads,
re-delivered content, huge first lines and headers with spaces (real bronze loads)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.errors import SchemaError
from profilehouse.ingest import bronze
from profilehouse.ingest.bronze import bronze_table, file_log_table, load_bronze_source
from profilehouse.ingest.source_config import SourceSpec
from profilehouse.ingest.stages import ingest_figures
from tests.ingest.conftest import CUSTOMER_HEADER, Landing, customers_spec

ROW_1 = "C001,张伟,13800138000,zw@qq.com,,M,1990-03-07,1000.50,2020-01-01,C2"
ROW_2 = "C002,李娜,,,,,,,2021-05-06,C3"
LOCATION = "bank/customers"


def _write_bytes(landing: Landing, name: str, data: bytes, batch: str = "2025-01-01") -> Path:
    folder = landing.root / "landing" / LOCATION / f"batch={batch}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _csv(header: str, *rows: str) -> str:
    return "\n".join([header, *rows]) + "\n"


def _names(spark: SparkSession, landing: Landing, spec: SourceSpec) -> list[tuple]:
    df = delta_io.read_table(spark, bronze_table(landing.catalog, spec))
    return [tuple(r) for r in df.orderBy("cust_no").select("cust_no", "name").collect()]


def _statuses(spark: SparkSession, landing: Landing) -> list[tuple]:
    log = delta_io.read_table(spark, file_log_table(landing.catalog))
    rows = log.select(F.element_at(F.split("file_path", "/"), -1), "status").collect()
    return sorted(tuple(r) for r in rows)


# --- encodings -----------------------------------------------------------------------------------


def test_a_gbk_file_read_as_utf8_fails_naming_file_line_and_likely_encoding(
    spark: SparkSession, landing: Landing
) -> None:
    path = _write_bytes(landing, "gbk.csv", _csv(CUSTOMER_HEADER, ROW_1, ROW_2).encode("gbk"))
    spec = customers_spec()
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, spec, landing.uri)
    message = str(err.value)
    assert str(path) in message
    assert "line 2 is not valid UTF-8" in message
    assert "GB18030" in message and "encoding" in message and "bank_customers" in message
    assert "张" not in message and "C001" not in message  # no raw values
    assert not delta_io.table_exists(spark, bronze_table(landing.catalog, spec))


def test_the_first_bad_line_is_found_past_good_lines(spark: SparkSession, landing: Landing) -> None:
    good = [f"C{i:03d},王芳,,,,,,,2021-05-06,C1" for i in range(10, 40)]
    data = _csv(CUSTOMER_HEADER, *good).encode() + ROW_2.encode("gbk") + b"\n"
    _write_bytes(landing, "mixed.csv", data)
    with pytest.raises(SchemaError, match=r"mixed\.csv: line 32 is not valid UTF-8"):
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)


def test_a_gbk_file_with_chinese_header_loads_with_its_encoding(
    spark: SparkSession, landing: Landing
) -> None:
    header = CUSTOMER_HEADER.replace("KHH", "客户号").replace("name", "姓名")
    _write_bytes(landing, "gbk.csv", _csv(header, ROW_1, ROW_2).encode("gbk"))
    columns = customers_spec().model_dump()["columns"]
    columns["cust_no"]["source"] = "客户号"
    columns["name"]["source"] = "姓名"
    spec = customers_spec(columns=columns, options={"header": True, "encoding": "GBK"})
    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (load.files, load.rows) == (1, 2)
    assert _names(spark, landing, spec) == [("C001", "张伟"), ("C002", "李娜")]


def test_an_undecodable_byte_in_a_gb18030_file_is_named(
    spark: SparkSession, landing: Landing
) -> None:
    data = _csv(CUSTOMER_HEADER, ROW_1).encode("gb18030") + b"C009,\x81\x20,,,,,,,2021-05-06,C1\n"
    _write_bytes(landing, "bad.csv", data)
    spec = customers_spec(options={"header": True, "encoding": "GB18030"})
    with pytest.raises(SchemaError, match=r"bad\.csv: line 3 is not valid GB18030"):
        load_bronze_source(spark, landing.catalog, spec, landing.uri)


def test_a_real_replacement_character_in_utf8_is_kept(
    spark: SparkSession, landing: Landing
) -> None:
    _write_bytes(
        landing, "u.csv", _csv(CUSTOMER_HEADER, ROW_1.replace("张伟", "张\ufffd")).encode()
    )
    spec = customers_spec()
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert _names(spark, landing, spec) == [("C001", "张\ufffd")]


def _events_spec(**options: str) -> SourceSpec:
    return SourceSpec.model_validate(
        {
            "system": "bank",
            "table": "app_events",
            "format": "jsonl",
            "location": LOCATION,
            "options": options,
            "columns": {"event_id": {"required": True}, "name": {}},
            "business_key": ["event_id"],
        }
    )


def test_json_lines_are_read_in_their_encoding(spark: SparkSession, landing: Landing) -> None:
    lines = '{"event_id": "e1", "name": "张伟"}\n{"event_id": "e2", "name": "李娜", "x": "王"}\n'
    _write_bytes(landing, "e.jsonl", lines.encode("gb18030"))
    spec = _events_spec(encoding="GB18030")
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    rows = delta_io.read_table(spark, bronze_table(landing.catalog, spec)).orderBy("event_id")
    got = [tuple(r) for r in rows.select("event_id", "name", "_rescued_data").collect()]
    assert got == [("e1", "张伟", None), ("e2", "李娜", '{"x":"王"}')]


def test_gbk_json_lines_without_encoding_fail(spark: SparkSession, landing: Landing) -> None:
    _write_bytes(landing, "e.jsonl", '{"event_id": "e1", "name": "张伟"}\n'.encode("gbk"))
    with pytest.raises(SchemaError, match=r"e\.jsonl: line 1 is not valid UTF-8"):
        load_bronze_source(spark, landing.catalog, _events_spec(), landing.uri)


def test_an_unknown_or_non_ascii_compatible_encoding_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"options\.encoding"):
        customers_spec(options={"encoding": "NO-SUCH-CHARSET"})
    with pytest.raises(ValueError, match="UTF-16"):
        customers_spec(options={"charset": "UTF-16"})


# --- file shapes ---------------------------------------------------------------------------------


def test_blank_lines_before_the_header_are_skipped(spark: SparkSession, landing: Landing) -> None:
    _write_bytes(landing, "a.csv", ("\n  \n" + _csv(CUSTOMER_HEADER, ROW_1, ROW_2)).encode())
    spec = customers_spec()
    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (load.files, load.rows, load.empty_files) == (1, 2, [])
    assert _names(spark, landing, spec) == [("C001", "张伟"), ("C002", "李娜")]


def test_a_truly_empty_file_is_logged_loaded_and_reported_empty(
    spark: SparkSession, landing: Landing
) -> None:
    path = _write_bytes(landing, "blank.csv", b" \n\n")
    zero = _write_bytes(landing, "zero.csv", b"")
    load = load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    assert (load.files, load.rows) == (2, 0)
    assert sorted(load.empty_files) == sorted(f"file:{p}" for p in (path, zero))
    assert _statuses(spark, landing) == [
        ("blank.csv", "loaded"),
        ("blank.csv", "pending"),
        ("zero.csv", "loaded"),
        ("zero.csv", "pending"),
    ]
    assert ingest_figures([load], [])["per_source"]["bank_customers"]["bronze"]["empty_files"]


@pytest.mark.parametrize(
    "name", ["a.csv._COPYING_", "a.csv.tmp", "a.csv.filepart", "a.csv.part", "a.csv.crdownload"]
)
def test_an_in_flight_upload_is_skipped_until_complete(
    spark: SparkSession, landing: Landing, name: str
) -> None:
    spec = customers_spec()
    partial = _write_bytes(landing, name, _csv(CUSTOMER_HEADER, ROW_1).encode())
    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (load.files, load.rows, load.in_flight) == (0, 0, [f"file:{partial}"])
    assert ingest_figures([load], [])["per_source"]["bank_customers"]["bronze"]["in_flight"]

    partial.rename(partial.with_name("a.csv"))
    done = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (done.files, done.rows, done.in_flight) == (1, 1, [])


def test_a_file_younger_than_the_quiet_period_waits(spark: SparkSession, landing: Landing) -> None:
    spec = customers_spec(min_file_age_seconds=600)
    path = _write_bytes(landing, "a.csv", _csv(CUSTOMER_HEADER, ROW_1).encode())
    assert load_bronze_source(spark, landing.catalog, spec, landing.uri).in_flight == [
        f"file:{path}"
    ]
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert load_bronze_source(spark, landing.catalog, spec, landing.uri).rows == 1


def test_the_same_content_under_a_new_name_is_a_duplicate(
    spark: SparkSession, landing: Landing
) -> None:
    spec = customers_spec()
    content = _csv(CUSTOMER_HEADER, ROW_1, ROW_2).encode()
    first = _write_bytes(landing, "a.csv", content)
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    again = _write_bytes(landing, "a_resent.csv", content, batch="2025-01-02")
    twins = [_write_bytes(landing, n, _csv(CUSTOMER_HEADER, ROW_1).encode()) for n in ("x", "y")]
    other = _write_bytes(landing, "same_size.csv", content.replace(b"C002", b"C003"))

    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (load.files, load.rows) == (2, 3)  # x.csv and same_size.csv
    assert load.duplicates == {
        f"file:{again}": f"file:{first}",
        f"file:{twins[1]}": f"file:{twins[0]}",
    }
    figures = ingest_figures([load], [])["per_source"]["bank_customers"]["bronze"]
    assert figures["duplicates"] == load.duplicates
    log = delta_io.read_table(spark, file_log_table(landing.catalog))
    dupes = log.where("status = 'duplicate'").select("file_path", "duplicate_of").collect()
    assert sorted(tuple(r) for r in dupes) == sorted(load.duplicates.items())
    hashed = log.where("content_sha256 IS NOT NULL").select("file_path").distinct().count()
    assert hashed == 4  # every new file of a size seen twice, none other
    assert str(other) in {r[0].removeprefix("file:") for r in log.select("file_path").collect()}

    rerun = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (rerun.files, rerun.duplicates) == (0, {})
    assert delta_io.read_table(spark, bronze_table(landing.catalog, spec)).count() == 5


def test_a_file_log_written_before_content_hashes_still_works(
    spark: SparkSession, landing: Landing
) -> None:
    spec = customers_spec()
    content = _csv(CUSTOMER_HEADER, ROW_1).encode()
    first = _write_bytes(landing, "a.csv", content)
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    ref = file_log_table(landing.catalog)
    old = delta_io.read_table(spark, ref).drop("content_sha256", "duplicate_of")
    delta_io.write_table(old.localCheckpoint(), ref, overwrite_schema=True)

    again = _write_bytes(landing, "b.csv", content)
    load = load_bronze_source(spark, landing.catalog, spec, landing.uri)
    assert (load.files, load.duplicates) == (0, {f"file:{again}": f"file:{first}"})


def test_a_first_line_without_an_end_is_refused_naming_the_file(
    spark: SparkSession, landing: Landing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("profilehouse.ingest.landing.MAX_HEADER_BYTES", 4096)
    path = _write_bytes(landing, "huge.csv", b"KHH," + b"x" * 10_000 + b"\nC001\n")
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    assert str(err.value) == (
        f"file:{path}: no line end within the first 4096 bytes: the first line is not a CSV "
        "header (check the file's format and sep/lineSep options)"
    )


# --- headers a person can fix --------------------------------------------------------------------


def test_spaces_after_the_commas_of_the_header_are_ignored(
    spark: SparkSession, landing: Landing
) -> None:
    spec = customers_spec()
    _write_bytes(landing, "a.csv", _csv(CUSTOMER_HEADER.replace(",", ", "), ROW_1).encode())
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    row = delta_io.read_table(spark, bronze_table(landing.catalog, spec)).first()
    assert (row["cust_no"], row["name"], row["risk_appetite"]) == ("C001", "张伟", "C2")


def test_a_file_without_a_header_is_named_without_echoing_its_values(
    spark: SparkSession, landing: Landing
) -> None:
    row = ROW_1.replace(",,M", ",110101199003070037,M")
    path = _write_bytes(landing, "nohead.csv", _csv(row, ROW_2).encode())
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    message = str(err.value)
    assert message == (
        f"bank_customers: file file:{path} lacks required column(s) KHH (logical cust_no), "
        "open_date; its first line (10 fields) has none of the declared column names: "
        "it is probably a data row, not a header (exports must start with a header line)"
    )
    for value in row.split(","):
        assert value not in message.replace(str(path), "")


def test_a_missing_column_lists_the_columns_present(spark: SparkSession, landing: Landing) -> None:
    header = CUSTOMER_HEADER.replace("open_date", "opened")
    path = _write_bytes(landing, "a.csv", _csv(header, ROW_1).encode())
    with pytest.raises(SchemaError) as err:
        load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    assert str(err.value) == (
        f"bank_customers: file file:{path} lacks required column(s) open_date "
        f"(its columns: {header.replace(',', ', ')})"
    )


def test_bronze_load_reports_what_it_skipped() -> None:
    load = bronze.BronzeLoad("s", in_flight=["a.tmp"], duplicates={"b": "a"}, empty_files=["e"])
    figures = ingest_figures([load], [])["per_source"]["s"]["bronze"]
    assert (figures["in_flight"], figures["duplicates"], figures["empty_files"]) == (
        ["a.tmp"],
        {"b": "a"},
        ["e"],
    )
