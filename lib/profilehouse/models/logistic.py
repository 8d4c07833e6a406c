"""Binary logistic regression (MLlib) for propensity models and bring-your-own-data training.

:func:`train_logistic` fits one MLlib pipeline on a training DataFrame:

1. the label is checked (a column of 0/1 or true/false, no nulls, both classes present) and
   every feature column must exist;
2. two aggregates profile the features: a numeric column holding one value and no nulls is
   dropped as ``constant``, one with no value as ``all null`` (one value with nulls is kept:
   its missing indicator carries the information); a categorical column with one category
   (missing counting as one) likewise. Numeric columns with nulls (or NaNs) in the training
   data get a ``<col>__missing`` indicator; categorical columns keep their
   ``max_categories`` most frequent values (ties alphabetical), the rest fold into
   ``__other__``, and nulls become ``__missing__``;
3. the pipeline: a ``SQLTransformer`` (cast, NaN to null, indicators, category folding) →
   ``Imputer`` (median of the training data) → ``StringIndexer`` (``handleInvalid="keep"``) →
   ``OneHotEncoder`` (one column per category; a category unseen in training scores as
   ``__other__``: that column when training had one, else all zeros) →
   ``VectorAssembler`` → ``StandardScaler`` (mean 0, sample standard deviation 1) →
   ``LogisticRegression`` on the standardised vector (``standardization=False``: it already is);
4. ``class_weighting: balanced`` gives each positive the weight n_neg / n_pos (negatives 1), so
   both classes weigh the same in the loss;
5. the regularisation ``regParam`` is chosen by ``CrossValidator`` (area under ROC, seeded,
   parallelism 1) over ``reg_params`` on the training data; the best is refitted on all of it.
   A grid of one value is fitted directly (no cross-validation, ``cv_metrics`` empty).

The penalty applies on the standardised scale, so coefficients are comparable across features:
MLlib minimises ``(1/W) Σ wᵢ·logloss(i) + λ·(α‖β‖₁ + (1-α)/2‖β‖²)`` with W the sum of weights.

:func:`score_logistic` adds the probability of the positive class and reason codes: each
feature's contribution is the sum of coefficient × standardised value over its terms (a
numeric value and its missing indicator; a categorical's one-hot columns), i.e. how far the
feature moves this row's log-odds from those of an average row. The top positive ones are named
in business words; a categorical's reason names the row's category. Built from Spark
expressions over ``vector_to_array`` (no Python UDF).

Only small things reach the driver: label counts, per-feature min/max/null counts, the kept
categories, medians and coefficients. Nothing here reads or writes tables except
:meth:`LogisticModel.save` / :meth:`LogisticModel.load`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import reduce
from operator import add
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, ValidationError
from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel, Transformer
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import (
    Imputer,
    ImputerModel,
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from profilehouse import fs
from profilehouse.config import StrictModel, describe_validation_errors
from profilehouse.errors import ConfigError, SchemaError
from profilehouse.models.evaluation import binary_label_counts

log = logging.getLogger(__name__)

SCORE = "score"
REASONS = "reasons"
MISSING = "__missing__"
OTHER = "__other__"
MISSING_SUFFIX = "__missing"
CONSTANT = "constant"
ALL_NULL = "all null"
FORMAT_VERSION = 1
PIPELINE_DIR = "pipeline"
METADATA_FILE = "logistic.json"

_LABEL = "_lr_label"
_WEIGHT = "_lr_weight"
_ASSEMBLED = "_lr_assembled"
_SCALED = "_lr_scaled"
_RAW_PREDICTION = "_lr_raw_prediction"
_PROBABILITY = "_lr_probability"
_PREDICTION = "_lr_prediction"
_MEDIAN_RELATIVE_ERROR = 0.0001
_NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")

ClassWeighting = Literal["balanced", "none"]


# ---------------------------------------------------------------------------------------------
# specification and settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """The feature columns of a model and their business names for reason codes.

    ``reason_names``: feature column → words shown in reason codes (default: the column name).
    Raises ValueError when no feature is given, a column is listed twice, or a reason name is
    for a column that is not a feature.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    reason_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numeric", _names_tuple(self.numeric, "numeric"))
        object.__setattr__(self, "categorical", _names_tuple(self.categorical, "categorical"))
        object.__setattr__(self, "reason_names", dict(self.reason_names))
        problems = feature_spec_problems(self.numeric, self.categorical, self.reason_names)
        if problems:
            raise ValueError("invalid FeatureSpec: " + "; ".join(problems))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every feature column: numeric, then categorical."""
        return self.numeric + self.categorical

    def reason_name(self, column: str) -> str:
        """The business words for ``column`` (its name when none are given)."""
        return self.reason_names.get(column) or column

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "reason_names": dict(self.reason_names),
        }


def _names_tuple(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f"FeatureSpec.{what}: expected a sequence of column names, got {value!r}")
    return tuple(value)


def feature_spec_problems(
    numeric: Sequence[str], categorical: Sequence[str], reason_names: Mapping[str, str]
) -> list[str]:
    """Every problem of a feature list, each naming the list (``numeric.2``) and the column."""
    problems = []
    if not numeric and not categorical:
        problems.append("numeric: no features (list at least one numeric or categorical column)")
    seen: dict[str, str] = {}
    for kind, names in (("numeric", numeric), ("categorical", categorical)):
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name:
                problems.append(f"{kind}.{i}: expected a column name, got {name!r}")
            elif name in seen:
                problems.append(f"{kind}.{i}: {name!r} is already listed under {seen[name]}")
            else:
                seen[name] = kind
    for column in reason_names:
        if column not in seen:
            features = ", ".join(seen) or "none"
            problems.append(f"reason_names.{column}: not a feature (features: {features})")
    return problems


@dataclass(frozen=True)
class LogisticSettings:
    """How a logistic model is fitted: the regularisation grid, weighting and limits.

    ``reg_params``: the MLlib ``regParam`` values cross-validated (λ on the standardised scale);
    ``elastic_net``: α, 0 = ridge (L2), 1 = lasso (L1); ``class_weighting``: ``balanced``
    weighs positives by n_neg / n_pos, ``none`` weighs every row 1; ``max_categories``: the most
    frequent categories of a column kept, the rest fold into ``__other__``; ``tol``: LBFGS
    convergence tolerance. Raises ValueError on invalid values.
    """

    reg_params: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1)
    elastic_net: float = 0.0
    folds: int = 3
    class_weighting: ClassWeighting = "balanced"
    max_iter: int = 100
    seed: int = 42
    max_categories: int = 50
    tol: float = 1e-6

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(values["reg_params"], tuple):
            values["reg_params"] = list(values["reg_params"])
        problems = logistic_settings_problems(values, "LogisticSettings")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "reg_params", tuple(float(x) for x in self.reg_params))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "reg_params": list(self.reg_params)
        }


_NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _LogisticKeys(StrictModel):
    """The keys of a ``logistic:`` mapping; absent ones take :class:`LogisticSettings` defaults."""

    reg_params: Annotated[list[_NonNegative], Field(min_length=1)] | None = None
    elastic_net: Annotated[float, Field(ge=0, le=1)] | None = None
    folds: Annotated[StrictInt, Field(ge=2, le=20)] | None = None
    class_weighting: ClassWeighting | None = None
    max_iter: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    seed: StrictInt | None = None
    max_categories: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    tol: Annotated[float, Field(gt=0, lt=1)] | None = None


def logistic_settings_problems(mapping: Any, key: str = "logistic") -> list[str]:
    """Every problem of a ``logistic:`` settings mapping, each as ``<key>.<setting>: ...``
    naming the bad value and what is allowed (unknown keys list the allowed ones)."""
    if mapping is None:
        return []
    if not isinstance(mapping, Mapping):
        return [f"{key}: expected a mapping of settings, got {mapping!r}"]
    try:
        parsed = _LogisticKeys.model_validate(dict(mapping))
    except ValidationError as exc:
        return [f"{key}.{p}" for p in describe_validation_errors(exc, _LogisticKeys)]
    grid = parsed.reg_params or []
    repeated = sorted({x for x in grid if grid.count(x) > 1})
    if repeated:
        return [f"{key}.reg_params: {repeated} listed more than once (expected distinct values)"]
    return []


def load_logistic_settings(
    mapping: Mapping[str, Any] | None, where: str, key: str = "logistic"
) -> LogisticSettings:
    """:class:`LogisticSettings` from a parsed ``logistic:`` mapping (None: all defaults).

    ``where``: the file it came from. Raises ConfigError naming ``where`` and every bad key as
    ``<key>.<setting>``, its value and what is allowed.
    """
    problems = logistic_settings_problems(mapping, key)
    if problems:
        raise ConfigError(where, problems)
    values = _LogisticKeys.model_validate(dict(mapping or {})).model_dump(exclude_none=True)
    if "reg_params" in values:
        values["reg_params"] = tuple(values["reg_params"])
    return LogisticSettings(**values)


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coefficient:
    """One expanded feature's coefficient on the standardised scale.

    ``category``: None for a numeric value, ``__missing__`` for a numeric column's missing
    indicator, else the one-hot category (``__missing__`` / ``__other__`` included).
    """

    feature: str
    category: str | None
    coefficient: float

    @property
    def term(self) -> str:
        """``feature``, ``feature__missing`` or ``feature=category``."""
        if self.category is None:
            return self.feature
        return f"{self.feature}=" + self.category


@dataclass(frozen=True)
class TrainingCounts:
    """Rows of the training data, its positives, and the weight each positive got."""

    rows: int
    positives: int
    positive_weight: float

    @property
    def negatives(self) -> int:
        return self.rows - self.positives


@dataclass(frozen=True)
class LogisticModel:
    """A fitted logistic model: the Spark pipeline and what it was fitted from.

    ``used_numeric`` / ``used_categorical``: the features left after dropping (``dropped``:
    column → ``constant`` / ``all null``); ``indicators``: numeric columns with a missing
    indicator; ``medians``: the imputed value of each used numeric column; ``categories``: the
    one-hot categories of each used categorical column; ``cv_metrics``: reg_param → mean
    cross-validated area under ROC (empty when the grid had one value).
    """

    pipeline: PipelineModel
    features: FeatureSpec
    label: str
    settings: LogisticSettings
    used_numeric: tuple[str, ...]
    used_categorical: tuple[str, ...]
    indicators: tuple[str, ...]
    dropped: Mapping[str, str]
    medians: Mapping[str, float]
    categories: Mapping[str, tuple[str, ...]]
    reg_param: float
    cv_metrics: Mapping[float, float]
    coefficients: tuple[Coefficient, ...]
    intercept: float
    training: TrainingCounts

    @property
    def used_columns(self) -> tuple[str, ...]:
        """The input columns scoring needs."""
        return self.used_numeric + self.used_categorical

    def coefficient(self, feature: str, category: str | None = None) -> float:
        """The coefficient of ``feature`` (and ``category``); KeyError when there is none."""
        for c in self.coefficients:
            if c.feature == feature and c.category == category:
                return c.coefficient
        raise KeyError((feature, category))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON): everything but the Spark pipeline."""
        return {
            "format_version": FORMAT_VERSION,
            "label": self.label,
            "features": self.features.to_dict(),
            "settings": self.settings.to_dict(),
            "used_numeric": list(self.used_numeric),
            "used_categorical": list(self.used_categorical),
            "indicators": list(self.indicators),
            "dropped": dict(self.dropped),
            "medians": dict(self.medians),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "reg_param": self.reg_param,
            "cv_metrics": [[k, v] for k, v in self.cv_metrics.items()],
            "coefficients": [
                {"feature": c.feature, "category": c.category, "coefficient": c.coefficient}
                for c in self.coefficients
            ],
            "intercept": self.intercept,
            "training": {
                "rows": self.training.rows,
                "positives": self.training.positives,
                "positive_weight": self.training.positive_weight,
            },
        }

    def save(self, path: str) -> None:
        """Write the pipeline (``<path>/pipeline``) and the metadata (``<path>/logistic.json``),
        replacing a model saved there before. ``path``: any Hadoop-compatible URI."""
        root = path.rstrip("/")
        self.pipeline.write().overwrite().save(f"{root}/{PIPELINE_DIR}")
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        fs.write_text(_active_spark(), f"{root}/{METADATA_FILE}", text)

    @classmethod
    def load(cls, path: str) -> LogisticModel:
        """A model written by :meth:`save`; SchemaError when ``path`` holds none."""
        root = path.rstrip("/")
        text = fs.read_text(_active_spark(), f"{root}/{METADATA_FILE}")
        if text is None:
            raise SchemaError(f"no logistic model at {root} (expected {METADATA_FILE} there)")
        meta = json.loads(text)
        if meta.get("format_version") != FORMAT_VERSION:
            raise SchemaError(
                f"{root}/{METADATA_FILE}: format_version {meta.get('format_version')!r}, "
                f"expected {FORMAT_VERSION}"
            )
        return _model_from_metadata(PipelineModel.load(f"{root}/{PIPELINE_DIR}"), meta)


