"""Propensity objectives: who is scored, what counts as converting, and the point-in-time
training and validation sets (``propensity:`` in ``conf/models.yaml``).

An objective (存贷转化 deposit → loan, 加购 → 购买, 流失预警 churn) is declared, not coded: a
*population* (Spark SQL over one feature snapshot: who can convert), a *label* (events of
feature sources of ``conf/features.yaml`` in the days after the snapshot: positive when one
happens, or for churn when none does) and the features with their business words.

Time, for snapshot dates T (``gold.features`` partitions, each built from events on or before
T only)::

    training T1 < T2 < ... ≤ validation Tv ≤ newest E
    label window of T: (T + start_offset, T + start_offset + horizon]

The split is by time, and checked so nothing leaks (:func:`label_window_problems`): every
label window starts after its snapshot (a window reaching back over T labels with events the
features already count), every training label window closes by Tv (training never sees the
validation period's outcomes), and the validation window closes by E (its outcomes are all
known). :func:`leak_suspects` adds a data check: a feature that alone separates the classes
almost perfectly (AUC above a threshold) is named as a probable leak.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.config import StrictModel
from profilehouse.errors import ConfigError, ProfilehouseError
from profilehouse.gold.feature_config import FeatureConfig
from profilehouse.gold.features import (
    MASTER_ID,
    SNAPSHOT_DATE,
    event_ts,
    source_rows,
    with_source_master_id,
)
from profilehouse.models.settings import models_file, models_section

SECTION = "propensity"
LABEL = "label"

Positive = Literal["event", "no_event"]


class LabelEvents(StrictModel):
    """Rows of one feature source (``conf/features.yaml``) that count as the outcome."""

    source: str = Field(min_length=1, description="Feature source with an event time.")
    where: str | None = Field(default=None, description="Spark SQL condition on its rows.")


class LabelSpec(StrictModel):
    """The outcome after a snapshot: which events, over which days, and which way round."""

    events: list[LabelEvents] = Field(min_length=1)
    horizon_days: int = Field(ge=1, le=3660, description="Length of the label window.")
    start_offset_days: int = Field(
        default=0, description="The window starts this many days after the snapshot (>= 0)."
    )
    positive: Positive = Field(
        default="event", description="event: 1 when one happens; no_event: 1 when none does."
    )


class LogisticOptions(StrictModel):
    """Training options of one objective's logistic regression."""

    reg_params: list[float] = Field(default=[0.0, 0.001, 0.01, 0.1], min_length=1)
    elastic_net: float = Field(default=0.0, ge=0, le=1)
    folds: int = Field(default=3, ge=2, le=10)
    class_weighting: Literal["balanced", "none"] = "balanced"
    max_iter: int = Field(default=100, ge=1, le=10000)
    seed: int = 20240601


class Objective(StrictModel):
    """One propensity model: population, label, features and their business words."""

    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    description: str = ""
    population: str = Field(min_length=1, description="Spark SQL over the feature snapshot.")
    label: LabelSpec
    numeric: list[str] = Field(min_length=1, description="Numeric feature columns.")
    categorical: list[str] = Field(default=[], description="Categorical feature columns.")
    reasons: dict[str, str] = Field(
        default={}, description="Feature column → the reason code's business words."
    )
    logistic: LogisticOptions = Field(default_factory=LogisticOptions)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class SnapshotPlan(StrictModel):
    """Which snapshot dates train and validate, counted back from the newest (scored) one."""

    validation_days_back: int = Field(
        default=90, ge=1, description="Validation snapshot: the newest one minus these days."
    )
    training_snapshots: int = Field(default=2, ge=1, le=24)
    training_step_days: int = Field(
        default=90, ge=1, description="Each training snapshot this many days before the next."
    )


