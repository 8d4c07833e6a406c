"""The models stage end to end on the generator's SF 0.01 data (a copy of the session's gold
warehouse): segments, CLV, propensity scores and the customer profile are written, every score
is a probability with one row per customer per model, and a second run over unchanged inputs
writes no scores and no profile rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.config import DEFAULT_CONF_DIR
from profilehouse.gold.stage import GoldResult, gold_table
from profilehouse.models.profile import profile_table
from profilehouse.models.registry import model_history
from profilehouse.models.scores import scores_table
from profilehouse.models.stage import ModelsResult, format_models_report, run_models_stage
from tests.conftest import Generated, Ingested, copy_warehouse

pytestmark = pytest.mark.slow

OBJECTIVES = ("deposit_to_loan", "cart_to_purchase", "churn_90d")


def _cheap_conf(target: Path) -> Path:
    """The shipped config with smaller searches: k 3..5, two regularisation values, two folds
    and one training snapshot (the suite's data is 1,000 persons)."""
    shutil.copytree(DEFAULT_CONF_DIR, target)
    path = target / "models.yaml"
    models = yaml.safe_load(path.read_text(encoding="utf-8"))
    models["segmentation"]["k"] = {"min": 3, "max": 5}
    models["propensity"]["snapshots"]["training_snapshots"] = 1
    for objective in models["propensity"]["objectives"].values():
        objective["logistic"] = {"reg_params": [0.01, 0.1], "folds": 2}
    path.write_text(yaml.safe_dump(models, allow_unicode=True), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def models_run(
    spark: SparkSession,
    generated: Generated,
    ingested: Ingested,
    gold_made: GoldResult,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[object, Path, list[ModelsResult]]:
    root = tmp_path_factory.mktemp("models")
    catalog = copy_warehouse(ingested.catalog.root, root / "warehouse")
    env = ingested.env.model_copy(update={"warehouse": catalog.root, "truth": generated.truth})
    conf = _cheap_conf(root / "conf")
    first = run_models_stage(spark, env, conf, run_id="models-1", truth_uri=generated.truth)
    versions = _versions(spark, catalog)
    second = run_models_stage(spark, env, conf, run_id="models-2", truth_uri=generated.truth)
    return catalog, versions, [first, second]


def _versions(spark: SparkSession, catalog) -> dict[str, int]:
    refs = {"scores": scores_table(catalog), "profile": profile_table(catalog)}
    return {name: delta_io.table_version(spark, ref) for name, ref in refs.items()}


def _table(spark: SparkSession, ref) -> DataFrame:
    return delta_io.read_table(spark, ref)


def test_every_score_is_a_probability_once_per_customer_and_model(
    spark: SparkSession, models_run
) -> None:
    catalog, _, (first, _) = models_run
    scores = _table(spark, scores_table(catalog))
    row = scores.agg(
        F.min("score").alias("low"),
        F.max("score").alias("high"),
        F.count("*").alias("rows"),
        F.count_distinct("master_id", "model").alias("keys"),
        F.min("decile").alias("top"),
        F.max("decile").alias("bottom"),
    ).first()
    assert 0 <= row["low"] <= row["high"] <= 1
    assert row["rows"] == row["keys"] > 0
    assert (row["top"], row["bottom"]) == (1, 10)
    models = {r["model"]: r["count"] for r in scores.groupBy("model").count().collect()}
    assert set(models) == set(OBJECTIVES)
    for name in OBJECTIVES:
        assert models[name] == first.propensity[name].scored


def test_each_model_is_validated_on_a_later_snapshot_than_it_trains_on(models_run) -> None:
    _, _, (first, _) = models_run
    for name in OBJECTIVES:
        result = first.propensity[name]
        assert result.training_rows > result.training_positives > 0, name
        assert 0 <= result.validation.roc_auc <= 1
        assert result.validation.rows > 0
    # churn is learnable from activity even at SF 0.01
    assert first.propensity["churn_90d"].validation.roc_auc > 0.7


def test_segments_clv_and_profile_are_written(spark: SparkSession, models_run) -> None:
    catalog, _, (first, _) = models_run
    assert 3 <= len(first.segments) <= 5
    assert sum(s["customers"] for s in first.segments) > 0
    assert first.persona_ari is not None
    profile = _table(spark, profile_table(catalog))
    golden = _table(spark, catalog.table("identity", "golden_records"))
    snapshot = _table(spark, gold_table(catalog, "features")).where(
        F.col("snapshot_date") == first.snapshot_date
    )
    masters = golden.select("master_id").union(snapshot.select("master_id")).distinct()
    # one row per master customer: with a golden record or known by events only
    assert profile.count() == profile.select("master_id").distinct().count() == masters.count()
    assert masters.join(profile, "master_id", "left_anti").count() == 0
    for name in OBJECTIVES:
        assert f"{name}_score" in profile.columns
    assert profile.where(F.col("segment_id").isNotNull()).count() > 0
    assert profile.where(F.col("clv_12m") > 0).count() > 0
    clv = _table(spark, gold_table(catalog, "customer_clv"))
    assert clv.where("p_alive < 0 OR p_alive > 1 OR expected_purchases < 0").count() == 0
    report = format_models_report(first)
    assert "deposit_to_loan" in report and "segments" in report


def test_a_second_run_over_unchanged_inputs_writes_no_scores_nor_profile(
    spark: SparkSession, models_run
) -> None:
    catalog, versions, (first, second) = models_run
    assert _versions(spark, catalog) == versions
    for name in OBJECTIVES:
        assert second.propensity[name].scores_skipped, name
        assert second.propensity[name].version == first.propensity[name].version
    assert second.profile["skipped"]
    history = model_history(spark, catalog)
    per_model = {
        r["model_name"]: r["count"] for r in history.groupBy("model_name").count().collect()
    }
    assert all(per_model[name] == 1 for name in OBJECTIVES), per_model