def _active_spark() -> SparkSession:
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError("saving or loading a logistic model needs an active Spark session")
    return spark


def _model_from_metadata(pipeline: PipelineModel, meta: Mapping[str, Any]) -> LogisticModel:
    spec = meta["features"]
    features = FeatureSpec(
        tuple(spec["numeric"]), tuple(spec["categorical"]), dict(spec["reason_names"])
    )
    settings_values = dict(meta["settings"])
    settings_values["reg_params"] = tuple(settings_values["reg_params"])
    training = meta["training"]
    return LogisticModel(
        pipeline=pipeline,
        features=features,
        label=meta["label"],
        settings=LogisticSettings(**settings_values),
        used_numeric=tuple(meta["used_numeric"]),
        used_categorical=tuple(meta["used_categorical"]),
        indicators=tuple(meta["indicators"]),
        dropped=dict(meta["dropped"]),
        medians={k: float(v) for k, v in meta["medians"].items()},
        categories={k: tuple(v) for k, v in meta["categories"].items()},
        reg_param=float(meta["reg_param"]),
        cv_metrics={float(k): float(v) for k, v in meta["cv_metrics"]},
        coefficients=tuple(
            Coefficient(c["feature"], c["category"], float(c["coefficient"]))
            for c in meta["coefficients"]
        ),
        intercept=float(meta["intercept"]),
        training=TrainingCounts(
            int(training["rows"]), int(training["positives"]), float(training["positive_weight"])
        ),
    )


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Profile:
    """What the training data says about the features: the kept ones, which numeric columns
    get a missing indicator, each kept categorical's kept values, and the dropped columns."""

    numeric: tuple[str, ...]
    indicators: tuple[str, ...]
    kept_values: Mapping[str, tuple[str, ...]]
    dropped: Mapping[str, str]

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(self.kept_values)


