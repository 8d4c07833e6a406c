"""Column → Column helpers used across stages (built from Spark's built-in functions only)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# GB 11643-1999: weights of the first 17 digits of a resident ID and the check characters.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"


def id_check_char_expr(first17: Column) -> Column:
    """Check character ('0'-'9' or 'X') of an 18-digit resident ID from its first 17 digits.

    Null when the input is not exactly 17 digits.
    """
    total = sum(
        (F.substring(first17, i + 1, 1).cast("int") * w for i, w in enumerate(ID_WEIGHTS)),
        F.lit(0),
    )
    check = F.substring(F.lit(ID_CHECK_CHARS), (F.pmod(total, F.lit(11)) + 1).cast("int"), 1)
    return F.when(first17.rlike(r"^[0-9]{17}$"), check)


def mask_middle_expr(value: Column, keep_start: int, keep_end: int, fill: str = "*") -> Column:
    """``value`` with all but the first ``keep_start`` and last ``keep_end`` characters masked."""
    n = F.length(value)
    middle = F.greatest(n - keep_start - keep_end, F.lit(0))
    return F.when(
        value.isNotNull(),
        F.concat(
            F.substring(value, 1, keep_start),
            F.repeat(F.lit(fill), middle),
            F.when(n > keep_start + keep_end, F.substring(value, -keep_end, keep_end)).otherwise(
                ""
            ),
        ),
    )
