"""Logistic regression engine: dropping, imputation, categories, weighting, CV, reasons, errors.

The training data is planted with numpy (fixed seed): x1 drives the label strongly, x2 (skewed,
10% missing) weakly, x3 is noise; channel has four categories plus nulls (the rarest folds into
``__other__`` with ``max_categories: 3``; one category holds a quote and a backslash); ``k`` is
constant and ``empty`` all null. Expectations come from the planted data, not the module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse.errors import ConfigError, SchemaError
from profilehouse.models.logistic import (
    MISSING,
    OTHER,
    FeatureSpec,
    LogisticModel,
    LogisticSettings,
    build_standardised_features,
    load_logistic_settings,
    score_logistic,
    train_logistic,
)

SEED = 20240611
ROWS = 600
ODD = "c'\\q"  # a category needing escapes in SQL
CHANNELS = ["a", "b", ODD, "d", None]
CHANNEL_SHARES = [0.4, 0.3, 0.2, 0.06, 0.04]
CHANNEL_EFFECT = {"a": 0.0, "b": 0.8, ODD: -0.8, "d": 0.0, None: 0.0}
FEATURES = FeatureSpec(
    numeric=("x1", "x2", "x3", "k", "empty", "promo"),
    categorical=("channel",),
    reason_names={"x1": "deposit balance", "x2": "card spend", "channel": "channel"},
)
# tol 1e-4: about half the LBFGS iterations (each a Spark job) of the default 1e-6
SINGLE = LogisticSettings(reg_params=(0.001,), max_categories=3, seed=SEED, tol=1e-4)
# the shared model is cross-validated: lasso with regParam 1 zeroes every coefficient (a
# constant score, CV AUC exactly 0.5), so 0.01 must win
CROSS_VALIDATED = LogisticSettings(
    reg_params=(1.0, 0.01), elastic_net=1.0, folds=2, max_categories=3, seed=SEED, tol=1e-4
)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("x1", T.DoubleType()),
        T.StructField("x2", T.DoubleType()),
        T.StructField("x3", T.DoubleType()),
        T.StructField("k", T.IntegerType()),
        T.StructField("empty", T.DoubleType()),
        T.StructField("channel", T.StringType()),
        T.StructField("y", T.IntegerType()),
    ]
)


def _planted_rows() -> list[tuple]:
    rng = np.random.default_rng(SEED)
    x1 = rng.normal(size=ROWS)
    x2 = rng.lognormal(mean=0.0, sigma=1.0, size=ROWS)
    x3 = rng.normal(size=ROWS)
    channel = rng.choice(len(CHANNELS), size=ROWS, p=CHANNEL_SHARES)
    x2_missing = rng.random(ROWS) < 0.10
    logit = (
        -1.6
        + 2.5 * x1
        + 0.4 * np.log(x2)
        + np.array([CHANNEL_EFFECT[CHANNELS[c]] for c in channel])
    )
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype(int)
    return [
        (
            i,
            float(x1[i]),
            None if x2_missing[i] else float(x2[i]),
            float(x3[i]),
            1,
            None,
            CHANNELS[channel[i]],
            int(y[i]),
        )
        for i in range(ROWS)
    ]


@pytest.fixture(scope="module")
def planted_rows() -> list[tuple]:
    return _planted_rows()


def _with_promo(df: DataFrame) -> DataFrame:
    """``promo``: 1.0 or null (every third row), unrelated to the label: a single value with
    nulls, kept for its missing indicator."""
    return df.withColumn("promo", F.when(F.col("id") % 3 != 0, F.lit(1.0)))


@pytest.fixture(scope="module")
def planted(spark: SparkSession, planted_rows: list[tuple]) -> DataFrame:
    rows = spark.createDataFrame(planted_rows, SCHEMA)
    return _with_promo(rows).repartition(2, "id").cache()


@pytest.fixture(scope="module")
def model(planted: DataFrame) -> LogisticModel:
    return train_logistic(planted, "y", FEATURES, CROSS_VALIDATED)


def _rows(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return _with_promo(spark.createDataFrame(rows, SCHEMA))


# ---------------------------------------------------------------------------------------------
# dropping, imputation, categories
# ---------------------------------------------------------------------------------------------


def test_constant_and_all_null_columns_are_dropped_and_reported(model: LogisticModel) -> None:
    assert model.dropped == {"k": "constant", "empty": "all null"}
    assert model.used_numeric == ("x1", "x2", "x3", "promo")
    assert model.used_categorical == ("channel",)
    assert {c.feature for c in model.coefficients} == {"x1", "x2", "x3", "promo", "channel"}


def test_a_single_value_with_nulls_is_kept_for_its_indicator(model: LogisticModel) -> None:
    assert "promo" in model.indicators
    assert model.medians["promo"] == 1.0
    assert model.coefficient("promo") == 0.0  # the imputed value no longer varies


def test_missing_numbers_get_the_training_median_and_an_indicator(
    model: LogisticModel, planted_rows: list[tuple]
) -> None:
    x2 = np.array([r[2] for r in planted_rows if r[2] is not None])
    assert model.indicators == ("x2", "promo")  # only the columns with nulls in training
    # lognormal: the median is far from the mean, so mean imputation would fail here
    assert abs(model.medians["x2"] - np.median(x2)) < 0.01
    assert abs(model.medians["x2"] - x2.mean()) > 0.3
    terms = {c.term for c in model.coefficients}
    assert "x2=__missing__" in terms
    assert "x1=__missing__" not in terms


def test_categories_keep_the_most_frequent_then_missing_then_other(model: LogisticModel) -> None:
    # max_categories 3: a, b and the odd one are kept, d folds into __other__, nulls are their
    # own category; one-hot columns are in frequency order
    assert set(model.categories["channel"]) == {"a", "b", ODD, MISSING, OTHER}
    assert model.categories["channel"][:3] == ("a", "b", ODD)
    assert model.coefficient("channel", "b") > 0 > model.coefficient("channel", ODD)


def test_unseen_categories_nulls_and_dropped_columns_do_not_fail_scoring(
    spark: SparkSession, model: LogisticModel
) -> None:
    rows = _rows(
        spark,
        [
            (1, 0.0, None, 0.0, 1, None, "never seen", 0),
            (2, 0.0, None, 0.0, 1, None, None, 0),
            (3, float("nan"), 1.0, 0.0, 1, None, "a", 0),
        ],
    ).drop("k", "empty", "y")
    scored = {r["id"]: r for r in score_logistic(model, rows, ["id"], top_reasons=5).collect()}
    assert all(0.0 < scored[i]["score"] < 1.0 for i in (1, 2, 3))
    names = {i: {reason["name"] for reason in scored[i]["reasons"]} for i in scored}
    assert names[1] <= {"deposit balance", "card spend: missing", "x3", "promo", "channel: other"}
    assert names[2] <= {"deposit balance", "card spend: missing", "x3", "promo", "channel: missing"}
    assert names[3] <= {"deposit balance", "card spend", "x3", "promo", "channel: a"}


def test_an_unseen_category_scores_as_other(spark: SparkSession, model: LogisticModel) -> None:
    rows = _rows(
        spark, [(1, 0.5, 1.0, 0.0, 1, None, "never seen", 0), (2, 0.5, 1.0, 0.0, 1, None, "d", 0)]
    )
    scores = {r["id"]: r["score"] for r in score_logistic(model, rows, ["id"]).collect()}
    assert scores[1] == pytest.approx(scores[2], abs=1e-12)


# ---------------------------------------------------------------------------------------------
# scores and reasons
# ---------------------------------------------------------------------------------------------


def test_scores_are_probabilities_with_the_documented_schema(
    planted: DataFrame, model: LogisticModel
) -> None:
    scored = score_logistic(model, planted, ["id", "y"])
    reason = T.StructType(
        [
            T.StructField("feature", T.StringType(), False),
            T.StructField("name", T.StringType(), False),
            T.StructField("contribution", T.DoubleType()),
        ]
    )
    assert [(f.name, f.dataType) for f in scored.schema.fields] == [
        ("id", T.IntegerType()),
        ("y", T.IntegerType()),
        ("score", T.DoubleType()),
        ("reasons", T.ArrayType(reason, False)),
    ]
    low, high, n = scored.selectExpr("min(score)", "max(score)", "count(*)").first()
    assert 0.0 <= low < high <= 1.0 and n == ROWS


def test_reasons_name_the_driving_feature_first_for_high_x1_rows(
    spark: SparkSession, model: LogisticModel
) -> None:
    rows = _rows(
        spark,
        [
            (1, 3.0, 1.0, 0.0, 1, None, "a", 0),
            (2, 2.5, 1.0, 0.0, 1, None, "b", 0),
            (3, -3.0, 1.0, 0.0, 1, None, "b", 0),
        ],
    )
    scored = {r["id"]: r for r in score_logistic(model, rows, ["id"], top_reasons=2).collect()}
    for i in (1, 2):
        first = scored[i]["reasons"][0]
        assert (first["feature"], first["name"]) == ("x1", "deposit balance")
        assert first["contribution"] > 0
    assert [r["name"] for r in scored[2]["reasons"]] == ["deposit balance", "channel: b"]
    # low x1 pulls the score down: never a reason
    assert "x1" not in [r["feature"] for r in scored[3]["reasons"]]
    assert all(len(r["reasons"]) <= 2 for r in scored.values())
    contributions = [r["contribution"] for r in scored[2]["reasons"]]
    assert contributions == sorted(contributions, reverse=True)


def test_a_contribution_is_coefficient_times_standardised_value(
    spark: SparkSession, model: LogisticModel
) -> None:
    rows = _rows(spark, [(1, 2.0, 1.0, 0.0, 1, None, "a", 0)])
    features = build_standardised_features(model, rows, ["id"]).first()["features"]
    x1 = next(k for k, c in enumerate(model.coefficients) if c.term == "x1")
    reasons = score_logistic(model, rows, ["id"], top_reasons=10).first()["reasons"]
    got = next(r["contribution"] for r in reasons if r["feature"] == "x1")
    assert got == pytest.approx(model.coefficients[x1].coefficient * features[x1], rel=1e-12)
    logit = model.intercept + sum(
        c.coefficient * v for c, v in zip(model.coefficients, features, strict=True)
    )
    score = score_logistic(model, rows, ["id"]).first()["score"]
    assert score == pytest.approx(1 / (1 + math.exp(-logit)), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# weighting, cross-validation, determinism, persistence
# ---------------------------------------------------------------------------------------------


def _mean_score_of_positives(model: LogisticModel, df: DataFrame) -> float:
    return score_logistic(model, df, ["y"]).where("y = 1").selectExpr("avg(score)").first()[0]


def test_balanced_weighting_raises_the_minority_class_scores(
    planted: DataFrame, model: LogisticModel, planted_rows: list[tuple]
) -> None:
    positives = sum(r[-1] for r in planted_rows)
    assert positives < ROWS / 3  # the planted label is imbalanced
    assert model.training.positive_weight == pytest.approx((ROWS - positives) / positives)
    unweighted = train_logistic(
        planted,
        "y",
        FEATURES,
        dataclasses.replace(CROSS_VALIDATED, reg_params=(0.01,), class_weighting="none"),
    )
    assert unweighted.training.positive_weight == 1.0
    balanced = _mean_score_of_positives(model, planted)
    plain = _mean_score_of_positives(unweighted, planted)
    assert balanced > plain + 0.05


def test_cross_validation_picks_the_best_reg_param_and_is_deterministic(
    planted: DataFrame, model: LogisticModel
) -> None:
    assert model.reg_param == 0.01
    assert set(model.cv_metrics) == {1.0, 0.01}
    assert model.cv_metrics[1.0] == 0.5
    assert model.cv_metrics[0.01] > 0.8
    # the same folds and fits; only the order in which Spark adds partial sums may differ
    again = train_logistic(planted, "y", FEATURES, CROSS_VALIDATED)
    assert again.cv_metrics == pytest.approx(model.cv_metrics, rel=1e-12)
    assert [c.term for c in again.coefficients] == [c.term for c in model.coefficients]
    assert [c.coefficient for c in again.coefficients] == pytest.approx(
        [c.coefficient for c in model.coefficients], rel=1e-9, abs=1e-12
    )
    assert again.intercept == pytest.approx(model.intercept, rel=1e-9)


def test_a_saved_model_loads_with_its_metadata_and_scores_the_same(
    tmp_path: Path, planted: DataFrame, model: LogisticModel
) -> None:
    model.save(str(tmp_path / "m"))
    loaded = LogisticModel.load(str(tmp_path / "m"))
    assert loaded.to_dict() == model.to_dict()
    assert loaded.features == model.features
    assert json.loads((tmp_path / "m" / "logistic.json").read_text())["dropped"] == {
        "k": "constant",
        "empty": "all null",
    }
    sample = planted.where("id < 60")
    assert_df_equality(
        score_logistic(loaded, sample, ["id"]),
        score_logistic(model, sample, ["id"]),
        ignore_row_order=True,
    )


def test_loading_where_no_model_is_fails_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=re.escape(f"no logistic model at {tmp_path}")):
        LogisticModel.load(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

ERROR_CASES = [
    {
        "description": "label column missing",
        "rows": [(1, 0.1, 1.0)],
        "schema": "id int, x1 double, x2 double",
        "label": "y",
        "expected": "label column 'y' is not in the training data (columns: id, x1, x2)",
    },
    {
        "description": "feature column missing",
        "rows": [(1, 0.1, 1)],
        "schema": "id int, x1 double, y int",
        "label": "y",
        "expected": "feature column 'x2' is not in the training data (columns: id, x1, y)",
    },
    {
        "description": "label with values other than 0/1",
        "rows": [(1, 0.1, 1.0, 0), (2, 0.2, 1.0, 2), (3, 0.3, 1.0, 1)],
        "schema": "id int, x1 double, x2 double, y int",
        "label": "y",
        "expected": "label column 'y' is not binary: 1 row(s) in the training data hold values "
        "other than 0/1 or true/false (e.g. 2)",
    },
    {
        "description": "string label",
        "rows": [(1, 0.1, 1.0, "yes")],
        "schema": "id int, x1 double, x2 double, y string",
        "label": "y",
        "expected": "label column 'y' is string, expected 0/1 or true/false",
    },
    {
        "description": "one class only",
        "rows": [(1, 0.1, 1.0, True), (2, 0.2, 2.0, True)],
        "schema": "id int, x1 double, x2 double, y boolean",
        "label": "y",
        "expected": "label column 'y' has one class only in the training data (2 rows of 1, 0 "
        "of 0): a model needs both",
    },
    {
        "description": "null labels",
        "rows": [(1, 0.1, 1.0, 1), (2, 0.2, 2.0, None)],
        "schema": "id int, x1 double, x2 double, y int",
        "label": "y",
        "expected": "label column 'y' has 1 null value(s) in the training data",
    },
    {
        "description": "numeric feature that is text",
        "rows": [(1, 0.1, "1.0", 1)],
        "schema": "id int, x1 double, x2 string, y int",
        "label": "y",
        "expected": "numeric feature 'x2' is string, expected a number or boolean",
    },
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c["description"])
def test_training_errors_name_the_column(spark: SparkSession, case: dict) -> None:
    df = spark.createDataFrame(case["rows"], case["schema"])
    with pytest.raises(SchemaError, match=re.escape(case["expected"])):
        train_logistic(df, case["label"], FeatureSpec(("x1", "x2")), SINGLE)


def test_every_feature_dropped_is_an_error(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1.0, None, 0), (1.0, None, 1)], "x1 double, x2 double, y int")
    with pytest.raises(
        SchemaError, match=re.escape("every feature was dropped: x1 (constant), x2 (all null)")
    ):
        train_logistic(df, "y", FeatureSpec(("x1", "x2")), SINGLE)


def test_scoring_without_a_used_feature_fails_naming_it(
    spark: SparkSession, model: LogisticModel
) -> None:
    df = spark.createDataFrame([(1, 0.5)], "id int, x1 double")
    with pytest.raises(
        SchemaError, match=re.escape("cannot score: no column(s) x2, x3, promo, channel")
    ):
        score_logistic(model, df, ["id"])


# ---------------------------------------------------------------------------------------------
# settings and feature spec
# ---------------------------------------------------------------------------------------------


def test_settings_default_and_load_from_a_mapping() -> None:
    assert load_logistic_settings(None, "spec.yaml") == LogisticSettings()
    loaded = load_logistic_settings({"reg_params": [0, 0.5], "folds": 5}, "spec.yaml")
    assert loaded.reg_params == (0.0, 0.5)
    assert loaded.folds == 5
    assert loaded.class_weighting == "balanced"


SETTINGS_CASES = [
    ({"folds": 1}, "logistic.folds: Input should be greater than or equal to 2 (got 1)"),
    ({"reg_params": []}, "logistic.reg_params: List should have at least 1 item after validation"),
    (
        {"reg_params": [0.1, -1]},
        "logistic.reg_params.1: Input should be greater than or equal to 0 (got -1)",
    ),
    (
        {"reg_params": [0.1, 0.1]},
        "logistic.reg_params: [0.1] listed more than once (expected distinct values)",
    ),
    (
        {"class_weighting": "auto"},
        "logistic.class_weighting: Input should be 'balanced' or 'none' (got 'auto')",
    ),
    ({"elastic_net": 2}, "logistic.elastic_net: Input should be less than or equal to 1 (got 2)"),
    ({"max_categories": 0}, "logistic.max_categories: Input should be greater than or equal to 1"),
    ({"seed": 1.5}, "logistic.seed: Input should be a valid integer (got 1.5)"),
    (
        {"fold": 3},
        "logistic.fold: unknown key (allowed: class_weighting, elastic_net, folds, max_categories, "
        "max_iter, reg_params, seed, tol)",
    ),
]


@pytest.mark.parametrize(("mapping", "expected"), SETTINGS_CASES)
def test_settings_errors_name_file_key_and_what_is_allowed(mapping: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_logistic_settings(mapping, "conf/byo/x.yaml")
    assert caught.value.path == "conf/byo/x.yaml"
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(expected)


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_logistic_settings({"folds": 1, "max_iter": 0, "colour": "red"}, "x.yaml")
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "logistic.folds",
        "logistic.max_iter",
        "logistic.colour",
    ]


def test_settings_built_in_code_are_validated_too() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "LogisticSettings.folds: Input should be greater than or equal to 2 (got 0)"
        ),
    ):
        LogisticSettings(folds=0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"numeric": ()}, "numeric: no features"),
        ({"numeric": ("a", "a")}, "numeric.1: 'a' is already listed under numeric"),
        (
            {"numeric": ("a",), "categorical": ("a",)},
            "categorical.0: 'a' is already listed under numeric",
        ),
        (
            {"numeric": ("a",), "reason_names": {"b": "bee"}},
            "reason_names.b: not a feature (features: a)",
        ),
        ({"numeric": "ab"}, "FeatureSpec.numeric: expected a sequence of column names"),
    ],
)
def test_feature_spec_errors(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        FeatureSpec(**kwargs)