def train_logistic(
    train: DataFrame,
    label: str,
    features: FeatureSpec,
    settings: LogisticSettings | None = None,
) -> LogisticModel:
    """Fit a binary logistic model of ``label`` on ``features`` (see the module docstring).

    ``label``: a numeric column of 0/1 or a boolean column, without nulls. Raises SchemaError
    naming the column when the label or a feature column is missing, the label is not binary,
    has nulls or one class only, a numeric feature is not a number, or every feature is dropped.
    """
    settings = settings or LogisticSettings()
    validate_training_columns(train, label, features)
    counts = binary_label_counts(train, label, "the training data")
    if counts.positives == 0 or counts.negatives == 0:
        raise SchemaError(
            f"label column {label!r} has one class only in the training data "
            f"({counts.positives} rows of 1, {counts.negatives} of 0): a model needs both"
        )
    profile = _feature_profile(train, features, settings.max_categories)
    weight = _positive_weight(counts.positives, counts.negatives, settings.class_weighting)
    rows = _training_rows(train, label, profile, weight).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        pipeline, regression = _pipeline(profile, settings)
        fitted, reg_param, cv_metrics = _fit_pipeline(pipeline, regression, rows, settings)
    finally:
        rows.unpersist()
    training = TrainingCounts(counts.rows, counts.positives, weight)
    choice = (reg_param, cv_metrics)
    model = _fitted_model(fitted, features, label, settings, profile, training, choice)
    log.info(
        "logistic %s: %d rows (%d positive, weight %.3g), %d features used, %s dropped, "
        "regParam %g (CV AUC %s)",
        label,
        counts.rows,
        counts.positives,
        weight,
        len(model.used_columns),
        len(model.dropped),
        reg_param,
        ", ".join(f"{k:g}: {v:.4f}" for k, v in cv_metrics.items()) or "no CV",
    )
    return model


