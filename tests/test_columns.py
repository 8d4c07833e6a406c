"""Shared column expressions, on tricky values."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.columns import id_check_char_expr, mask_middle_expr


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("11010519491231002", "X"),  # the standard's worked example
        ("44030519900101001", "8"),  # sum 180, 180 mod 11 = 4 → "8"
        ("33010619730304048", "3"),
        ("1101051949123100", None),  # 16 digits
        ("1101051949123100A", None),  # not digits
        (None, None),
    ],
)
def test_id_check_char(spark: SparkSession, first17: str | None, expected: str | None) -> None:
    df = spark.createDataFrame([(first17,)], "v string")
    assert df.select(id_check_char_expr(F.col("v"))).first()[0] == expected


@pytest.mark.parametrize(
    ("value", "keep", "expected"),
    [
        ("13800138000", (3, 4), "138****8000"),
        ("张伟", (1, 0), "张*"),
        ("ab", (3, 4), "ab"),
        (None, (3, 4), None),
    ],
)
def test_mask_middle(
    spark: SparkSession, value: str | None, keep: tuple[int, int], expected: str | None
) -> None:
    df = spark.createDataFrame([(value,)], "v string")
    assert df.select(mask_middle_expr(F.col("v"), *keep)).first()[0] == expected
