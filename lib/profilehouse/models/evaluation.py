"""Metrics of a binary classifier's scores: ROC / PR areas, Brier score, deciles, reliability.

:func:`evaluate_scores` takes a scored table (a 0/1 or boolean label and a score, higher meaning
more likely positive) and computes everything with Spark aggregations; only small tables reach
the driver (one row of totals, ``groups - 1`` quantiles, one row per decile and per reliability
bin). The areas come from MLlib's ``BinaryClassificationEvaluator`` without down-sampling
(``numBins=0``: exact, ties counted as half), which sorts by a range-partitioned shuffle.

Deciles: the quantiles q(0.9), q(0.8), ... of the score (``percentile_approx``, relative rank
error 1e-5) cut the rows into groups; decile 1 holds the scores above q(0.9), the highest. A
score equal to a cut goes to the lower group, so ties never split and many equal scores make
some groups larger than others (empty groups are left out). Reliability bins are equal-width
bins of the score over [0, 1] (``bins`` of them; empty ones left out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import reduce
from operator import add
from typing import Any

from pyspark import StorageLevel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.errors import SchemaError

_BINARY_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")
_NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")
_QUANTILE_ACCURACY = 100_000  # percentile_approx: rank error at most rows / accuracy
_LEVEL_NUDGE = 1e-12
_Y = "_ev_label"
_S = "_ev_score"


@dataclass(frozen=True)
class LabelCounts:
    """Rows of a binary label and how many are positive."""

    rows: int
    positives: int

    @property
    def negatives(self) -> int:
        return self.rows - self.positives


def binary_label_counts(df: DataFrame, label: str, where: str = "the data") -> LabelCounts:
    """Rows and positives of ``label`` (one aggregate); SchemaError naming the column (and
    ``where``) when it is missing, not numeric or boolean, has nulls, or holds a value other
    than 0/1 or true/false (with up to five examples)."""
    types = dict(df.dtypes)
    if label not in types:
        raise SchemaError(
            f"label column {label!r} is not in {where} (columns: {', '.join(df.columns)})"
        )
    if types[label] not in _BINARY_TYPES:
        raise SchemaError(
            f"label column {label!r} is {types[label]}, expected 0/1 or true/false "
            "(map its values to 1 and 0 first, e.g. label.positive in a BYO spec)"
        )
    y = F.col(label).cast("double")
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(F.when(y == 1, 1)).alias("positives"),
        F.count(F.when(y == 0, 1)).alias("negatives"),
        F.count(F.when(y.isNull(), 1)).alias("nulls"),
    ).first()
    if row["nulls"]:
        raise SchemaError(
            f"label column {label!r} has {row['nulls']} null value(s) in {where} "
            "(drop or fill those rows first)"
        )
    other = row["rows"] - row["positives"] - row["negatives"]
    if other:
        examples = _label_examples(df, label)
        raise SchemaError(
            f"label column {label!r} is not binary: {other} row(s) in {where} hold values "
            f"other than 0/1 or true/false (e.g. {examples})"
        )
    return LabelCounts(row["rows"], row["positives"])


def _label_examples(df: DataFrame, label: str) -> str:
    y = F.col(label).cast("double")
    odd = df.where(F.isnan(y) | ~y.isin(0.0, 1.0)).select(label).distinct().limit(5)
    return ", ".join(str(r[0]) for r in odd.collect())


@dataclass(frozen=True)
class DecileRow:
    """One score group (decile 1: the highest scores).

    ``lift``: the group's positive rate over the base rate; ``cumulative_capture``: the share of
    all positives in this group and the higher ones.
    """

    decile: int
    count: int
    positives: int
    rate: float
    lift: float
    cumulative_capture: float
    min_score: float
    max_score: float


@dataclass(frozen=True)
class ReliabilityRow:
    """One equal-width bin of the score [lower, upper): how well scores match outcomes."""

    bin: int
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of one scored table. The areas are NaN when the label has one class only."""

    rows: int
    positives: int
    base_rate: float
    roc_auc: float
    pr_auc: float
    brier: float
    deciles: tuple[DecileRow, ...]
    reliability: tuple[ReliabilityRow, ...]

    def top_decile_lift(self) -> float:
        """The lift of decile 1 (NaN when it is empty)."""
        return next((d.lift for d in self.deciles if d.decile == 1), math.nan)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes None)."""
        return _json_safe(
            {
                "rows": self.rows,
                "positives": self.positives,
                "base_rate": self.base_rate,
                "roc_auc": self.roc_auc,
                "pr_auc": self.pr_auc,
                "brier": self.brier,
                "top_decile_lift": self.top_decile_lift(),
                "deciles": [asdict(d) for d in self.deciles],
                "reliability": [asdict(r) for r in self.reliability],
            }
        )

    def to_markdown(self) -> str:
        """The report as Markdown: a summary line, the decile table, the reliability table."""
        lines = [
            "| rows | positives | base rate | ROC AUC | PR AUC | Brier | top-decile lift |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {self.rows:,} | {self.positives:,} | {_fmt(self.base_rate)} | "
            f"{_fmt(self.roc_auc)} | {_fmt(self.pr_auc)} | {_fmt(self.brier)} | "
            f"{_fmt(self.top_decile_lift(), 2)} |",
            "",
            "Deciles (1 = highest scores):",
            "",
            "| decile | rows | positives | rate | lift | cumulative capture | scores |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {d.decile} | {d.count:,} | {d.positives:,} | {_fmt(d.rate)} | "
            f"{_fmt(d.lift, 2)} | {_fmt(d.cumulative_capture)} | "
            f"{_fmt(d.min_score)} – {_fmt(d.max_score)} |"
            for d in self.deciles
        ]
        lines += [
            "",
            "Reliability (predicted against observed):",
            "",
            "| score bin | rows | mean predicted | observed rate |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r.lower:.2f} – {r.upper:.2f} | {r.count:,} | {_fmt(r.mean_predicted)} | "
            f"{_fmt(r.observed_rate)} |"
            for r in self.reliability
        ]
        return "\n".join(lines) + "\n"


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def evaluate_scores(
    scored: DataFrame, label: str, score: str = "score", bins: int = 10, groups: int = 10
) -> EvaluationReport:
    """Metrics of ``score`` against ``label`` over every row of ``scored``.

    ``bins``: equal-width reliability bins over [0, 1]; ``groups``: score groups of (about)
    equal size, 10 for deciles. Raises SchemaError when the label is not binary (see
    :func:`binary_label_counts`), the score column is missing, not numeric or has nulls, or
    there are no rows.
    """
    if bins < 1 or groups < 1:
        raise ValueError(f"bins and groups must be at least 1, got {bins} and {groups}")
    _validate_score_column(scored, score)
    counts = binary_label_counts(scored, label, "the scored data")
    if counts.rows == 0:
        raise SchemaError("no rows to evaluate")
    rows = scored.select(
        F.col(label).cast("double").alias(_Y), F.col(score).cast("double").alias(_S)
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = rows.agg(
            F.count(F.when(F.col(_S).isNull() | F.isnan(_S), 1)).alias("nulls"),
            F.avg((F.col(_S) - F.col(_Y)) ** 2).alias("brier"),
        ).first()
        if totals["nulls"]:
            raise SchemaError(f"score column {score!r} has {totals['nulls']} null or NaN value(s)")
        base_rate = counts.positives / counts.rows
        roc_auc, pr_auc = _areas(rows, counts)
        return EvaluationReport(
            rows=counts.rows,
            positives=counts.positives,
            base_rate=base_rate,
            roc_auc=roc_auc,
            pr_auc=pr_auc,
            brier=float(totals["brier"]),
            deciles=_decile_rows(rows, groups, counts),
            reliability=_reliability_rows(rows, bins),
        )
    finally:
        rows.unpersist()


def _validate_score_column(scored: DataFrame, score: str) -> None:
    types = dict(scored.dtypes)
    if score not in types:
        present = ", ".join(scored.columns)
        raise SchemaError(f"score column {score!r} is not in the scored data (columns: {present})")
    if types[score] not in _NUMERIC_TYPES and not types[score].startswith("decimal"):
        raise SchemaError(f"score column {score!r} is {types[score]}, expected a number")


def _areas(rows: DataFrame, counts: LabelCounts) -> tuple[float, float]:
    """Exact areas under the ROC and the precision-recall curve (NaN for one class only)."""
    if counts.positives == 0 or counts.negatives == 0:
        return math.nan, math.nan
    evaluator = BinaryClassificationEvaluator(rawPredictionCol=_S, labelCol=_Y, numBins=0)
    roc = evaluator.evaluate(rows, {evaluator.metricName: "areaUnderROC"})
    pr = evaluator.evaluate(rows, {evaluator.metricName: "areaUnderPR"})
    return float(roc), float(pr)


def _score_cuts(rows: DataFrame, groups: int) -> list[float]:
    """The scores q(1 - 1/groups), q(1 - 2/groups), ... (``groups - 1`` of them, descending)."""
    if groups == 1:
        return []
    # (groups - k) / groups is the nearest double to the fraction; Spark ranks by
    # ceil(level * rows), so a level a hair above the fraction would skip a row: step just below
    levels = [(groups - k) / groups - _LEVEL_NUDGE for k in range(1, groups)]
    cuts = rows.agg(F.percentile_approx(_S, levels, _QUANTILE_ACCURACY)).first()[0]
    return [float(c) for c in cuts]


def score_group_expr(score: Column, cuts: Sequence[float]) -> Column:
    """1 + the number of cuts at or above ``score``: 1 for the highest scores."""
    above = [F.when(score <= F.lit(c), 1).otherwise(0) for c in cuts]
    return reduce(add, above, F.lit(1))


def _decile_rows(rows: DataFrame, groups: int, counts: LabelCounts) -> tuple[DecileRow, ...]:
    group = score_group_expr(F.col(_S), _score_cuts(rows, groups))
    table = (
        rows.groupBy(group.alias("g"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(_Y).alias("p"),
            F.min(_S).alias("lo"),
            F.max(_S).alias("hi"),
        )
        .orderBy("g")
        .collect()
    )
    base_rate = counts.positives / counts.rows
    result, captured = [], 0
    for r in table:
        positives = int(r["p"])
        captured += positives
        rate = positives / r["n"]
        result.append(
            DecileRow(
                decile=int(r["g"]),
                count=int(r["n"]),
                positives=positives,
                rate=rate,
                lift=rate / base_rate if base_rate else math.nan,
                cumulative_capture=captured / counts.positives if counts.positives else math.nan,
                min_score=float(r["lo"]),
                max_score=float(r["hi"]),
            )
        )
    return tuple(result)


def _reliability_rows(rows: DataFrame, bins: int) -> tuple[ReliabilityRow, ...]:
    index = F.least(F.greatest(F.floor(F.col(_S) * bins), F.lit(0)), F.lit(bins - 1))
    table = (
        rows.groupBy(index.cast("int").alias("b"))
        .agg(F.count(F.lit(1)).alias("n"), F.avg(_S).alias("mean"), F.avg(_Y).alias("rate"))
        .orderBy("b")
        .collect()
    )
    return tuple(
        ReliabilityRow(
            bin=int(r["b"]),
            lower=r["b"] / bins,
            upper=(r["b"] + 1) / bins,
            count=int(r["n"]),
            mean_predicted=float(r["mean"]),
            observed_rate=float(r["rate"]),
        )
        for r in table
    )
