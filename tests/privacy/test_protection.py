"""Silver's PII protection: every value of a PII column is tokenised and masked (invalid ones
under the 'invalid' purpose), account and card numbers key silver by their tokens, and the token
key never stays in the rows that silver caches."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from profilehouse import delta_io
from profilehouse.identity.blocking import candidate_pairs, tokenised_block_keys
from profilehouse.ingest.bronze import load_bronze_source
from profilehouse.ingest.silver import (
    load_silver_source,
    pending_load_ids,
    silver_table,
    validated_load,
    vault_table,
)
from profilehouse.ingest.source_config import SourceSpec
from profilehouse.privacy.tokens import KEY_INNER, KEY_OUTER, token_key_frame
from tests.ingest.conftest import Landing

OPENID = "o" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n"  # 28 characters, the declared shape
ODD_OPENID = "oWx-unusual"
MEMBER_ID = "M000000001"


def spec(**data: Any) -> SourceSpec:
    return SourceSpec.model_validate({"options": {"header": True}, **data})


CONTACTS = spec(
    system="marketing",
    table="contacts",
    format="csv",
    location="marketing/contacts",
    columns={
        "campaign_id": {"required": True},
        "target_type": {"required": True},
        "target_key": {
            "required": True,
            "pii": "mobile",
            "standardize": "mobile",
            "pii_when": "target_type = 'MOBILE'",
        },
        "arm": {},
    },
    business_key=["campaign_id", "target_type", "target_key"],
)
EVENTS = spec(
    system="retail",
    table="behavior_events",
    format="jsonl",
    location="retail/behavior_events",
    columns={
        "event_id": {"required": True},
        "user_key": {
            "required": True,
            "pii_kinds": {
                "openid": "user_key RLIKE '^o[A-Za-z0-9_-]{27}$'",
                "device": "user_key RLIKE '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-'",
            },
            "clear_when": "user_key RLIKE '^M[0-9]{9}$'",
        },
    },
    business_key=["event_id"],
)
ACCOUNTS = spec(
    system="bank",
    table="accounts",
    format="csv",
    location="bank/accounts",
    columns={
        "account_no": {"required": True, "pii": "account_no"},
        "cust_no": {"required": True},
        "status": {},
    },
    business_key=["account_no"],
)


def _hmac(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    (tmp_path / "landing").mkdir()
    return Landing(tmp_path)


def ingest(spark: SparkSession, landing: Landing, source: SourceSpec, key: bytes) -> list[dict]:
    load_bronze_source(spark, landing.catalog, source, landing.uri)
    load_silver_source(spark, landing.catalog, source, key)
    ref = silver_table(landing.catalog, source)
    return [r.asDict() for r in delta_io.read_table(spark, ref).collect()]


def vault(spark: SparkSession, landing: Landing) -> dict[str, tuple[str, str]]:
    rows = delta_io.read_table(spark, vault_table(landing.catalog)).collect()
    return {r["token"]: (r["kind"], r["value"]) for r in rows}


def test_an_invalid_mobile_in_a_contact_row_is_tokenised_as_invalid_not_kept_clear(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    rows = ["K1,MOBILE,12345,A", "K1,MOBILE,138 0013 8000,B", "K1,CUST_NO,C001,A"]
    landing.write_csv(
        "marketing/contacts", "2025-01-01", "c.csv", "campaign_id,target_type,target_key,arm", rows
    )
    silver = {
        r["arm"] + (r["target_key"] or ""): r for r in ingest(spark, landing, CONTACTS, token_key)
    }
    invalid, valid, clear = silver["A"], silver["B"], silver["AC001"]
    assert invalid["target_key"] is None
    assert invalid["target_key_valid"] is False
    assert invalid["target_key_token"] == _hmac(token_key, "invalid", "12345")
    assert invalid["target_key_masked"] == "*****"
    assert valid["target_key"] is None
    assert valid["target_key_token"] == _hmac(token_key, "mobile", "+8613800138000")
    assert valid["target_key_masked"] == "138****8000"
    assert (clear["target_key_token"], clear["target_key_masked"]) == (None, None)
    stored = vault(spark, landing)
    assert stored[invalid["target_key_token"]] == ("invalid", "12345")
    assert stored[valid["target_key_token"]] == ("mobile", "+8613800138000")


def test_an_unusual_openid_is_tokenised_and_a_member_id_stays_clear(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    events = [
        {"event_id": "E1", "user_key": OPENID},
        {"event_id": "E2", "user_key": ODD_OPENID},
        {"event_id": "E3", "user_key": MEMBER_ID},
    ]
    landing.write_jsonl("retail/behavior_events", "2025-01-01", "e.jsonl", events)
    silver = {r["event_id"]: r for r in ingest(spark, landing, EVENTS, token_key)}
    assert silver["E1"]["user_key"] is None
    assert silver["E1"]["user_key_token"] == _hmac(token_key, "openid", OPENID)
    assert silver["E2"]["user_key"] is None
    assert silver["E2"]["user_key_token"] == _hmac(token_key, "invalid", ODD_OPENID)
    assert silver["E2"]["user_key_masked"] == "*" * len(ODD_OPENID)
    assert silver["E3"]["user_key"] == MEMBER_ID
    assert silver["E3"]["user_key_token"] is None
    stored = vault(spark, landing)
    assert stored[silver["E1"]["user_key_token"]] == ("openid", OPENID)
    assert stored[silver["E2"]["user_key_token"]] == ("invalid", ODD_OPENID)


def test_account_numbers_key_silver_by_their_token(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    header = "account_no,cust_no,status"
    landing.write_csv("bank/accounts", "2025-01-01", "a.csv", header, ["6222000011112222,C1,OPEN"])
    ingest(spark, landing, ACCOUNTS, token_key)
    landing.write_csv(
        "bank/accounts", "2025-01-02", "a.csv", header, ["6222000011112222,C1,CLOSED"]
    )
    [row] = ingest(spark, landing, ACCOUNTS, token_key)
    assert "account_no" not in row
    assert row["account_no_token"] == _hmac(token_key, "account_no", "6222000011112222")
    assert (row["account_no_masked"], row["status"]) == ("****2222", "CLOSED")


def test_the_protected_load_holds_no_token_key_column(
    spark: SparkSession, landing: Landing, token_key: bytes
) -> None:
    header = "account_no,cust_no,status"
    landing.write_csv("bank/accounts", "2025-01-01", "a.csv", header, ["6222000011112222,C1,OPEN"])
    load_bronze_source(spark, landing.catalog, ACCOUNTS, landing.uri)
    [load_id] = pending_load_ids(spark, landing.catalog, ACCOUNTS.name)
    frame = validated_load(spark, landing.catalog, ACCOUNTS, load_id, token_key)
    assert not {KEY_INNER, KEY_OUTER} & set(frame.columns)


def test_skipped_blocks_are_stored_by_the_token_of_their_key(
    spark: SparkSession, token_key: bytes
) -> None:
    """A block key is a name and a birth date: identity.oversize_blocks keeps only its HMAC."""
    rows = [(i, "张伟", "1990-03-07") for i in range(3)] + [(9, "李娜", "1985-06-12")]
    records = spark.createDataFrame(rows, "uid long, name string, birth string")
    _pairs, oversize = candidate_pairs(records, [["name", "birth"]], max_block_size=2)
    stored = tokenised_block_keys(oversize, token_key_frame(spark, token_key))
    assert stored.columns == ["rule", "key", "records"]
    [row] = stored.collect()
    assert row["key"] == _hmac(token_key, "block_key", "张伟\u241f1990-03-07")
    assert row["records"] == 3
