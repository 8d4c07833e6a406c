"""Bring your own data: a YAML spec names a table, a label and features; train, evaluate, score.

A spec (``conf/byo/*.yaml``, see ``conf/byo/penguins.yaml``) declares:

- ``name``: the model's name (letters, digits, ``_``);
- ``input``: ``path``, ``format`` (``delta`` | ``parquet`` | ``csv``), reader ``options``
  (``header``, ``nullValue``, ``inferSchema`` ... for csv) and ``row_id``: a column added to
  number the rows, for inputs without an id (``monotonically_increasing_id``: stable while the
  files are unchanged);
- ``label``: ``column`` and optionally ``positive``: the value(s) meaning 1 (any other value is
  0, null stays null); without it the column must hold 0/1 or true/false. Rows with a null
  label are left out (and counted in the report);
- ``id``: columns kept beside the scores; ``numeric`` and ``categorical`` feature lists;
  ``reason_names``: feature → business words for reason codes;
- ``split``: ``validation_fraction`` (a random split, ``seed``) or ``column`` + ``cutoff`` (a
  time split: rows at or before the cutoff train, later ones validate, nulls are left out);
  default: a random 25% (seed 42);
- ``logistic``: :class:`~profilehouse.models.logistic.LogisticSettings` keys;
- ``output.path``: the folder receiving ``model/`` and ``report.json`` / ``report.md``;
- ``score`` (optional): an ``input`` like the one above, ``output.path`` and ``output.format``
  (``delta`` | ``parquet``, default delta) and ``top_reasons``.

Paths are URIs, absolute, or relative to the project root; ``package:<package>/<file>`` names
a file shipped inside an installed Python package (example data such as palmerpenguins).
:func:`load_byo_spec` reports every problem of a spec at once, each naming the file and key.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io, fs
from profilehouse.catalog import Layer, TableRef
from profilehouse.config import PROJECT_ROOT, StrictModel, parse_model, read_yaml
from profilehouse.errors import ConfigError, SchemaError
from profilehouse.models.evaluation import EvaluationReport, evaluate_scores
from profilehouse.models.logistic import (
    REASONS,
    SCORE,
    FeatureSpec,
    LogisticModel,
    LogisticSettings,
    feature_spec_problems,
    load_logistic_settings,
    logistic_settings_problems,
    score_logistic,
    train_logistic,
)

log = logging.getLogger(__name__)

PACKAGE_SCHEME = "package:"
MODEL_DIR = "model"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
DEFAULT_VALIDATION_FRACTION = 0.25
_REPORT_COEFFICIENTS = 20  # the markdown report lists this many largest coefficients

LabelValue = str | int | float | bool


# ---------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------


class InputSpec(StrictModel):
    """A table to read: path, format, reader options, optional row id column."""

    path: str = Field(min_length=1)
    format: Literal["delta", "parquet", "csv"] = "delta"
    options: dict[str, LabelValue] = Field(default_factory=dict)
    row_id: str | None = Field(default=None, min_length=1)


class LabelSpec(StrictModel):
    """The label column and the value(s) meaning positive (none: the column is 0/1)."""

    column: str = Field(min_length=1)
    positive: list[LabelValue] | None = Field(default=None, min_length=1)

    @field_validator("positive", mode="before")
    @classmethod
    def _one_value_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | int | float | bool) else value


class SplitSpec(StrictModel):
    """Random (``validation_fraction``, ``seed``) or time (``column``, ``cutoff``) split."""

    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    seed: int = 42
    column: str | None = Field(default=None, min_length=1)
    cutoff: dt.datetime | dt.date | int | float | str | None = None

    @property
    def is_time_split(self) -> bool:
        return self.column is not None

    def describe(self) -> str:
        if self.is_time_split:
            return f"time split on {self.column}: up to {self.cutoff} trains, later validates"
        fraction = self.validation_fraction or DEFAULT_VALIDATION_FRACTION
        return f"random split: {fraction:.0%} validates (seed {self.seed})"


class OutputSpec(StrictModel):
    path: str = Field(min_length=1)


class ScoreOutputSpec(StrictModel):
    path: str = Field(min_length=1)
    format: Literal["delta", "parquet"] = "delta"


class ScoreSpec(StrictModel):
    """A table to score with the saved model, and where the scores go."""

    input: InputSpec
    output: ScoreOutputSpec
    top_reasons: int = Field(default=3, ge=0, le=50)


class _SpecFile(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    description: str = ""
    input: InputSpec
    label: LabelSpec
    id: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    reason_names: dict[str, str] = Field(default_factory=dict)
    split: SplitSpec = Field(default_factory=SplitSpec)
    logistic: dict[str, Any] | None = None
    output: OutputSpec
    score: ScoreSpec | None = None


@dataclass(frozen=True)
class ByoSpec:
    """A loaded spec, paths resolved (see the module docstring)."""

    source: str
    name: str
    description: str
    input: InputSpec
    label: LabelSpec
    ids: tuple[str, ...]
    features: FeatureSpec
    split: SplitSpec
    logistic: LogisticSettings
    output: str
    score: ScoreSpec | None

    @property
    def model_path(self) -> str:
        return f"{self.output}/{MODEL_DIR}"

    @property
    def report_paths(self) -> tuple[str, str]:
        """report.json and report.md."""
        return f"{self.output}/{REPORT_JSON}", f"{self.output}/{REPORT_MD}"


def load_byo_spec(path: str | Path) -> ByoSpec:
    """Load and validate a BYO spec; ConfigError naming the file and every bad key at once:
    each key's own value (and every ``logistic`` setting), then, when those are valid, the
    checks across keys (features listed twice, the label among the features, reason names of
    no feature, id columns, the split, package paths that do not exist)."""
    source = str(path)
    data = read_yaml(path)
    problems: list[str] = []
    raw: _SpecFile | None = None
    try:
        raw = parse_model({k: v for k, v in data.items() if k != "logistic"}, _SpecFile, source)
    except ConfigError as exc:
        problems += exc.problems
    problems += logistic_settings_problems(data.get("logistic"), "logistic")
    if raw is not None:
        problems += _spec_problems(raw)
    if problems or raw is None:
        raise ConfigError(source, problems)
    return ByoSpec(
        source=source,
        name=raw.name,
        description=raw.description,
        input=_resolved_input(raw.input),
        label=raw.label,
        ids=tuple(raw.id),
        features=FeatureSpec(tuple(raw.numeric), tuple(raw.categorical), raw.reason_names),
        split=raw.split,
        logistic=load_logistic_settings(data.get("logistic"), source),
        output=resolve_location(raw.output.path).rstrip("/"),
        score=_resolved_score(raw.score),
    )


def _spec_problems(raw: _SpecFile) -> list[str]:
    """Problems across keys: features, label, ids, split and paths."""
    problems = feature_spec_problems(raw.numeric, raw.categorical, raw.reason_names)
    features = set(raw.numeric) | set(raw.categorical)
    if raw.label.column in features:
        problems.append(f"label.column: {raw.label.column!r} is also listed as a feature")
    for i, column in enumerate(raw.id):
        if column in (SCORE, REASONS):
            problems.append(f"id.{i}: {column!r} is a column the scores add (rename it)")
        elif column in raw.id[:i]:
            problems.append(f"id.{i}: {column!r} is listed twice")
    problems += _split_problems(raw.split)
    problems += _location_problems("input.path", raw.input.path)
    if raw.score is not None:
        problems += _location_problems("score.input.path", raw.score.input.path)
    return problems


def _split_problems(split: SplitSpec) -> list[str]:
    if split.validation_fraction is not None and split.column is not None:
        return [
            "split: give validation_fraction (a random split) or column and cutoff (a time "
            "split), not both"
        ]
    if (split.column is None) != (split.cutoff is None):
        given, needed = ("column", "cutoff") if split.cutoff is None else ("cutoff", "column")
        return [f"split.{needed}: required with split.{given} (a time split needs both)"]
    return []


def _location_problems(key: str, location: str) -> list[str]:
    try:
        resolve_location(location)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        return [f"{key}: {exc}"]
    return []


def resolve_location(location: str) -> str:
    """``location`` as an absolute path or URI: ``package:<pkg>/<file>`` is a file inside an
    installed package; relative paths are relative to the project root. Raises
    ModuleNotFoundError / FileNotFoundError for a package path that does not exist."""
    if location.startswith(PACKAGE_SCHEME):
        return _package_file(location.removeprefix(PACKAGE_SCHEME))
    if "://" in location or location.startswith("/"):
        return location
    return str(PROJECT_ROOT / location)


def _package_file(reference: str) -> str:
    package, _, inner = reference.partition("/")
    try:
        files = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed (pip install {package})"
        ) from None
    target = files.joinpath(inner)
    if not inner or not target.is_file():
        raise FileNotFoundError(f"no file {inner!r} in package {package!r}")
    return str(target)


def _resolved_input(spec: InputSpec) -> InputSpec:
    return spec.model_copy(update={"path": resolve_location(spec.path)})


def _resolved_score(spec: ScoreSpec | None) -> ScoreSpec | None:
    if spec is None:
        return None
    output = spec.output.model_copy(update={"path": resolve_location(spec.output.path)})
    return spec.model_copy(update={"input": _resolved_input(spec.input), "output": output})


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def read_input(spark: SparkSession, spec: InputSpec, name: str = "byo") -> DataFrame:
    """The input table, with the ``row_id`` column added when the spec asks for one."""
    if spec.format == "delta":
        df = delta_io.read_table(spark, _table_ref(name, spec.path))
    else:
        reader = spark.read.format(spec.format)
        for key, value in spec.options.items():
            reader = reader.option(key, _option_value(value))
        df = reader.load(spec.path)
    if spec.row_id is None:
        return df
    if spec.row_id in df.columns:
        raise SchemaError(f"input.row_id: {spec.row_id!r} is already a column of {spec.path}")
    return df.withColumn(spec.row_id, F.monotonically_increasing_id())


def _option_value(value: LabelValue) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _table_ref(name: str, location: str) -> TableRef:
    return TableRef(Layer.GOLD, name, location)


def labelled_rows(df: DataFrame, label: LabelSpec) -> DataFrame:
    """``df`` with the label column as 1/0 when ``positive`` values are given (null stays
    null); SchemaError when the column is missing."""
    if label.column not in df.columns:
        raise SchemaError(
            f"label.column: {label.column!r} is not in the input (columns: {', '.join(df.columns)})"
        )
    if label.positive is None:
        return df
    value = F.col(label.column)
    binary = F.when(value.isNull(), F.lit(None)).when(value.isin(*label.positive), 1).otherwise(0)
    return df.withColumn(label.column, binary.cast("int"))


def split_rows(df: DataFrame, split: SplitSpec) -> tuple[DataFrame, DataFrame]:
    """(train, validation): a seeded random split, or a time split at ``cutoff`` (rows with a
    null split column are in neither)."""
    if split.column is None:
        fraction = split.validation_fraction or DEFAULT_VALIDATION_FRACTION
        train, validation = df.randomSplit([1 - fraction, fraction], seed=split.seed)
        return train, validation
    if split.column not in df.columns:
        raise SchemaError(
            f"split.column: {split.column!r} is not in the input (columns: {', '.join(df.columns)})"
        )
    value, cutoff = F.col(split.column), F.lit(split.cutoff)
    return df.where(value <= cutoff), df.where(value > cutoff)


@dataclass(frozen=True)
class ByoData:
    """The input rows with a label, and their split. ``rows``: input rows; ``unlabelled``:
    those left out for a null label."""

    labelled: DataFrame
    train: DataFrame
    validation: DataFrame
    rows: int
    unlabelled: int


def byo_training_data(spark: SparkSession, spec: ByoSpec) -> ByoData:
    """Read the input, binarise the label, drop unlabelled rows, split. The labelled rows are
    persisted: the caller unpersists ``labelled`` when done."""
    raw = labelled_rows(read_input(spark, spec.input, spec.name), spec.label)
    counts = raw.agg(F.count(F.lit(1)).alias("rows"), F.count(spec.label.column).alias("n")).first()
    labelled = raw.where(F.col(spec.label.column).isNotNull()).persist(StorageLevel.MEMORY_AND_DISK)
    train, validation = split_rows(labelled, spec.split)
    unlabelled = counts["rows"] - counts["n"]
    if unlabelled:
        log.info(
            "%s: %d of %d rows have no label and are left out",
            spec.name,
            unlabelled,
            counts["rows"],
        )
    return ByoData(labelled, train, validation, counts["rows"], unlabelled)


# ---------------------------------------------------------------------------------------------
# the flow
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult:
    path: str
    format: str
    rows: int


@dataclass(frozen=True)
class ByoResult:
    """A BYO run: the model, its validation metrics, the report and the scores written."""

    spec: ByoSpec
    model: LogisticModel
    evaluation: EvaluationReport
    report: dict[str, Any]
    scores: ScoreResult | None = None

    def figures(self) -> dict[str, Any]:
        """A short summary for the job's output."""
        figures = {
            "name": self.spec.name,
            "train_rows": self.model.training.rows,
            "validation_rows": self.evaluation.rows,
            "reg_param": self.model.reg_param,
            "dropped": dict(self.model.dropped),
            "validation_roc_auc": self.evaluation.roc_auc,
            "validation_pr_auc": self.evaluation.pr_auc,
            "top_decile_lift": self.evaluation.top_decile_lift(),
            "model": self.spec.model_path,
            "report": self.spec.report_paths[1],
        }
        if self.scores is not None:
            figures["scores"] = {"path": self.scores.path, "rows": self.scores.rows}
        return figures