def validate_training_columns(train: DataFrame, label: str, features: FeatureSpec) -> None:
    """Raise SchemaError when the label or a feature column is missing, the label is also a
    feature, or a numeric feature is not a number or boolean; names every such column."""
    types = dict(train.dtypes)
    present = ", ".join(train.columns)
    problems = []
    if label not in types:
        problems.append(f"label column {label!r} is not in the training data")
    if label in features.columns:
        problems.append(f"label column {label!r} is also listed as a feature")
    for column in features.columns:
        if column not in types:
            problems.append(f"feature column {column!r} is not in the training data")
    for column in features.numeric:
        if column in types and types[column] not in _NUMERIC_TYPES:
            problems.append(
                f"numeric feature {column!r} is {types[column]}, expected a number or boolean "
                "(list it under categorical?)"
            )
    if problems:
        raise SchemaError("; ".join(problems) + f" (columns: {present})")


def _positive_weight(positives: int, negatives: int, weighting: ClassWeighting) -> float:
    """The weight of each positive row (negatives weigh 1): n_neg / n_pos when balanced."""
    return negatives / positives if weighting == "balanced" else 1.0


def _numeric_expr(column: str) -> Column:
    """``column`` as a double, NaN as null."""
    value = F.col(column).cast("double")
    return F.when(~F.isnan(value), value)