class PropensitySettings(StrictModel):
    """``propensity:`` in ``conf/models.yaml``."""

    snapshots: SnapshotPlan = Field(default_factory=SnapshotPlan)
    leak_auc_threshold: float = Field(
        default=0.97,
        gt=0.5,
        le=1,
        description="A feature whose AUC alone reaches this is reported as a probable leak.",
    )
    max_leak_rows: int = Field(
        default=500_000, ge=1000, description="Rows sampled for the leak check, at most."
    )
    objectives: dict[str, Objective] = Field(min_length=1)
    _source: str = "models.yaml"

    @property
    def source(self) -> str:
        return self._source


class _Section(StrictModel):
    propensity: PropensitySettings


class LeakageError(ProfilehouseError):
    """A training or validation set would see outcomes it must not."""


def load_propensity_settings(
    path: str | Path | None = None, feature_config: FeatureConfig | None = None
) -> PropensitySettings:
    """Load the ``propensity:`` section of ``conf/models.yaml``; ConfigError names the file and
    every bad key. With ``feature_config``, every feature column and label source is checked
    against it, and every label window against the snapshot plan."""
    source = str(models_file(path))
    settings = models_section(source, SECTION, _Section).model_copy()
    settings._source = source
    problems = settings_problems(settings, feature_config)
    if problems:
        raise ConfigError(source, problems)
    return settings


def settings_problems(
    settings: PropensitySettings, feature_config: FeatureConfig | None = None
) -> list[str]:
    """Every problem of ``settings``, each naming its key: label windows that leak, reason
    names for features the objective does not use, and (with ``feature_config``) columns and
    label sources the features file does not define."""
    problems = []
    plan = settings.snapshots
    for name, objective in settings.objectives.items():
        key = f"{SECTION}.objectives.{name}"
        problems += [f"{key}.label: {p}" for p in label_window_problems(objective.label, plan)]
        dupes = sorted({c for c in objective.features if objective.features.count(c) > 1})
        if dupes:
            problems.append(f"{key}: features listed twice: {', '.join(dupes)}")
        extra = sorted(set(objective.reasons) - set(objective.features))
        if extra:
            problems.append(
                f"{key}.reasons: {', '.join(extra)} (expected features of this objective)"
            )
        if feature_config is not None:
            problems += _feature_problems(key, objective, feature_config)
    return problems


