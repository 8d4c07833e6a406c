"""Business keys of generated records (customer numbers, member IDs, ...).

Each is a bijective scramble of (person_id, copy): unique, non-sequential, and computable for any
person without a join — so marketing contacts can name a customer number without reading the
bank tables. ``copy`` 0 is a person's main record, 1 an in-system duplicate.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from profilehouse.generator import rand


def _pid(person_id: Column | str) -> Column:
    return F.col(person_id) if isinstance(person_id, str) else person_id


def cust_no_expr(person_id: Column | str, copy: Column | int = 0) -> Column:
    """Bank customer number ``C`` + 10 digits."""
    copy_col = copy if isinstance(copy, Column) else F.lit(copy)
    n = _pid(person_id) * 2 + copy_col
    return F.concat(F.lit("C"), rand.digits(rand.scramble(n, 10**10, 7_777_777, 3_141_592_653), 10))


def member_id_expr(person_id: Column | str, copy: Column | int = 0) -> Column:
    """Retail member ID ``M`` + 9 digits."""
    copy_col = copy if isinstance(copy, Column) else F.lit(copy)
    n = _pid(person_id) * 2 + copy_col
    return F.concat(F.lit("M"), rand.digits(rand.scramble(n, 10**9, 9_999_991, 271_828_182), 9))


def account_no_expr(person_id: Column | str, copy: Column | int, slot: Column | int) -> Column:
    """Bank account number ``6222`` + 12 digits (slot = product slot of the customer record)."""
    copy_col = copy if isinstance(copy, Column) else F.lit(copy)
    slot_col = slot if isinstance(slot, Column) else F.lit(slot)
    n = (_pid(person_id) * 2 + copy_col) * 8 + slot_col
    return F.concat(
        F.lit("6222"), rand.digits(rand.scramble(n, 10**12, 1_000_003, 577_215_664), 12)
    )


def card_no_expr(person_id: Column | str) -> Column:
    """Stored-value card number ``SV`` + 10 digits."""
    return F.concat(
        F.lit("SV"), rand.digits(rand.scramble(person_id, 10**10, 3_333_331, 161_803_398), 10)
    )


def event_id_expr(seed: int, source: str, *keys: Column | str) -> Column:
    """A UUID-like event ID, unique per (source, keys)."""
    h = F.sha2(
        F.concat_ws(
            "|",
            F.lit(seed),
            F.lit(source),
            *[(F.col(k) if isinstance(k, str) else k).cast("string") for k in keys],
        ),
        256,
    )
    return uuid_text_expr(h)


def uuid_text_expr(hex_digest: Column) -> Column:
    """The first 32 hex characters of ``hex_digest`` laid out as a UUID (8-4-4-4-12)."""
    h = hex_digest
    return F.concat_ws(
        "-",
        F.substring(h, 1, 8),
        F.substring(h, 9, 4),
        F.substring(h, 13, 4),
        F.substring(h, 17, 4),
        F.substring(h, 21, 12),
    )
