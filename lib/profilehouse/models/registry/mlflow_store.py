"""Every call to MLflow: runs, registered versions, their tags and the ``champion`` alias.

MLflow is imported here only, inside the functions, so jobs that never touch the registry do
not pay for importing it. Clients are built with explicit tracking and registry URIs (MLflow's
own defaults and ``MLFLOW_TRACKING_URI`` are never used). MLflow's usage telemetry is switched
off unless the environment sets ``MLFLOW_DISABLE_TELEMETRY`` itself.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from profilehouse.models.registry.promotion import PromotionDecision
from profilehouse.models.registry.settings import RegistrySettings
from profilehouse.models.registry.versions import ModelVersion, Registration, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_PATH = "model"  # the saved model's folder in the run's artifacts
REGISTRATION_FILE = "registration.json"  # what was registered, in the run's artifacts
# model version tags
FINGERPRINT_TAG = "fingerprint"
KIND_TAG = "kind"
PROMOTED_TAG = "promoted"
CHAMPION_BEFORE_TAG = "champion_before"
REASON_TAG = "promotion_reason"
INPUT_VERSION_TAG_PREFIX = "input_version."
_BATCH = 100  # MLflow takes at most 100 params (and 100 tags) per log_batch call
T = TypeVar("T")


def mlflow_client(settings: RegistrySettings) -> MlflowClient:
    """An MLflow client on ``settings``' tracking and registry URIs (a local SQLite store's
    folder is created first)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for uri in {settings.tracking_uri, settings.registry_uri}:
        if uri.startswith("sqlite:////"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def experiment_id(client: MlflowClient, settings: RegistrySettings, model_name: str) -> str:
    """The id of ``model_name``'s experiment, created (with its artifact location under the
    settings' artifact root, if any) when absent."""
    name = settings.experiment_name(model_name)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = f"{settings.artifact_root}/{model_name}" if settings.artifact_root else None
    return _created_or_existing(
        lambda: client.create_experiment(name, artifact_location=location),
        lambda: client.get_experiment_by_name(name).experiment_id,
    )


def ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    """Create the registered model ``model_name`` unless it exists."""
    _created_or_existing(
        lambda: client.create_registered_model(model_name),
        lambda: client.get_registered_model(model_name),
    )


def version_with_fingerprint(
    client: MlflowClient, model_name: str, fingerprint: str
) -> MlflowModelVersion | None:
    """The earliest version of ``model_name`` registered with ``fingerprint``, if any."""
    found = client.search_model_versions(
        f"name = '{model_name}' AND tag.{FINGERPRINT_TAG} = '{fingerprint}'"
    )
    return min(found, key=lambda v: int(v.version), default=None)


def log_training_run(
    client: MlflowClient, experiment: str, registration: Registration, artifact_dir: Path
) -> str:
    """Log one finished run: params, metrics, tags (kind, fingerprint, window, input versions),
    ``registration.json`` and the saved model folder. Returns the run id; a failed log leaves
    the run marked FAILED."""
    run = client.create_run(
        experiment,
        run_name=f"{registration.model_name}-{registration.fingerprint[:12]}",
        tags=_run_tags(registration),
    )
    run_id = run.info.run_id
    try:
        _log_params_and_metrics(client, run_id, registration)
        client.log_dict(run_id, registration.to_record(), REGISTRATION_FILE)
        client.log_artifacts(run_id, str(artifact_dir), MODEL_ARTIFACT_PATH)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def create_version(
    client: MlflowClient, registration: Registration, run_id: str
) -> MlflowModelVersion:
    """Register the model folder of run ``run_id`` as a new version, tagged with its
    fingerprint and kind."""
    artifact_uri = client.get_run(run_id).info.artifact_uri
    return client.create_model_version(
        registration.model_name,
        source=f"{artifact_uri}/{MODEL_ARTIFACT_PATH}",
        run_id=run_id,
        tags={FINGERPRINT_TAG: registration.fingerprint, KIND_TAG: registration.kind},
    )


def recorded_decision(version: MlflowModelVersion) -> PromotionDecision | None:
    """The promotion decision recorded on ``version``'s tags (None before it is made)."""
    tags = version.tags or {}
    if REASON_TAG not in tags:
        return None
    before = tags.get(CHAMPION_BEFORE_TAG) or None
    return PromotionDecision(
        promoted=tags.get(PROMOTED_TAG) == "true",
        champion_before=int(before) if before else None,
        reason=tags[REASON_TAG],
    )


def record_decision(
    client: MlflowClient, model_name: str, version: int, decision: PromotionDecision
) -> None:
    """Tag ``version`` with ``decision`` (its reason last: its presence marks a decision)."""
    before = "" if decision.champion_before is None else str(decision.champion_before)
    tags = {
        PROMOTED_TAG: str(decision.promoted).lower(),
        CHAMPION_BEFORE_TAG: before,
        REASON_TAG: decision.reason,
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, value)


def champion_number(client: MlflowClient, model_name: str) -> int | None:
    """The version number the ``champion`` alias points at (None: no champion, or no such
    registered model)."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(model_name).aliases or {}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    number = aliases.get(CHAMPION_ALIAS)
    return int(number) if number is not None else None


def set_champion(client: MlflowClient, model_name: str, version: int) -> None:
    """Point the ``champion`` alias of ``model_name`` at ``version``."""
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, str(version))


def read_version(client: MlflowClient, model_name: str, version: int) -> ModelVersion:
    """Version ``version`` of ``model_name`` with what was registered (from its run's
    ``registration.json``) and its promotion decision. Raises RegistryError when the version
    was not made by this registry (no registration record or no decision)."""
    found = client.get_model_version(model_name, str(version))
    decision = recorded_decision(found)
    if decision is None:
        raise RegistryError(f"{model_name} v{version} has no promotion decision recorded")
    registration = Registration.from_record(_registration_record(client, found.run_id))
    return ModelVersion.of(
        registration,
        version=int(found.version),
        run_id=found.run_id,
        created_at=dt.datetime.fromtimestamp(found.creation_timestamp / 1000, tz=dt.UTC),
        artifact_uri=found.source,
        promoted=decision.promoted,
        champion_before=decision.champion_before,
        reason=decision.reason,
    )


def download_model_folder(client: MlflowClient, run_id: str, dest_dir: Path) -> Path:
    """Download the saved model folder of run ``run_id`` into ``dest_dir``; its local path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, MODEL_ARTIFACT_PATH, str(dest_dir)))


