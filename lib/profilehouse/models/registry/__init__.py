"""The model registry: every trained model versioned in MLflow, its history in Delta.

:func:`register_model_version` logs a trained model as an MLflow run (parameters, validation
metrics, features, training window, the Delta versions of the tables it read, the saved model
folder), registers it as a new version of its registered model, promotes it to ``champion`` (an
MLflow alias) only when it beats the current champion by the rule under ``registry.promotion``
in ``conf/models.yaml``, and adds a row to the Delta table ``ops.model_versions``
(:func:`model_history`), so the history is queryable from Spark. A model whose fingerprint —
parameters, features, window, input versions and saved files — is registered already is not
registered again: re-training on unchanged inputs is a no-op, and scores stamped with the
version (:func:`with_model_version`) tell a scoring job whether the champion changed.

The MLflow store is the one configured (an MLflow server on a cluster), else an embedded SQLite
store under the warehouse's ops folder. MLflow itself is imported only when a registry function
runs.

- :mod:`.settings`: ``registry:`` settings and the promotion rule.
- :mod:`.fingerprint`: a trained model's fingerprint.
- :mod:`.promotion`: the promotion decision (pure).
- :mod:`.versions`: :class:`ModelVersion` and the checks on registrations.
- :mod:`.mlflow_store`: every MLflow call.
- :mod:`.history`: ``ops.model_versions``.
- :mod:`.register`: registration, champion look-up, artifact download.
"""

from profilehouse.models.registry.fingerprint import model_fingerprint
from profilehouse.models.registry.history import (
    MODEL_VERSIONS_SCHEMA,
    model_history,
    model_versions_table,
    with_model_version,
)
from profilehouse.models.registry.mlflow_store import CHAMPION_ALIAS
from profilehouse.models.registry.promotion import Champion, PromotionDecision, promotion_decision
from profilehouse.models.registry.register import (
    build_registration,
    champion,
    download_version_artifacts,
    load_champion_artifacts,
    model_version,
    register_model_version,
)
from profilehouse.models.registry.settings import (
    PromotionOverride,
    PromotionRule,
    PromotionSettings,
    RegistryConfig,
    RegistrySettings,
    embedded_store_dir,
    load_registry_settings,
)
from profilehouse.models.registry.versions import ModelVersion, Registration, RegistryError

__all__ = [
    "CHAMPION_ALIAS",
    "MODEL_VERSIONS_SCHEMA",
    "Champion",
    "ModelVersion",
    "PromotionDecision",
    "PromotionOverride",
    "PromotionRule",
    "PromotionSettings",
    "Registration",
    "RegistryConfig",
    "RegistryError",
    "RegistrySettings",
    "build_registration",
    "champion",
    "download_version_artifacts",
    "embedded_store_dir",
    "load_champion_artifacts",
    "load_registry_settings",
    "model_fingerprint",
    "model_history",
    "model_version",
    "model_versions_table",
    "promotion_decision",
    "register_model_version",
    "with_model_version",
]
