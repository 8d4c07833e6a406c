"""The shipped KPI definitions over hand-made customers: each KPI's single definition."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import ConfigError
from profilehouse.gold.kpis import KpiConfig, kpi_values, load_kpi_config, start_column
from profilehouse.gold.tags import INVALID_TAGS, tag_values
from tests.gold.customers import REGISTRY, T, customer_features

CONFIG = load_kpi_config()


def _customers(spark: SparkSession) -> DataFrame:
    features = customer_features(spark)
    tags = tag_values(features, REGISTRY).drop("snapshot_date", INVALID_TAGS)
    return features.join(tags, "master_id")


@pytest.fixture(scope="module")
def kpis(spark: SparkSession) -> dict[tuple[str, str, str], tuple]:
    now = _customers(spark)
    # 90 days earlier: "young_rich" held deposits only, "almost_a" was not a customer yet
    start = now.withColumn("deposit_only", F.col("master_id") == "young_rich").where(
        "master_id != 'almost_a'"
    )
    packed = start.select("master_id", F.struct(*start.columns).alias(start_column(90)))
    rows = kpi_values(now.join(packed, "master_id", "left"), CONFIG, T).collect()
    return {
        (r["kpi_code"], r["dimension"], r["dimension_value"]): (
            r["numerator"],
            r["denominator"],
            r["value"],
        )
        for r in rows
    }


def test_bank_deposit_and_loan_kpis(kpis) -> None:
    assert kpis[("deposit_customers", "all", "all")][2] == 2.0  # young_rich, almost_a
    assert kpis[("loan_customers", "all", "all")][2] == 1.0
    assert kpis[("deposit_and_loan_customers", "all", "all")][2] == 1.0
    # the one deposit-only customer at the start now holds a loan
    assert kpis[("deposit_loan_conversion_90d", "all", "all")] == (1.0, 1.0, 1.0)


def test_lifecycle_and_retail_kpis(kpis) -> None:
    assert kpis[("churned_customers", "all", "all")][2] == 1.0  # gone
    assert kpis[("churn_risk_customers", "all", "all")][2] == 3.0  # almost_a, fading, gone
    assert kpis[("new_customers", "all", "all")][2] == 1.0
    assert kpis[("stored_value_hoarders", "all", "all")][2] == 1.0
    # holiday: 6 receipts / 600; new_shopper: 2 / 100
    assert kpis[("avg_order_value_365d", "all", "all")] == (700.0, 8.0, 87.5)
    assert kpis[("repurchase_rate_365d", "all", "all")] == (2.0, 2.0, 1.0)


def test_by_dimension_values_add_up(kpis) -> None:
    by_region = [
        v for (code, dim, _), v in kpis.items() if (code, dim) == ("deposit_customers", "region")
    ]
    assert sum(v[2] for v in by_region) == kpis[("deposit_customers", "all", "all")][2]
    assert kpis[("deposit_customers", "region", "华北")][2] == 1.0
    assert kpis[("deposit_customers", "region", "未知")][2] == 0.0


def test_a_kpi_that_does_not_analyse_is_named(spark: SparkSession) -> None:
    broken = KpiConfig.model_validate(
        {
            "dimensions": ["planet"],
            "kpis": {
                "rich": {
                    "name": {"zh": "富", "en": "Rich"},
                    "kind": "count",
                    "condition": "wealthy",
                }
            },
        }
    )
    with pytest.raises(ConfigError) as caught:
        kpi_values(_customers(spark), broken, dt.date(2025, 12, 31))
    problems = caught.value.problems
    assert caught.value.path == "kpis.yaml"
    assert any(p.startswith("dimensions: 'planet'") for p in problems)
    assert any(p.startswith("kpis.rich.condition:") and "`wealthy`" in p for p in problems)
