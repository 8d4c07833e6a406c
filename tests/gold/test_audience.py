"""Audience selection: tag names or codes in a boolean expression, validated against the
registry, and the members it selects."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession

from profilehouse.gold.audience import AudienceError, audience_members, parse_audience
from profilehouse.gold.tags import tag_values
from tests.gold.customers import REGISTRY, customer_features


@pytest.fixture(scope="module")
def wide(spark: SparkSession) -> DataFrame:
    return tag_values(customer_features(spark), REGISTRY).cache()


def _members(spark: SparkSession, wide: DataFrame, expression: str) -> list[str]:
    audience = parse_audience(spark, REGISTRY, expression)
    return sorted(r["master_id"] for r in audience_members(wide, audience).collect())


def test_chinese_names_and_codes_select_the_same_customers(
    spark: SparkSession, wide: DataFrame
) -> None:
    by_name = "存贷客户 = false AND 高净值客户 IN ('A','B') AND 存款客户"
    by_code = "NOT deposit_and_loan AND aum_tier IN ('A', 'B') AND deposit_customer"
    assert _members(spark, wide, by_name) == _members(spark, wide, by_code) == ["almost_a"]


def test_string_literals_are_not_taken_for_tag_names(spark: SparkSession, wide: DataFrame) -> None:
    audience = parse_audience(spark, REGISTRY, "生命周期 = '流失' OR 城市等级 = '一线'")
    assert audience.condition == "`lifecycle_stage` = '流失' OR `city_tier` = '一线'"
    assert sorted(r["master_id"] for r in audience_members(wide, audience).collect()) == [
        "gone",
        "young_rich",
    ]


def test_customers_who_opted_out_are_left_out_unless_asked(
    spark: SparkSession, wide: DataFrame
) -> None:
    assert parse_audience(spark, REGISTRY, "银行客户").suppressed_by == ("marketing_opt_out",)
    bank = _members(spark, wide, "银行客户")
    assert "fading" not in bank and bank  # a bank customer, but opted out
    everyone = parse_audience(spark, REGISTRY, "银行客户", include_suppressed=True)
    assert everyone.suppressed_by == ()
    kept = sorted(r["master_id"] for r in audience_members(wide, everyone).collect())
    assert kept == sorted([*bank, "fading"])


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("高净值客户 IN ('A', 'Z')", "has no value 'Z' (values: A, B, C, D, E)"),
        ("数字活跃 = '很高'", "has no value '很高'"),
        ("wealthy = true", "unknown tag 'wealthy'"),
        ("高净值客户", "gives string, not true/false"),
        ("存款客户 AND (", "PARSE_SYNTAX_ERROR"),
    ],
)
def test_bad_expressions_are_named(spark: SparkSession, expression: str, message: str) -> None:
    with pytest.raises(AudienceError) as caught:
        parse_audience(spark, REGISTRY, expression)
    assert message in str(caught.value)
    assert repr(expression) in str(caught.value)
