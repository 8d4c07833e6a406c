"""``registry:`` in ``conf/models.yaml``: where MLflow keeps runs and versions, and the rule that
decides whether a new model version becomes its model's champion."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationInfo, field_validator, model_validator

from profilehouse.catalog import Layer, TableCatalog
from profilehouse.config import StrictModel, parse_model
from profilehouse.errors import ConfigError
from profilehouse.models.settings import models_file, models_section

SECTION = "registry"
STORE_FOLDER = "mlflow"  # the embedded store's folder in the warehouse's ops folder
STORE_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "artifacts"

Direction = Literal["higher", "lower"]
# MLflow tracking-URI schemes the registry accepts. ``file:`` (MLflow's legacy file store) is
# left out: MLflow 3 refuses it unless MLFLOW_ALLOW_FILE_STORE is set, and it gets no fixes.
SERVER_SCHEMES = frozenset({"http", "https", "databricks"})
DATABASE_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})
_SCHEME = re.compile(r"^([a-z][a-z0-9]*)(\+[a-z0-9]+)?:")


class PromotionRule(StrictModel):
    """How two versions of one model compare: one validation metric and which way is better."""

    metric: str = Field(min_length=1, description="Validation metric compared, e.g. roc_auc.")
    direction: Direction = Field(
        default="higher", description="higher: larger values are better; lower: smaller ones."
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0,
        description="A new version is promoted only when it beats the champion by more than "
        "this (absolute, in the metric's units).",
    )


class PromotionOverride(StrictModel):
    """A model's own promotion rule: the keys given replace the default rule's."""

    metric: str | None = Field(default=None, min_length=1)
    direction: Direction | None = None
    min_improvement: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _metric_states_direction(self) -> PromotionOverride:
        if self.metric is not None and self.direction is None:
            raise ValueError(
                f"metric {self.metric!r} needs its direction too (higher or lower): the "
                "default rule's direction belongs to the default metric"
            )
        return self


class PromotionSettings(PromotionRule):
    """The default promotion rule and per-model overrides (keyed by registered model name)."""

    models: dict[str, PromotionOverride] = Field(default_factory=dict)

    def rule_for(self, model_name: str) -> PromotionRule:
        """The rule deciding promotions of ``model_name``: its override over the default."""
        base = PromotionRule(
            metric=self.metric, direction=self.direction, min_improvement=self.min_improvement
        )
        override = self.models.get(model_name)
        if override is None:
            return base
        return base.model_copy(update=override.model_dump(exclude_none=True))


class RegistryConfig(StrictModel):
    """The ``registry:`` section as written; :class:`RegistrySettings` has its URIs resolved."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; null: an embedded SQLite store in the warehouse.",
    )
    registry_uri: str | None = Field(
        default=None, description="MLflow model registry URI; null: the tracking URI."
    )
    artifact_root: str | None = Field(
        default=None,
        validate_default=True,
        description="Where new experiments keep run artifacts; required with a database "
        "tracking URI, optional with a server (which has its own).",
    )
    experiment_prefix: str = Field(
        default="profilehouse",
        min_length=1,
        description="One MLflow experiment per model, named <prefix>/<model name>.",
    )
    promotion: PromotionSettings

    @field_validator("tracking_uri", "registry_uri")
    @classmethod
    def _usable_uri(cls, uri: str | None) -> str | None:
        problem = _uri_problem(uri)
        if problem:
            raise ValueError(problem)
        return uri

    @field_validator("artifact_root", mode="after")
    @classmethod
    def _artifact_root_with_database(cls, root: str | None, info: ValidationInfo) -> str | None:
        if root is None and _scheme(info.data.get("tracking_uri")) in DATABASE_SCHEMES:
            raise ValueError(
                "required with a database tracking_uri (MLflow would otherwise put artifacts "
                "under the current directory)"
            )
        return root


class _RegistrySection(StrictModel):
    registry: RegistryConfig


@dataclass(frozen=True)
class RegistrySettings:
    """The registry's resolved settings: MLflow URIs (never None), experiment prefix, promotion.

    ``artifact_root`` is None only with a tracking server, which chooses artifact locations.
    """

    tracking_uri: str
    registry_uri: str
    artifact_root: str | None
    experiment_prefix: str
    promotion: PromotionSettings

    def experiment_name(self, model_name: str) -> str:
        """The MLflow experiment holding the runs of ``model_name``."""
        return f"{self.experiment_prefix}/{model_name}"


def load_registry_settings(
    source: str | Path | Mapping[str, Any] | None, catalog: TableCatalog
) -> RegistrySettings:
    """Load ``registry:`` of ``conf/models.yaml`` and resolve its URIs for ``catalog``.

    ``source``: the models file (None: ``models.yaml`` in the config folder), or the section's
    contents as a mapping. Without a ``tracking_uri`` the store is an embedded SQLite database
    under the catalog's ops folder (:func:`embedded_store_dir`), which must be a local path.
    Raises ConfigError naming the file and every bad key, its value and what is allowed.
    """
    if isinstance(source, Mapping):
        label = f"{SECTION}: section (mapping)"
        config = parse_model({SECTION: dict(source)}, _RegistrySection, source=label).registry
    else:
        label = str(models_file(source))
        config = models_section(source, SECTION, _RegistrySection)
    return resolve_settings(config, catalog, label)


def resolve_settings(
    config: RegistryConfig, catalog: TableCatalog, source: str
) -> RegistrySettings:
    """``config`` with its URIs filled in: the embedded store for a missing ``tracking_uri``."""
    if config.tracking_uri is not None:
        tracking_uri, artifact_root = config.tracking_uri, config.artifact_root
    else:
        store = _local_store_dir(catalog, source)
        tracking_uri = f"sqlite:///{store / STORE_FILE}"
        artifact_root = config.artifact_root or (store / ARTIFACTS_FOLDER).as_uri()
    return RegistrySettings(
        tracking_uri=tracking_uri,
        registry_uri=config.registry_uri or tracking_uri,
        artifact_root=artifact_root,
        experiment_prefix=config.experiment_prefix,
        promotion=config.promotion,
    )


def embedded_store_dir(catalog: TableCatalog) -> str:
    """The embedded MLflow store's folder: ``mlflow`` in the warehouse's ops folder."""
    return f"{catalog.layer_dirs(Layer.OPS)[0]}/{STORE_FOLDER}"


def _local_store_dir(catalog: TableCatalog, source: str) -> Path:
    location = embedded_store_dir(catalog)
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        raise ConfigError(
            source,
            [
                f"{SECTION}.tracking_uri: required when the warehouse is not a local folder "
                f"(the embedded store would be at {location}); set it to an MLflow server, "
                "e.g. http://mlflow:5000"
            ],
        )
    return Path(parsed.path if parsed.scheme else location).resolve()


def _scheme(uri: str | None) -> str | None:
    match = _SCHEME.match(uri or "")
    return match.group(1) if match else None


def _uri_problem(uri: str | None) -> str | None:
    if uri is None:
        return None
    scheme = _scheme(uri)
    if scheme not in SERVER_SCHEMES | DATABASE_SCHEMES:
        allowed = ", ".join(sorted(SERVER_SCHEMES | DATABASE_SCHEMES))
        return f"not an MLflow tracking URI (schemes: {allowed})"
    if scheme == "sqlite" and not uri.startswith("sqlite:////"):
        return "a SQLite path must be absolute (sqlite:////abs/path/mlflow.db)"
    return None
