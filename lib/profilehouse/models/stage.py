"""The models stage: segments, RFM value tiers, CLV and propensity scores over the gold
snapshots, and the customer profile written back for BI (画像回写).

For the newest gold snapshot E (the one the gold stage just made):

1. the snapshots the propensity models train and validate on (``propensity.snapshots`` in
   ``conf/models.yaml``) are made when ``gold.customer_tags`` lacks them;
2. ``gold.customer_segments`` (partition E): each customer's K-means segment (k by
   silhouette, named by rules) and RFM value tier; ``gold.segment_summary`` (partition E);
3. ``gold.customer_clv`` (partition E): BG/NBD + Gamma-Gamma fitted on the purchases up to E
   (P(alive), expected purchases, expected spend, discounted CLV), with a holdout report;
4. per propensity objective: labels from the events after each training and validation
   snapshot, leakage checks, an MLlib logistic regression (regularisation by cross-validation),
   the validation report (ROC/PR AUC, lift by decile, calibration); the model is registered
   (MLflow + ``ops.model_versions``) and the champion scores E's population into
   ``gold.model_scores`` (a re-score by an unchanged champion writes nothing);
5. ``gold.customer_profile``: one row per master customer, MERGEd.

Segmentation and CLV are registered too (kind ``segmentation`` / ``clv``). Holds the
``models`` lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io, locks
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.config import EnvironmentConfig
from profilehouse.errors import ProfilehouseError
from profilehouse.gold.features import MASTER_ID, SNAPSHOT_DATE, source_rows
from profilehouse.gold.features import with_source_master_id as on_master
from profilehouse.gold.stage import (
    CUSTOMER_TAGS,
    FEATURES,
    FeatureInputs,
    feature_inputs,
    gold_table,
    make_missing_snapshots,
    replace_snapshot,
)
from profilehouse.models import clv as clv_model
from profilehouse.models import propensity as prop
from profilehouse.models import segments as seg
from profilehouse.models.evaluation import (
    DecileRow,
    EvaluationReport,
    ReliabilityRow,
    evaluate_scores,
)
from profilehouse.models.logistic import (
    FeatureSpec,
    LogisticModel,
    LogisticSettings,
    score_logistic,
    train_logistic,
)
from profilehouse.models.profile import (
    build_customer_profile,
    load_profile_settings,
    write_customer_profile,
)
from profilehouse.models.registry import (
    ModelVersion,
    download_version_artifacts,
    load_registry_settings,
    model_history,
    model_version,
    register_model_version,
)
from profilehouse.models.registry import champion as registry_champion
from profilehouse.models.scores import scores_table, write_scores
from profilehouse.timing import StepTimer

log = logging.getLogger(__name__)

CUSTOMER_SEGMENTS = "customer_segments"
SEGMENT_SUMMARY = "segment_summary"
CUSTOMER_CLV = "customer_clv"


class NoSnapshotError(ProfilehouseError):
    """The models stage needs a gold snapshot: run the gold stage first."""


TRAINING_KEY = "training_key"
LEAK_SUSPECTS = "leak_suspects"


@dataclass(frozen=True)
class _Trained:
    """A trained propensity model with its validation report and the features left out."""

    model: LogisticModel
    report: EvaluationReport
    leak_suspects: Mapping[str, float]


def _report_of(data: Mapping[str, Any]) -> EvaluationReport:
    """An :class:`EvaluationReport` from its ``to_dict`` (None back to NaN)."""

    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    def floats(row: Mapping[str, Any], cls: type) -> Any:
        return cls(**{k: v if isinstance(v, int) else number(v) for k, v in row.items()})

    return EvaluationReport(
        rows=int(data["rows"]),
        positives=int(data["positives"]),
        base_rate=number(data["base_rate"]),
        roc_auc=number(data["roc_auc"]),
        pr_auc=number(data["pr_auc"]),
        brier=number(data["brier"]),
        deciles=tuple(floats(d, DecileRow) for d in data["deciles"]),
        reliability=tuple(floats(r, ReliabilityRow) for r in data["reliability"]),
    )


@dataclass(frozen=True)
class PropensityResult:
    """One objective's training: data sizes, chosen regularisation, validation report,
    registry version, and what was scored."""

    objective: str
    name_zh: str
    training_rows: int
    training_positives: int
    reg_param: float
    dropped: Mapping[str, str]
    leak_suspects: Mapping[str, float]
    validation: EvaluationReport
    version: int
    promoted: bool
    scored_version: int
    scored: int
    scores_skipped: bool
    top_reasons: tuple[tuple[str, int], ...] = ()

    @property
    def figures(self) -> dict[str, Any]:
        v = self.validation
        return {
            "name_zh": self.name_zh,
            "training_rows": self.training_rows,
            "training_positives": self.training_positives,
            "reg_param": self.reg_param,
            "dropped_features": dict(self.dropped),
            "leak_suspects": dict(self.leak_suspects),
            "validation": {
                "rows": v.rows,
                "positives": v.positives,
                "base_rate": v.base_rate,
                "roc_auc": v.roc_auc,
                "pr_auc": v.pr_auc,
                "brier": v.brier,
                "top_decile_lift": v.top_decile_lift(),
            },
            "version": self.version,
            "promoted": self.promoted,
            "scored_version": self.scored_version,
            "scored": self.scored,
            "scores_skipped": self.scores_skipped,
            "top_reasons": [list(r) for r in self.top_reasons],
        }


@dataclass(frozen=True)
class ModelsResult:
    snapshot_date: dt.date
    snapshots_made: tuple[dt.date, ...]
    segments: tuple[dict[str, Any], ...]
    silhouette: tuple[tuple[int, float], ...]
    persona_ari: float | None
    rfm_tiers: tuple[dict[str, Any], ...]
    clv: Mapping[str, Any]
    propensity: Mapping[str, PropensityResult]
    profile: Mapping[str, Any]
    seconds: float = 0.0
    seconds_by_step: Mapping[str, float] = field(default_factory=dict)

    @property
    def figures(self) -> dict[str, Any]:
        """Key figures for the run summary."""
        return {
            "snapshot_date": self.snapshot_date.isoformat(),
            "snapshots_made": [d.isoformat() for d in self.snapshots_made],
            "segments": list(self.segments),
            "silhouette": [list(p) for p in self.silhouette],
            "persona_ari": self.persona_ari,
            "rfm_tiers": list(self.rfm_tiers),
            "clv": dict(self.clv),
            "propensity": {k: r.figures for k, r in self.propensity.items()},
            "profile": dict(self.profile),
            "seconds_by_step": dict(self.seconds_by_step),
        }


def run_models_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None = None,
    run_id: str | None = None,
    truth_uri: str | None = None,
) -> ModelsResult:
    """Train, register and score every model over the newest gold snapshot, then write the
    customer profile; see the module docstring."""
    catalog = TableCatalog.for_environment(env)
    run_id = run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.perf_counter()
    newest = newest_snapshot(spark, catalog)
    dates = prop.snapshot_dates(_propensity_settings(conf_dir).snapshots, newest)
    made = make_missing_snapshots(spark, env, dates.all, conf_dir, run_id)
    with locks.hold(spark, catalog, "models", env.locks, run_id):
        stage = _ModelsRun(spark, env, catalog, conf_dir, newest, dates, truth_uri)
        result = stage.run()
    return ModelsResult(
        snapshot_date=newest,
        snapshots_made=tuple(made),
        seconds=time.perf_counter() - started,
        **result,
    )


def newest_snapshot(spark: SparkSession, catalog: TableCatalog) -> dt.date:
    """The newest snapshot date of ``gold.customer_tags``."""
    ref = gold_table(catalog, CUSTOMER_TAGS)
    if not delta_io.table_exists(spark, ref):
        raise NoSnapshotError(f"{ref.qualified_name} does not exist: run the gold stage first")
    day = delta_io.read_table(spark, ref).agg(F.max(SNAPSHOT_DATE)).first()[0]
    if day is None:
        raise NoSnapshotError(f"{ref.qualified_name} holds no snapshot: run the gold stage first")
    return day


def _propensity_settings(conf_dir: Path | None) -> prop.PropensitySettings:
    return prop.load_propensity_settings(_models_path(conf_dir))


def _models_path(conf_dir: Path | None) -> Path | None:
    return None if conf_dir is None else Path(conf_dir) / "models.yaml"


@dataclass
class _ModelsRun:
    spark: SparkSession
    env: EnvironmentConfig
    catalog: TableCatalog
    conf_dir: Path | None
    newest: dt.date
    dates: prop.SnapshotDates
    truth_uri: str | None
    timer: StepTimer = field(default_factory=StepTimer)

    def run(self) -> dict[str, Any]:
        models_path = _models_path(self.conf_dir)
        with self.timer.step("inputs"):
            self.inputs = feature_inputs(self.spark, self.catalog, self.conf_dir)
            self.registry = load_registry_settings(models_path, self.catalog)
            propensity = prop.load_propensity_settings(models_path, self.inputs.config)
            features_ref = gold_table(self.catalog, FEATURES)
            self.features_version = delta_io.table_version(self.spark, features_ref)
            self.features = delta_io.read_table(
                self.spark, features_ref, version=self.features_version
            ).where(F.col(SNAPSHOT_DATE).isin(self.dates.all))
            current = self.features.where(F.col(SNAPSHOT_DATE) == F.lit(self.newest))
        with self.timer.step("segments"):
            segments, segment_rows, curve, ari = self._segments(current)
        with self.timer.step("rfm_tiers"):
            tiers = self._rfm_tiers(current, segments)
        with self.timer.step("clv"):
            clv_rows, clv_figures = self._clv()
        results = {}
        for name, objective in propensity.objectives.items():
            with self.timer.step(f"propensity:{name}"):
                results[name] = self._propensity(name, objective, propensity)
        with self.timer.step("profile"):
            profile = self._profile(clv_rows)
        return {
            "segments": segment_rows,
            "silhouette": curve,
            "persona_ari": ari,
            "rfm_tiers": tiers,
            "clv": clv_figures,
            "propensity": results,
            "profile": profile,
            "seconds_by_step": self.timer.seconds_by_step(),
        }

    # --- shared ---------------------------------------------------------------------------

    def _input_versions(self, names: list[str] | None = None) -> dict[str, int]:
        """Qualified table name → Delta version of what the models read."""
        versions = {gold_table(self.catalog, FEATURES).qualified_name: self.features_version}
        for name, version in self.inputs.versions.items():
            if names is None or name in names:
                versions[_qualified_input(name)] = version
        return versions

    def _register(
        self,
        name: str,
        kind: str,
        folder: Path,
        params: Mapping[str, object],
        features: list[str],
        window: tuple[dt.date, dt.date],
        metrics: Mapping[str, float],
        input_names: list[str] | None = None,
    ) -> ModelVersion:
        return register_model_version(
            self.spark,
            self.registry,
            self.catalog,
            model_name=name,
            kind=kind,
            artifact_dir=folder,
            params=params,
            features=features,
            training_window=window,
            metrics=metrics,
            input_versions=self._input_versions(input_names),
        )

    # --- segments and RFM tiers ---------------------------------------------------------------

    def _segments(
        self, current: DataFrame
    ) -> tuple[DataFrame, tuple[dict[str, Any], ...], tuple[tuple[int, float], ...], float | None]:
        settings = seg.load_segmentation_settings(_models_path(self.conf_dir))
        model = seg.train_segmentation(current, settings)
        assigned = seg.assign_segments(model, current)
        summary = seg.segment_summary(model, assigned, current)
        replace_snapshot(
            summary.withColumn(SNAPSHOT_DATE, F.lit(self.newest)),
            gold_table(self.catalog, SEGMENT_SUMMARY),
            self.newest,
        )
        rows = tuple(
            {
                "segment_id": s.segment_id,
                "name_zh": s.name_zh,
                "name_en": s.name_en,
                "customers": s.customers,
                "share": round(s.share, 4),
                "high": list(s.high),
                "low": list(s.low),
            }
            for s in model.segments
        )
        curve = tuple((p.k, round(p.silhouette, 4)) for p in model.curve)
        with tempfile.TemporaryDirectory(prefix="segments-") as folder:
            _save_json(Path(folder) / "segmentation.json", model.to_dict())
            self._register(
                "segmentation",
                "segmentation",
                Path(folder),
                {"k": model.k, "seed": settings.seed},
                list(settings.features),
                (self.newest, self.newest),
                {"silhouette": max(p.silhouette for p in model.curve if p.k == model.k)},
                input_names=[],
            )
        return assigned, rows, curve, self._persona_ari(assigned)

    def _persona_ari(self, assigned: DataFrame) -> float | None:
        """Adjusted Rand index of segments against the generator's personas (demo runs)."""
        from profilehouse import fs
        from profilehouse.gold import quality
        from profilehouse.truth import persons_dir, read_truth_persons, read_truth_records

        if not (self.truth_uri and fs.path_exists(self.spark, persons_dir(self.truth_uri))):
            return None
        records = read_truth_records(self.spark, self.truth_uri)
        masters = quality.main_masters(self.inputs.tables["master_members"], records)
        persons = read_truth_persons(self.spark, self.truth_uri).select("person_id", "persona")
        judged = persons.join(masters, "person_id").join(assigned, MASTER_ID)
        return round(seg.adjusted_rand_index(judged, "persona", seg.SEGMENT_ID), 4)

    def _rfm_tiers(self, current: DataFrame, assigned: DataFrame) -> tuple[dict[str, Any], ...]:
        settings = seg.load_rfm_tier_settings(_models_path(self.conf_dir))
        model = seg.train_rfm_tiers(current, settings)
        tiers = seg.assign_rfm_tiers(model, current)
        rows = assigned.join(tiers, MASTER_ID, "left").withColumn(SNAPSHOT_DATE, F.lit(self.newest))
        replace_snapshot(rows, gold_table(self.catalog, CUSTOMER_SEGMENTS), self.newest)
        self.segments = delta_io.read_table(
            self.spark, gold_table(self.catalog, CUSTOMER_SEGMENTS)
        ).where(F.col(SNAPSHOT_DATE) == F.lit(self.newest))
        return tuple(
            {
                "tier": t.tier,
                "name_zh": t.name_zh,
                "name_en": t.name_en,
                "customers": t.customers,
                "means": {k: round(v, 2) for k, v in t.means.items()},
            }
            for t in model.tiers
        )

    # --- CLV ------------------------------------------------------------------------------

    def _clv(self) -> tuple[DataFrame, dict[str, Any]]:
        settings = clv_model.load_clv_settings(_models_path(self.conf_dir))
        purchases = purchase_transactions(self.spark, self.inputs, settings)
        purchases = purchases.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            report = clv_model.evaluate_clv_holdout(
                purchases, self.newest, settings, time_col="ts", monetary_col="amount"
            )
            summary = clv_model.build_rfm_summary(
                purchases,
                self.newest,
                time_col="ts",
                monetary_col="amount",
                period_days=settings.period_days,
            )
            bgnbd = clv_model.fit_bgnbd(
                summary,
                period_days=settings.period_days,
                l2_penalty=settings.l2_penalty,
                max_distinct_tuples=settings.max_distinct_tuples,
                max_rounding_periods=settings.max_rounding_periods,
            )
            gamma_gamma = clv_model.fit_gamma_gamma(
                summary,
                l2_penalty=settings.l2_penalty,
                max_distinct_tuples=settings.max_distinct_tuples,
                significant_digits=settings.monetary_significant_digits,
            )
            predictions = clv_model.build_clv_predictions(
                summary,
                bgnbd,
                gamma_gamma,
                prediction_days=settings.prediction_days,
                horizon_months=settings.horizon_months,
                monthly_discount_rate=settings.monthly_discount_rate,
                days_per_month=settings.days_per_month,
                max_terms=settings.hyp2f1_max_terms,
                tolerance=settings.hyp2f1_tolerance,
            ).withColumn(SNAPSHOT_DATE, F.lit(self.newest))
            ref = gold_table(self.catalog, CUSTOMER_CLV)
            replace_snapshot(predictions, ref, self.newest)
        finally:
            purchases.unpersist()
        stored = delta_io.read_table(self.spark, ref).where(
            F.col(SNAPSHOT_DATE) == F.lit(self.newest)
        )
        totals = stored.agg(
            F.count("*").alias("customers"),
            F.sum(clv_model.CLV).alias("clv"),
            F.avg(clv_model.P_ALIVE).alias("p_alive"),
        ).first()
        params = {**bgnbd.params, **gamma_gamma.params}
        holdout = report.to_dict()
        with tempfile.TemporaryDirectory(prefix="clv-") as folder:
            _save_json(Path(folder) / "clv.json", {"params": params, "holdout": holdout})
            actual = holdout.get("actual_holdout_purchases") or 0.0
            predicted = holdout.get("predicted_holdout_purchases") or 0.0
            error = abs(predicted - actual) / actual if actual else 0.0
            self._register(
                "clv",
                "clv",
                Path(folder),
                {k: round(v, 6) for k, v in params.items()},
                ["frequency", "recency", "T", "monetary"],
                (self.newest - dt.timedelta(days=settings.holdout_days), self.newest),
                {"holdout_purchase_error": error},
                input_names=[p.source for p in settings.purchases],
            )
        figures = {
            "customers": totals["customers"],
            "total_clv": round(float(totals["clv"] or 0), 2),
            "mean_p_alive": round(float(totals["p_alive"] or 0), 4),
            "params": {k: round(v, 4) for k, v in params.items()},
            "holdout_actual": round(float(actual), 1),
            "holdout_predicted": round(float(predicted), 1),
        }
        return stored, figures

    # --- propensity -----------------------------------------------------------------------

    def _propensity(
        self, name: str, objective: prop.Objective, settings: prop.PropensitySettings
    ) -> PropensityResult:
        """Train (unless a version was trained on exactly these inputs), register, score."""
        prop.check_no_leakage(objective.label, self.dates, name)
        key = self._training_key(objective, settings)
        version = self._version_trained_on(name, key)
        if version is None:
            trained = self._train(name, objective, settings)
            version = self._register_propensity(name, objective, trained, key)
        else:
            log.info(
                f"  models: {name}: v{version.version} was trained on the same inputs and "
                "settings: not trained again"
            )
            trained = self._trained_of(name, version)
        scoring_model, scoring_version = self._champion_model(name, trained.model, version)
        current = prop.population(
            self.features.where(F.col(SNAPSHOT_DATE) == F.lit(self.newest)), objective
        )
        scored = score_logistic(scoring_model, current, keep=[MASTER_ID])
        written = write_scores(self.spark, self.catalog, scored, name, scoring_version, self.newest)
        report = trained.report
        log.info(
            f"  models: {name}: validation AUC {report.roc_auc:.3f}, PR AUC {report.pr_auc:.3f}, "
            f"top-decile lift {report.top_decile_lift():.2f}; v{version.version}"
            f"{' promoted' if version.promoted else ''}; scored with v{scoring_version}"
            f"{' (unchanged: nothing written)' if written.skipped else ''}"
        )
        return PropensityResult(
            objective=name,
            name_zh=objective.name_zh,
            training_rows=trained.model.training.rows,
            training_positives=trained.model.training.positives,
            reg_param=trained.model.reg_param,
            dropped=dict(trained.model.dropped),
            leak_suspects=dict(trained.leak_suspects),
            validation=report,
            version=version.version,
            promoted=version.promoted,
            scored_version=scoring_version,
            scored=written.scored,
            scores_skipped=written.skipped,
            top_reasons=self._top_reasons(name),
        )

    def _training_key(self, objective: prop.Objective, settings: prop.PropensitySettings) -> str:
        """What a training depends on: the objective, the dates, the leak check and the Delta
        versions of every table read. Equal keys give the same model (up to the last digits
        LBFGS sums in task order), so a second run with equal keys trains nothing."""
        sources = [e.source for e in objective.label.events]
        basis = {
            "objective": objective.model_dump(mode="json"),
            "dates": [d.isoformat() for d in (*self.dates.training, self.dates.validation)],
            "leak": [settings.leak_auc_threshold, settings.max_leak_rows],
            "inputs": self._input_versions([*sources, "master_members"]),
        }
        text = json.dumps(basis, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _version_trained_on(self, name: str, key: str) -> ModelVersion | None:
        """The newest registered version of ``name`` trained with ``key``, if any."""
        newest = (
            model_history(self.spark, self.catalog)
            .where((F.col("model_name") == name) & (F.col("params")[TRAINING_KEY] == key))
            .agg(F.max("version"))
            .first()[0]
        )
        return None if newest is None else model_version(self.registry, name, newest)

    def _train(
        self, name: str, objective: prop.Objective, settings: prop.PropensitySettings
    ) -> _Trained:
        dates = self.dates
        events = prop.label_events(
            self.spark,
            objective.label,
            self.inputs.config,
            self.inputs.tables,
            self.inputs.tables["master_members"],
            self.inputs.record_keys,
        )
        labelled_dates = [*dates.training, dates.validation]
        outcomes = prop.outcomes_at(events, objective.label, labelled_dates)
        rows = prop.labelled(
            prop.population(
                self.features.where(F.col(SNAPSHOT_DATE).isin(labelled_dates)), objective
            ).select(MASTER_ID, SNAPSHOT_DATE, *objective.features),
            outcomes,
            objective.label,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            train = rows.where(F.col(SNAPSHOT_DATE).isin(list(dates.training)))
            validation = rows.where(F.col(SNAPSHOT_DATE) == F.lit(dates.validation))
            suspects = prop.leak_suspects(
                train,
                prop.LABEL,
                objective.numeric,
                settings.leak_auc_threshold,
                settings.max_leak_rows,
            )
            for s in suspects:
                log.warning(
                    f"  models: {name}: feature {s.feature} alone reaches AUC {s.auc} on the "
                    "training set (a probable leak): left out"
                )
            left_out = {s.feature for s in suspects}
            numeric = [c for c in objective.numeric if c not in left_out]
            categorical = objective.categorical
            spec = FeatureSpec(
                tuple(numeric),
                tuple(categorical),
                {k: v for k, v in objective.reasons.items() if k in {*numeric, *categorical}},
            )
            model = train_logistic(train, prop.LABEL, spec, _logistic_settings(objective))
            report = evaluate_scores(
                score_logistic(model, validation, keep=[prop.LABEL]), prop.LABEL
            )
        finally:
            rows.unpersist()
        return _Trained(model, report, {s.feature: s.auc for s in suspects})

    def _trained_of(self, name: str, version: ModelVersion) -> _Trained:
        """A registered version's model, validation report and leak suspects."""
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-v{version.version}-"))
        path = Path(download_version_artifacts(self.registry, version, folder))
        report = _report_of(json.loads((path / "validation.json").read_text("utf-8")))
        suspects = json.loads(version.params.get(LEAK_SUSPECTS, "{}"))
        return _Trained(LogisticModel.load(str(path / "model")), report, suspects)

    def _register_propensity(
        self, name: str, objective: prop.Objective, trained: _Trained, key: str
    ) -> ModelVersion:
        model, report = trained.model, trained.report
        sources = [e.source for e in objective.label.events]
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
            path = Path(folder) / "model"
            model.save(str(path))
            _save_json(Path(folder) / "validation.json", report.to_dict())
            return self._register(
                name,
                "propensity",
                Path(folder),
                {
                    "reg_param": model.reg_param,
                    "population": objective.population,
                    "label": objective.label.model_dump_json(),
                    "validation_snapshot": self.dates.validation.isoformat(),
                    TRAINING_KEY: key,
                    LEAK_SUSPECTS: json.dumps(trained.leak_suspects),
                },
                list(model.features.columns),
                (min(self.dates.training), self.dates.validation),
                {
                    "roc_auc": report.roc_auc,
                    "pr_auc": report.pr_auc,
                    "brier": report.brier,
                    "top_decile_lift": report.top_decile_lift(),
                },
                input_names=[*sources, "master_members"],
            )

    def _champion_model(
        self, name: str, trained: LogisticModel, version: ModelVersion
    ) -> tuple[LogisticModel, int]:
        """The model that scores: the champion (the one just trained when it is)."""
        best = registry_champion(self.registry, name)
        if best is None or best.version == version.version:
            return trained, version.version
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-champion-"))
        path = download_version_artifacts(self.registry, best, folder)
        return LogisticModel.load(str(Path(path) / "model")), best.version

    def _top_reasons(self, name: str) -> tuple[tuple[str, int], ...]:
        """The reason codes most often first in the model's current top decile."""
        scores = delta_io.read_table(self.spark, scores_table(self.catalog))
        rows = (
            scores.where((F.col("model") == name) & (F.col("decile") == 1))
            .select(F.col("reasons")[0]["name"].alias("reason"))
            .where(F.col("reason").isNotNull())
            .groupBy("reason")
            .count()
            .orderBy(F.desc("count"), "reason")
            .limit(5)
            .collect()
        )
        return tuple((r["reason"], int(r["count"])) for r in rows)

    # --- profile --------------------------------------------------------------------------

    def _profile(self, clv_rows: DataFrame) -> dict[str, Any]:
        settings = load_profile_settings(
            None if self.conf_dir is None else Path(self.conf_dir) / "profile.yaml"
        )
        tags = delta_io.read_table(self.spark, gold_table(self.catalog, CUSTOMER_TAGS))
        profile = build_customer_profile(
            self.inputs.tables["golden_records"],
            tags.where(F.col(SNAPSHOT_DATE) == F.lit(self.newest)),
            self.features.where(F.col(SNAPSHOT_DATE) == F.lit(self.newest)),
            self.segments,
            delta_io.read_table(self.spark, scores_table(self.catalog)),
            clv_rows,
            settings,
            self.newest,
        )
        written = write_customer_profile(self.spark, self.catalog, profile)
        return {
            "customers": written.customers,
            "inserted": written.inserted,
            "updated": written.updated,
            "deleted": written.deleted,
            "skipped": written.skipped,
            "version": written.version,
        }


def _qualified_input(name: str) -> str:
    layer = Layer.IDENTITY if name in ("master_members", "golden_records") else Layer.SILVER
    return f"{layer.value}.{name}"


def _logistic_settings(objective: prop.Objective) -> LogisticSettings:
    o = objective.logistic
    return LogisticSettings(
        reg_params=tuple(o.reg_params),
        elastic_net=o.elastic_net,
        folds=o.folds,
        class_weighting=o.class_weighting,
        max_iter=o.max_iter,
        seed=o.seed,
    )


def _save_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, default=str), "utf-8")


