"""Deterministic random columns: independent of partitioning, correct distributions."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.generator import rand


def test_draws_do_not_depend_on_partitioning(spark: SparkSession) -> None:
    def draws(partitions: int):
        df = spark.range(0, 2000, 1, partitions)
        return df.select(
            "id",
            rand.uniform(7, "u", "id").alias("u"),
            rand.normal(7, "n", "id").alias("n"),
            rand.weighted_choice({"a": 1, "b": 3}, 7, "w", "id").alias("w"),
        )

    assert_df_equality(draws(1), draws(7), ignore_row_order=True)


def test_salt_and_seed_change_the_draw(spark: SparkSession) -> None:
    df = spark.range(500).select(
        rand.uniform(1, "a", "id").alias("a"),
        rand.uniform(1, "b", "id").alias("b"),
        rand.uniform(2, "a", "id").alias("c"),
    )
    row = df.select(
        F.sum((F.col("a") == F.col("b")).cast("int")).alias("ab"),
        F.sum((F.col("a") == F.col("c")).cast("int")).alias("ac"),
        F.corr("a", "b").alias("corr"),
    ).first()
    assert row.ab == 0 and row.ac == 0
    assert abs(row.corr) < 0.15


def test_uniform_and_weighted_choice_proportions(spark: SparkSession) -> None:
    n = 20000
    df = spark.range(n).select(
        rand.uniform(3, "u", "id").alias("u"),
        rand.weighted_choice({"x": 1.0, "y": 3.0}, 3, "w", "id").alias("w"),
        rand.count_draw(4.0, 3, "c", "id").alias("c"),
    )
    stats = df.select(
        F.min("u").alias("lo"), F.max("u").alias("hi"), F.avg("u").alias("mean"),
        F.avg((F.col("w") == "y").cast("double")).alias("y_share"),
        F.avg("c").alias("count_mean"),
    ).first()  # fmt: skip
    assert 0 <= stats.lo < 0.001 and 0.999 < stats.hi < 1
    assert stats.mean == pytest.approx(0.5, abs=0.01)
    assert stats.y_share == pytest.approx(0.75, abs=0.015)
    assert stats.count_mean == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("modulus", [10**4, 10**5])
def test_scramble_is_a_bijection(spark: SparkSession, modulus: int) -> None:
    df = spark.range(modulus).select(rand.scramble("id", modulus, 7919, 12345).alias("s"))
    row = df.select(
        F.countDistinct("s").alias("n"), F.min("s").alias("lo"), F.max("s").alias("hi")
    ).first()
    assert (row.n, row.lo, row.hi) == (modulus, 0, modulus - 1)


def test_scramble_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="coprime"):
        rand.scramble("id", 10**4, 10, 0)
    with pytest.raises(ValueError, match="power of ten"):
        rand.scramble("id", 1000 * 3, 7, 0)


@pytest.mark.parametrize(
    ("seed", "salt", "keys"),
    [(7, "plain", ("id",)), (2**40, "big seed", ("id",)), (-3, "quote ' and \\ slash", ("id", "k")),
     (1, "no keys", ())],
)  # fmt: skip
def test_sql_and_column_forms_of_uniform_agree(
    spark: SparkSession, seed: int, salt: str, keys
) -> None:
    df = spark.range(500).withColumn("k", F.concat(F.lit("a`b'"), F.col("id").cast("string")))
    column_form = rand.uniform(seed, salt, *[F.col(k) for k in keys]) if keys else None
    sql_form = rand.uniform(seed, salt, *keys)
    if column_form is None:  # no keys: compare with the explicit Column computation
        column_form = F.pmod(F.xxhash64(F.lit(seed), F.lit(salt)), F.lit(1 << 53)).cast(
            "double"
        ) / float(1 << 53)
    assert df.filter(~(column_form == sql_form)).count() == 0
