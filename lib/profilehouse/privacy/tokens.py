"""PII tokens and masks: the token key, keyed HMAC-SHA256 tokens and analyst-facing masks.

Tokens are computed with Spark built-ins only (``sha2`` over binary concatenations), so no
Python worker is involved. Jobs keep the key out of query plans: :func:`token_key_frame` holds
the key's padded forms in a one-row DataFrame (its rows never appear in ``explain()``, the
Spark UI or event logs), which is broadcast-joined to the data, and :func:`hmac_token_from_keys`
reads them from its columns. :func:`hmac_token_expr` embeds them as literals instead and is
meant for small, interactive use. Tokenise *normalised* values (see
:mod:`profilehouse.standardize`) so that formatting variants of one value share a token.

Masks keep just enough for an analyst to recognise a value; each returns null when the input is
null or not shaped like the identifier it masks.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.columns import mask_middle_expr
from profilehouse.errors import SecretError
from profilehouse.standardize import (
    address_normalized_expr,
    city_expr,
    email_normalized_expr,
    email_valid_expr,
    halfwidth_expr,
    id_no_normalized_expr,
    mobile_e164_expr,
    name_normalized_expr,
    province_expr,
)

TOKEN_KEY_ENV = "PROFILEHOUSE_TOKEN_KEY"
TOKEN_KEY_FILE_ENV = "PROFILEHOUSE_TOKEN_KEY_FILE"
MIN_KEY_BYTES = 16
_SHA256_BLOCK = 64  # bytes
_IPAD, _OPAD = 0x36, 0x5C


def load_token_key(env_var: str = TOKEN_KEY_ENV, key_file_env: str = TOKEN_KEY_FILE_ENV) -> bytes:
    """The token key: the UTF-8 bytes of ``$env_var``, else the bytes of the file ``$key_file_env``.

    The env var wins when both are set; one trailing newline is dropped from the file. Raises
    :class:`SecretError` (naming both variables, never the key) when neither is set, the file
    cannot be read, or the key is shorter than 16 bytes.
    """
    where = f"set {env_var} to the key or {key_file_env} to the path of a file holding it"
    value = os.environ.get(env_var)
    if value:
        key, source = value.encode("utf-8"), env_var
    else:
        path = os.environ.get(key_file_env)
        if not path:
            raise SecretError(f"no PII token key: {where}")
        try:
            key = Path(path).read_bytes()
        except OSError as exc:
            raise SecretError(
                f"cannot read the PII token key file {path!r} named by {key_file_env}: "
                f"{exc.strerror or type(exc).__name__}; {where}"
            ) from None
        key, source = _drop_trailing_newline(key), f"the file named by {key_file_env}"
    if len(key) < MIN_KEY_BYTES:
        raise SecretError(
            f"the PII token key from {source} is shorter than {MIN_KEY_BYTES} bytes; {where} "
            f"(at least {MIN_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`)"
        )
    return key


def _drop_trailing_newline(data: bytes) -> bytes:
    """``data`` without one trailing '\\n' or '\\r\\n' (as editors and ``echo`` add)."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data.removesuffix(b"\n")


def _padded_keys(key: bytes) -> tuple[bytes, bytes]:
    """(K' ⊕ ipad, K' ⊕ opad) of RFC 2104 for SHA-256 (K' = key hashed if long, zero-padded)."""
    block = hashlib.sha256(key).digest() if len(key) > _SHA256_BLOCK else key
    block = block.ljust(_SHA256_BLOCK, b"\0")
    return bytes(b ^ _IPAD for b in block), bytes(b ^ _OPAD for b in block)


def hmac_token_expr(col: Column, key: bytes, purpose: str) -> Column:
    """Lower-case hex HMAC-SHA256(key, purpose + ':' + value as UTF-8); null when ``col`` is null.

    ``purpose`` ('mobile', 'email', 'id_no', 'name', ...) separates domains: equal values of
    different kinds get different tokens. It must be non-empty and free of ':' so that
    (purpose, value) pairs cannot collide. Equal to Python's
    ``hmac.new(key, f"{purpose}:{value}".encode(), "sha256").hexdigest()``.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise SecretError(f"the PII token key must be at least {MIN_KEY_BYTES} bytes")
    if not purpose or ":" in purpose:
        raise ValueError(f"purpose must be a non-empty string without ':', got {purpose!r}")
    inner_key, outer_key = _padded_keys(bytes(key))
    return _hmac(col, purpose, F.lit(inner_key), F.lit(outer_key))


KEY_INNER, KEY_OUTER = "_token_key_inner", "_token_key_outer"


def token_key_frame(spark: SparkSession, key: bytes) -> DataFrame:
    """One row holding the key's padded forms (columns ``KEY_INNER``, ``KEY_OUTER``).

    Cross-join it (broadcast) to the rows to tokenise, then use :func:`hmac_token_from_keys`.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise SecretError(f"the PII token key must be at least {MIN_KEY_BYTES} bytes")
    inner_key, outer_key = _padded_keys(bytes(key))
    return spark.createDataFrame(
        [(bytearray(inner_key), bytearray(outer_key))],
        f"{KEY_INNER} binary, {KEY_OUTER} binary",
    )


def hmac_token_from_keys(col: Column, purpose: str | Column) -> Column:
    """As :func:`hmac_token_expr`, with the key read from the columns of :func:`token_key_frame`.

    ``purpose`` may be a Column (one purpose per row); null purposes give null tokens.
    """
    if isinstance(purpose, str) and (not purpose or ":" in purpose):
        raise ValueError(f"purpose must be a non-empty string without ':', got {purpose!r}")
    return _hmac(col, purpose, F.col(KEY_INNER), F.col(KEY_OUTER))


