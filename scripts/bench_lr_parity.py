"""Parity of the MLlib logistic engine with scikit-learn: ROC AUC, coefficients, wall times.

    .venv/bin/python scripts/bench_lr_parity.py                       # penguins + 100,000 rows
    .venv/bin/python scripts/bench_lr_parity.py --rows 20000 --spec conf/byo/penguins.yaml

Two data sets: (a) a BYO spec (default the penguins example: its input, label, split, features
and logistic settings; cross-validation picks regParam λ) and (b) ``--rows`` synthetic rows
(planted logistic model with nulls and a categorical; λ = ``--reg-param``). For each, MLlib is
fitted at λ alone (timed) and scikit-learn fits *the same design matrix*: the standardised
vectors the engine's fitted Spark pipeline produces (imputed, indicators, one-hot, scaled),
collected to the driver for this comparison only. Prints one table; exits 1 when the ROC AUCs
on the validation rows differ by more than 0.01 on either data set.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from profilehouse.config import load_environment  # noqa: E402
from profilehouse.logs import log_to_console  # noqa: E402
from profilehouse.models.byo import byo_training_data, load_byo_spec  # noqa: E402
from profilehouse.models.evaluation import evaluate_scores  # noqa: E402
from profilehouse.models.logistic import (  # noqa: E402
    FeatureSpec,
    LogisticModel,
    LogisticSettings,
    build_standardised_features,
    score_logistic,
    train_logistic,
)
from profilehouse.session import build_spark_session  # noqa: E402

MAX_AUC_DIFF = 0.01
T = TypeVar("T")
SYNTHETIC_FEATURES = FeatureSpec(
    numeric=("x1", "x2", "x3", "x4", "balance"), categorical=("segment",)
)


@dataclass(frozen=True)
class Case:
    """One data set: train and validation rows, label, features, settings."""

    name: str
    train: DataFrame
    validation: DataFrame
    label: str
    features: FeatureSpec
    settings: LogisticSettings


@dataclass(frozen=True)
class Parity:
    name: str
    train_rows: int
    validation_rows: int
    reg_param: float
    mllib_auc: float
    sklearn_auc: float
    max_coef_diff: float
    intercept_diff: float
    cv_seconds: float | None
    mllib_seconds: float
    sklearn_seconds: float

    @property
    def auc_diff(self) -> float:
        return self.mllib_auc - self.sklearn_auc


def sklearn_c(reg_param: float, weight_sum: float) -> float:
    """scikit-learn's C for MLlib's regParam λ on the same rows and weights.

    MLlib (binomial) minimises   (1/W) Σᵢ wᵢ·ℓᵢ(β) + λ·(α‖β‖₁ + (1 − α)/2·‖β‖²),  W = Σᵢ wᵢ
    scikit-learn minimises       C·Σᵢ sᵢ·ℓᵢ(β) + l1_ratio‖β‖₁ + (1 − l1_ratio)/2·‖β‖²
    Dividing MLlib's objective by λ gives scikit-learn's with sᵢ = wᵢ, l1_ratio = α and
    C = 1/(W·λ); unweighted, W = n: the familiar C = 1/(n·λ). Neither penalises the intercept.
    The penalty is on the standardised scale in both: the engine's StandardScaler makes the
    matrix the regression sees (``standardization=False``; MLlib's own standardisation would
    penalise β_j·σ_j on raw features, the same thing), and scikit-learn gets that same matrix.
    Note W is the sum of the *weights*: with balanced weighting W = 2·n_neg, not n.
    λ = 0 (no penalty) is C = ∞.
    """
    return math.inf if reg_param == 0 else 1.0 / (weight_sum * reg_param)


def penguin_case(spark: SparkSession, spec_path: Path) -> Case:
    spec = load_byo_spec(spec_path)
    data = byo_training_data(spark, spec)
    return Case(
        f"{spec.name} (spec)",
        data.train,
        data.validation,
        spec.label.column,
        spec.features,
        spec.logistic,
    )


def synthetic_case(spark: SparkSession, rows: int, reg_param: float, seed: int) -> Case:
    """A planted logistic model: four normal features, a skewed balance with 5% nulls, a
    six-level segment with 3% nulls; about 45% positives."""
    segment = F.floor(F.rand(seed + 5) * 6).cast("int")
    base = spark.range(rows).select(
        "id",
        *[F.randn(seed + i).alias(f"x{i}") for i in range(1, 5)],
        F.when(F.rand(seed + 6) > 0.05, F.exp(F.randn(seed + 7) + 3)).alias("balance"),
        F.when(F.rand(seed + 8) > 0.03, F.concat(F.lit("s"), segment)).alias("segment"),
        segment.alias("_segment"),
    )
    logit = (
        -1.2
        + 1.2 * F.col("x1")
        - 0.8 * F.col("x2")
        + 0.3 * F.col("x3")
        + 0.3 * F.log1p(F.coalesce("balance", F.lit(20.0)))
        + 0.25 * (F.col("_segment") - 2.5)
    )
    labelled = base.select(
        "*", (F.rand(seed + 9) < 1 / (1 + F.exp(-logit))).cast("int").alias("y")
    ).drop("_segment")
    train, validation = labelled.randomSplit([0.75, 0.25], seed=seed)
    settings = LogisticSettings(reg_params=(reg_param,), seed=seed)
    return Case(
        f"synthetic {rows:,}",
        train.cache(),
        validation.cache(),
        "y",
        SYNTHETIC_FEATURES,
        settings,
    )


def _timed(action: Callable[[], T]) -> tuple[T, float]:
    """The action's result and its wall time in seconds."""
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def _design(model: LogisticModel, df: DataFrame, label: str) -> tuple[np.ndarray, np.ndarray]:
    """The standardised design matrix and the labels, collected (benchmark only)."""
    frame = build_standardised_features(model, df, [label]).toPandas()
    return np.vstack(frame["features"].to_numpy()), frame[label].to_numpy().astype(int)