def _category_expr(column: str) -> Column:
    """``column`` as a string, null as ``__missing__``."""
    return F.coalesce(F.col(column).cast("string"), F.lit(MISSING))


def _feature_profile(train: DataFrame, features: FeatureSpec, max_categories: int) -> _Profile:
    """The kept and dropped features, indicators and kept categories (SchemaError when every
    feature is dropped)."""
    dropped: dict[str, str] = {}
    numeric, indicators = [], []
    for column, (non_null, rows, low, high) in _numeric_stats(train, features.numeric).items():
        if non_null == 0:
            dropped[column] = ALL_NULL
        elif low == high and non_null == rows:
            dropped[column] = CONSTANT
        else:
            numeric.append(column)
            if non_null < rows:
                indicators.append(column)
    kept_values = {}
    for column, values in _category_values(train, features.categorical, max_categories).items():
        distinct, kept = values
        if distinct <= 1:
            dropped[column] = ALL_NULL if kept == (MISSING,) else CONSTANT
        else:
            kept_values[column] = kept
    if dropped:
        log.info("features dropped: %s", ", ".join(f"{c} ({r})" for c, r in dropped.items()))
    if not numeric and not kept_values:
        raise SchemaError(
            "every feature was dropped: "
            + ", ".join(f"{c} ({r})" for c, r in dropped.items())
            + " (a model needs at least one feature that varies)"
        )
    return _Profile(tuple(numeric), tuple(indicators), kept_values, dropped)


def _numeric_stats(
    train: DataFrame, columns: Sequence[str]
) -> dict[str, tuple[int, int, float | None, float | None]]:
    """Per numeric column: values that are not null or NaN, rows, min and max (one job)."""
    if not columns:
        return {}
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, column in enumerate(columns):
        value = _numeric_expr(column)
        aggregates += [
            F.count(value).alias(f"n{i}"),
            F.min(value).alias(f"lo{i}"),
            F.max(value).alias(f"hi{i}"),
        ]
    row = train.agg(*aggregates).first()
    return {
        c: (row[f"n{i}"], row["rows"], row[f"lo{i}"], row[f"hi{i}"]) for i, c in enumerate(columns)
    }


def _category_values(
    train: DataFrame, columns: Sequence[str], max_categories: int
) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Per categorical column: its number of distinct values (``__missing__`` counting as one)
    and the kept values: the ``max_categories`` most frequent (ties alphabetical), then
    ``__missing__`` when present, then ``__other__`` when values were left out. Only the kept
    values reach the driver."""
    if not columns:
        return {}
    pairs = F.explode(
        F.array(
            *[
                F.struct(F.lit(i).alias("f"), _category_expr(c).alias("v"))
                for i, c in enumerate(columns)
            ]
        )
    )
    counted = train.select(pairs.alias("p")).select("p.f", "p.v").groupBy("f", "v").count()
    is_missing = F.col("v") == MISSING
    order = Window.partitionBy("f").orderBy(is_missing, F.desc("count"), "v")
    ranked = counted.select(
        "f",
        "v",
        is_missing.alias("missing"),
        F.row_number().over(order).alias("rank"),
        F.count(F.lit(1)).over(Window.partitionBy("f")).alias("distinct"),
    )
    rows = (
        ranked.where((F.col("rank") <= max_categories) | is_missing).orderBy("f", "rank").collect()
    )
    result = {}
    for i, column in enumerate(columns):
        mine = [r for r in rows if r["f"] == i]
        distinct = mine[0]["distinct"] if mine else 0
        real = [r["v"] for r in mine if not r["missing"]]
        kept = tuple(real) + ((MISSING,) if any(r["missing"] for r in mine) else ())
        folded = distinct - len(kept) > 0
        result[column] = (distinct, kept + ((OTHER,) if folded else ()))
    return result


def _training_rows(train: DataFrame, label: str, profile: _Profile, weight: float) -> DataFrame:
    """The used feature columns, the label as a double and each row's weight."""
    y = F.col(label).cast("double")
    return train.select(
        *[F.col(c) for c in profile.numeric + profile.categorical],
        y.alias(_LABEL),
        F.when(y == 1, F.lit(weight)).otherwise(F.lit(1.0)).alias(_WEIGHT),
    )


