"""Silver: validation and quarantine reasons, PII tokens/masks and the vault, MERGE by business
key (corrections update in place, replays change nothing), crash safety, reject threshold."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.columns import ID_CHECK_CHARS, ID_WEIGHTS
from profilehouse.errors import SchemaError
from profilehouse.ingest import silver
from profilehouse.ingest.bronze import load_bronze_source
from profilehouse.ingest.silver import (
    RejectRateError,
    load_silver_source,
    quarantine_table,
    reconciliation_table,
    silver_table,
    vault_table,
)
from profilehouse.ingest.source_config import SourceSpec
from tests.ingest.conftest import CUSTOMER_HEADER, Landing, customers_spec


def resident_id(first17: str) -> str:
    """A resident ID with its GB 11643 check character (computed here, independently)."""
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK_CHARS[total % 11]


ID_1990_M = resident_id("11010119900307003")  # born 1990-03-07, 17th digit odd: male
ID_1985_F = resident_id("44030119850612002")  # born 1985-06-12, female
ROWS = {
    "good": f"C001,张 伟,138 0013 8000,ZW@QQ.COM,{ID_1990_M},男,1990-03-07,1000.50,2020-01-01,C2",
    "bad_rule": "C002,李娜,,,,,,,2021-05-06,C9",
    "malformed": "C003,王芳,13900139000",
    "no_key": ",赵六,,,,,,,2021-05-06,C1",
    "bad_date": "C005,钱七,,,,,,,yesterday,C1",
    "bad_income": "C006,孙八,,,,,,lots,2021-05-06,C1",
    "bad_mobile": "C007,周九,12345,,,,,,2021-05-06,C1",
    "mismatch": f"C008,吴十,,,{ID_1985_F},M,1985-06-13,,2021-05-06,C1",
    "warn_rule": "C009,郑一,,,,,,200000000,2021-05-06,C1",
}


def ingest(spark: SparkSession, landing: Landing, spec: SourceSpec, key: bytes):
    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    return load_silver_source(spark, landing.catalog, spec, key)


def table(spark: SparkSession, catalog: TableCatalog, ref) -> DataFrame:
    return delta_io.read_table(spark, ref)


def by_key(df: DataFrame, key: str = "cust_no") -> dict:
    return {r[key]: r.asDict() for r in df.collect()}


@pytest.fixture
def loaded(spark: SparkSession, landing: Landing, token_key: bytes):
    spec = customers_spec()
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, list(ROWS.values()))
    result = ingest(spark, landing, spec, token_key)
    return spec, result


def test_each_rule_quarantines_the_right_rows_with_the_right_reason(
    spark: SparkSession, landing: Landing, loaded
) -> None:
    spec, result = loaded
    quarantined = table(spark, landing.catalog, quarantine_table(landing.catalog)).collect()
    assert sorted(tuple(r["reasons"]) for r in quarantined) == sorted(
        [("rule:risk_known",), ("malformed_row",), ("missing:cust_no",), ("unparseable:open_date",)]
    )
    assert all(r["source"] == spec.name and r["batch"] == "2025-01-01" for r in quarantined)
    raw_of = {tuple(r["reasons"]): r["raw"] for r in quarantined}
    assert raw_of[("malformed_row",)] == ROWS["malformed"]  # the line as received
    assert '"cust_no":"C002"' in raw_of[("rule:risk_known",)]  # the row as received
    assert '"open_date":"yesterday"' in raw_of[("unparseable:open_date",)]

    rows = by_key(table(spark, landing.catalog, silver_table(landing.catalog, spec)))
    assert sorted(rows) == ["C001", "C006", "C007", "C008", "C009"]
    assert rows["C001"]["_warnings"] == []
    assert rows["C006"]["_warnings"] == ["unparseable:annual_income"]
    assert rows["C006"]["annual_income"] is None
    assert rows["C007"]["_warnings"] == ["invalid:mobile"]
    assert rows["C007"]["mobile_valid"] is False
    assert rows["C007"]["mobile_token"] is not None  # tokenised as 'invalid', never clear
    assert rows["C007"]["mobile_masked"] == "*****"
    assert rows["C008"]["_warnings"] == ["mismatch:id_no.birth_date", "mismatch:id_no.gender"]
    assert rows["C009"]["_warnings"] == ["rule:income_sane"]
    assert (result.rows_in, result.accepted, result.quarantined) == (9, 5, 4)
    assert result.errors == {
        "rule:risk_known": 1,
        "malformed_row": 1,
        "missing:cust_no": 1,
        "unparseable:open_date": 1,
    }


def test_values_are_typed_and_standardised(spark: SparkSession, landing: Landing, loaded) -> None:
    spec, _ = loaded
    row = by_key(table(spark, landing.catalog, silver_table(landing.catalog, spec)))["C001"]
    assert str(row["annual_income"]) == "1000.50"
    assert str(row["birth_date"]) == "1990-03-07"
    assert row["gender"] == "M"  # 男
    assert row["name_masked"] == "张*"  # '张 伟' normalised to '张伟'
    assert row["mobile_masked"] == "138****8000"
    assert row["email_masked"] == "z***@qq.com"
    assert row["id_no_masked"] == "*" * 18  # no character: birth date and gender are clear
    assert row["id_no_valid"] is True
    assert row["email_valid"] is True


def test_reconciliation_accounts_for_every_row(
    spark: SparkSession, landing: Landing, loaded
) -> None:
    recon = table(spark, landing.catalog, reconciliation_table(landing.catalog)).collect()
    assert len(recon) == 1
    r = recon[0]
    assert (r["rows_in"], r["accepted"], r["quarantined"], r["status"]) == (9, 5, 4, "passed")


def _hmac(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def test_pii_reaches_silver_only_as_tokens_and_masks(
    spark: SparkSession, landing: Landing, loaded, token_key: bytes
) -> None:
    spec, _ = loaded
    df = table(spark, landing.catalog, silver_table(landing.catalog, spec))
    assert not {"name", "mobile", "email", "id_no"} & set(df.columns)
    raw_values = ["张伟", "张 伟", "13800138000", "+8613800138000", "zw@qq.com", ID_1990_M]
    strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
    for row in df.select(*strings).collect():
        for value in row:
            assert not any(v.lower() in str(value).lower() for v in raw_values), value
    row = by_key(df)["C001"]
    assert row["mobile_token"] == _hmac(token_key, "mobile", "+8613800138000")
    assert row["email_token"] == _hmac(token_key, "email", "zw@qq.com")
    assert row["id_no_token"] == _hmac(token_key, "id_no", ID_1990_M)

    vault = {
        r["token"]: (r["kind"], r["value"])
        for r in table(spark, landing.catalog, vault_table(landing.catalog)).collect()
    }
    assert vault[row["mobile_token"]] == ("mobile", "+8613800138000")
    assert vault[row["name_token"]] == ("name", "张伟")


def test_same_mobile_gets_the_same_token_in_every_source(
    spark: SparkSession, landing: Landing, loaded, token_key: bytes
) -> None:
    spec, _ = loaded
    members = SourceSpec.model_validate(
        {
            "system": "retail",
            "table": "members",
            "format": "csv",
            "location": "retail/members",
            "options": {"header": True},
            "columns": {
                "member_id": {"required": True},
                "mobile": {"pii": "mobile", "standardize": "mobile"},
            },
            "business_key": ["member_id"],
        }
    )
    landing.write_csv(
        "retail/members", "2025-01-02", "m.csv", "member_id,mobile", ["M1,+86-138-0013-8000"]
    )
    ingest(spark, landing, members, token_key)
    bank = by_key(table(spark, landing.catalog, silver_table(landing.catalog, spec)))["C001"]
    retail = table(spark, landing.catalog, silver_table(landing.catalog, members)).first()
    assert retail["mobile_token"] == bank["mobile_token"]
    vault = table(spark, landing.catalog, vault_table(landing.catalog))
    assert vault.where(F.col("token") == bank["mobile_token"]).count() == 1


def test_a_redelivered_correction_updates_silver_in_place(
    spark: SparkSession, landing: Landing, loaded, token_key: bytes
) -> None:
    spec, _ = loaded
    ref = silver_table(landing.catalog, spec)
    before = table(spark, landing.catalog, ref).count()
    version = delta_io.table_version(spark, ref)
    corrected = ROWS["good"].replace("ZW@QQ.COM", "zhang.wei@163.com")
    landing.write_csv("bank/customers", "2025-01-05", "fix.csv", CUSTOMER_HEADER, [corrected])
    result = ingest(spark, landing, spec, token_key)

    assert (result.inserted, result.updated) == (0, 1)
    rows = by_key(table(spark, landing.catalog, ref))
    assert len(rows) == before
    assert rows["C001"]["email_masked"] == "z***@163.com"
    assert rows["C001"]["_batch"] == "2025-01-05"
    changes = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", version + 1)
        .load(ref.location)
        .select("cust_no", "_change_type")
        .collect()
    )
    assert sorted((c[0], c[1]) for c in changes) == [
        ("C001", "update_postimage"),
        ("C001", "update_preimage"),
    ]


def test_an_older_version_delivered_late_does_not_win(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = customers_spec(order_by="open_date")
    newer = ROWS["good"].replace("2020-01-01", "2022-02-02")
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, [newer])
    ingest(spark, landing, spec, token_key)
    landing.write_csv("bank/customers", "2025-01-02", "b.csv", CUSTOMER_HEADER, [ROWS["good"]])
    result = ingest(spark, landing, spec, token_key)
    assert result.updated == 0
    row = table(spark, landing.catalog, silver_table(landing.catalog, spec)).first()
    assert str(row["open_date"]) == "2022-02-02"


def _all_versions(spark: SparkSession, catalog: TableCatalog, spec: SourceSpec) -> list[int]:
    refs = [
        silver_table(catalog, spec),
        quarantine_table(catalog),
        reconciliation_table(catalog),
        vault_table(catalog),
    ]
    return [delta_io.table_version(spark, ref) for ref in refs]


def test_loading_the_same_batch_twice_changes_nothing(
    spark: SparkSession, landing: Landing, loaded, token_key: bytes
) -> None:
    spec, _ = loaded
    before = _all_versions(spark, landing.catalog, spec)
    again = ingest(spark, landing, spec, token_key)
    assert again.load_ids == []
    assert _all_versions(spark, landing.catalog, spec) == before


def _snapshot(spark: SparkSession, catalog: TableCatalog, spec: SourceSpec) -> dict:
    """Every table the ingest writes, without the columns that record wall-clock time."""
    clock = ["_ingested_at", "ingested_at", "quarantined_at", "processed_at", "first_seen_at"]

    def read(ref) -> DataFrame:
        df = delta_io.read_table(spark, ref)
        return df.drop(*[c for c in clock if c in df.columns])

    return {
        "silver": read(silver_table(catalog, spec)),
        "quarantine": read(quarantine_table(catalog)),
        "reconciliation": read(reconciliation_table(catalog)),
        "vault": read(vault_table(catalog)),
    }


class CrashError(RuntimeError):
    pass


@pytest.mark.parametrize(
    "crash_in",
    ["after_bronze", "_merge_vault", "_append_quarantine", "_append_reconciliation"],
)
def test_a_run_killed_between_commits_and_rerun_equals_an_uninterrupted_run(
    spark: SparkSession,
    landing: Landing,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    token_key: bytes,
    crash_in: str,
) -> None:
    spec = customers_spec()
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, list(ROWS.values()))
    reference = TableCatalog(str(tmp_path_factory.mktemp("uninterrupted")))
    load_bronze_source(spark, reference, spec, landing.uri)
    load_silver_source(spark, reference, spec, token_key)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise CrashError(crash_in)

    load_bronze_source(spark, landing.catalog, spec, landing.uri)
    if crash_in != "after_bronze":  # else the job died before silver started
        with monkeypatch.context() as patch:
            patch.setattr(silver, crash_in, crash)
            with pytest.raises(CrashError):
                load_silver_source(spark, landing.catalog, spec, token_key)
    ingest(spark, landing, spec, token_key)

    got, want = _snapshot(spark, landing.catalog, spec), _snapshot(spark, reference, spec)
    for name in want:
        assert_df_equality(got[name], want[name], ignore_row_order=True, ignore_nullable=True)


def test_reject_rate_over_the_threshold_fails_and_writes_nothing_to_silver(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = customers_spec(reject_rate_threshold=0.2, reject_min_rows=3)
    rows = [ROWS["good"], ROWS["bad_rule"], ROWS["malformed"], ROWS["no_key"]]
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, rows)
    with pytest.raises(RejectRateError) as err:
        ingest(spark, landing, spec, token_key)
    message = str(err.value)
    assert "bank_customers load 1: 3 of 4 rows rejected (75.00%)" in message
    assert "reject_rate_threshold 20.00%" in message
    assert "malformed_row 1" in message
    assert not delta_io.table_exists(spark, silver_table(landing.catalog, spec))
    recon = table(spark, landing.catalog, reconciliation_table(landing.catalog)).collect()
    assert [(r["status"], r["quarantined"]) for r in recon] == [("failed", 3)]

    relaxed = customers_spec(reject_rate_threshold=0.8, reject_min_rows=3)  # operator accepts
    result = load_silver_source(spark, landing.catalog, relaxed, token_key)
    assert (result.accepted, result.quarantined) == (1, 3)


def test_few_rejected_rows_do_not_fail_a_small_load(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    spec = customers_spec(reject_rate_threshold=0.2, reject_min_rows=4)
    rows = [ROWS["good"], ROWS["bad_rule"], ROWS["malformed"], ROWS["no_key"]]
    landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, rows)
    result = ingest(spark, landing, spec, token_key)  # 3 < 4 rejected rows: reported only
    assert (result.accepted, result.quarantined) == (1, 3)


def test_a_column_that_parses_in_no_row_of_a_file_names_file_and_column(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    rows = [f"C{i:03d},,,,,,,,{i % 28 + 1:02d}/01/2021,C1" for i in range(12)]
    path = landing.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, rows)
    with pytest.raises(SchemaError) as err:
        ingest(spark, landing, customers_spec(reject_rate_threshold=1.0), token_key)
    message = str(err.value)
    assert str(path) in message
    assert "column open_date" in message
    assert "none of its 12 values parse as date" in message