def run_byo(spark: SparkSession, spec: ByoSpec) -> ByoResult:
    """Train on the training split, evaluate on the validation split, save the model and the
    report under ``output``; then, when the spec has ``score``, score that table with the
    model reloaded from disk."""
    data = byo_training_data(spark, spec)
    try:
        model = train_logistic(data.train, spec.label.column, spec.features, spec.logistic)
        label = spec.label.column
        evaluation = evaluate_scores(score_logistic(model, data.validation, [label]), label)
    finally:
        data.labelled.unpersist()
    model.save(spec.model_path)
    report = build_report(spec, data, model, evaluation)
    write_report(spark, spec, report, evaluation)
    log.info(
        "%s: validation ROC AUC %.4f, PR AUC %.4f, top-decile lift %.2f; model %s",
        spec.name,
        evaluation.roc_auc,
        evaluation.pr_auc,
        evaluation.top_decile_lift(),
        spec.model_path,
    )
    scores = run_byo_scoring(spark, spec) if spec.score is not None else None
    return ByoResult(spec, model, evaluation, report, scores)


def run_byo_scoring(spark: SparkSession, spec: ByoSpec) -> ScoreResult:
    """Score ``score.input`` with the model saved under ``output`` and write the scores (id
    columns, ``score``, ``reasons``); ConfigError when the spec has no ``score`` section,
    SchemaError when no model is saved there."""
    if spec.score is None:
        raise ConfigError(
            spec.source, ["score: missing (add score.input and score.output to score a table)"]
        )
    model = LogisticModel.load(spec.model_path)
    table = read_input(spark, spec.score.input, spec.name)
    scores = score_logistic(model, table, spec.ids, spec.score.top_reasons)
    output = spec.score.output
    if output.format == "delta":
        ref = _table_ref(f"{spec.name}_scores", output.path)
        delta_io.write_table(scores, ref, mode="overwrite", overwrite_schema=True)
    else:
        scores.write.mode("overwrite").parquet(output.path)
    rows = spark.read.format(output.format).load(output.path).count()
    log.info("%s: %d rows scored into %s (%s)", spec.name, rows, output.path, output.format)
    return ScoreResult(output.path, output.format, rows)


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------


