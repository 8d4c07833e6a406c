"""Chinese-character expressions on real Spark: traditional → simplified, homophone keys."""

from __future__ import annotations

from chispa import assert_column_equality
from pyspark.sql import functions as F

from profilehouse.han import (
    homophone_key_expr,
    homophone_table,
    simplified_expr,
    traditional_to_simplified_table,
)


def test_tables_map_character_for_character():
    for source, target in (traditional_to_simplified_table(), homophone_table()):
        assert len(source) == len(target) > 1000
        assert len(set(source)) == len(source)  # each character mapped once


def test_traditional_names_become_simplified(spark):
    rows = [
        ("張偉", "张伟"),
        ("歐陽娜娜", "欧阳娜娜"),
        ("王芳", "王芳"),
        ("JOHN SMITH", "JOHN SMITH"),
        (None, None),
    ]
    df = spark.createDataFrame(rows, "name string, expected string")
    out = df.withColumn("simplified", simplified_expr(F.col("name")))
    assert_column_equality(out, "simplified", "expected")


def test_homophones_share_a_key_and_other_names_do_not(spark):
    df = spark.createDataFrame(
        [
            ("张伟", "張偉", True),
            ("张伟", "张卫", True),
            ("王芳", "王方", True),
            ("张伟", "李娜", False),
            ("李娜", "李明", False),
        ],
        "a string, b string, same boolean",
    )
    out = df.withColumn(
        "key_equal", homophone_key_expr(F.col("a")) == homophone_key_expr(F.col("b"))
    )
    assert_column_equality(out, "key_equal", "same")


def test_text_without_chinese_characters_is_unchanged(spark):
    df = spark.createDataFrame([("MARIA GARCIA",), ("2024-01-02",)], "v string")
    out = df.withColumn("key", homophone_key_expr(F.col("v")))
    assert_column_equality(out, "key", "v")
