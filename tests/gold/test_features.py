"""Feature snapshots on small hand-made tables: windows, the snapshot edge, latest-by, record
links, calendars, customers without events and derived features."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from profilehouse.errors import ConfigError
from profilehouse.gold.feature_config import FeatureConfig
from profilehouse.gold.features import feature_snapshot

T = dt.date(2025, 6, 30)

CONFIG = FeatureConfig.model_validate(
    {
        "snapshot": {"windows": [7, 30]},
        "calendars": {"festival": {"dates": ["2025-06-18"], "days_around": 2}},
        "sources": {
            "payments": {
                "time": "ts",
                "record": {"source": "accounts", "key": ["account"]},
                "features": {
                    "paid": {"agg": "sum", "value": "amount", "description": "paid"},
                    "payments": {"agg": "count", "description": "payments"},
                    "festival_payments": {
                        "agg": "count",
                        "where": "in_festival",
                        "windows": False,
                        "description": "payments near the festival",
                    },
                    "pay_days": {
                        "agg": "count_distinct",
                        "value": "to_date(ts)",
                        "windows": [30],
                        "description": "days with a payment",
                    },
                    "last_paid": {
                        "agg": "max",
                        "value": "ts",
                        "type": "timestamp",
                        "windows": False,
                        "description": "latest payment",
                    },
                },
            },
            "balances": {
                "time": "as_of",
                "latest_by": ["account"],
                "record": {"source": "accounts", "key": ["account"]},
                "features": {
                    "balance": {
                        "agg": "sum",
                        "value": "balance",
                        "windows": False,
                        "description": "current balance",
                    }
                },
            },
            "profiles": {
                "master_id": "master_id",
                "features": {
                    "segment": {
                        "agg": "max",
                        "value": "segment",
                        "type": "string",
                        "windows": False,
                        "description": "segment",
                    }
                },
            },
        },
        "derived": {
            "avg_payment_30d": "CASE WHEN payments_30d > 0 THEN paid_30d / payments_30d END",
            "days_since_paid": "datediff(snapshot_date, last_paid)",
        },
        "derived_types": {"days_since_paid": "bigint"},
    }
)


@pytest.fixture(scope="module")
def inputs(spark: SparkSession) -> dict[str, DataFrame]:
    ts = dt.datetime
    payments = spark.createDataFrame(
        [
            ("a1", ts(2025, 6, 30, 23, 59, 59), 10.0),  # last second of the snapshot day: in
            ("a1", ts(2025, 7, 1, 0, 0, 0), 1000.0),  # the next day: never
            ("a1", ts(2025, 6, 24, 0, 0, 0), 20.0),  # first instant of the 7-day window: in
            ("a1", ts(2025, 6, 23, 23, 59, 59), 40.0),  # one second earlier: 30 days only
            ("a1", ts(2025, 6, 17, 12, 0, 0), 80.0),  # near the festival
            ("a2", ts(2025, 5, 1, 9, 0, 0), 5.0),  # outside both windows
            ("zz", ts(2025, 6, 29, 9, 0, 0), 7.0),  # an account of no customer
        ],
        "account string, ts timestamp, amount double",
    )
    balances = spark.createDataFrame(
        [
            ("a1", dt.date(2025, 5, 31), 100.0),
            ("a1", dt.date(2025, 6, 30), 150.0),
            ("a1", dt.date(2025, 7, 31), 999.0),  # after the snapshot
            ("a2", dt.date(2025, 4, 30), 30.0),
        ],
        "account string, as_of date, balance double",
    )
    members = spark.createDataFrame(
        [("accounts|a1", "M1"), ("accounts|a2", "M2"), ("people|p3", "M3")],
        "record_id string, master_id string",
    )
    profiles = spark.createDataFrame(
        [("M1", "gold"), ("M3", None)], "master_id string, segment string"
    )
    return {"payments": payments, "balances": balances, "profiles": profiles, "members": members}


@pytest.fixture(scope="module")
def snapshot(spark: SparkSession, inputs: dict[str, DataFrame]) -> DataFrame:
    tables = {k: v for k, v in inputs.items() if k != "members"}
    return feature_snapshot(spark, CONFIG, tables, inputs["members"], {}, T).cache()


def test_one_row_per_master_customer_with_every_feature(snapshot: DataFrame) -> None:
    assert sorted(r["master_id"] for r in snapshot.collect()) == ["M1", "M2", "M3"]
    assert set(snapshot.columns) == {"master_id", "snapshot_date", *CONFIG.schema}


def test_windows_end_on_the_snapshot_day_and_start_w_days_before(
    spark: SparkSession, snapshot: DataFrame
) -> None:
    got = snapshot.select(
        "master_id",
        "paid_7d",
        "payments_7d",
        "paid_30d",
        "payments_30d",
        "pay_days_30d",
        "festival_payments",
        "avg_payment_30d",
    )
    expected = spark.createDataFrame(
        [
            ("M1", 30.0, 2, 150.0, 4, 4, 1, 37.5),
            ("M2", 0.0, 0, 0.0, 0, 0, 0, None),
            ("M3", 0.0, 0, 0.0, 0, 0, 0, None),
        ],
        got.schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_latest_row_per_key_and_facts_carried_by_master_id(
    spark: SparkSession, snapshot: DataFrame
) -> None:
    got = snapshot.select("master_id", "balance", "segment", "last_paid", "days_since_paid")
    expected = spark.createDataFrame(
        [
            ("M1", 150.0, "gold", dt.datetime(2025, 6, 30, 23, 59, 59), 0),
            ("M2", 30.0, None, dt.datetime(2025, 5, 1, 9, 0, 0), 60),
            ("M3", 0.0, None, None, None),
        ],
        got.schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_an_earlier_snapshot_sees_only_its_past(
    spark: SparkSession, inputs: dict[str, DataFrame]
) -> None:
    tables = {k: v for k, v in inputs.items() if k != "members"}
    earlier = feature_snapshot(spark, CONFIG, tables, inputs["members"], {}, dt.date(2025, 6, 1))
    row = earlier.where("master_id = 'M1'").first()
    assert row["balance"] == 100.0  # the May month end, not June's
    assert row["payments_30d"] == 0 and row["last_paid"] is None
    assert row["snapshot_date"] == dt.date(2025, 6, 1)


def test_a_feature_that_does_not_analyse_is_named(
    spark: SparkSession, inputs: dict[str, DataFrame]
) -> None:
    broken = CONFIG.model_copy(deep=True)
    payments = broken.sources["payments"].features
    payments["paid"] = payments["paid"].model_copy(update={"value": "amount_cny"})
    tables = {k: v for k, v in inputs.items() if k != "members"}
    with pytest.raises(ConfigError) as caught:
        feature_snapshot(spark, broken, tables, inputs["members"], {}, T)
    assert caught.value.path == "features.yaml"
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("sources.payments.features.paid:")
    assert "`amount_cny`" in caught.value.problems[0]


def test_a_derived_feature_that_does_not_analyse_is_named(
    spark: SparkSession, inputs: dict[str, DataFrame]
) -> None:
    broken = CONFIG.model_copy(update={"derived": {"ratio": "paid_7d / nonexistent"}})
    tables = {k: v for k, v in inputs.items() if k != "members"}
    with pytest.raises(ConfigError) as caught:
        feature_snapshot(spark, broken, tables, inputs["members"], {}, T)
    assert caught.value.problems[0].startswith("derived.ratio:")