def build_report(
    spec: ByoSpec, data: ByoData, model: LogisticModel, evaluation: EvaluationReport
) -> dict[str, Any]:
    """The run as plain data (report.json): input, label, split, model and validation."""
    return {
        "name": spec.name,
        "description": spec.description,
        "spec": spec.source,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "input": {"path": spec.input.path, "format": spec.input.format, "rows": data.rows},
        "label": {
            "column": spec.label.column,
            "positive": spec.label.positive,
            "unlabelled_rows_left_out": data.unlabelled,
        },
        "split": {
            "how": spec.split.describe(),
            "train_rows": model.training.rows,
            "validation_rows": evaluation.rows,
        },
        "model_path": spec.model_path,
        "model": model.to_dict(),
        "validation": evaluation.to_dict(),
    }


def write_report(
    spark: SparkSession, spec: ByoSpec, report: dict[str, Any], evaluation: EvaluationReport
) -> None:
    """Write report.json and report.md under the spec's output folder."""
    json_path, md_path = spec.report_paths
    fs.write_text(spark, json_path, json.dumps(_json_ready(report), indent=2, ensure_ascii=False))
    fs.write_text(spark, md_path, report_markdown(report, evaluation))


def _json_ready(value: Any) -> Any:
    """NaN as None, dates as ISO strings."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def report_markdown(report: dict[str, Any], evaluation: EvaluationReport) -> str:
    """report.md: what was trained on what, the validation metrics, the model."""
    model = report["model"]
    lines = [
        f"# {report['name']}: logistic model report",
        "",
        *([report["description"], ""] if report["description"] else []),
        f"- spec: `{report['spec']}`, created {report['created_at']}",
        f"- input: `{report['input']['path']}` ({report['input']['format']}, "
        f"{report['input']['rows']:,} rows; {report['label']['unlabelled_rows_left_out']:,} "
        "without a label left out)",
        f"- label: `{report['label']['column']}`"
        + (f" in {report['label']['positive']}" if report["label"]["positive"] else ""),
        f"- {report['split']['how']}: {report['split']['train_rows']:,} train, "
        f"{report['split']['validation_rows']:,} validation rows",
        f"- model: `{report['model_path']}`",
        "",
        "## Validation",
        "",
        evaluation.to_markdown(),
        "## Model",
        "",
        *_model_markdown(model),
    ]
    return "\n".join(lines) + "\n"


def _model_markdown(model: dict[str, Any]) -> list[str]:
    lines = [f"- regParam {model['reg_param']:g} (elastic net {model['settings']['elastic_net']})"]
    if model["cv_metrics"]:
        cv = ", ".join(f"{k:g}: {v:.4f}" for k, v in model["cv_metrics"])
        lines.append(f"- mean cross-validated ROC AUC by regParam: {cv}")
    if model["dropped"]:
        dropped = ", ".join(f"`{c}` ({r})" for c, r in model["dropped"].items())
        lines.append(f"- dropped: {dropped}")
    lines += [
        f"- intercept {model['intercept']:.4f}; coefficients on the standardised scale, "
        f"largest {_REPORT_COEFFICIENTS}:",
        "",
        "| feature | category | coefficient |",
        "|---|---|---:|",
    ]
    largest = sorted(model["coefficients"], key=lambda c: -abs(c["coefficient"]))
    lines += [
        f"| {c['feature']} | {c['category'] or ''} | {c['coefficient']:.4f} |"
        for c in largest[:_REPORT_COEFFICIENTS]
    ]
    return lines