def _hmac(col: Column, purpose: str | Column, inner_key: Column, outer_key: Column) -> Column:
    label = F.lit(f"{purpose}:") if isinstance(purpose, str) else F.concat(purpose, F.lit(":"))
    message = F.concat(label, col.cast("string")).cast("binary")
    inner = F.unhex(F.sha2(F.concat(inner_key, message), 256))
    return F.sha2(F.concat(outer_key, inner), 256)


def mask_mobile_expr(col: Column) -> Column:
    """'138****8000' for a valid mainland mobile in any format; null when null or invalid."""
    return mask_middle_expr(F.substring(mobile_e164_expr(col), 4, 11), 3, 4)


def mask_email_expr(col: Column) -> Column:
    """'z***@qq.com': first character of the local part, '***', the domain; null when invalid."""
    email = email_normalized_expr(col)
    return F.when(
        email_valid_expr(email),
        F.concat(
            F.substring(F.substring_index(email, "@", 1), 1, 1),
            F.lit("***@"),
            F.substring_index(email, "@", -1),
        ),
    )


def mask_id_no_expr(col: Column) -> Column:
    """'******************' (one '*' per character) for an 18-character resident ID; null when
    not ID-shaped (the caller masks other values with :func:`mask_generic_expr`).

    Why nothing is kept: an 18-digit ID is 6 digits of region + 8 of birth date + a 3-digit
    sequence whose parity is the gender + a check character computed from the other 17. The
    analyst zone holds the birth date, gender, city/province, masked address and branch in
    clear, so every part but the region's district and the sequence is known, and the city
    narrows the region to its ~10 district codes. Keeping the last 4 (sequence + check) would
    leave ~10 candidates, of which the check character rejects ~10/11: the ID itself. Keeping
    only the check character still leaves ~10 districts x 500 sequences / 11 = ~450 candidates,
    but buys the analyst nothing; keeping the first 6 gives away the district. So the mask
    keeps no character: the token (``<col>_token``) is what joins and recognises a record, and
    ``<col>_valid`` says whether the ID passed its checks.
    """
    id_no = id_no_normalized_expr(col)
    return F.when(id_no.rlike(r"^[0-9]{17}[0-9X]$"), F.repeat(F.lit("*"), F.length(id_no)))


def _compact_number(col: Column) -> Column:
    """Upper-case text of ``col`` without whitespace, '-' and '.' (card/account numbers)."""
    text = F.regexp_replace(halfwidth_expr(col.cast("string")), r"[\s\u3000\-.]", "")
    return F.when(text != "", F.upper(text))


def mask_card_no_expr(col: Column) -> Column:
    """'6222 **** **** 1234' for a 16–19 digit card number; '**** 1234' for another number of at
    least 8 characters (a stored-value 'SV' + 10 digits); null when shorter or null.

    A bank card's first 4 digits are its issuer (public); the 8+ hidden digits, less the Luhn
    digit, leave 10^7 candidates. Shorter numbers show only their last 4.
    """
    number = _compact_number(col)
    last4 = F.substring(number, -4, 4)
    return F.when(
        number.rlike(r"^[0-9]{16,19}$"),
        F.concat(F.substring(number, 1, 4), F.lit(" **** **** "), last4),
    ).when(F.length(number) >= 8, F.concat(F.lit("**** "), last4))


def mask_account_no_expr(col: Column) -> Column:
    """'****1234': the last 4 characters of an account number of at least 8; null otherwise."""
    number = _compact_number(col)
    return F.when(F.length(number) >= 8, F.concat(F.lit("****"), F.substring(number, -4, 4)))


def mask_counterparty_expr(col: Column) -> Column:
    """A transaction's counterparty: an account/card number (8+ digits) masked as an account
    ('****0123'), anything else (a person or company name) masked as a name ('华*******')."""
    number = _compact_number(col)
    return F.when(number.rlike(r"^[0-9]{8,}$"), mask_account_no_expr(col)).otherwise(
        mask_name_expr(col)
    )


def mask_generic_expr(col: Column) -> Column:
    """One '*' per character (at most 16) of the trimmed value; null when null or blank.

    For values that fail their kind's format check (an invalid mobile, an unusual openid): no
    character of them is shown, so a mistyped identifier cannot leak through its mask.
    """
    text = F.trim(halfwidth_expr(col.cast("string")))
    return F.when(text != "", F.repeat(F.lit("*"), F.least(F.length(text), F.lit(16))))


def mask_name_expr(col: Column) -> Column:
    """Normalised name with all but the first character of each word masked; null when blank.

    A Chinese name is one word ('张伟' → '张*', '欧阳娜娜' → '欧***'); Latin names keep each
    initial ('JOHN SMITH' → 'J*** S****'). Every masked character becomes one '*'.
    """
    return F.regexp_replace(name_normalized_expr(col), r"(?<=\S)\S", "*")


def mask_address_expr(col: Column) -> Column:
    """Canonical province + city followed by '***' ('广东省广州市***', '北京市***').

    Only '***' when neither is found; null when the address is null or blank.
    """
    province, city = province_expr(col), city_expr(col)
    keep = F.concat_ws("", province, F.when(province.isNull() | (city != province), city))
    return F.when(address_normalized_expr(col).isNotNull(), F.concat(keep, F.lit("***")))
