"""Schema drift: an optional column missing from a later file must not null out silver.

Bronze records, per row, the configured columns its file did not carry (``_absent_columns``);
silver keeps the existing values of those columns (``missing_columns: keep``, the default, with a
warning) or stops naming file and column (``missing_columns: fail``)."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.errors import SchemaError
from profilehouse.ingest.bronze import bronze_table, load_bronze_source
from profilehouse.ingest.silver import (
    load_silver_source,
    reconciliation_table,
    rule_counts_table,
    silver_table,
)
from profilehouse.ingest.source_config import SourceSpec
from tests.ingest.conftest import Landing, customers_spec

FULL = "KHH,name,email,risk,open_date"
NO_EMAIL = "KHH,name,risk,open_date"
ABSENT = "_absent_columns"  # the bronze column
EMAIL_COLUMNS = ["email_token", "email_masked", "email_valid"]


def _spec(**overrides: object) -> SourceSpec:
    columns = {
        "cust_no": {"source": "KHH", "required": True},
        "name": {"pii": "name", "standardize": "name"},
        "email": {"pii": "email", "standardize": "email"},
        "risk_appetite": {"source": "risk"},
        "open_date": {"type": "date", "required": True, "formats": ["yyyy-MM-dd"]},
    }
    return customers_spec(columns=columns, rules=[], **overrides)


def _ingest(spark: SparkSession, landing: Landing, spec: SourceSpec, key: bytes):
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    return load_silver_source(spark, landing.catalog, spec, key)


def _silver(spark: SparkSession, landing: Landing, spec: SourceSpec) -> dict[str, dict]:
    df = delta_io.read_table(spark, silver_table(landing.catalog, spec))
    return {r["cust_no"]: r.asDict() for r in df.collect()}


def _first_load(spark: SparkSession, landing: Landing, spec: SourceSpec, key: bytes) -> dict:
    rows = ["C001,张伟,ZW@QQ.COM,C1,2020-01-01", "C002,李娜,ln@163.com,C2,2020-01-02"]
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", FULL, rows)
    _ingest(spark, landing, spec, key)
    return _silver(spark, landing, spec)


def _drifted_file(landing: Landing) -> str:
    """A later file for C001 (risk changed) and a new key C003, without the e-mail column."""
    rows = ["C001,张伟,C3,2020-01-01", "C003,王芳,C4,2020-01-03"]
    return str(landing.write_csv("bank/customers", "2025-01-02", "b.csv", NO_EMAIL, rows))


def test_bronze_records_the_columns_a_file_did_not_carry(
    spark: SparkSession, landing: Landing
) -> None:
    spec = _spec()
    landing.write_csv(
        "bank/customers", "2025-01-01", "a.csv", FULL, ["C001,张伟,a@b.cn,C1,2020-01-01"]
    )
    _drifted_file(landing)
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    rows = delta_io.read_table(spark, bronze_table(landing.catalog, spec)).collect()
    absent = {(r["_batch"], r["cust_no"]): list(r[ABSENT]) for r in rows}
    assert absent == {
        ("2025-01-01", "C001"): [],
        ("2025-01-02", "C001"): ["email"],
        ("2025-01-02", "C003"): ["email"],
    }


def test_keep_keeps_the_values_of_a_column_the_later_file_lacks_and_reports_it(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = _spec()
    before = _first_load(spark, landing, spec, token_key)
    path = _drifted_file(landing)
    result = _ingest(spark, landing, spec, token_key)

    after = _silver(spark, landing, spec)
    assert (result.inserted, result.updated) == (1, 1)
    assert after["C001"]["risk_appetite"] == "C3"  # the carried columns are updated
    assert after["C001"]["_batch"] == "2025-01-02"
    for column in EMAIL_COLUMNS:
        assert after["C001"][column] == before["C001"][column], column
        assert after["C002"][column] == before["C002"][column], column
        assert after["C003"][column] is None, column  # a new key: nothing to keep
    assert after["C001"]["email_masked"] == "z***@qq.com"

    assert {f.removeprefix("file:"): c for f, c in result.absent_columns.items()} == {
        path: ["email"]
    }
    assert result.warnings.get("absent:email") == 2
    counts = delta_io.read_table(spark, rule_counts_table(landing.catalog))
    drift = counts.where(F.col("rule") == "absent:email").collect()
    assert [(r["batch"], r["severity"], r["rows"]) for r in drift] == [("2025-01-02", "warn", 2)]


def test_fail_names_file_column_and_setting_writes_nothing_and_a_fixed_config_reruns(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    strict = _spec(missing_columns="fail")
    before = _first_load(spark, landing, strict, token_key)
    ref = silver_table(landing.catalog, strict)
    version = delta_io.table_version(spark, ref)
    path = _drifted_file(landing)
    with pytest.raises(SchemaError) as err:
        _ingest(spark, landing, strict, token_key)
    message = str(err.value)
    assert path in message and "email" in message and "missing_columns" in message
    assert "\n" not in message
    assert delta_io.table_version(spark, ref) == version
    recon = delta_io.read_table(spark, reconciliation_table(landing.catalog))
    assert recon.where(F.col("load_id") == 2).count() == 0

    result = load_silver_source(spark, landing.catalog, _spec(missing_columns="keep"), token_key)
    assert result.load_ids == [2]
    after = _silver(spark, landing, strict)
    assert after["C001"]["email_token"] == before["C001"]["email_token"]
    assert after["C001"]["risk_appetite"] == "C3"


def test_within_one_load_the_newest_version_that_carried_a_column_gives_its_value(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = _spec()
    before = _first_load(spark, landing, spec, token_key)
    # one load, three files: C001's e-mail changes on 01-02, then a file without e-mail (01-03);
    # C002's only newer versions lack the column; C004 is new, with and without its e-mail
    landing.write_csv(
        "bank/customers",
        "2025-01-02",
        "b.csv",
        FULL,
        ["C001,张伟,new@qq.com,C2,2020-01-01", "C004,赵六,zl@qq.com,C1,2020-01-04"],
    )
    landing.write_csv(
        "bank/customers",
        "2025-01-03",
        "c.csv",
        NO_EMAIL,
        ["C001,张伟,C5,2020-01-01", "C002,李娜,C5,2020-01-02", "C004,赵六,C2,2020-01-04"],
    )
    _ingest(spark, landing, spec, token_key)

    after = _silver(spark, landing, spec)
    assert after["C001"]["risk_appetite"] == "C5"
    assert after["C001"]["email_masked"] == "n***@qq.com"
    assert after["C002"]["risk_appetite"] == "C5"
    assert [after["C002"][c] for c in EMAIL_COLUMNS] == [before["C002"][c] for c in EMAIL_COLUMNS]
    assert after["C004"]["risk_appetite"] == "C2"
    assert after["C004"]["email_masked"] == "z***@qq.com"


def test_a_carried_value_older_than_silver_does_not_replace_it(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = _spec(order_by="open_date")
    landing.write_csv(
        "bank/customers", "2025-01-01", "a.csv", FULL, ["C001,张伟,x@qq.com,C1,2021-01-01"]
    )
    _ingest(spark, landing, spec, token_key)
    # one load: a stale version carrying another e-mail, and a newer one without the column
    landing.write_csv(
        "bank/customers", "2025-01-02", "b.csv", FULL, ["C001,张伟,old@qq.com,C1,2020-01-01"]
    )
    landing.write_csv(
        "bank/customers", "2025-01-03", "c.csv", NO_EMAIL, ["C001,张伟,C4,2022-01-01"]
    )
    _ingest(spark, landing, spec, token_key)
    row = _silver(spark, landing, spec)["C001"]
    assert (row["risk_appetite"], row["email_masked"]) == ("C4", "x***@qq.com")


def test_bronze_tables_from_before_the_marker_still_load(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = _spec()
    landing.write_csv(
        "bank/customers", "2025-01-01", "a.csv", FULL, ["C001,张伟,a@qq.com,C1,2020-01-01"]
    )
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    ref = bronze_table(landing.catalog, spec)
    old: DataFrame = delta_io.read_table(spark, ref).drop(ABSENT)
    delta_io.write_table(old.localCheckpoint(), ref, mode="overwrite", overwrite_schema=True)
    result = load_silver_source(spark, landing.catalog, spec, token_key)
    assert (result.inserted, result.absent_columns) == (1, {})
    assert _silver(spark, landing, spec)["C001"]["email_masked"] == "a***@qq.com"


JSON_SPEC = {
    "system": "retail",
    "table": "members",
    "format": "jsonl",
    "location": "retail/members",
    "columns": {
        "member_id": {"required": True},
        "email": {"pii": "email", "standardize": "email"},
        "level": {},
    },
    "business_key": ["member_id"],
}


def test_json_lines_a_key_no_record_of_a_file_has_is_absent_a_key_some_lack_is_null(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = SourceSpec.model_validate(JSON_SPEC)
    first = [
        {"member_id": "M1", "email": "a@qq.com", "level": "1"},
        {"member_id": "M2", "email": "b@qq.com", "level": "1"},
    ]
    landing.write_jsonl("retail/members", "2025-01-01", "a.json", first)
    _ingest(spark, landing, spec, token_key)
    # b.json carries no e-mail at all (absent: kept); c.json has it in one record only, so M2's
    # missing key is an empty value (JSON writers drop null fields) and clears the e-mail
    landing.write_jsonl(
        "retail/members", "2025-01-02", "b.json", [{"member_id": "M1", "level": "2"}]
    )
    path_b = str(landing.root / "landing/retail/members/batch=2025-01-02/b.json")
    landing.write_jsonl(
        "retail/members",
        "2025-01-03",
        "c.json",
        [{"member_id": "M2", "level": "2"}, {"member_id": "M3", "email": "c@qq.com"}],
    )
    result = _ingest(spark, landing, spec, token_key)
    rows = {
        r["member_id"]: r
        for r in delta_io.read_table(spark, silver_table(landing.catalog, spec)).collect()
    }
    assert (rows["M1"]["level"], rows["M1"]["email_masked"]) == ("2", "a***@qq.com")
    assert (rows["M2"]["level"], rows["M2"]["email_masked"]) == ("2", None)
    assert rows["M3"]["email_masked"] == "c***@qq.com"
    assert [(f.endswith(path_b), cols) for f, cols in result.absent_columns.items()] == [
        (True, ["email"])
    ]
