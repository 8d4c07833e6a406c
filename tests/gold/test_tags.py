"""Tags of the shipped registry and the builtins on hand-made feature rows with known answers,
boundaries included (window and threshold edges, null inputs, a customer with no events)."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.gold.tags import INVALID_TAGS, long_tag_values, tag_values
from tests.gold.customers import CONFIG, REGISTRY, customer_features


@pytest.fixture(scope="module")
def tags(spark: SparkSession) -> DataFrame:
    return tag_values(customer_features(spark), REGISTRY).cache()


def _check(spark: SparkSession, tags: DataFrame, columns: list[str], expected: list[tuple]):
    got = tags.select("master_id", *columns)
    assert_df_equality(
        got,
        spark.createDataFrame(expected, got.schema),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_demographics(spark: SparkSession, tags: DataFrame) -> None:
    _check(
        spark,
        tags,
        ["age_years", "age_band", "city_name", "city_tier", "region", "bank_customer"],
        [
            ("nobody", None, None, None, None, None, False),
            ("young_rich", 25, "18-25", "北京", "一线", "华北", True),
            ("almost_a", 26, "26-35", "厦门", "二线及以下", "华东", True),
            ("holiday", None, None, None, None, None, False),
            ("new_shopper", None, None, None, None, None, False),
            ("fading", None, None, None, None, None, True),
            ("gone", None, None, None, None, None, True),
        ],
    )


def test_assets_and_holdings(spark: SparkSession, tags: DataFrame) -> None:
    _check(
        spark,
        tags,
        [
            "aum_tier",
            "high_net_worth",
            "deposit_customer",
            "loan_customer",
            "deposit_and_loan",
            "deposit_only",
        ],
        [
            ("nobody", None, False, False, False, False, False),
            ("young_rich", "A", True, True, True, True, False),
            ("almost_a", "B", True, True, False, False, True),
            ("holiday", None, False, False, False, False, False),
            ("new_shopper", None, False, False, False, False, False),
            ("fading", "E", False, False, False, False, False),
            ("gone", "E", False, False, False, False, False),
        ],
    )


def test_lifecycle_boundaries(spark: SparkSession, tags: DataFrame) -> None:
    _check(
        spark,
        tags,
        ["lifecycle_stage", "churn_risk", "new_customer", "days_inactive"],
        [
            ("nobody", None, False, False, None),  # no activity at all: no stage
            ("young_rich", "成熟", False, False, 1),
            ("almost_a", "沉睡", True, False, 61),
            ("holiday", "成长", False, False, 60),
            ("new_shopper", "新客", False, True, 3),
            ("fading", "流失预警", True, False, 5),
            ("gone", "流失", True, False, 181),
        ],
    )


def test_retail_signals_at_their_thresholds(spark: SparkSession, tags: DataFrame) -> None:
    _check(
        spark,
        tags,
        ["holiday_shopper", "stored_value_hoarder", "high_freq_small", "abnormal_txn"],
        [
            ("nobody", False, False, False, False),
            ("young_rich", False, False, False, False),
            ("almost_a", False, False, False, False),
            ("holiday", True, True, False, False),
            ("new_shopper", False, False, False, False),
            ("fading", False, False, False, True),
            ("gone", False, False, False, False),
        ],
    )


def test_builtin_scores_use_the_population(spark: SparkSession) -> None:
    spend = [("c1", 10.0, 1, 100), ("c2", 20.0, 2, 10), ("c3", 30.0, 3, 50), ("c4", 40.0, 4, 5)]
    frame = customer_features(spark).limit(1).drop("master_id")
    rows = None
    for master, money, orders, recency in spend:
        row = frame.select(
            F.lit(master).alias("master_id"),
            *[
                F.lit(v).cast(CONFIG.schema[c]).alias(c)
                if (
                    v := {
                        "retail_spend_365d": money,
                        "retail_orders_365d": orders,
                        "days_since_last_purchase": recency,
                    }.get(c)
                )
                is not None
                else F.col(c)
                for c in frame.columns
            ],
        )
        rows = row if rows is None else rows.unionByName(row)
    assert rows is not None
    got = tag_values(rows, REGISTRY).select(
        "master_id", "rfm_m_score", "rfm_f_score", "rfm_r_score", "rfm_segment"
    )
    # quintile cut points of four customers are their own values, so scores run 1-4 either
    # way (recency: fewer days is better); the RFM cells compare with the means: spend 25,
    # orders 2.5, recency 41.25 days
    _check(
        spark,
        got,
        ["rfm_m_score", "rfm_f_score", "rfm_r_score", "rfm_segment"],
        [
            ("c1", 1, 1, 1, "一般挽留客户"),
            ("c2", 2, 2, 3, "一般发展客户"),
            ("c3", 3, 3, 2, "重要保持客户"),
            ("c4", 4, 4, 4, "重要价值客户"),
        ],
    )


def test_values_outside_the_allowed_set_are_nulled_and_listed(spark: SparkSession) -> None:
    features = (
        customer_features(spark)
        .withColumn("risk_appetite", F.when(F.col("master_id") == "nobody", "C9").otherwise("C2"))
        .withColumn("credit_score", F.lit(1200).cast("bigint"))
    )
    got = tag_values(features, REGISTRY)
    row = got.where("master_id = 'nobody'").first()
    assert row["risk_preference"] is None  # C9 maps to nothing: null, not invalid
    assert row["credit_score_value"] is None  # 1200 is outside [300, 1000]
    assert "credit_score_value" in row[INVALID_TAGS]
    assert got.where("master_id = 'gone'").first()["risk_preference"] == "稳健型"


def test_long_values_hold_every_non_null_value(spark: SparkSession, tags: DataFrame) -> None:
    long = long_tag_values(tags, REGISTRY)
    expected = sum(
        tags.select(F.sum(F.col(t.code).isNotNull().cast("int"))).first()[0]
        for t in REGISTRY.online()[:10]
    )
    codes = [t.code for t in REGISTRY.online()[:10]]
    assert long.where(F.col("tag_code").isin(codes)).count() == expected
    row = long.where("master_id = 'holiday' AND tag_code = 'holiday_shopper'").first()
    assert row["value"] == "true" and row["tag_version"] == 1
