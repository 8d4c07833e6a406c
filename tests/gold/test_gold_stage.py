"""The gold stage on a small hand-made warehouse: point in time both ways, idempotent re-runs,
the tables it writes and the catalog's figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.config import EnvironmentConfig, load_environment
from profilehouse.gold.audience import AudienceError, select_audience
from profilehouse.gold.feature_config import load_feature_config
from profilehouse.gold.stage import (
    CUSTOMER_TAGS,
    FEATURES,
    KPI_DAILY,
    TAG_CATALOG,
    TAG_VALUES,
    SnapshotNotKnownError,
    gold_table,
    newest_event_date,
    run_gold_stage,
)
from profilehouse.gold.tag_registry import load_tag_registry
from profilehouse.tables import identity_table, silver_table
from tests.gold.conf import write_gold_conf

T = dt.date(2025, 6, 30)

FEATURES_YAML = {
    "snapshot": {"windows": [30]},
    "sources": {
        "shop_orders": {
            "time": "ts",
            "record": {"source": "shop_members", "key": ["member_id"]},
            "features": {
                "orders": {"agg": "count", "description": "orders"},
                "spend": {"agg": "sum", "value": "amount", "description": "spend"},
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
    "derived": {"avg_order_30d": "CASE WHEN orders_30d > 0 THEN spend_30d / orders_30d END"},
}
KPIS_YAML = {
    "dimensions": ["city"],
    "kpis": {
        "buyers": {
            "name": {"zh": "购买客户数", "en": "Buyers"},
            "kind": "count",
            "condition": "buyer",
        },
        "new_buyer_rate": {
            "name": {"zh": "新购买率", "en": "New buyer rate"},
            "kind": "rate",
            "window_days": 30,
            "denominator": "NOT start.buyer",
            "numerator": "buyer",
        },
        "order_value": {
            "name": {"zh": "客单价", "en": "Order value"},
            "kind": "ratio",
            "numerator": "spend_30d",
            "denominator": "orders_30d",
        },
    },
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
            "code": "spend_band",
            "name": {"zh": "消费层级", "en": "Spend band"},
            "path": "价值/消费/金额",
            "kind": "rule",
            "value_type": "category",
            "values": ["高", "低"],
            "sql": "CASE WHEN spend_30d >= 100 THEN '高' WHEN buyer THEN '低' END",
            "description": "spend in 30 days",
        },
        {
            "code": "spend_value",
            "name": {"zh": "近30天消费", "en": "Spend in 30 days"},
            "path": "价值/消费/金额",
            "kind": "statistic",
            "value_type": "number",
            "sql": "spend_30d",
            "description": "spend in 30 days",
        },
    ],
}


@pytest.fixture(scope="module")
def warehouse(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[EnvironmentConfig, Path, TableCatalog]:
    root = tmp_path_factory.mktemp("gold")
    hierarchy = {"价值": {"消费": ["活跃", "金额"]}}
    conf = write_gold_conf(root / "conf", FEATURES_YAML, KPIS_YAML, TAGS_YAML, hierarchy)
    env = load_environment("test").model_copy(update={"warehouse": str(root / "warehouse")})
    catalog = TableCatalog.for_environment(env)
    orders = spark.createDataFrame(
        [
            ("o1", "m1", dt.datetime(2025, 6, 10, 9), 80.0),
            ("o2", "m1", dt.datetime(2025, 6, 29, 9), 40.0),
            ("o3", "m2", dt.datetime(2025, 6, 20, 9), 10.0),
        ],
        "order_id string, member_id string, ts timestamp, amount double",
    )
    delta_io.write_table(orders, silver_table(catalog, "shop_orders"))
    members = spark.createDataFrame(
        [("shop_members|m1", "M1"), ("shop_members|m2", "M2"), ("shop_members|m3", "M3")],
        "record_id string, master_id string",
    )
    delta_io.write_table(members, identity_table(catalog, "master_members"))
    golden = spark.createDataFrame(
        [("M1", "上海"), ("M2", "北京"), ("M3", None)], "master_id string, city string"
    )
    delta_io.write_table(golden, identity_table(catalog, "golden_records"))
    return env, conf, catalog


def _snapshot(spark: SparkSession, catalog: TableCatalog, name: str) -> DataFrame:
    return delta_io.read_table(spark, gold_table(catalog, name)).where(
        F.col("snapshot_date") == F.lit(T)
    )


@pytest.fixture(scope="module")
def first(spark: SparkSession, warehouse) -> DataFrame:
    env, conf, catalog = warehouse
    result = run_gold_stage(spark, env, conf, run_id="gold-1", snapshot_date=T)
    assert (result.snapshot_date, result.customers, result.tags) == (T, 3, 3)
    return _snapshot(spark, catalog, FEATURES).localCheckpoint()


def test_the_snapshot_tables(spark: SparkSession, warehouse, first: DataFrame) -> None:
    _, _, catalog = warehouse
    got = first.select("master_id", "orders_30d", "spend_30d", "city", "avg_order_30d")
    expected = spark.createDataFrame(
        [("M1", 2, 120.0, "上海", 60.0), ("M2", 1, 10.0, "北京", 10.0), ("M3", 0, 0.0, None, None)],
        got.schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    tags = _snapshot(spark, catalog, CUSTOMER_TAGS).select("master_id", "buyer", "spend_band")
    assert sorted(tuple(r) for r in tags.collect()) == [
        ("M1", True, "高"),
        ("M2", True, "低"),
        ("M3", False, None),
    ]
    values = _snapshot(spark, catalog, TAG_VALUES)
    assert values.count() == 8  # 3 buyer values, 2 spend bands (M3's is null), 3 amounts
    entry = _snapshot(spark, catalog, TAG_CATALOG).where("tag_code = 'spend_band'").first()
    assert entry["name_zh"] == "消费层级" and entry["path"] == "价值/消费/金额"
    assert entry["coverage"] == pytest.approx(2 / 3)
    assert entry["distribution"] == {"高": 1, "低": 1}
    assert entry["invalid_values"] == 0 and entry["quantiles"] is None
    amounts = _snapshot(spark, catalog, TAG_CATALOG).where("tag_code = 'spend_value'").first()
    assert amounts["quantiles"] == [0.0, 0.0, 10.0, 120.0, 120.0]  # min, quartiles, max
    assert amounts["distribution"] is None


def test_kpis_overall_and_by_dimension(spark: SparkSession, warehouse, first: DataFrame) -> None:
    _, _, catalog = warehouse
    kpis = {
        (r["kpi_code"], r["dimension"], r["dimension_value"]): (
            r["numerator"],
            r["denominator"],
            r["value"],
        )
        for r in _snapshot(spark, catalog, KPI_DAILY).collect()
    }
    assert kpis[("buyers", "all", "all")] == (2.0, None, 2.0)
    assert kpis[("buyers", "city", "上海")][2] == 1.0
    assert kpis[("buyers", "city", "未知")][2] == 0.0
    # nobody had bought by the window's start (a snapshot the stage made for it)
    assert kpis[("new_buyer_rate", "all", "all")] == (2.0, 3.0, pytest.approx(2 / 3))
    assert kpis[("order_value", "all", "all")] == (130.0, 3.0, pytest.approx(130 / 3))
    start = delta_io.read_table(spark, gold_table(catalog, CUSTOMER_TAGS)).where(
        F.col("snapshot_date") == F.lit(dt.date(2025, 5, 31))
    )
    assert start.count() == 3


def test_an_audience_is_counted_and_its_members_written_once(
    spark: SparkSession, warehouse, first: DataFrame
) -> None:
    _, conf, catalog = warehouse
    registry = load_tag_registry(load_feature_config(conf).schema, conf)
    for _ in range(2):  # a re-run replaces the audience's rows
        result = select_audience(
            spark, catalog, registry, "big_buyers", "购买客户 AND 消费层级 = '高'"
        )
    assert (result.count, result.snapshot_date) == (1, T)
    members = delta_io.read_table(spark, catalog.table(Layer.GOLD, "audiences"))
    assert [(r["audience"], r["master_id"]) for r in members.collect()] == [("big_buyers", "M1")]
    with pytest.raises(AudienceError, match="has no value '中'"):
        select_audience(spark, catalog, registry, "mid", "消费层级 = '中'")


def test_late_and_future_records_point_in_time_both_ways(
    spark: SparkSession, warehouse, first: DataFrame
) -> None:
    env, conf, catalog = warehouse
    late = spark.createDataFrame(
        [
            ("o4", "m3", dt.datetime(2025, 6, 30, 23, 0), 500.0),  # late: on T, arrives after
            ("o5", "m2", dt.datetime(2025, 7, 1, 8, 0), 900.0),  # after T
        ],
        "order_id string, member_id string, ts timestamp, amount double",
    )
    delta_io.write_table(late, silver_table(catalog, "shop_orders"), mode="append")

    run_gold_stage(spark, env, conf, run_id="gold-known", snapshot_date=T, known_at=True)
    known = _snapshot(spark, catalog, FEATURES)
    assert_df_equality(known, first, ignore_row_order=True, ignore_nullable=True)

    run_gold_stage(spark, env, conf, run_id="gold-2", snapshot_date=T)
    now = _snapshot(spark, catalog, FEATURES)
    assert now.count() == 3  # the partition is replaced, never appended to
    rows = {r["master_id"]: (r["orders_30d"], r["spend_30d"]) for r in now.collect()}
    assert rows == {"M1": (2, 120.0), "M2": (1, 10.0), "M3": (1, 500.0)}  # late in, future out

    # remaking the snapshot as known at still gives what the first run saw
    run_gold_stage(spark, env, conf, run_id="gold-known-2", snapshot_date=T, known_at=True)
    assert_df_equality(
        _snapshot(spark, catalog, FEATURES), first, ignore_row_order=True, ignore_nullable=True
    )


def test_as_known_at_needs_a_snapshot_a_run_made(spark: SparkSession, warehouse) -> None:
    env, conf, _ = warehouse
    with pytest.raises(SnapshotNotKnownError, match="2025-01-01"):
        run_gold_stage(spark, env, conf, snapshot_date=dt.date(2025, 1, 1), known_at=True)


def test_the_default_snapshot_date_is_the_newest_event_date(spark: SparkSession, warehouse):
    _, conf, catalog = warehouse
    config = load_feature_config(conf)
    tables = {
        "shop_orders": delta_io.read_table(spark, silver_table(catalog, "shop_orders")).where(
            F.col("ts") < F.lit(dt.datetime(2025, 6, 30))
        ),
        "golden_records": delta_io.read_table(spark, identity_table(catalog, "golden_records")),
    }
    assert newest_event_date(spark, config, tables) == dt.date(2025, 6, 29)


def test_a_tag_added_to_the_config_joins_the_tables(spark: SparkSession, warehouse) -> None:
    env, conf, catalog = warehouse
    shopper = {
        **TAGS_YAML["tags"][0],
        "code": "shopper",
        "name": {"zh": "购物客户", "en": "Shopper"},
    }
    added = {**TAGS_YAML, "tags": [*TAGS_YAML["tags"], shopper]}
    (conf / "tags" / "shop.yaml").write_text(yaml.safe_dump(added, allow_unicode=True))
    run_gold_stage(spark, env, conf, run_id="gold-3", snapshot_date=T)
    wide = delta_io.read_table(spark, gold_table(catalog, CUSTOMER_TAGS))
    by_date = {
        r["snapshot_date"]: r["n"]
        for r in wide.groupBy("snapshot_date").agg(F.count("shopper").alias("n")).collect()
    }
    assert by_date == {T: 3, dt.date(2025, 5, 31): 0}  # the older snapshot reads null
