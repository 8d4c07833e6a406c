"""Hand-made customers for the tag, KPI and audience tests: the feature values that differ
from "no events at all", turned into a full feature row of the shipped schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType, _parse_datatype_string

from profilehouse.gold.feature_config import load_feature_config
from profilehouse.gold.features import with_derived
from profilehouse.gold.tag_registry import load_tag_registry

T = dt.date(2025, 12, 31)
CONFIG = load_feature_config()
REGISTRY = load_tag_registry(CONFIG.schema)
BASE = {c: t for c, t in CONFIG.schema.items() if c not in CONFIG.derived}
ZERO = {
    column
    for source in CONFIG.sources.values()
    for name, spec in source.features.items()
    if spec.agg in ("count", "sum", "count_distinct")
    for column in CONFIG.columns_of(name, spec)
}


def _ts(days_before: int) -> dt.datetime:
    return dt.datetime.combine(T, dt.time(12)) - dt.timedelta(days=days_before)


# Each customer: the feature values that differ from "no events at all".
CUSTOMERS: dict[str, dict[str, Any]] = {
    "nobody": {},
    "young_rich": {
        "birth_date": dt.date(2000, 1, 1),  # 25 on the snapshot date
        "bank_open_date": dt.date(2020, 3, 1),
        "deposit_accounts": 1,
        "deposit_balance": 6_000_000.0,
        "loans_active": 1,
        "txn_count_90d": 100,
        "last_txn_ts": _ts(1),
        "first_txn_ts": _ts(2000),
        "txn_count_prev_90d": 100,
        "city": "北京市",
    },
    "almost_a": {
        "birth_date": dt.date(1999, 12, 31),  # 26
        "bank_open_date": dt.date(2024, 1, 1),
        "deposit_accounts": 2,
        "deposit_balance": 5_999_999.99,
        "city": "厦门",
        "last_txn_ts": _ts(61),  # 61 days inactive: dormant
        "first_txn_ts": _ts(400),
        "txn_count_prev_90d": 5,
    },
    "holiday": {
        "pos_receipts_all": 6,
        "pos_festival_receipts": 3,
        "behavior_days_all": 14,
        "behavior_festival_days": 6,  # (3 + 6) / (6 + 14) = 0.45: exactly at the threshold
        "pos_receipts_365d": 6,
        "pos_spend_365d": 600.0,
        "first_pos_ts": _ts(100),
        "last_pos_ts": _ts(60),  # 60 days: not yet dormant
        "topup_amount_365d": 3000.0,
        "sv_spend_365d": 1499.0,  # under half of the top-ups: hoarder
    },
    "new_shopper": {
        "pos_receipts_all": 2,
        "pos_receipts_30d": 2,
        "pos_receipts_90d": 2,
        "pos_receipts_365d": 2,
        "pos_spend_365d": 100.0,
        "first_pos_ts": _ts(90),  # 90 days of tenure: still new
        "last_pos_ts": _ts(3),
        "topup_amount_365d": 3000.0,
        "sv_spend_365d": 1500.0,  # exactly half: not a hoarder
    },
    "fading": {
        "opt_outs": 2,  # opted out of marketing: no audience takes them
        "txn_count_90d": 10,
        "txn_count_prev_90d": 20,  # activity down by half: churn warning
        "last_txn_ts": _ts(5),
        "first_txn_ts": _ts(900),
        "bank_open_date": dt.date(2022, 1, 1),
        "small_txn_count_90d": 40,
        "max_txns_in_an_hour_30d": 10,  # a burst: abnormal, so not high-frequency-small
    },
    "gone": {
        "last_txn_ts": _ts(181),
        "first_txn_ts": _ts(900),
        "bank_open_date": dt.date(2022, 1, 1),
    },
}


def _zero(column: str) -> float | int:
    return 0.0 if BASE[column] == "double" else 0


def customer_features(spark: SparkSession) -> DataFrame:
    schema = StructType(
        [StructField("master_id", _parse_datatype_string("string"))]
        + [StructField(c, _parse_datatype_string(t)) for c, t in BASE.items()]
    )
    rows = [
        [master, *[values.get(c, _zero(c) if c in ZERO else None) for c in BASE]]
        for master, values in CUSTOMERS.items()
    ]
    frame = spark.createDataFrame(rows, schema).withColumn("snapshot_date", F.lit(T))
    return with_derived(frame, CONFIG)