def _registration_record(client: MlflowClient, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="registration-") as tmp:
        try:
            path = client.download_artifacts(run_id, REGISTRATION_FILE, tmp)
        except Exception as exc:
            raise RegistryError(f"run {run_id} has no {REGISTRATION_FILE}: {exc}") from exc
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _run_tags(registration: Registration) -> dict[str, str]:
    tags = {
        KIND_TAG: registration.kind,
        FINGERPRINT_TAG: registration.fingerprint,
        "train_start": registration.train_start.isoformat(),
        "train_end": registration.train_end.isoformat(),
        "feature_count": str(len(registration.features)),
    }
    for table, version in registration.input_versions.items():
        tags[f"{INPUT_VERSION_TAG_PREFIX}{table}"] = str(version)
    return tags


def _log_params_and_metrics(client: MlflowClient, run_id: str, registration: Registration) -> None:
    from mlflow.entities import Metric, Param

    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    params = [Param(k, v) for k, v in registration.params.items()]
    metrics = [Metric(k, v, now, 0) for k, v in registration.metrics.items()]
    for chunk in _chunks(params, _BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metrics, _BATCH):
        client.log_batch(run_id, metrics=chunk)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _created_or_existing(create: Callable[[], Any], existing: Callable[[], Any]) -> Any:
    """``create()``; when another writer created the object first, ``existing()``."""
    from mlflow.exceptions import MlflowException

    try:
        return create()
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return existing()
