"""Event timestamps: inside the person's span, concentrated around festivals when asked."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.generator import timeline
from profilehouse.generator.settings import load_generator_settings


def _shares_near_festivals(spark: SparkSession, start: str, end: str, share: float) -> float:
    """Share of 2,000 events of one person with span [start, end] within 5 days of a festival."""
    cfg = load_generator_settings()
    festivals = [dt.date.fromisoformat(d) for d in timeline.festival_dates(cfg)]
    near = F.lit(False)
    for day in festivals:
        near = near | (F.abs(F.datediff(F.col("ts").cast("date"), F.lit(day))) <= 5)
    events = spark.range(2000).select(
        timeline.event_ts_expr(
            cfg,
            "test",
            ["id"],
            F.lit(start).cast("date"),
            F.lit(end).cast("date"),
            F.lit(False),
            share,
        ).alias("ts")
    )
    row = events.select(
        F.avg(near.cast("double")).alias("near"),
        F.min(F.col("ts").cast("date")).alias("first"),
        F.max(F.col("ts").cast("date")).alias("last"),
    ).first()
    assert str(row["first"]) >= start and str(row["last"]) <= end
    return row["near"]


def test_a_short_span_with_one_festival_concentrates_as_much_as_a_long_one(
    spark: SparkSession,
) -> None:
    # 2025-11-11 is the only festival inside the short span: its share must not shrink by the
    # history's other festivals falling outside it
    short = _shares_near_festivals(spark, "2025-10-20", "2025-12-01", 0.6)
    long = _shares_near_festivals(spark, "2024-07-01", "2025-12-31", 0.6)
    even = _shares_near_festivals(spark, "2024-07-01", "2025-12-31", 0.0)
    assert short > 0.55 and long > 0.55
    assert even < 0.25


def test_a_span_without_a_festival_gets_even_events(spark: SparkSession) -> None:
    assert _shares_near_festivals(spark, "2025-03-01", "2025-05-31", 0.6) == 0.0
