"""Propensity objectives: settings, label windows, leakage checks and point-in-time labels."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import ConfigError
from profilehouse.gold.feature_config import load_feature_config
from profilehouse.models.propensity import (
    LabelSpec,
    LeakageError,
    SnapshotPlan,
    check_no_leakage,
    label_window,
    label_window_problems,
    labelled,
    leak_suspects,
    load_propensity_settings,
    outcomes_at,
    single_feature_aucs,
    snapshot_dates,
)

T = dt.date(2025, 6, 30)


def _label(**kw: object) -> LabelSpec:
    return LabelSpec.model_validate({"events": [{"source": "bank_loans"}], **kw})


def test_shipped_objectives_load_against_the_feature_config() -> None:
    settings = load_propensity_settings(feature_config=load_feature_config())
    assert {"deposit_to_loan", "cart_to_purchase", "churn_90d"} <= set(settings.objectives)
    churn = settings.objectives["churn_90d"]
    assert churn.label.positive == "no_event"


def test_bad_objectives_are_reported_at_once_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        """
propensity:
  snapshots: {validation_days_back: 30, training_snapshots: 1, training_step_days: 30}
  objectives:
    loans:
      name_zh: 存贷
      name_en: loans
      population: "true"
      label: {events: [{source: no_such_source}], horizon_days: 90, start_offset_days: -10}
      numeric: [aum, not_a_feature]
      reasons: {txn_count_90d: 交易}
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_propensity_settings(path, load_feature_config())
    message = str(caught.value)
    assert str(path) in message
    for expected in (
        "propensity.objectives.loans.label: start_offset_days -10",
        "after the validation snapshot",
        "not all known",
        "not_a_feature",
        "no_such_source",
        "propensity.objectives.loans.reasons: txn_count_90d",
    ):
        assert expected in message


def test_dates_count_back_from_the_newest_snapshot() -> None:
    plan = SnapshotPlan(validation_days_back=90, training_snapshots=2, training_step_days=90)
    dates = snapshot_dates(plan, dt.date(2025, 12, 31))
    assert dates.validation == dt.date(2025, 10, 2)
    assert dates.training == (dt.date(2025, 4, 5), dt.date(2025, 7, 4))
    assert dates.all[-1] == dt.date(2025, 12, 31)
    assert label_window(_label(horizon_days=90), dates.training[-1])[1] == dates.validation
    assert label_window_problems(_label(horizon_days=90), plan) == []
    # one more day of horizon and the last training window reaches past the validation date
    assert len(label_window_problems(_label(horizon_days=91), plan)) == 2


def test_a_label_window_shifted_over_the_snapshot_is_caught() -> None:
    plan = SnapshotPlan(validation_days_back=90, training_snapshots=1, training_step_days=90)
    dates = snapshot_dates(plan, T)
    check_no_leakage(_label(horizon_days=60, start_offset_days=0), dates, "loans")
    with pytest.raises(LeakageError, match="loans: start_offset_days -30"):
        check_no_leakage(_label(horizon_days=60, start_offset_days=-30), dates, "loans")


@pytest.fixture(scope="module")
def events(spark: SparkSession):
    # a: event the day after T; b: on T itself (already in the features); c: on T + 14 and
    # again 30 days later; d: nothing
    rows = [
        ("a", dt.datetime(2025, 7, 1, 9)),
        ("b", dt.datetime(2025, 6, 30, 23, 59)),
        ("c", dt.datetime(2025, 7, 14, 0, 0)),
        ("c", dt.datetime(2025, 8, 13, 12)),
    ]
    return spark.createDataFrame(rows, "master_id string, event_ts timestamp")


def test_outcomes_fall_in_each_snapshots_own_window(events) -> None:
    label = _label(horizon_days=14)
    later = T + dt.timedelta(days=30)
    got = {tuple(r) for r in outcomes_at(events, label, [T, later]).collect()}
    # c's second event (T + 44) is in the later snapshot's window (T + 31 .. T + 44)
    assert got == {("a", T), ("c", T), ("c", later)}


def test_labels_for_events_and_for_their_absence(spark: SparkSession, events) -> None:
    rows = spark.createDataFrame([(m, T) for m in "abcd"], "master_id string, snapshot_date date")
    for positive, expected in (("event", [1, 0, 1, 0]), ("no_event", [0, 1, 0, 1])):
        label = _label(horizon_days=14, positive=positive)
        out = labelled(rows, outcomes_at(events, label, [T]), label)
        got = [r["label"] for r in out.orderBy("master_id").collect()]
        assert got == expected, positive


def test_single_feature_auc_from_the_binned_histogram(spark: SparkSession) -> None:
    rows = spark.range(400).select(
        (F.col("id") % 2).cast("int").alias("y"),
        (F.col("id") % 2 * 100 + F.col("id") / 400).alias("perfect"),
        (-(F.col("id") % 2) * 100 + F.col("id") / 400).alias("reversed"),
        ((F.col("id") * 7919) % 400).cast("double").alias("noise"),
        F.lit(1.0).alias("constant"),
    )
    aucs = single_feature_aucs(rows, "y", ["perfect", "reversed", "noise", "constant"])
    assert aucs["perfect"] == pytest.approx(1.0)
    assert aucs["reversed"] == pytest.approx(1.0)
    assert aucs["noise"] < 0.6
    assert aucs["constant"] == pytest.approx(0.5)


def test_the_leak_check_names_a_feature_that_counts_the_outcome(
    spark: SparkSession,
) -> None:
    """A label window shifted back over the snapshot labels with the very events a feature
    counts: the data check names that feature; with the window after the snapshot it does
    not."""
    days = [T - dt.timedelta(days=d) for d in (3, 10, 20)] + [
        T + dt.timedelta(days=d) for d in (3, 10)
    ]
    event_rows = [
        (f"m{i}", dt.datetime.combine(days[i % 5], dt.time(12))) for i in range(300) if i % 3 != 0
    ]
    events = spark.createDataFrame(event_rows, "master_id string, event_ts timestamp")
    recent = (
        events.where(
            F.col("event_ts") >= F.lit(dt.datetime.combine(T, dt.time()) - dt.timedelta(29))
        )
        .where(F.col("event_ts") < F.lit(dt.datetime.combine(T, dt.time()) + dt.timedelta(1)))
        .groupBy("master_id")
        .agg(F.count("*").alias("events_30d"))
    )
    rows = (
        spark.createDataFrame(
            [(f"m{i}", T, float(i % 7)) for i in range(300)],
            "master_id string, snapshot_date date, noise double",
        )
        .join(recent, "master_id", "left")
        .fillna(0, ["events_30d"])
    )
    for offset, leaks in ((-30, ["events_30d"]), (0, [])):
        label = _label(horizon_days=30, start_offset_days=offset)
        data = labelled(rows, outcomes_at(events, label, [T]), label)
        found = [s.feature for s in leak_suspects(data, "label", ["events_30d", "noise"], 0.97)]
        assert found == leaks, offset
