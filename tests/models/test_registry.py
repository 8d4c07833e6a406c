"""The model registry: MLflow runs and versions in an embedded SQLite store under a temporary
warehouse, promotion by the configured rule, ``ops.model_versions`` in Delta, and a tiny Spark
ML model (a logistic regression on 20 rows) saved, registered, downloaded and loaded again.

The tests share one warehouse and one MLflow store; each registers its own model name."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.errors import ConfigError
from profilehouse.models.registry import (
    Champion,
    ModelVersion,
    PromotionRule,
    RegistryError,
    RegistrySettings,
    champion,
    load_champion_artifacts,
    load_registry_settings,
    model_fingerprint,
    model_history,
    model_versions_table,
    promotion_decision,
    register_model_version,
    with_model_version,
)
from profilehouse.models.registry.mlflow_store import mlflow_client
from tests.conftest import logged_messages

WINDOW = (dt.date(2025, 1, 1), dt.date(2025, 6, 30))
FEATURES = ["aum", "txn_count_90d"]
REGISTRY = {
    "experiment_prefix": "profilehouse-tests",
    "promotion": {
        "metric": "roc_auc",
        "direction": "higher",
        "min_improvement": 0.01,
        "models": {"churn_calibrated": {"metric": "brier", "direction": "lower"}},
    },
}


# ---------------------------------------------------------------------------------------------
# fixtures: one warehouse + MLflow store, one tiny saved model
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> TableCatalog:
    return TableCatalog(str(tmp_path_factory.mktemp("registry-warehouse")))


@pytest.fixture(scope="module")
def settings(catalog: TableCatalog) -> RegistrySettings:
    return load_registry_settings(REGISTRY, catalog)


def _training_rows(spark: SparkSession, flip: bool = False) -> DataFrame:
    rows = [(float(i), float(i % 3), float((i > 9) != flip)) for i in range(20)]
    return spark.createDataFrame(rows, ["aum", "txn_count_90d", "label"])


def _fit_and_save(spark: SparkSession, folder: Path, flip: bool = False) -> Path:
    pipeline = Pipeline(
        stages=[
            VectorAssembler(inputCols=FEATURES, outputCol="features"),
            LogisticRegression(maxIter=5, regParam=0.1),
        ]
    )
    pipeline.fit(_training_rows(spark, flip)).save(str(folder))
    return folder


@pytest.fixture(scope="module")
def saved_model(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fit_and_save(spark, tmp_path_factory.mktemp("saved") / "model")


def _register(
    spark: SparkSession,
    settings: RegistrySettings,
    catalog: TableCatalog,
    folder: Path,
    model_name: str,
    metrics: dict[str, float],
    features_version: int,
) -> ModelVersion:
    return register_model_version(
        spark,
        settings,
        catalog,
        model_name=model_name,
        kind="propensity",
        artifact_dir=folder,
        params={"maxIter": 5, "regParam": 0.1},
        features=FEATURES,
        training_window=WINDOW,
        metrics=metrics,
        input_versions={"gold.features": features_version, "silver.bank_customers": 3},
    )


def _history_of(spark: SparkSession, catalog: TableCatalog, model_name: str) -> DataFrame:
    return model_history(spark, catalog).where(F.col("model_name") == model_name)


def _mlflow_versions(settings: RegistrySettings, model_name: str) -> list[int]:
    found = mlflow_client(settings).search_model_versions(f"name = '{model_name}'")
    return sorted(int(v.version) for v in found)


@dataclass(frozen=True)
class ChurnVersions:
    """Three versions of ``churn`` (roc_auc 0.70, 0.69, 0.72 on gold.features versions 1-3),
    then the third registered again unchanged."""

    versions: list[ModelVersion]
    again: ModelVersion
    commits: tuple[int, int]  # ops.model_versions' Delta version before and after ``again``


CHURN_AUCS = [0.70, 0.69, 0.72]


@pytest.fixture(scope="module")
def churn(
    spark: SparkSession, settings: RegistrySettings, catalog: TableCatalog, saved_model: Path
) -> ChurnVersions:
    versions = [
        _register(spark, settings, catalog, saved_model, "churn", {"roc_auc": auc}, i + 1)
        for i, auc in enumerate(CHURN_AUCS)
    ]
    before = delta_io.table_version(spark, model_versions_table(catalog))
    again = _register(spark, settings, catalog, saved_model, "churn", {"roc_auc": 0.72}, 3)
    after = delta_io.table_version(spark, model_versions_table(catalog))
    return ChurnVersions(versions, again, (before, after))


# ---------------------------------------------------------------------------------------------
# registration and promotion
# ---------------------------------------------------------------------------------------------


def test_first_version_is_promoted_into_the_embedded_store(
    churn: ChurnVersions, settings: RegistrySettings, catalog: TableCatalog
) -> None:
    first = churn.versions[0]

    assert (first.version, first.promoted, first.champion_before) == (1, True, None)
    assert first.reason == "first version: promoted"
    store = Path(catalog.root) / "ops" / "mlflow"
    assert settings.tracking_uri == f"sqlite:///{store}/mlflow.db"
    assert (store / "mlflow.db").is_file()
    assert first.artifact_uri.startswith(f"file://{store}/artifacts/churn/")
    run = mlflow_client(settings).get_run(first.run_id).data
    assert run.params == {"maxIter": "5", "regParam": "0.1"}
    assert run.metrics == {"roc_auc": 0.70}
    assert run.tags["input_version.gold.features"] == "1"
    assert (run.tags["train_start"], run.tags["train_end"]) == ("2025-01-01", "2025-06-30")
    assert run.tags["fingerprint"] == first.fingerprint


def test_worse_version_is_registered_but_not_promoted(churn: ChurnVersions) -> None:
    worse = churn.versions[1]
    assert (worse.version, worse.promoted, worse.champion_before) == (2, False, 1)
    assert worse.reason == (
        "roc_auc 0.69 vs champion v1 0.7 (higher is better): improvement -0.01 <= "
        "min_improvement 0.01: not promoted"
    )


def test_better_version_is_promoted_and_becomes_champion(
    churn: ChurnVersions, settings: RegistrySettings
) -> None:
    better = churn.versions[2]
    assert (better.version, better.promoted, better.champion_before) == (3, True, 1)
    assert better.reason == (
        "roc_auc 0.72 vs champion v1 0.7 (higher is better): improvement 0.02 > "
        "min_improvement 0.01: promoted"
    )
    assert champion(settings, "churn") == better


def test_reregistering_an_identical_model_changes_nothing(
    spark: SparkSession, churn: ChurnVersions, settings: RegistrySettings, catalog: TableCatalog
) -> None:
    assert churn.again == churn.versions[2]
    assert churn.commits[1] == churn.commits[0]
    assert _history_of(spark, catalog, "churn").count() == 3
    assert _mlflow_versions(settings, "churn") == [1, 2, 3]


def test_unchanged_model_with_new_metrics_keeps_its_first_metrics(
    spark: SparkSession,
    churn: ChurnVersions,
    settings: RegistrySettings,
    catalog: TableCatalog,
    saved_model: Path,
) -> None:
    with logged_messages() as messages:
        again = _register(spark, settings, catalog, saved_model, "churn", {"roc_auc": 0.9}, 3)

    assert again == churn.versions[2]
    assert messages[-2:] == [
        "model churn: unchanged (the fingerprint of v3), nothing registered",
        "model churn v3 was registered with metrics {'roc_auc': 0.72}; the unchanged model's "
        "new metrics {'roc_auc': 0.9} are not recorded (validated on other data? add its table "
        "to input_versions)",
    ]


def test_history_holds_every_version_with_its_input_versions(
    spark: SparkSession, churn: ChurnVersions, catalog: TableCatalog
) -> None:
    history = _history_of(spark, catalog, "churn").select(
        "version",
        "kind",
        "promoted",
        "champion_before",
        F.col("input_versions")["gold.features"].alias("features_version"),
        F.col("input_versions")["silver.bank_customers"].alias("customers_version"),
        F.col("metrics")["roc_auc"].alias("roc_auc"),
        F.size("features").alias("features"),
        "train_start",
    )
    expected = spark.createDataFrame(
        [
            (1, "propensity", True, None, 1, 3, 0.70, 2, WINDOW[0]),
            (2, "propensity", False, 1, 2, 3, 0.69, 2, WINDOW[0]),
            (3, "propensity", True, 1, 3, 3, 0.72, 2, WINDOW[0]),
        ],
        history.schema,
    )
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)


def test_lower_is_better_metric_from_a_model_override(
    spark: SparkSession, settings: RegistrySettings, catalog: TableCatalog, saved_model: Path
) -> None:
    name = "churn_calibrated"  # brier, lower is better; min_improvement 0.01 (the default's)
    first = _register(
        spark, settings, catalog, saved_model, name, {"brier": 0.2, "roc_auc": 0.9}, 1
    )
    lower = _register(
        spark, settings, catalog, saved_model, name, {"brier": 0.15, "roc_auc": 0.6}, 2
    )

    assert (first.promoted, lower.promoted) == (True, True)
    assert lower.reason == (
        "brier 0.15 vs champion v1 0.2 (lower is better): improvement 0.05 > min_improvement "
        "0.01: promoted"
    )
    assert champion(settings, name).version == 2


def test_a_retry_after_a_failed_history_write_completes_the_same_version(
    spark: SparkSession,
    settings: RegistrySettings,
    catalog: TableCatalog,
    saved_model: Path,
    tmp_path: Path,
) -> None:
    broken = TableCatalog(str(tmp_path / "broken"))
    blocked = Path(model_versions_table(broken).location)
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a Delta table", encoding="utf-8")  # the Delta write fails
    with pytest.raises(Exception, match="DELTA_CANNOT_CREATE_LOG_PATH"):
        _register(spark, settings, broken, saved_model, "churn_retry", {"roc_auc": 0.7}, 1)
    assert _mlflow_versions(settings, "churn_retry") == [1]  # registered, history not written

    retried = _register(spark, settings, catalog, saved_model, "churn_retry", {"roc_auc": 0.7}, 1)

    assert (retried.version, retried.promoted) == (1, True)
    assert _history_of(spark, catalog, "churn_retry").select("version").collect() == [(1,)]
    assert _mlflow_versions(settings, "churn_retry") == [1]


def test_champion_artifacts_load_as_the_saved_model(
    spark: SparkSession,
    churn: ChurnVersions,
    settings: RegistrySettings,
    saved_model: Path,
    tmp_path: Path,
) -> None:
    folder = load_champion_artifacts(settings, "churn", tmp_path / "champion")

    rows = _training_rows(spark)
    loaded = PipelineModel.load(str(folder)).transform(rows).select("prediction")
    original = PipelineModel.load(str(saved_model)).transform(rows).select("prediction")
    assert_df_equality(loaded, original)
    assert loaded.where("prediction = 1").count() > 0


def test_no_champion_before_the_first_registration(settings: RegistrySettings) -> None:
    assert champion(settings, "never_registered") is None
    with pytest.raises(RegistryError, match="'never_registered' has no champion"):
        load_champion_artifacts(settings, "never_registered", "/tmp/unused")


def test_scores_carry_the_model_version(spark: SparkSession, churn: ChurnVersions) -> None:
    scores = spark.createDataFrame([("m1", 0.3)], ["master_id", "score"])

    stamped = with_model_version(scores, churn.versions[2])

    assert stamped.collect() == [("m1", 0.3, "churn", 3)]
    assert stamped.schema["model_version"].dataType.simpleString() == "int"


# ---------------------------------------------------------------------------------------------
# fingerprint
# ---------------------------------------------------------------------------------------------


def _fingerprint(folder: Path, **changes: object) -> str:
    inputs: dict = {
        "kind": "propensity",
        "params": {"maxIter": 5},
        "features": FEATURES,
        "training_window": WINDOW,
        "input_versions": {"gold.features": 1},
    }
    return model_fingerprint(folder, **{**inputs, **changes})


def test_fingerprint_ignores_save_times_uids_and_file_names_but_not_the_model(
    spark: SparkSession, saved_model: Path, tmp_path: Path
) -> None:
    refit = _fit_and_save(spark, tmp_path / "refit")
    other = _fit_and_save(spark, tmp_path / "other", flip=True)
    base = _fingerprint(saved_model)

    assert sorted(p.name for p in saved_model.glob("stages/*")) != sorted(
        p.name for p in refit.glob("stages/*")
    )  # new uids, yet
    assert _fingerprint(refit) == base
    assert _fingerprint(other) != base


@pytest.mark.parametrize(
    "changes",
    [
        {"params": {"maxIter": 6}},
        {"features": list(reversed(FEATURES))},
        {"training_window": (WINDOW[0], dt.date(2025, 7, 1))},
        {"input_versions": {"gold.features": 2}},
        {"kind": "segmentation"},
    ],
    ids=["params", "feature-order", "window", "input-version", "kind"],
)
def test_fingerprint_covers_every_training_input(saved_model: Path, changes: dict) -> None:
    assert _fingerprint(saved_model, **changes) != _fingerprint(saved_model)


def test_fingerprint_covers_extra_metadata_files(saved_model: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(saved_model, tmp_path / "copy"))
    assert _fingerprint(copy) == _fingerprint(saved_model)
    (copy / "threshold.json").write_text('{"threshold": 0.4}', encoding="utf-8")
    assert _fingerprint(copy) != _fingerprint(saved_model)


# ---------------------------------------------------------------------------------------------
# promotion rule (pure)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "candidate", "champion_metrics", "promoted"),
    [
        (PromotionRule(metric="auc"), 0.8, None, True),
        (PromotionRule(metric="auc"), 0.8, {"auc": 0.8}, False),
        (PromotionRule(metric="auc"), 0.81, {"auc": 0.8}, True),
        (PromotionRule(metric="auc", min_improvement=0.02), 0.81, {"auc": 0.8}, False),
        (PromotionRule(metric="mae", direction="lower"), 9.0, {"mae": 10.0}, True),
        (PromotionRule(metric="mae", direction="lower"), 11.0, {"mae": 10.0}, False),
        (PromotionRule(metric="auc"), 0.5, {"brier": 0.2}, True),
    ],
    ids=[
        "no-champion",
        "equal",
        "higher-better",
        "within-min-improvement",
        "lower-better",
        "lower-worse",
        "champion-lacks-metric",
    ],
)
def test_promotion_decision(
    rule: PromotionRule,
    candidate: float,
    champion_metrics: dict[str, float] | None,
    promoted: bool,
) -> None:
    current = None if champion_metrics is None else Champion(4, champion_metrics)
    decision = promotion_decision(rule, {rule.metric: candidate}, current)
    assert decision.promoted is promoted
    assert decision.champion_before == (None if current is None else 4)


# ---------------------------------------------------------------------------------------------
# arguments and config
# ---------------------------------------------------------------------------------------------


def test_bad_registration_arguments_are_all_reported(
    spark: SparkSession, settings: RegistrySettings, catalog: TableCatalog, tmp_path: Path
) -> None:
    with pytest.raises(RegistryError) as caught:
        register_model_version(
            spark,
            settings,
            catalog,
            model_name="churn bad",
            kind="Propensity",
            artifact_dir=tmp_path / "missing",
            params={},
            features=["aum", "aum"],
            training_window=(dt.date(2025, 2, 1), dt.date(2025, 1, 1)),
            metrics={"auc": float("nan")},
            input_versions={"features": -1},
        )
    assert caught.value.problems == [
        "model_name 'churn bad': letters, digits, '_', '.' or '-', not starting with a "
        "punctuation mark",
        "kind 'Propensity': a lower-case identifier, e.g. one of propensity, segmentation, "
        "rfm_tiers, clv",
        f"artifact_dir '{tmp_path / 'missing'}': not a folder (save the model there first)",
        "features: repeated aum",
        "training_window: start 2025-02-01 is after end 2025-01-01",
        "metrics: values must be finite numbers, got {'auc': nan}",
        "metrics: the promotion rule compares 'roc_auc', which is missing (present: auc)",
        "input_versions: 'features' is not a qualified table name (layer.name)",
        "input_versions: 'features' → -1 is not a Delta version",
    ]


def test_importing_the_registry_leaves_mlflow_unimported() -> None:
    code = "import sys, profilehouse.models.registry; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shipped_registry_settings_load(catalog: TableCatalog) -> None:
    shipped = load_registry_settings(None, catalog)
    assert shipped.promotion.rule_for("any_propensity").metric == "roc_auc"
    assert shipped.promotion.rule_for("clv").direction == "lower"
    assert shipped.tracking_uri.startswith("sqlite:////")
    assert shipped.registry_uri == shipped.tracking_uri


def test_configured_server_is_used_as_given(catalog: TableCatalog) -> None:
    server = load_registry_settings(
        {**REGISTRY, "tracking_uri": "http://mlflow:5000"}, TableCatalog("hdfs:///lake/wh")
    )
    assert (server.tracking_uri, server.registry_uri) == ("http://mlflow:5000",) * 2
    assert server.artifact_root is None


def _models_file(tmp_path: Path, section: dict) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"clv": {}, "registry": section}), encoding="utf-8")
    return path


PROMOTION = REGISTRY["promotion"]


@pytest.mark.parametrize(
    ("section", "problems"),
    [
        (
            {"promotion": {**PROMOTION, "direction": "up"}},
            ["registry.promotion.direction: Input should be 'higher' or 'lower' (got 'up')"],
        ),
        (
            {"promotion": {**PROMOTION, "min_improvment": 0.1}},
            [
                "registry.promotion.min_improvment: unknown key (allowed: direction, metric, "
                "min_improvement, models)"
            ],
        ),
        (
            {"promotion": {**PROMOTION, "models": {"clv": {"metric": "mae"}}}},
            [
                "registry.promotion.models.clv: Value error, metric 'mae' needs its direction "
                "too (higher or lower): the default rule's direction belongs to the default "
                "metric (got {'metric': 'mae'})"
            ],
        ),
        (
            {"promotion": PROMOTION, "tracking_uri": "sqlite:///mlflow.db"},
            [
                "registry.tracking_uri: Value error, a SQLite path must be absolute "
                "(sqlite:////abs/path/mlflow.db) (got 'sqlite:///mlflow.db')"
            ],
        ),
        (
            {"promotion": PROMOTION, "tracking_uri": "postgresql://db/mlflow"},
            [
                "registry.artifact_root: Value error, required with a database tracking_uri "
                "(MLflow would otherwise put artifacts under the current directory) (got None)"
            ],
        ),
        (
            {"registry_uri": "./mlruns"},
            [
                "registry.registry_uri: Value error, not an MLflow tracking URI (schemes: "
                "databricks, http, https, mssql, mysql, postgresql, sqlite) (got './mlruns')",
                "registry.promotion: required key is missing",
            ],
        ),
    ],
    ids=[
        "bad-direction",
        "misspelt-key",
        "override-metric-without-direction",
        "relative-sqlite",
        "database-without-artifact-root",
        "every-problem-at-once",
    ],
)
def test_registry_config_errors_name_file_and_key(
    tmp_path: Path, catalog: TableCatalog, section: dict, problems: list[str]
) -> None:
    path = _models_file(tmp_path, section)
    with pytest.raises(ConfigError) as caught:
        load_registry_settings(path, catalog)
    lines = "\n".join(f"  - {p}" for p in problems)
    assert str(caught.value) == f"invalid config file {path}:\n{lines}"


def test_embedded_store_needs_a_local_warehouse(tmp_path: Path) -> None:
    path = _models_file(tmp_path, {"promotion": PROMOTION})
    with pytest.raises(ConfigError) as caught:
        load_registry_settings(path, TableCatalog("hdfs:///lake/warehouse"))
    assert caught.value.problems == [
        "registry.tracking_uri: required when the warehouse is not a local folder (the "
        "embedded store would be at hdfs:///lake/warehouse/ops/mlflow); set it to an MLflow "
        "server, e.g. http://mlflow:5000"
    ]