def _num(i: int) -> str:
    return f"_lr_num_{i}"


def _imputed(i: int) -> str:
    return f"_lr_imputed_{i}"


def _missing(i: int) -> str:
    return f"_lr_missing_{i}"


def _cat(j: int) -> str:
    return f"_lr_cat_{j}"


def _index(j: int) -> str:
    return f"_lr_index_{j}"


def _onehot(j: int) -> str:
    return f"_lr_onehot_{j}"


def _quoted(column: str) -> str:
    """``column`` as a Spark SQL identifier."""
    return "`" + column.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """``value`` as a Spark SQL string literal (backslashes and quotes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _prepare_sql(profile: _Profile) -> str:
    """The SQLTransformer statement: numeric columns as doubles (NaN as null), missing
    indicators, categories as strings folded to the kept values (else ``__other__``)."""
    parts = []
    for i, column in enumerate(profile.numeric):
        value = f"CAST({_quoted(column)} AS DOUBLE)"
        parts.append(f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END AS {_num(i)}")
        if column in profile.indicators:
            parts.append(
                f"CASE WHEN {value} IS NULL OR isnan({value}) THEN 1.0D ELSE 0.0D END "
                f"AS {_missing(i)}"
            )
    for j, (column, kept) in enumerate(profile.kept_values.items()):
        value = f"COALESCE(CAST({_quoted(column)} AS STRING), {sql_string(MISSING)})"
        listed = ", ".join(sql_string(v) for v in kept)
        parts.append(
            f"CASE WHEN {value} IN ({listed}) THEN {value} ELSE {sql_string(OTHER)} END "
            f"AS {_cat(j)}"
        )
    return f"SELECT *, {', '.join(parts)} FROM __THIS__"


def _assembled_inputs(profile: _Profile) -> list[str]:
    """The assembler's inputs in term order: values, missing indicators, one-hot vectors."""
    values = [_imputed(i) for i in range(len(profile.numeric))]
    flags = [_missing(i) for i, c in enumerate(profile.numeric) if c in profile.indicators]
    return values + flags + [_onehot(j) for j in range(len(profile.categorical))]


def _pipeline(profile: _Profile, settings: LogisticSettings) -> tuple[Pipeline, LogisticRegression]:
    n, m = len(profile.numeric), len(profile.categorical)
    stages: list[Any] = [SQLTransformer(statement=_prepare_sql(profile))]
    if n:
        stages.append(
            Imputer(
                strategy="median",
                relativeError=_MEDIAN_RELATIVE_ERROR,
                inputCols=[_num(i) for i in range(n)],
                outputCols=[_imputed(i) for i in range(n)],
            )
        )
    if m:
        stages.append(
            StringIndexer(
                inputCols=[_cat(j) for j in range(m)],
                outputCols=[_index(j) for j in range(m)],
                handleInvalid="keep",
                stringOrderType="frequencyDesc",
            )
        )
        # the indexer (handleInvalid keep) declares one value more than it saw, "__unknown",
        # given to unseen categories; dropLast removes that one: every category seen in
        # training gets a column and an unseen one is all zeros
        stages.append(
            OneHotEncoder(
                inputCols=[_index(j) for j in range(m)],
                outputCols=[_onehot(j) for j in range(m)],
                dropLast=True,
            )
        )
    stages.append(VectorAssembler(inputCols=_assembled_inputs(profile), outputCol=_ASSEMBLED))
    stages.append(
        StandardScaler(withMean=True, withStd=True, inputCol=_ASSEMBLED, outputCol=_SCALED)
    )
    regression = LogisticRegression(
        featuresCol=_SCALED,
        labelCol=_LABEL,
        weightCol=_WEIGHT,
        predictionCol=_PREDICTION,
        probabilityCol=_PROBABILITY,
        rawPredictionCol=_RAW_PREDICTION,
        family="binomial",
        standardization=False,
        regParam=settings.reg_params[0],
        elasticNetParam=settings.elastic_net,
        maxIter=settings.max_iter,
        tol=settings.tol,
    )
    stages.append(regression)
    return Pipeline(stages=stages), regression


