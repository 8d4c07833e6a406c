"""Registering a trained model, finding a model's champion and fetching its saved folder."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import SparkSession

from profilehouse.catalog import TableCatalog
from profilehouse.models.registry import mlflow_store as store
from profilehouse.models.registry.fingerprint import model_fingerprint
from profilehouse.models.registry.history import append_model_version
from profilehouse.models.registry.promotion import Champion, promotion_decision
from profilehouse.models.registry.settings import PromotionRule, RegistrySettings
from profilehouse.models.registry.versions import (
    ModelVersion,
    Registration,
    RegistryError,
    registration_problems,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def register_model_version(
    spark: SparkSession,
    settings: RegistrySettings,
    catalog: TableCatalog,
    *,
    model_name: str,
    kind: str,
    artifact_dir: str | Path,
    params: Mapping[str, object],
    features: Sequence[str],
    training_window: tuple[dt.date, dt.date],
    metrics: Mapping[str, float],
    input_versions: Mapping[str, int],
) -> ModelVersion:
    """Version a trained model in MLflow, decide its promotion and add it to ``ops.model_versions``.

    ``artifact_dir``: a local folder holding the saved model (e.g. a PipelineModel's
    ``.save()``) and any metadata files; ``metrics``: validation metrics, one of which the
    promotion rule compares; ``input_versions``: qualified table name → Delta version read.

    Steps: an MLflow run (params, metrics, tags, the folder), a new version of ``model_name``,
    the promotion decision against the champion (the first version is always promoted; a
    promoted version gets the ``champion`` alias), the Delta row. A model whose fingerprint
    (:func:`model_fingerprint`) is already registered is not registered again: its version
    comes back unchanged, with the metrics it was first registered with. A retry after a
    failure part-way completes the same version.
    Raises RegistryError listing every problem with the arguments.
    """
    rule = settings.promotion.rule_for(model_name)
    folder = Path(artifact_dir)
    registration = build_registration(
        rule, model_name, kind, folder, params, features, training_window, metrics, input_versions
    )
    client = store.mlflow_client(settings)
    number, created = _version_number(client, settings, registration, folder)
    _decide_once(client, rule, registration, number)
    version = store.read_version(client, model_name, number)
    append_model_version(spark, catalog, version)
    if created:
        log.info("model %s v%d (%s): %s", model_name, number, kind, version.reason)
    else:
        _log_unchanged(version, registration)
    return version


def build_registration(
    rule: PromotionRule,
    model_name: str,
    kind: str,
    artifact_dir: Path,
    params: Mapping[str, object],
    features: Sequence[str],
    training_window: tuple[dt.date, dt.date],
    metrics: Mapping[str, float],
    input_versions: Mapping[str, int],
) -> Registration:
    """The checked registration of one trained model, with its fingerprint. Raises
    RegistryError listing every problem."""
    problems = registration_problems(
        model_name=model_name,
        kind=kind,
        artifact_dir=artifact_dir,
        params=params,
        features=features,
        training_window=training_window,
        metrics=metrics,
        input_versions=input_versions,
        promotion_metric=rule.metric,
    )
    if problems:
        raise RegistryError(f"cannot register model {model_name!r}:", problems)
    fingerprint = model_fingerprint(
        artifact_dir,
        kind=kind,
        params=params,
        features=features,
        training_window=training_window,
        input_versions=input_versions,
    )
    return Registration(
        model_name=model_name,
        kind=kind,
        params={k: str(v) for k, v in params.items()},
        features=tuple(features),
        train_start=training_window[0],
        train_end=training_window[1],
        metrics={k: float(v) for k, v in metrics.items()},
        input_versions={k: int(v) for k, v in input_versions.items()},
        fingerprint=fingerprint,
    )


def champion(settings: RegistrySettings, model_name: str) -> ModelVersion | None:
    """The version of ``model_name`` the ``champion`` alias points at; None when there is none."""
    client = store.mlflow_client(settings)
    number = store.champion_number(client, model_name)
    return None if number is None else store.read_version(client, model_name, number)


def model_version(settings: RegistrySettings, model_name: str, version: int) -> ModelVersion:
    """Version ``version`` of ``model_name`` as registered."""
    return store.read_version(store.mlflow_client(settings), model_name, version)


def load_champion_artifacts(
    settings: RegistrySettings, model_name: str, dest_dir: str | Path
) -> Path:
    """Download the champion's saved model folder into ``dest_dir``; its local path (e.g. for
    ``PipelineModel.load``). Raises RegistryError when ``model_name`` has no champion."""
    found = champion(settings, model_name)
    if found is None:
        raise RegistryError(
            f"model {model_name!r} has no champion in the registry at {settings.registry_uri} "
            "(register a version first)"
        )
    return download_version_artifacts(settings, found, dest_dir)


def download_version_artifacts(
    settings: RegistrySettings, version: ModelVersion, dest_dir: str | Path
) -> Path:
    """Download ``version``'s saved model folder into ``dest_dir``; its local path."""
    client = store.mlflow_client(settings)
    return store.download_model_folder(client, version.run_id, Path(dest_dir))


def _version_number(
    client: MlflowClient, settings: RegistrySettings, registration: Registration, folder: Path
) -> tuple[int, bool]:
    """The version holding ``registration`` — the one with its fingerprint, else a new one —
    and whether it is new."""
    name = registration.model_name
    store.ensure_registered_model(client, name)
    existing = store.version_with_fingerprint(client, name, registration.fingerprint)
    if existing is not None:
        return int(existing.version), False
    experiment = store.experiment_id(client, settings, name)
    run_id = store.log_training_run(client, experiment, registration, folder)
    return int(store.create_version(client, registration, run_id).version), True


def _log_unchanged(version: ModelVersion, registration: Registration) -> None:
    name, number = version.model_name, version.version
    log.info("model %s: unchanged (the fingerprint of v%d), nothing registered", name, number)
    if version.metrics != registration.metrics:
        log.warning(
            "model %s v%d was registered with metrics %s; the unchanged model's new metrics %s "
            "are not recorded (validated on other data? add its table to input_versions)",
            name,
            number,
            version.metrics,
            registration.metrics,
        )


def _decide_once(
    client: MlflowClient, rule: PromotionRule, registration: Registration, number: int
) -> None:
    """Decide version ``number``'s promotion unless it was decided already, and make it the
    champion when promoted, unless a later version has been promoted since."""
    name = registration.model_name
    decision = store.recorded_decision(client.get_model_version(name, str(number)))
    if decision is None:
        decision = promotion_decision(rule, registration.metrics, _current_champion(client, name))
        store.record_decision(client, name, number, decision)
    current = store.champion_number(client, name)
    if decision.promoted and (current is None or current < number):
        store.set_champion(client, name, number)


def _current_champion(client: MlflowClient, model_name: str) -> Champion | None:
    """The champion's number and its run's metrics (any champion, registered here or not)."""
    number = store.champion_number(client, model_name)
    if number is None:
        return None
    run_id = client.get_model_version(model_name, str(number)).run_id
    metrics = client.get_run(run_id).data.metrics if run_id else {}
    return Champion(number, metrics)
