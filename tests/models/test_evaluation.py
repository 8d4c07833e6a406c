"""evaluate_scores against hand-computed cases: areas, Brier, deciles, reliability, errors."""

from __future__ import annotations

import json
import math
import re

import pytest
from pyspark.sql import DataFrame, SparkSession

from profilehouse.errors import SchemaError
from profilehouse.models.evaluation import (
    DecileRow,
    EvaluationReport,
    ReliabilityRow,
    evaluate_scores,
)


def _scored(spark: SparkSession, pairs: list[tuple[int, float]]) -> DataFrame:
    return spark.createDataFrame(pairs, "y int, score double")


@pytest.fixture(scope="module")
def four_rows(spark: SparkSession) -> EvaluationReport:
    # positives score 0.9 and 0.4, negatives 0.6 and 0.2: 3 of 4 pairs ordered right
    return evaluate_scores(
        _scored(spark, [(1, 0.9), (0, 0.2), (0, 0.6), (1, 0.4)]), "y", bins=2, groups=2
    )


def test_roc_auc_counts_the_ordered_pairs(four_rows: EvaluationReport) -> None:
    assert four_rows.roc_auc == pytest.approx(0.75)


def test_brier_is_the_mean_squared_error(four_rows: EvaluationReport) -> None:
    assert four_rows.brier == pytest.approx((0.1**2 + 0.2**2 + 0.6**2 + 0.6**2) / 4)
    assert (four_rows.rows, four_rows.positives, four_rows.base_rate) == (4, 2, 0.5)


def test_pr_auc_by_hand(four_rows: EvaluationReport) -> None:
    # thresholds 0.9, 0.6, 0.4, 0.2 give (recall, precision) (0.5, 1), (0.5, 0.5), (1, 2/3),
    # (1, 0.5); MLlib starts the curve at (0, 1) and sums trapezoids over recall
    expected = 0.5 * (1 + 1) / 2 + 0 + 0.5 * (0.5 + 2 / 3) / 2 + 0
    assert four_rows.pr_auc == pytest.approx(expected)


def test_reliability_bins_are_equal_width(four_rows: EvaluationReport) -> None:
    assert four_rows.reliability == (
        ReliabilityRow(0, 0.0, 0.5, 2, pytest.approx(0.3), 0.5),
        ReliabilityRow(1, 0.5, 1.0, 2, pytest.approx(0.75), 0.5),
    )


def test_two_groups_split_at_the_median(four_rows: EvaluationReport) -> None:
    assert four_rows.deciles == (
        DecileRow(1, 2, 1, 0.5, 1.0, 0.5, 0.6, 0.9),
        DecileRow(2, 2, 1, 0.5, 1.0, 1.0, 0.2, 0.4),
    )


@pytest.mark.parametrize(
    ("description", "pairs", "roc", "pr"),
    [
        ("perfect ranking", [(1, 0.9), (1, 0.8), (0, 0.3), (0, 0.1)], 1.0, 1.0),
        ("reversed ranking", [(0, 0.9), (0, 0.8), (1, 0.3), (1, 0.1)], 0.0, None),
        ("all tied", [(1, 0.5), (0, 0.5), (1, 0.5), (0, 0.5)], 0.5, 0.5),
    ],
)
def test_areas_of_known_rankings(
    spark: SparkSession, description: str, pairs: list, roc: float, pr: float | None
) -> None:
    report = evaluate_scores(_scored(spark, pairs), "y")
    assert report.roc_auc == pytest.approx(roc), description
    if pr is not None:
        assert report.pr_auc == pytest.approx(pr), description


@pytest.fixture(scope="module")
def hundred(spark: SparkSession) -> EvaluationReport:
    # scores 0.01 .. 1.00; the ten highest are positive and so are ten of the lowest fifty:
    # base rate 0.2, decile 1 all positive (lift 5, half of the positives captured)
    pairs = [(1 if i > 90 or (i % 5 == 0 and i <= 50) else 0, i / 100) for i in range(1, 101)]
    return evaluate_scores(_scored(spark, pairs), "y")


def test_deciles_of_a_known_set(hundred: EvaluationReport) -> None:
    assert [d.count for d in hundred.deciles] == [10] * 10
    assert [d.decile for d in hundred.deciles] == list(range(1, 11))
    top = hundred.deciles[0]
    assert (top.positives, top.rate, top.min_score, top.max_score) == (10, 1.0, 0.91, 1.0)
    assert hundred.top_decile_lift() == pytest.approx(5.0)
    assert top.cumulative_capture == pytest.approx(0.5)
    assert [d.positives for d in hundred.deciles] == [10, 0, 0, 0, 0, 2, 2, 2, 2, 2]
    assert hundred.deciles[-1].cumulative_capture == pytest.approx(1.0)
    assert hundred.base_rate == pytest.approx(0.2)


def test_report_as_json_and_markdown(hundred: EvaluationReport) -> None:
    data = json.loads(json.dumps(hundred.to_dict()))
    assert data["top_decile_lift"] == pytest.approx(5.0)
    assert len(data["deciles"]) == 10 and data["deciles"][0]["decile"] == 1
    text = hundred.to_markdown()
    assert "| 100 | 20 | 0.2000 |" in text
    assert "| 1 | 10 | 10 | 1.0000 | 5.00 | 0.5000 | 0.9100 – 1.0000 |" in text


def test_ties_stay_in_one_group(spark: SparkSession) -> None:
    report = evaluate_scores(_scored(spark, [(1, 0.7)] * 5 + [(0, 0.2)] * 5), "y")
    # the cuts q(0.9) .. q(0.6) are all 0.7: the tied top half lands in group 5
    assert [(d.decile, d.count) for d in report.deciles] == [(5, 5), (10, 5)]
    assert math.isnan(report.top_decile_lift())


def test_one_class_only_has_no_areas(spark: SparkSession) -> None:
    report = evaluate_scores(_scored(spark, [(0, 0.1), (0, 0.3)]), "y")
    assert math.isnan(report.roc_auc) and math.isnan(report.pr_auc)
    assert report.to_dict()["roc_auc"] is None
    assert report.brier == pytest.approx((0.01 + 0.09) / 2)


@pytest.mark.parametrize(
    ("rows", "schema", "expected"),
    [
        (
            [(2, 0.1), (1, 0.2)],
            "y int, score double",
            "label column 'y' is not binary: 1 row(s) in the scored data hold values other "
            "than 0/1 or true/false (e.g. 2)",
        ),
        ([(1, None)], "y int, score double", "score column 'score' has 1 null or NaN value(s)"),
        ([(1, 0.5)], "y int, p double", "score column 'score' is not in the scored data"),
        ([(1, "0.5")], "y int, score string", "score column 'score' is string, expected a number"),
    ],
)
def test_errors_name_the_column(
    spark: SparkSession, rows: list, schema: str, expected: str
) -> None:
    with pytest.raises(SchemaError, match=re.escape(expected)):
        evaluate_scores(spark.createDataFrame(rows, schema), "y")