def purchase_transactions(
    spark: SparkSession, inputs: FeatureInputs, settings: clv_model.ClvSettings
) -> DataFrame:
    """``(master_id, ts, amount)``: one row per purchase (order) of the sources in
    ``clv.purchases``, on its master customer."""
    members = inputs.tables["master_members"]
    frames = []
    for purchase in settings.purchases:
        source = inputs.config.sources[purchase.source]
        rows = source_rows(spark, purchase.source, source, inputs.tables)
        if purchase.where:
            rows = rows.where(F.expr(purchase.where))
        rows = on_master(rows, purchase.source, source, members, inputs.record_keys)
        frames.append(
            rows.groupBy(MASTER_ID, F.expr(purchase.order).alias("__order"))
            .agg(
                F.min(F.expr(source.time).cast("timestamp")).alias("ts"),
                F.sum(F.expr(purchase.amount).cast("double")).alias("amount"),
            )
            .select(MASTER_ID, "ts", "amount")
        )
    if not frames:
        raise ProfilehouseError("clv.purchases in conf/models.yaml names no purchase source")
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union


def format_models_report(result: ModelsResult) -> str:
    """A readable summary: segments, CLV and each propensity model's validation figures."""
    lines = [f"models over the {result.snapshot_date} snapshot ({result.seconds:.0f} s)"]
    ari = "" if result.persona_ari is None else f", persona ARI {result.persona_ari:.3f}"
    lines.append(f"  segments (k = {len(result.segments)}{ari}):")
    lines += [
        f"    {s['segment_id']:>2} {s['name_zh']} ({s['name_en']}): {s['customers']:,} "
        f"({s['share']:.1%})"
        for s in result.segments
    ]
    c = result.clv
    lines.append(
        f"  CLV: {c['customers']:,} buyers, total 12-month CLV {c['total_clv']:,.0f}, mean "
        f"P(alive) {c['mean_p_alive']:.2f}; holdout purchases predicted "
        f"{c['holdout_predicted']:,.0f} vs actual {c['holdout_actual']:,.0f}"
    )
    for name, r in result.propensity.items():
        v = r.validation
        lines.append(
            f"  {name} {r.name_zh}: validation AUC {v.roc_auc:.3f}, PR AUC {v.pr_auc:.3f}, "
            f"lift@top decile {v.top_decile_lift():.2f}, base rate {v.base_rate:.2%}, "
            f"Brier {v.brier:.4f}; v{r.version}{' (promoted)' if r.promoted else ''}, "
            f"{r.scored:,} scored"
        )
    p = result.profile
    lines.append(
        f"  gold.customer_profile: {p['customers']:,} customers ({p['inserted']:,} new, "
        f"{p['updated']:,} changed, {p['deleted']:,} removed)"
    )
    return "\n".join(lines)


def models_table(catalog: TableCatalog, name: str) -> TableRef:
    """A gold table the models stage writes."""
    return gold_table(catalog, name)