def _fit_pipeline(
    pipeline: Pipeline, regression: LogisticRegression, rows: DataFrame, settings: LogisticSettings
) -> tuple[PipelineModel, float, dict[float, float]]:
    """The fitted pipeline, the chosen regParam and the mean CV area under ROC of each."""
    if len(settings.reg_params) == 1:
        return pipeline.fit(rows), settings.reg_params[0], {}
    grid = ParamGridBuilder().addGrid(regression.regParam, list(settings.reg_params)).build()
    validator = CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=grid,
        evaluator=BinaryClassificationEvaluator(
            rawPredictionCol=_RAW_PREDICTION, labelCol=_LABEL, metricName="areaUnderROC"
        ),
        numFolds=settings.folds,
        seed=settings.seed,
        parallelism=1,
    )
    fitted = validator.fit(rows)
    metrics = [float(x) for x in fitted.avgMetrics]
    best = max(range(len(metrics)), key=lambda k: (metrics[k], -k))  # the first best, as CV
    return (
        fitted.bestModel,
        settings.reg_params[best],
        dict(zip(settings.reg_params, metrics, strict=True)),
    )


def _fitted_model(
    fitted: PipelineModel,
    features: FeatureSpec,
    label: str,
    settings: LogisticSettings,
    profile: _Profile,
    training: TrainingCounts,
    choice: tuple[float, Mapping[float, float]],
) -> LogisticModel:
    """The model from the fitted pipeline; ``choice``: the chosen regParam and the CV AUCs."""
    reg_param, cv_metrics = choice
    categories = _fitted_categories(fitted, profile)
    regression = fitted.stages[-1]
    values = regression.coefficients.toArray()
    terms = _terms(profile, categories)
    if len(terms) != len(values):
        raise AssertionError(f"{len(values)} coefficients for {len(terms)} terms")
    return LogisticModel(
        pipeline=fitted,
        features=features,
        label=label,
        settings=settings,
        used_numeric=profile.numeric,
        used_categorical=profile.categorical,
        indicators=profile.indicators,
        dropped=dict(profile.dropped),
        medians=_fitted_medians(fitted, profile),
        categories=categories,
        reg_param=float(reg_param),
        cv_metrics=dict(cv_metrics),
        coefficients=tuple(
            Coefficient(f, c, float(v)) for (f, c), v in zip(terms, values, strict=True)
        ),
        intercept=float(regression.intercept),
        training=training,
    )


def _stage(fitted: PipelineModel, kind: type[Transformer]) -> Any:
    return next((s for s in fitted.stages if isinstance(s, kind)), None)


def _fitted_categories(fitted: PipelineModel, profile: _Profile) -> dict[str, tuple[str, ...]]:
    """Each used categorical column → its one-hot categories, in vector order."""
    indexer = _stage(fitted, StringIndexerModel)
    if indexer is None:
        return {}
    labels = indexer.labelsArray
    return {c: tuple(labels[j]) for j, c in enumerate(profile.categorical)}


def _fitted_medians(fitted: PipelineModel, profile: _Profile) -> dict[str, float]:
    """Each used numeric column → the median the imputer fills its nulls with (one row)."""
    imputer = _stage(fitted, ImputerModel)
    if imputer is None:
        return {}
    row = imputer.surrogateDF.first()
    return {c: float(row[_num(i)]) for i, c in enumerate(profile.numeric)}


def _terms(
    profile: _Profile, categories: Mapping[str, tuple[str, ...]]
) -> list[tuple[str, str | None]]:
    """(feature, category) of each vector position, as :func:`_assembled_inputs` orders them."""
    values: list[tuple[str, str | None]] = [(c, None) for c in profile.numeric]
    flags: list[tuple[str, str | None]] = [(c, MISSING) for c in profile.indicators]
    onehot = [(c, v) for c in profile.categorical for v in categories[c]]
    return values + flags + onehot


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


