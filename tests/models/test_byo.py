"""Bring-your-own-data flow on the Palmer penguins (shipped in the palmerpenguins package).

One run of the example spec (conf/byo/penguins.yaml) with a constant numeric and a constant
categorical column added to its input, one regParam (cross-validation is tested in
test_logistic.py; here it would only add Spark jobs), a looser LBFGS tolerance (each iteration
is a Spark job) and outputs in a temporary folder;
its validation AUC is compared with scikit-learn's on the same split. Spec errors are checked
without Spark.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from profilehouse.config import PROJECT_ROOT
from profilehouse.errors import ConfigError
from profilehouse.models.byo import (
    ByoResult,
    ByoSpec,
    LabelSpec,
    SplitSpec,
    byo_training_data,
    labelled_rows,
    load_byo_spec,
    read_input,
    run_byo,
    run_byo_scoring,
    split_rows,
)

EXAMPLE = PROJECT_ROOT / "conf" / "byo" / "penguins.yaml"
PENGUINS = 344
UNKNOWN_SEX = 11


@dataclass(frozen=True)
class Run:
    spec_path: Path
    spec: ByoSpec
    result: ByoResult


def _example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("byo")
    example = _example()
    source = load_byo_spec(EXAMPLE).input.model_copy(update={"row_id": None})
    penguins = read_input(spark, source).select(
        "*", F.lit(1).alias("ringed"), F.lit("red").alias("tag_colour")
    )
    penguins.coalesce(1).write.parquet(str(root / "input"))
    table = {"path": str(root / "input"), "format": "parquet", "row_id": "penguin_id"}
    spec = example | {
        "input": table,
        "numeric": [*example["numeric"], "ringed"],
        "categorical": [*example["categorical"], "tag_colour"],
        "logistic": example["logistic"] | {"reg_params": [0.01], "tol": 1e-4},
        "output": {"path": str(root / "out")},
        "score": {"input": table, "output": {"path": str(root / "scores")}, "top_reasons": 2},
    }
    spec_path = root / "penguins.yaml"
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    loaded = load_byo_spec(spec_path)
    return Run(spec_path, loaded, run_byo(spark, loaded))


# ---------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------


def test_the_example_spec_loads_with_paths_resolved() -> None:
    spec = load_byo_spec(EXAMPLE)
    assert spec.name == "penguins_male"
    assert Path(spec.input.path).is_file()
    assert spec.input.path.endswith("palmerpenguins/data/penguins.csv")
    assert spec.label == LabelSpec(column="sex", positive=["male"])
    assert spec.features.categorical == ("species", "island")
    assert spec.features.reason_name("body_mass_g") == "heavy"
    assert spec.output == str(PROJECT_ROOT / "warehouse/byo/penguins_male")
    assert spec.model_path == f"{spec.output}/model"
    assert spec.logistic.reg_params == (0.0, 0.001, 0.01, 0.1)
    assert spec.score is not None and spec.score.output.format == "delta"


def _problems(tmp_path: Path, spec: dict[str, Any]) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_byo_spec(path)
    assert str(caught.value).startswith(f"invalid config file {path}:")
    return caught.value.problems


def test_every_key_problem_is_reported_at_once(tmp_path: Path) -> None:
    example = _example()
    spec = example | {
        "name": "9 penguins",
        "input": example["input"] | {"format": "excel"},
        "output": {},
        "logistic": {"folds": 1, "colour": "red"},
        "colour": "blue",
    }
    assert _problems(tmp_path, spec) == [
        "name: String should match pattern '^[A-Za-z][A-Za-z0-9_]*$' (got '9 penguins')",
        "input.format: Input should be 'delta', 'parquet' or 'csv' (got 'excel')",
        "output.path: required key is missing",
        "colour: unknown key (allowed: categorical, description, id, input, label, logistic, "
        "name, numeric, output, reason_names, score, split)",
        "logistic.folds: Input should be greater than or equal to 2 (got 1)",
        "logistic.colour: unknown key (allowed: class_weighting, elastic_net, folds, "
        "max_categories, max_iter, reg_params, seed, tol)",
    ]


def test_every_cross_key_problem_is_reported_at_once(tmp_path: Path) -> None:
    example = _example()
    spec = example | {
        "input": example["input"] | {"path": "package:no_such_package_here/x.csv"},
        "numeric": ["bill_length_mm", "bill_length_mm"],
        "categorical": ["sex"],
        "reason_names": {"beak": "beak"},
        "id": ["penguin_id", "score"],
        "split": {"validation_fraction": 0.2, "column": "year", "cutoff": 2008},
        "score": example["score"] | {"input": {"path": "package:palmerpenguins/none.csv"}},
    }
    assert _problems(tmp_path, spec) == [
        "numeric.1: 'bill_length_mm' is already listed under numeric",
        "reason_names.beak: not a feature (features: bill_length_mm, sex)",
        "label.column: 'sex' is also listed as a feature",
        "id.1: 'score' is a column the scores add (rename it)",
        "split: give validation_fraction (a random split) or column and cutoff (a time split), "
        "not both",
        "input.path: package 'no_such_package_here' is not installed "
        "(pip install no_such_package_here)",
        "score.input.path: no file 'none.csv' in package 'palmerpenguins'",
    ]


def test_a_time_split_needs_column_and_cutoff(tmp_path: Path) -> None:
    spec = _example() | {"split": {"column": "year"}}
    assert _problems(tmp_path, spec) == [
        "split.cutoff: required with split.column (a time split needs both)"
    ]


def test_scoring_needs_a_score_section() -> None:
    spec = load_byo_spec(EXAMPLE)
    without = ByoSpec(**{**vars(spec), "score": None})
    with pytest.raises(ConfigError, match=re.escape("score: missing (add score.input")):
        run_byo_scoring(None, without)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# data preparation
# ---------------------------------------------------------------------------------------------


def test_positive_values_binarise_the_label(spark: SparkSession) -> None:
    df = spark.createDataFrame([("male",), ("female",), (None,), ("MALE",)], "sex string")
    got = labelled_rows(df, LabelSpec(column="sex", positive=["male", "MALE"]))
    assert [r["sex"] for r in got.collect()] == [1, 0, None, 1]


def test_a_time_split_trains_up_to_the_cutoff(spark: SparkSession) -> None:
    df = spark.createDataFrame([(2007,), (2008,), (2009,), (None,)], "year int")
    train, validation = split_rows(df, SplitSpec(column="year", cutoff=2008))
    assert sorted(r["year"] for r in train.collect()) == [2007, 2008]
    assert [r["year"] for r in validation.collect()] == [2009]


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


def test_the_run_drops_constant_columns_and_writes_model_and_report(run: Run) -> None:
    result = run.result
    assert result.model.dropped == {"ringed": "constant", "tag_colour": "constant"}
    assert result.model.training.rows + result.evaluation.rows == PENGUINS - UNKNOWN_SEX
    assert result.evaluation.roc_auc > 0.9  # informative, not trivially separable
    assert result.evaluation.roc_auc < 0.999
    json_path, md_path = run.spec.report_paths
    report = json.loads(Path(json_path).read_text(encoding="utf-8"))
    assert report["label"]["unlabelled_rows_left_out"] == UNKNOWN_SEX
    assert report["validation"]["roc_auc"] == pytest.approx(result.evaluation.roc_auc)
    assert report["model"]["dropped"] == {"ringed": "constant", "tag_colour": "constant"}
    markdown = Path(md_path).read_text(encoding="utf-8")
    assert "## Validation" in markdown and "`ringed` (constant)" in markdown
    assert (Path(run.spec.model_path) / "logistic.json").is_file()


def test_the_run_scores_every_penguin_with_reasons(spark: SparkSession, run: Run) -> None:
    assert run.result.scores is not None and run.result.scores.rows == PENGUINS
    scores = spark.read.format("delta").load(run.result.scores.path)
    assert scores.columns == ["penguin_id", "species", "island", "score", "reasons"]
    summary = scores.selectExpr(
        "count(distinct penguin_id)", "min(score)", "max(score)", "max(size(reasons))"
    ).first()
    assert summary[0] == PENGUINS
    assert 0.0 <= summary[1] < summary[2] <= 1.0
    assert summary[3] == 2
    names = {r["name"] for r in scores.selectExpr("explode(reasons) AS r").select("r.*").collect()}
    assert names <= {
        "long bill",
        "deep bill",
        "long flippers",
        "heavy",
        *(f"species: {s}" for s in ("Adelie", "Chinstrap", "Gentoo")),
        *(f"island: {s}" for s in ("Biscoe", "Dream", "Torgersen")),
    }


def test_score_only_rescores_with_the_saved_model(spark: SparkSession, run: Run) -> None:
    path = run.result.scores.path
    before = sorted(spark.read.format("delta").load(path).select("penguin_id", "score").collect())
    shutil.rmtree(path)
    job = importlib.util.spec_from_file_location("train_job", PROJECT_ROOT / "jobs" / "train.py")
    module = importlib.util.module_from_spec(job)
    job.loader.exec_module(module)
    assert module.main(["--env", "test", "--spec", str(run.spec_path), "--score-only"]) == 0
    after = sorted(spark.read.format("delta").load(path).select("penguin_id", "score").collect())
    assert [r["penguin_id"] for r in after] == [r["penguin_id"] for r in before]
    assert [r["score"] for r in after] == pytest.approx([r["score"] for r in before], rel=1e-12)


def _sklearn_auc(train: pd.DataFrame, validation: pd.DataFrame, run: Run) -> float:
    """The same model in scikit-learn: median imputation (+ indicators), one-hot, standardised,
    balanced weights as sample weights and C = 1 / (Σ weights · regParam)."""
    model, label = run.result.model, run.spec.label.column
    numeric, categorical = list(model.used_numeric), list(model.used_categorical)
    prepare = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                numeric,
            ),
            (
                "cat",
                make_pipeline(
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False), StandardScaler()
                ),
                categorical,
            ),
        ]
    )

    def features(df: pd.DataFrame) -> pd.DataFrame:
        return df[numeric + categorical].fillna(dict.fromkeys(categorical, "__missing__"))

    y = train[label].to_numpy()
    weights = np.where(y == 1, model.training.positive_weight, 1.0)
    fitted = LogisticRegression(C=1 / (weights.sum() * model.reg_param), max_iter=10_000, tol=1e-8)
    fitted.fit(prepare.fit_transform(features(train)), y, sample_weight=weights)
    scores = fitted.predict_proba(prepare.transform(features(validation)))[:, 1]
    return float(roc_auc_score(validation[label], scores))


def test_validation_auc_matches_scikit_learn_on_the_same_split(
    spark: SparkSession, run: Run
) -> None:
    data = byo_training_data(spark, run.spec)
    try:
        train, validation = data.train.toPandas(), data.validation.toPandas()
    finally:
        data.labelled.unpersist()
    assert len(validation) == run.result.evaluation.rows
    sklearn_auc = _sklearn_auc(train, validation, run)
    assert abs(run.result.evaluation.roc_auc - sklearn_auc) <= 0.01
