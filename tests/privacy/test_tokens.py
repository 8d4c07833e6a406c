"""PII token key loading, HMAC tokens (checked against Python's hmac) and masks."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import ProfilehouseError, SecretError
from profilehouse.privacy.tokens import (
    TOKEN_KEY_ENV,
    TOKEN_KEY_FILE_ENV,
    hmac_token_expr,
    load_token_key,
    mask_account_no_expr,
    mask_address_expr,
    mask_card_no_expr,
    mask_counterparty_expr,
    mask_email_expr,
    mask_generic_expr,
    mask_id_no_expr,
    mask_mobile_expr,
    mask_name_expr,
)

Results = dict[str, dict[str, Any]]

# --- load_token_key ------------------------------------------------------------------------------

GOOD_KEY = "k" * 15 + "\u00e9"  # 17 UTF-8 bytes


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(TOKEN_KEY_ENV, raising=False)
    monkeypatch.delenv(TOKEN_KEY_FILE_ENV, raising=False)
    return monkeypatch


def test_key_from_env(no_key_env: pytest.MonkeyPatch) -> None:
    no_key_env.setenv(TOKEN_KEY_ENV, GOOD_KEY)
    assert load_token_key() == GOOD_KEY.encode("utf-8")


def test_key_from_file_drops_one_trailing_newline(
    no_key_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "token.key"
    key_file.write_bytes(b"0123456789abcdef \n")
    no_key_env.setenv(TOKEN_KEY_FILE_ENV, str(key_file))
    assert load_token_key() == b"0123456789abcdef "
    key_file.write_bytes(b"0123456789abcdef\r\n")
    assert load_token_key() == b"0123456789abcdef"


def test_env_wins_over_file_and_empty_env_is_unset(
    no_key_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "token.key"
    key_file.write_bytes(b"from-the-file-0123")
    no_key_env.setenv(TOKEN_KEY_FILE_ENV, str(key_file))
    no_key_env.setenv(TOKEN_KEY_ENV, GOOD_KEY)
    assert load_token_key() == GOOD_KEY.encode("utf-8")
    no_key_env.setenv(TOKEN_KEY_ENV, "")
    assert load_token_key() == b"from-the-file-0123"


def test_custom_variable_names(no_key_env: pytest.MonkeyPatch) -> None:
    no_key_env.setenv("MY_KEY", GOOD_KEY)
    assert load_token_key("MY_KEY", "MY_KEY_FILE") == GOOD_KEY.encode("utf-8")


def test_missing_key_names_both_variables(no_key_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SecretError) as err:
        load_token_key()
    assert TOKEN_KEY_ENV in str(err.value)
    assert TOKEN_KEY_FILE_ENV in str(err.value)
    assert isinstance(err.value, ProfilehouseError)


@pytest.mark.parametrize(
    ("desc", "env", "file_bytes"),
    [
        ("short env key", "short-secret-15", None),
        ("short file key", None, b"short-secret-15\n"),
        ("empty file", None, b""),
    ],
)
def test_short_key_is_rejected_without_revealing_it(
    no_key_env: pytest.MonkeyPatch,
    tmp_path: Path,
    desc: str,
    env: str | None,
    file_bytes: bytes | None,
) -> None:
    if env is not None:
        no_key_env.setenv(TOKEN_KEY_ENV, env)
    if file_bytes is not None:
        key_file = tmp_path / "token.key"
        key_file.write_bytes(file_bytes)
        no_key_env.setenv(TOKEN_KEY_FILE_ENV, str(key_file))
    with pytest.raises(SecretError, match="shorter than 16 bytes") as err:
        load_token_key()
    message = str(err.value)
    assert TOKEN_KEY_ENV in message, desc
    assert TOKEN_KEY_FILE_ENV in message, desc
    assert "short-secret" not in message, f"{desc}: the key leaked into the message"


def test_unreadable_key_file(no_key_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_key_env.setenv(TOKEN_KEY_FILE_ENV, str(tmp_path / "missing.key"))
    with pytest.raises(SecretError, match=TOKEN_KEY_FILE_ENV) as err:
        load_token_key()
    assert "missing.key" in str(err.value)


# --- hmac_token_expr -----------------------------------------------------------------------------

KEYS = {
    "16-byte key": b"0123456789abcdef",
    "32 random-looking bytes": hashlib.sha256(b"profilehouse-test").digest(),
    "64-byte key (one block)": bytes(range(64)),
    "100-byte key (hashed first)": bytes(range(200, 256)) + bytes(range(44)),
}
PURPOSES = ("mobile", "email", "id_no", "name")
TOKEN_CASES = [
    # (description, input value)
    ("empty string", ""),
    ("E.164 mobile", "+8613800138000"),
    ("plain mobile", "13800138000"),
    ("e-mail", "zhang.wei@qq.com"),
    ("resident ID", "11010519491231002X"),
    ("Chinese name", "张伟"),
    ("traditional + middle dot", "迪丽热巴·迪力木拉提"),
    ("emoji (4-byte UTF-8)", "😀🎉"),
    ("mixed scripts", "Zhāng 张 😀 \u3000end"),
    ("combining accent", "e\u0301"),
    ("newline and tab", "a\nb\tc"),
    ("message exactly 55 bytes after prefix", "x" * (55 - len("mobile:"))),
    ("message exactly 64 bytes after prefix", "x" * (64 - len("mobile:"))),
    ("long ASCII (1000 bytes)", "a" * 1000),
    ("long Chinese (> 64 bytes)", "测试" * 50),
]


def _python_token(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def token_results(spark: SparkSession) -> Results:
    df = spark.createDataFrame([*TOKEN_CASES, ("null", None)], "desc string, v string")
    outputs = [
        hmac_token_expr(F.col("v"), key, purpose).alias(f"{key_desc}|{purpose}")
        for key_desc, key in KEYS.items()
        for purpose in PURPOSES
    ]
    return {r["desc"]: r.asDict() for r in df.select("desc", *outputs).collect()}


@pytest.mark.parametrize(("desc", "value"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_hmac_token_matches_python_hmac(token_results: Results, desc: str, value: str) -> None:
    row = token_results[desc]
    for key_desc, key in KEYS.items():
        for purpose in PURPOSES:
            got, want = row[f"{key_desc}|{purpose}"], _python_token(key, purpose, value)
            assert got == want, f"{desc} / {key_desc} / {purpose}: {got} != hmac {want}"


def test_hmac_token_null_and_domain_separation(token_results: Results) -> None:
    assert all(v is None for k, v in token_results["null"].items() if k != "desc")
    row = token_results["plain mobile"]
    tokens = {row[f"{k}|{p}"] for k in KEYS for p in PURPOSES}
    assert len(tokens) == len(KEYS) * len(PURPOSES), "purposes and keys must separate tokens"
    assert all(len(t) == 64 and t == t.lower() for t in tokens)


@pytest.mark.parametrize("purpose", ["", "mobile:v2"])
def test_hmac_token_rejects_bad_purpose(purpose: str) -> None:
    with pytest.raises(ValueError, match="purpose"):
        hmac_token_expr(F.col("v"), KEYS["16-byte key"], purpose)


def test_hmac_token_rejects_short_key() -> None:
    with pytest.raises(SecretError, match="16 bytes"):
        hmac_token_expr(F.col("v"), b"too-short", "mobile")


# --- masks ---------------------------------------------------------------------------------------

MASKS = {
    "mobile": mask_mobile_expr,
    "email": mask_email_expr,
    "id_no": mask_id_no_expr,
    "name": mask_name_expr,
    "address": mask_address_expr,
    "card_no": mask_card_no_expr,
    "account_no": mask_account_no_expr,
    "counterparty": mask_counterparty_expr,
    "generic": mask_generic_expr,
}
MASK_CASES = [
    # (description, mask, input, expected)
    ("mobile E.164", "mobile", "+8613800138000", "138****8000"),
    ("mobile plain", "mobile", "13800138000", "138****8000"),
    ("mobile formatted", "mobile", "+86 138-0013-8000", "138****8000"),
    ("mobile full-width", "mobile", "１３８００１３８０００", "138****8000"),
    ("mobile invalid", "mobile", "12345678901", None),
    ("mobile garbage", "mobile", "12", None),
    ("mobile empty", "mobile", "", None),
    ("mobile null", "mobile", None, None),
    ("email clean", "email", "zhang.wei@qq.com", "z***@qq.com"),
    ("email upper-case padded", "email", "  ZHANG.WEI@QQ.COM ", "z***@qq.com"),
    ("email one-letter local", "email", "a@b.cn", "a***@b.cn"),
    ("email invalid", "email", "zhang.wei.qq.com", None),
    ("email null", "email", None, None),
    ("id valid, lower x", "id_no", "11010519491231002x", "*" * 18),
    ("id wrong check digit", "id_no", "440305199001010017", "*" * 18),
    ("id spaced", "id_no", "440305 19900101 0018", "*" * 18),
    ("id 15 digits", "id_no", "440305900101001", None),
    ("id garbage", "id_no", "N/A", None),
    ("id null", "id_no", None, None),
    ("name two characters", "name", "张伟", "张*"),
    ("name four characters", "name", "欧阳娜娜", "欧***"),
    ("name spaced with U+3000", "name", " 张\u3000伟 ", "张*"),
    ("name with middle dot", "name", "迪丽热巴·迪力木拉提", "迪*********"),
    ("name Latin", "name", "JOHN SMITH", "J*** S****"),
    ("name Latin lower, spaced", "name", " john   smith ", "J*** S****"),
    ("name single character", "name", "伟", "伟"),
    ("name blank", "name", "\u3000", None),
    ("name null", "name", None, None),
    ("address province + city", "address", "广东省广州市天河区体育西路12号301室", "广东省广州市***"),
    ("address municipality", "address", "北京市朝阳区建国路8号", "北京市***"),
    ("address short province", "address", "广东 广州市 天河区", "广东省广州市***"),
    ("address city only", "address", "广州市天河区体育西路", "广州市***"),
    ("address province only", "address", "广东省天河区", "广东省***"),
    ("address neither", "address", "天河区体育西路12号", "***"),
    ("address blank", "address", " ", None),
    ("address null", "address", None, None),
    ("card 16 digits", "card_no", "6222020200112233", "6222 **** **** 2233"),
    ("card spaced", "card_no", "6222 0202 0011 2233", "6222 **** **** 2233"),
    ("card stored value", "card_no", "SV1234567890", "**** 7890"),
    ("card too short", "card_no", "1234", None),
    ("card null", "card_no", None, None),
    ("account 16 digits", "account_no", "6222000011112222", "****2222"),
    ("account with dashes", "account_no", "6222-0000-1111-2222", "****2222"),
    ("account too short", "account_no", "12345", None),
    ("counterparty company", "counterparty", "华信科技有限公司", "华*******"),
    ("counterparty account", "counterparty", "6221234567890123", "****0123"),
    ("counterparty label", "counterparty", "LOAN-REPAYMENT", "L*************"),
    ("generic", "generic", " 1380013800 ", "*" * 10),
    ("generic long", "generic", "o" * 40, "*" * 16),
    ("generic blank", "generic", " ", None),
]  # fmt: skip


@pytest.fixture(scope="module")
def mask_results(spark: SparkSession) -> Results:
    df = spark.createDataFrame(
        [(d, m, v) for d, m, v, _ in MASK_CASES], "desc string, mask string, v string"
    )
    outputs = [fn(F.col("v")).alias(name) for name, fn in MASKS.items()]
    return {r["desc"]: r.asDict() for r in df.select("desc", *outputs).collect()}


@pytest.mark.parametrize(
    ("desc", "mask", "value", "expected"), MASK_CASES, ids=[c[0] for c in MASK_CASES]
)
def test_mask(
    mask_results: Results, desc: str, mask: str, value: str | None, expected: str | None
) -> None:
    got = mask_results[desc][mask]
    assert got == expected, f"{desc}: mask_{mask}_expr({value!r}) = {got!r}, expected {expected!r}"