def compare(case: Case) -> Parity:
    """Choose λ (CV when the settings have a grid), refit MLlib at λ, fit scikit-learn on the
    same matrix at C = 1/(W·λ), and compare on the validation rows."""
    cv_seconds = None
    reg_param = case.settings.reg_params[0]
    if len(case.settings.reg_params) > 1:
        chosen, cv_seconds = _timed(
            lambda: train_logistic(case.train, case.label, case.features, case.settings)
        )
        reg_param = chosen.reg_param
    single = dataclasses.replace(case.settings, reg_params=(reg_param,))
    model, mllib_seconds = _timed(
        lambda: train_logistic(case.train, case.label, case.features, single)
    )
    scored = score_logistic(model, case.validation, [case.label])
    mllib_auc = evaluate_scores(scored, case.label).roc_auc

    x_train, y_train = _design(model, case.train, case.label)
    x_valid, y_valid = _design(model, case.validation, case.label)
    weights = np.where(y_train == 1, model.training.positive_weight, 1.0)
    alpha = case.settings.elastic_net
    sklearn = LogisticRegression(
        C=sklearn_c(reg_param, weights.sum()),
        l1_ratio=alpha,
        solver="lbfgs" if alpha == 0 else "saga",
        tol=1e-10,
        max_iter=100_000,
    )
    _, sklearn_seconds = _timed(lambda: sklearn.fit(x_train, y_train, sample_weight=weights))
    sklearn_auc = float(roc_auc_score(y_valid, sklearn.predict_proba(x_valid)[:, 1]))
    ours = np.array([c.coefficient for c in model.coefficients])
    return Parity(
        name=case.name,
        train_rows=len(y_train),
        validation_rows=len(y_valid),
        reg_param=reg_param,
        mllib_auc=mllib_auc,
        sklearn_auc=sklearn_auc,
        max_coef_diff=float(np.max(np.abs(ours - sklearn.coef_[0]))),
        intercept_diff=abs(model.intercept - float(sklearn.intercept_[0])),
        cv_seconds=cv_seconds,
        mllib_seconds=mllib_seconds,
        sklearn_seconds=sklearn_seconds,
    )


def table(results: list[Parity]) -> str:
    header = (
        f"{'data set':<24}{'train':>9}{'valid':>8}{'regParam':>10}{'MLlib AUC':>11}"
        f"{'sklearn AUC':>13}{'AUC diff':>10}{'max|Δcoef|':>12}{'|Δintercept|':>14}"
        f"{'CV s':>8}{'MLlib s':>9}{'sklearn s':>11}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        cv = f"{r.cv_seconds:.1f}" if r.cv_seconds is not None else "-"
        lines.append(
            f"{r.name:<24}{r.train_rows:>9,}{r.validation_rows:>8,}{r.reg_param:>10g}"
            f"{r.mllib_auc:>11.4f}{r.sklearn_auc:>13.4f}{r.auc_diff:>+10.4f}"
            f"{r.max_coef_diff:>12.2e}{r.intercept_diff:>14.2e}{cv:>8}"
            f"{r.mllib_seconds:>9.1f}{r.sklearn_seconds:>11.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "conf" / "byo" / "penguins.yaml")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic rows (0: skip)")
    parser.add_argument("--reg-param", type=float, default=0.001, help="synthetic regParam λ")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--env", default="local", help="environment profile for the session")
    args = parser.parse_args(argv)
    log_to_console()
    spark = build_spark_session(load_environment(args.env), app_name="profilehouse-bench-lr")
    cases = [penguin_case(spark, args.spec)]
    if args.rows > 0:
        cases.append(synthetic_case(spark, args.rows, args.reg_param, args.seed))
    results = [compare(case) for case in cases]
    print(table(results))
    worst = max(abs(r.auc_diff) for r in results)
    if worst > MAX_AUC_DIFF:
        print(f"FAIL: an AUC differs by {worst:.4f} > {MAX_AUC_DIFF}", file=sys.stderr)
        return 1
    print(f"ok: every |AUC diff| <= {MAX_AUC_DIFF}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