def _feature_problems(key: str, objective: Objective, config: FeatureConfig) -> list[str]:
    problems = []
    unknown = [c for c in objective.features if c not in config.schema]
    if unknown:
        problems.append(
            f"{key}: features {', '.join(unknown)} are not in conf/features.yaml "
            "(expected feature or derived columns)"
        )
    for i, events in enumerate(objective.label.events):
        source = config.sources.get(events.source)
        if source is None:
            problems.append(
                f"{key}.label.events[{i}].source: {events.source!r} is not a feature source "
                f"(expected one of {', '.join(sorted(config.sources))})"
            )
        elif source.time is None:
            problems.append(
                f"{key}.label.events[{i}].source: {events.source!r} has no event time "
                "(expected a source with `time`)"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# dates and leakage
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotDates:
    """The snapshot dates of one training run."""

    training: tuple[dt.date, ...]
    validation: dt.date
    scoring: dt.date

    @property
    def all(self) -> list[dt.date]:
        return sorted({*self.training, self.validation, self.scoring})


def snapshot_dates(plan: SnapshotPlan, newest: dt.date) -> SnapshotDates:
    """Training and validation dates counted back from ``newest`` (the scored snapshot)."""
    validation = newest - dt.timedelta(days=plan.validation_days_back)
    step = dt.timedelta(days=plan.training_step_days)
    training = tuple(validation - step * k for k in range(plan.training_snapshots, 0, -1))
    return SnapshotDates(training, validation, newest)


def label_window(label: LabelSpec, snapshot: dt.date) -> tuple[dt.date, dt.date]:
    """The label window of ``snapshot``: events on days ``first`` to ``last`` (inclusive)."""
    first = snapshot + dt.timedelta(days=label.start_offset_days + 1)
    return first, first + dt.timedelta(days=label.horizon_days - 1)


def label_window_problems(label: LabelSpec, plan: SnapshotPlan) -> list[str]:
    """Why ``label`` would leak under ``plan``, if it would (see the module docstring)."""
    dates = snapshot_dates(plan, dt.date(2000, 1, 1) + dt.timedelta(days=100_000))
    return dated_window_problems(label, dates)


def dated_window_problems(label: LabelSpec, dates: SnapshotDates) -> list[str]:
    """Why ``label`` would leak with these snapshot dates, if it would."""
    problems = []
    if label.start_offset_days < 0:
        problems.append(
            f"start_offset_days {label.start_offset_days} starts the label window before the "
            "snapshot: its events are already in the features (expected >= 0)"
        )
    last_training = max(dates.training)
    _, closes = label_window(label, last_training)
    if closes > dates.validation:
        problems.append(
            f"the label window of the last training snapshot ({last_training}) closes on "
            f"{closes}, after the validation snapshot {dates.validation}: training would see "
            "outcomes of the validation period (expected horizon + offset <= "
            "snapshots.training_step_days)"
        )
    _, closes = label_window(label, dates.validation)
    if closes > dates.scoring:
        problems.append(
            f"the validation label window closes on {closes}, after the newest snapshot "
            f"{dates.scoring}: its outcomes are not all known (expected horizon + offset <= "
            "snapshots.validation_days_back)"
        )
    return problems


def check_no_leakage(label: LabelSpec, dates: SnapshotDates, objective: str) -> None:
    """Raise LeakageError naming the objective when ``label`` would leak with ``dates``."""
    problems = dated_window_problems(label, dates)
    if problems:
        raise LeakageError(f"propensity objective {objective}: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------


def label_events(
    spark: SparkSession,
    label: LabelSpec,
    config: FeatureConfig,
    tables: Mapping[str, DataFrame],
    members: DataFrame,
    record_keys: Mapping[str, list[str]],
) -> DataFrame:
    """``(master_id, event_ts)``: every outcome event of ``label``, on its master customer."""
    frames = []
    for events in label.events:
        source = config.sources[events.source]
        rows = source_rows(spark, events.source, source, tables)
        if events.where:
            rows = rows.where(F.expr(events.where))
        rows = with_source_master_id(rows, events.source, source, members, record_keys)
        frames.append(rows.select(MASTER_ID, event_ts(source).alias("event_ts")))
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union


def outcomes_at(events: DataFrame, label: LabelSpec, dates: Sequence[dt.date]) -> DataFrame:
    """``(master_id, snapshot_date)`` for every customer with an outcome event in the label
    window of each snapshot date: one pass over the events, the dates broadcast."""
    spark = events.sparkSession
    windows = spark.createDataFrame(
        [(d, *label_window(label, d)) for d in dates],
        f"{SNAPSHOT_DATE} date, first date, last date",
    )
    first = min(label_window(label, d)[0] for d in dates)
    last = max(label_window(label, d)[1] for d in dates)
    day = F.to_date("event_ts")
    return (
        events.where(day.between(F.lit(first), F.lit(last)))
        .select(MASTER_ID, day.alias("day"))
        .distinct()
        .join(F.broadcast(windows), F.col("day").between(F.col("first"), F.col("last")))
        .select(MASTER_ID, SNAPSHOT_DATE)
        .distinct()
    )


def population(features: DataFrame, objective: Objective) -> DataFrame:
    """The rows of ``features`` (any number of snapshots) the objective scores."""
    return features.where(F.coalesce(F.expr(objective.population), F.lit(False)))


def labelled(rows: DataFrame, outcomes: DataFrame, label: LabelSpec) -> DataFrame:
    """``rows`` (with master_id and snapshot_date) with an integer ``label`` column."""
    flagged = outcomes.withColumn("__outcome", F.lit(True))
    happened = F.coalesce(F.col("__outcome"), F.lit(False))
    value: Column = happened if label.positive == "event" else ~happened
    return (
        rows.join(flagged, [MASTER_ID, SNAPSHOT_DATE], "left")
        .withColumn(LABEL, value.cast("int"))
        .drop("__outcome")
    )


# ---------------------------------------------------------------------------------------------
# leak check
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakSuspect:
    feature: str
    auc: float  # max(AUC, 1 - AUC) of the feature alone


def single_feature_aucs(
    rows: DataFrame, label: str, features: Sequence[str], bins: int = 100
) -> dict[str, float]:
    """Per numeric feature: max(AUC, 1 − AUC) of ranking by that feature alone.

    Scales with one pass: each feature is cut at approximate quantiles (one job for all), the
    rows are counted per (feature, bin, label) in one aggregate of a few thousand rows, and
    the AUC comes from the bin histogram (ties within a bin count half). Nulls form their own
    lowest bin."""
    if not features:
        return {}
    cast = rows.select(label, *[F.col(c).cast("double").alias(c) for c in features])
    cuts = cast.approxQuantile(list(features), [i / bins for i in range(1, bins)], 0.001)
    binned = [
        F.struct(
            F.lit(c).alias("feature"),
            _bin_of(F.col(c), sorted(set(edges))).alias("bin"),
        )
        for c, edges in zip(features, cuts, strict=True)
    ]
    counts = (
        cast.select(F.col(label).cast("int").alias("y"), F.explode(F.array(*binned)).alias("b"))
        .groupBy("b.feature", "b.bin")
        .agg(F.sum("y").alias("pos"), F.sum(1 - F.col("y")).alias("neg"))
        .collect()
    )
    histograms: dict[str, list[tuple[int, int, int]]] = {c: [] for c in features}
    for row in counts:
        histograms[row["feature"]].append((row["bin"], row["pos"], row["neg"]))
    return {c: _auc_of_histogram(h) for c, h in histograms.items()}


def _bin_of(value: Column, edges: list[float]) -> Column:
    """0 for null, else 1 + the number of cut points below ``value`` (one higher-order
    function over the cut points: a sum of comparisons per point outgrows whole-stage code
    generation with many features)."""
    if not edges:
        return F.when(value.isNull(), 0).otherwise(1)
    cuts = F.array(*[F.lit(float(e)) for e in edges])
    below = F.size(F.filter(cuts, lambda edge: edge < value))
    return F.when(value.isNull(), 0).otherwise(1 + below)


def _auc_of_histogram(bins: list[tuple[int, int, int]]) -> float:
    """max(AUC, 1 − AUC) of a score histogram ``(bin, positives, negatives)``."""
    total_pos = sum(p for _, p, _ in bins)
    total_neg = sum(n for _, _, n in bins)
    if not total_pos or not total_neg:
        return 0.5
    negatives_below = 0
    wins = 0.0
    for _, pos, neg in sorted(bins):
        wins += pos * (negatives_below + neg / 2)
        negatives_below += neg
    auc = wins / (total_pos * total_neg)
    return max(auc, 1 - auc)


def leak_suspects(
    rows: DataFrame,
    label: str,
    numeric: Sequence[str],
    threshold: float,
    max_rows: int = 500_000,
    seed: int = 7,
) -> list[LeakSuspect]:
    """Numeric features whose AUC alone reaches ``threshold``, best first (probable leaks:
    outcomes counted among the features). Over at most ``max_rows`` sampled rows."""
    total = rows.count()
    sample = rows if total <= max_rows else rows.sample(fraction=max_rows / total, seed=seed)
    aucs = single_feature_aucs(sample, label, numeric)
    found = [LeakSuspect(c, round(a, 4)) for c, a in aucs.items() if a >= threshold]
    return sorted(found, key=lambda s: -s.auc)
