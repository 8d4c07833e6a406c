"""Folding a snapshot forward (:mod:`profilehouse.gold.folding`) on small hand-made frames:
which features fold, what the folded values are, and when a customer must be recomputed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.gold.feature_config import FeatureConfig
from profilehouse.gold.folding import (
    REFOLD,
    contribution_pairs,
    folded,
    folded_columns,
)
from profilehouse.gold.incremental import is_row_local

T0, T1 = dt.date(2025, 6, 30), dt.date(2025, 7, 1)
ROWS = "member_id string, ts timestamp, amount decimal(12,2), price double, sku string"


def _config(latest_by: list[str] | None = None) -> FeatureConfig:
    source = {
        "time": "ts",
        "record": {"source": "shop_members", "key": ["member_id"]},
        "features": {
            "orders": {"agg": "count", "description": "orders"},
            "spend": {"agg": "sum", "value": "amount", "description": "spend"},
            "spend_dec": {"agg": "sum", "value": "amount", "type": "decimal", "description": "x"},
            "list_value": {"agg": "sum", "value": "price", "description": "double values"},
            "order_days": {"agg": "count_distinct", "value": "to_date( ts )", "description": "d"},
            "skus": {"agg": "count_distinct", "value": "sku", "description": "skus"},
            "biggest": {"agg": "max", "value": "amount", "description": "biggest order"},
            "first_ts": {
                "agg": "min",
                "value": "ts",
                "type": "timestamp",
                "windows": False,
                "description": "first order",
            },
            "avg_amount": {"agg": "avg", "value": "amount", "windows": False, "description": "a"},
        },
    }
    if latest_by:
        source["latest_by"] = latest_by
    return FeatureConfig.model_validate(
        {"snapshot": {"windows": [2]}, "sources": {"shop_orders": source}}
    )


def _ts(month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, month, day, hour)


def test_each_aggregate_folds_only_where_it_is_exact(spark: SparkSession) -> None:
    config = _config()
    rows = spark.createDataFrame([], ROWS)
    source = config.sources["shop_orders"]
    how = {c.column: c.how for c in folded_columns(rows, source, config, T1)}
    assert how == {
        "orders_2d": "add",
        "spend_2d": "add",  # decimal values: exact
        "spend_dec_2d": "add",
        "list_value_2d": None,  # double values: the order of additions shows in the last bits
        "order_days_2d": "add_days",
        "skus_2d": None,  # a SKU bought again is not a new one: needs the whole set
        "biggest_2d": "max",
        "first_ts": "min",
        "avg_amount": None,
    }
    latest = _config(latest_by=["member_id"])
    columns = folded_columns(rows, latest.sources["shop_orders"], latest, T1)
    assert {c.how for c in columns} == {None}  # a newer row replaces an older one


def test_folded_values_equal_the_aggregates_over_all_rows(spark: SparkSession) -> None:
    """Windows of 2 days: at T0 (06-30) rows from 06-29 on, at T1 (07-01) from 06-30 on."""
    config = _config()
    source = config.sources["shop_orders"]
    rows = spark.createDataFrame(
        [
            # a: one row leaves (06-29), one enters (07-01), a bigger one stays
            ("a", _ts(6, 29), Decimal("10.10"), 1.0, "s1"),
            ("a", _ts(6, 30), Decimal("99.99"), 1.0, "s1"),
            ("a", _ts(7, 1, 0), Decimal("0.01"), 1.0, "s2"),
            # b: its biggest order leaves: the new maximum is unknown
            ("b", _ts(6, 29), Decimal("50.00"), None, None),
            ("b", _ts(6, 30), Decimal("5.00"), None, None),
            # c: only an order after T1 (invisible at both)
            ("c", _ts(7, 2), Decimal("1.00"), None, None),
        ],
        ROWS,
    ).withColumn("master_id", F.col("member_id"))
    columns = folded_columns(rows, source, config, T1)
    pairs = contribution_pairs(rows, source, config, columns, T0, T1)
    assert sorted(r["member_id"] for r in pairs.collect()) == ["a", "a", "b"]
    base = spark.createDataFrame(
        [
            ("a", 2, 110.09, Decimal("110.09"), 2.0, 2, 1, 99.99, _ts(6, 29), 55.045),
            ("b", 2, 55.0, Decimal("55.00"), 0.0, 2, 0, 50.0, _ts(6, 29), 27.5),
        ],
        "master_id string, orders_2d bigint, spend_2d double, spend_dec_2d decimal(38,2), "
        "list_value_2d double, order_days_2d bigint, skus_2d bigint, biggest_2d double, "
        "first_ts timestamp, avg_amount double",
    )
    got = folded(pairs, base, columns)
    a = got.where("master_id = 'a'").drop(REFOLD)
    expected = spark.createDataFrame(
        [("a", 2, 100.0, Decimal("100.00"), 2.0, 2, 1, 99.99, _ts(6, 29), 55.045)],
        "master_id string, orders_2d bigint, spend_2d double, spend_dec_2d decimal(38,2), "
        "list_value_2d double, order_days_2d bigint, skus_2d bigint, biggest_2d double, "
        "first_ts timestamp, avg_amount double",
    )
    assert_df_equality(a.select(*expected.columns), expected, ignore_nullable=True)
    refold = {r["master_id"]: r[REFOLD] for r in got.select("master_id", REFOLD).collect()}
    # a: the double sum and the SKU count changed; b: its maximum left the window
    assert refold == {"a": True, "b": True}


@pytest.mark.parametrize(
    ("query", "local"),
    [
        ("SELECT o.*, m.level FROM {orders} o JOIN {members} m ON o.member_id = m.member_id", True),
        ("SELECT member_id, ts FROM {orders} LATERAL VIEW explode(array(1, 2)) x AS n", True),
        ("SELECT member_id, max(ts) AS ts FROM {orders} GROUP BY member_id", False),
        ("SELECT DISTINCT member_id, ts FROM {orders}", False),
        ("SELECT *, row_number() OVER (PARTITION BY member_id ORDER BY ts) FROM {orders}", False),
    ],
)
def test_a_query_is_row_local_unless_it_combines_rows(
    spark: SparkSession, query: str, local: bool
) -> None:
    orders = spark.createDataFrame([], "member_id string, ts timestamp")
    members = spark.createDataFrame([], "member_id string, level string")
    assert is_row_local(spark.sql(query, orders=orders, members=members)) is local
