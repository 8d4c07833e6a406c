"""Incremental gold refresh on a small hand-made warehouse (real Spark + Delta, Change Data
Feed on): after a batch of changes of every kind, recomputing only the changed customers gives
exactly what a full recompute gives, and the customers nothing touched are carried over.

Customers and what happens to them between the snapshots of T1 and T2:
M1 new order dated after T1 (folded: counts, sums, day counts and maxima take it in) · M2 late
order dated before T1 (insert, recomputed) · M3 order amount corrected (update, recomputed) ·
M4 card expires between T1 and T2 (a ``snapshot_date`` condition flips in a ``latest_by``
source: recomputed) · M5 its biggest order leaves the 30-day window (the new maximum is
unknown: recomputed) · M14 a smaller order leaves the window (folded) · M6, M12 nothing
(carried) · M7 new identity record (new customer) · M9 merged into M8 (M9 goes) · M10 golden
record changed · M11 card balance dated between T1 and T2 (a ``latest_by`` row becomes
visible).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.config import EnvironmentConfig, load_environment
from profilehouse.gold.stage import CUSTOMER_TAGS, FEATURES, gold_table, run_gold_stage
from profilehouse.tables import identity_table, silver_table
from tests.conftest import copy_warehouse
from tests.gold.conf import write_gold_conf

T1, T2 = dt.date(2025, 6, 30), dt.date(2025, 7, 10)
CDF = {"delta.enableChangeDataFeed": "true"}


def _ts(month: int, day: int) -> dt.datetime:
    return dt.datetime(2025, month, day, 12)


FEATURES_YAML = {
    "snapshot": {"windows": [30], "incremental_max_share": 1.0, "auto_refresh": "incremental"},
    "sources": {
        "shop_orders": {
            "time": "ts",
            "record": {"source": "shop_members", "key": ["member_id"]},
            "features": {
                "orders": {"agg": "count", "description": "orders"},
                "spend": {"agg": "sum", "value": "amount", "description": "spend"},
                "biggest_order": {"agg": "max", "value": "amount", "description": "biggest"},
                "order_days": {
                    "agg": "count_distinct",
                    "value": "to_date(ts)",
                    "description": "days",
                },
                "last_order_ts": {
                    "agg": "max",
                    "value": "ts",
                    "type": "timestamp",
                    "windows": False,
                    "description": "latest order",
                },
            },
        },
        "shop_cards": {
            "time": "as_of",
            "latest_by": ["card_id"],
            "record": {"source": "shop_members", "key": ["member_id"]},
            "features": {
                "card_balance": {
                    "agg": "sum",
                    "value": "balance",
                    "windows": False,
                    "description": "balance at the latest statement",
                },
                "open_cards": {
                    "agg": "count",
                    "where": "expiry > snapshot_date",
                    "windows": False,
                    "description": "cards not expired",
                },
            },
        },
        "golden_records": {
            "master_id": "master_id",
            "features": {
                "city": {
                    "agg": "max",
                    "value": "city",
                    "type": "string",
                    "windows": False,
                    "description": "city",
                }
            },
        },
    },
    "derived": {
        "days_since_last_order": "datediff(snapshot_date, last_order_ts)",
        "avg_order_30d": "CASE WHEN orders_30d > 0 THEN spend_30d / orders_30d END",
    },
    "derived_types": {"days_since_last_order": "int"},
}
TAGS_YAML = {
    "owner": "test",
    "tags": [
        {
            "code": "buyer",
            "name": {"zh": "购买客户", "en": "Buyer"},
            "path": "价值/消费/活跃",
            "kind": "rule",
            "value_type": "boolean",
            "sql": "orders_30d > 0",
            "description": "bought in 30 days",
        },
        {
            "code": "card_holder",
            "name": {"zh": "持卡客户", "en": "Card holder"},
            "path": "价值/消费/活跃",
            "kind": "rule",
            "value_type": "boolean",
            "sql": "open_cards > 0",
            "description": "holds a card not expired",
        },
    ],
}
KPIS_YAML = {
    "dimensions": ["city"],
    "kpis": {
        "buyers": {
            "name": {"zh": "购买客户数", "en": "Buyers"},
            "kind": "count",
            "condition": "buyer",
        }
    },
}
ORDERS = "order_id string, member_id string, ts timestamp, amount decimal(12,2)"
CARDS = "card_id string, member_id string, as_of date, balance double, expiry date"
MEMBERS = "record_id string, master_id string"
GOLDEN = "master_id string, city string"


def _members(pairs: list[tuple[str, str]], spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([(f"shop_members|{m}", master) for m, master in pairs], MEMBERS)


def _first_state(spark: SparkSession, catalog: TableCatalog) -> None:
    orders = [
        ("o1", "m1", _ts(6, 12), 80.0),  # in both windows
        ("o2", "m1", _ts(6, 29), 40.0),
        ("o3", "m2", _ts(6, 20), 10.0),
        ("o6", "m3", _ts(6, 15), 50.0),
        ("o4", "m5", _ts(6, 5), 120.0),  # in the 30 days to T1, not in those to T2
        ("o5", "m6", _ts(5, 1), 30.0),
        ("o8", "m8", _ts(5, 2), 20.0),
        ("o9", "m9", _ts(5, 3), 25.0),
        ("o12", "m12", _ts(6, 25), 70.0),  # in both windows
        ("o14", "m14", _ts(6, 5), 10.0),  # leaves the window, not the biggest
        ("o15", "m14", _ts(6, 20), 90.0),
    ]
    orders = [(o, m, ts, Decimal(str(amount))) for o, m, ts, amount in orders]
    cards = [
        ("c1", "m1", dt.date(2025, 5, 31), 100.0, dt.date(2026, 1, 1)),
        ("c4", "m4", dt.date(2025, 5, 31), 50.0, dt.date(2025, 7, 5)),  # expires in between
        ("c6", "m6", dt.date(2025, 5, 31), 10.0, dt.date(2027, 1, 1)),
        ("c11", "m11", dt.date(2025, 5, 31), 5.0, dt.date(2027, 1, 1)),
        ("c11", "m11", dt.date(2025, 7, 2), 900.0, dt.date(2027, 1, 1)),  # after T1
    ]
    delta_io.write_table(
        spark.createDataFrame(orders, ORDERS), silver_table(catalog, "shop_orders"), properties=CDF
    )
    delta_io.write_table(
        spark.createDataFrame(cards, CARDS), silver_table(catalog, "shop_cards"), properties=CDF
    )
    pairs = [(f"m{i}", f"M{i}") for i in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14)]
    delta_io.write_table(_members(pairs, spark), identity_table(catalog, "master_members"))
    golden = [(f"M{i}", "上海") for i in (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 14)] + [("M10", "南京")]
    delta_io.write_table(
        spark.createDataFrame(golden, GOLDEN), identity_table(catalog, "golden_records")
    )


def _changes(spark: SparkSession, catalog: TableCatalog) -> None:
    orders = silver_table(catalog, "shop_orders")
    new = [("o7", "m1", _ts(7, 5), Decimal("60")), ("o10", "m2", _ts(6, 25), Decimal("15"))]
    delta_io.write_table(spark.createDataFrame(new, ORDERS), orders, mode="append")
    DeltaTable.forPath(spark, orders.location).update("order_id = 'o6'", {"amount": "55.0"})
    pairs = [(f"m{i}", f"M{i}") for i in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 14)]
    pairs += [("m9", "M8")]
    delta_io.write_table(_members(pairs, spark), identity_table(catalog, "master_members"))
    golden = [(f"M{i}", "上海") for i in (1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14)] + [("M10", "苏州")]
    delta_io.write_table(
        spark.createDataFrame(golden, GOLDEN), identity_table(catalog, "golden_records")
    )


def _snapshot(spark: SparkSession, catalog: TableCatalog, name: str, day: dt.date) -> DataFrame:
    return (
        delta_io.read_table(spark, gold_table(catalog, name))
        .where(F.col("snapshot_date") == F.lit(day))
        .drop("__invalid_tags")
    )


@pytest.fixture(scope="module")
def refreshed(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):
    """(incremental env, catalog, result; full catalog, result) after the changes."""
    root = tmp_path_factory.mktemp("gold-incremental")
    hierarchy = {"价值": {"消费": ["活跃"]}}
    conf = write_gold_conf(root / "conf", FEATURES_YAML, KPIS_YAML, TAGS_YAML, hierarchy)
    env = load_environment("test").model_copy(update={"warehouse": str(root / "inc")})
    catalog = TableCatalog.for_environment(env)
    _first_state(spark, catalog)
    first = run_gold_stage(spark, env, conf, run_id="gold-t1", snapshot_date=T1)
    assert first.refresh["mode"] == "full"
    _changes(spark, catalog)
    full_catalog = copy_warehouse(env.warehouse, root / "full")
    full_env: EnvironmentConfig = env.model_copy(update={"warehouse": str(root / "full")})
    inc = run_gold_stage(spark, env, conf, run_id="gold-t2", snapshot_date=T2, mode="incremental")
    full = run_gold_stage(spark, full_env, conf, run_id="gold-t2", snapshot_date=T2, mode="full")
    return env, conf, catalog, inc, full_catalog, full


def test_only_the_changed_customers_are_recomputed(refreshed) -> None:
    _env, _conf, _catalog, inc, _full_catalog, full = refreshed
    assert inc.refresh == {
        "mode": "incremental",
        "base": T1.isoformat(),
        "recomputed": 9,  # M2-M5, M7-M11: every kind of change, M9's old master included
        "folded": 2,  # M1, M14
        "customers": 12,  # M9 merged away
        "sources_in_full": [],  # no source needs everyone recomputed
    }
    assert full.refresh["mode"] == "full"


@pytest.mark.parametrize("table", [FEATURES, CUSTOMER_TAGS])
def test_incremental_equals_full(spark: SparkSession, refreshed, table: str) -> None:
    _env, _conf, catalog, _inc, full_catalog, _full = refreshed
    got = _snapshot(spark, catalog, table, T2)
    expected = _snapshot(spark, full_catalog, table, T2)
    assert got.count() == 12
    assert_df_equality(
        got, expected, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True
    )


def test_a_carried_customer_is_redated_with_fresh_derived_features(
    spark: SparkSession, refreshed
) -> None:
    _env, _conf, catalog, _inc, _full_catalog, _full = refreshed
    rows = {
        r["master_id"]: r
        for r in _snapshot(spark, catalog, FEATURES, T2)
        .where("master_id IN ('M6', 'M12')")
        .collect()
    }
    assert rows["M12"]["orders_30d"] == 1 and rows["M12"]["days_since_last_order"] == 15
    assert rows["M6"]["days_since_last_order"] == (T2 - dt.date(2025, 5, 1)).days


def test_a_rerun_with_nothing_changed_recomputes_nobody(spark: SparkSession, refreshed) -> None:
    env, conf, catalog, _inc, _full_catalog, _full = refreshed
    before = _snapshot(spark, catalog, FEATURES, T2).localCheckpoint()
    again = run_gold_stage(spark, env, conf, run_id="gold-t2-again", snapshot_date=T2)
    assert again.refresh["mode"] == "incremental" and again.refresh["recomputed"] == 0
    assert_df_equality(
        _snapshot(spark, catalog, FEATURES, T2), before, ignore_row_order=True, ignore_nullable=True
    )