def score_logistic(
    model: LogisticModel, df: DataFrame, keep: Sequence[str], top_reasons: int = 3
) -> DataFrame:
    """``keep`` columns, ``score`` (P(label = 1), double) and ``reasons``: up to
    ``top_reasons`` features with a positive contribution, largest first, as
    ``array<struct<feature: string, name: string, contribution: double>>``.

    ``df`` needs the model's used feature columns (dropped ones may be absent); unseen
    categories and nulls are scored (as ``__other__`` / imputed). Raises SchemaError naming
    the missing columns.
    """
    validate_scoring_columns(df, model, keep)
    if top_reasons < 0:
        raise ValueError(f"top_reasons must be 0 or more, got {top_reasons}")
    scored = model.pipeline.transform(df)
    return scored.select(
        *[F.col(c) for c in keep],
        score_expr().alias(SCORE),
        reasons_expr(model, top_reasons).alias(REASONS),
    )


def validate_scoring_columns(df: DataFrame, model: LogisticModel, keep: Sequence[str]) -> None:
    """Raise SchemaError when a used feature or ``keep`` column is missing from ``df``, or
    ``keep`` holds ``score`` / ``reasons``."""
    missing = [c for c in (*model.used_columns, *keep) if c not in df.columns]
    if missing:
        raise SchemaError(
            f"cannot score: no column(s) {', '.join(dict.fromkeys(missing))} "
            f"(columns: {', '.join(df.columns)})"
        )
    clashing = [c for c in keep if c in (SCORE, REASONS)]
    if clashing:
        raise SchemaError(f"cannot keep column(s) {', '.join(clashing)}: the output adds them")


def score_expr() -> Column:
    """P(label = 1) from the fitted pipeline's probability vector."""
    return vector_to_array(F.col(_PROBABILITY)).getItem(1)


def reasons_expr(model: LogisticModel, top: int) -> Column:
    """The top ``top`` positive feature contributions of a transformed row, largest first
    (ties by feature name); see the module docstring."""
    scaled = vector_to_array(F.col(_SCALED))
    items = [
        F.struct(
            F.lit(feature).alias("feature"),
            _reason_name_expr(model, feature).alias("name"),
            _contribution_expr(model, feature, scaled).alias("contribution"),
        )
        for feature in model.used_columns
    ]
    positive = F.filter(F.array(*items), lambda r: r["contribution"] > 0)
    ordered = F.array_sort(positive, _larger_contribution_first)
    return F.slice(ordered, 1, top) if top > 0 else F.filter(ordered, lambda _r: F.lit(False))


def _larger_contribution_first(left: Column, right: Column) -> Column:
    a, b = left["contribution"], right["contribution"]
    return (
        F.when(a > b, -1)
        .when(a < b, 1)
        .when(left["feature"] < right["feature"], -1)
        .when(left["feature"] > right["feature"], 1)
        .otherwise(0)
    )


def _contribution_expr(model: LogisticModel, feature: str, scaled: Column) -> Column:
    """Σ coefficient × standardised value over ``feature``'s terms."""
    products = [
        F.lit(c.coefficient) * scaled.getItem(k)
        for k, c in enumerate(model.coefficients)
        if c.feature == feature
    ]
    return reduce(add, products)


def _reason_name_expr(model: LogisticModel, feature: str) -> Column:
    """The feature's business words; ``<words>: missing`` for a null numeric value with an
    indicator; ``<words>: <category>`` for a categorical (``missing`` / ``other``)."""
    words = model.features.reason_name(feature)
    if feature in model.used_categorical:
        category = F.col(_cat(model.used_categorical.index(feature)))
        shown = (
            F.when(category == MISSING, F.lit("missing"))
            .when(category == OTHER, F.lit("other"))
            .otherwise(category)
        )
        return F.concat(F.lit(f"{words}: "), shown)
    if feature in model.indicators:
        flag = F.col(_missing(model.used_numeric.index(feature)))
        return F.when(flag == 1.0, F.lit(f"{words}: missing")).otherwise(F.lit(words))
    return F.lit(words)


def build_standardised_features(
    model: LogisticModel, df: DataFrame, keep: Sequence[str]
) -> DataFrame:
    """``keep`` columns and ``features``: the standardised vector the regression sees, as
    ``array<double>`` in the order of :attr:`LogisticModel.coefficients` (for parity checks
    against other libraries)."""
    validate_scoring_columns(df, model, keep)
    transformed = model.pipeline.transform(df)
    return transformed.select(
        *[F.col(c) for c in keep], vector_to_array(F.col(_SCALED)).alias("features")
    )
