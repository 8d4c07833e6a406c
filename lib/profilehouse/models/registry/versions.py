"""A registered model version as the rest of the product sees it, and the checks on what a
caller registers."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from profilehouse.errors import ProfilehouseError

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_QUALIFIED_TABLE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")
# Known kinds (others are accepted: a kind only labels the version).
KINDS = ("propensity", "segmentation", "rfm_tiers", "clv")


class RegistryError(ProfilehouseError):
    """A model cannot be registered or found: bad inputs (every problem listed), no champion,
    or a registry that does not answer as expected."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        lines = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + lines)


@dataclass(frozen=True)
class Registration:
    """What a caller registers: one trained model and what it was trained and validated on."""

    model_name: str
    kind: str
    params: dict[str, str]
    features: tuple[str, ...]
    train_start: dt.date
    train_end: dt.date
    metrics: dict[str, float]
    input_versions: dict[str, int]
    fingerprint: str

    def to_record(self) -> dict[str, Any]:
        """Plain JSON data (the run's ``registration.json``)."""
        return {
            "model_name": self.model_name,
            "kind": self.kind,
            "params": self.params,
            "features": list(self.features),
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "metrics": self.metrics,
            "input_versions": self.input_versions,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Registration:
        """The inverse of :meth:`to_record`."""
        return cls(
            model_name=record["model_name"],
            kind=record["kind"],
            params={str(k): str(v) for k, v in record["params"].items()},
            features=tuple(record["features"]),
            train_start=dt.date.fromisoformat(record["train_start"]),
            train_end=dt.date.fromisoformat(record["train_end"]),
            metrics={str(k): float(v) for k, v in record["metrics"].items()},
            input_versions={str(k): int(v) for k, v in record["input_versions"].items()},
            fingerprint=record["fingerprint"],
        )


@dataclass(frozen=True)
class ModelVersion(Registration):
    """One registered version: what was registered, its MLflow version and run, where its
    artifacts are, and whether it was promoted (against which champion, and why)."""

    version: int
    run_id: str
    created_at: dt.datetime
    artifact_uri: str
    promoted: bool
    champion_before: int | None
    reason: str

    @classmethod
    def of(cls, registration: Registration, **version_fields: Any) -> ModelVersion:
        """``registration`` as version ``version_fields`` (``version``, ``run_id``, ...)."""
        return cls(**_fields_of(registration), **version_fields)

    @property
    def registration(self) -> Registration:
        """What was registered (the fields :class:`Registration` has)."""
        return Registration(**_fields_of(self))


def _fields_of(registration: Registration) -> dict[str, Any]:
    return {f.name: getattr(registration, f.name) for f in fields(Registration)}


def registration_problems(
    *,
    model_name: str,
    kind: str,
    artifact_dir: Path,
    params: Mapping[str, object],
    features: Sequence[str],
    training_window: tuple[dt.date, dt.date],
    metrics: Mapping[str, float],
    input_versions: Mapping[str, int],
    promotion_metric: str,
) -> list[str]:
    """Every problem with what a caller registers (empty when none)."""
    return [
        *_name_problems(model_name, kind),
        *_artifact_problems(artifact_dir),
        *_param_problems(params),
        *_feature_problems(features),
        *_window_problems(training_window),
        *_metric_problems(metrics, promotion_metric),
        *_input_version_problems(input_versions),
    ]


def _name_problems(model_name: str, kind: str) -> list[str]:
    problems = []
    if not _MODEL_NAME.match(model_name or ""):
        problems.append(
            f"model_name {model_name!r}: letters, digits, '_', '.' or '-', not starting with a "
            "punctuation mark"
        )
    if not _KIND.match(kind or ""):
        problems.append(f"kind {kind!r}: a lower-case identifier, e.g. one of {', '.join(KINDS)}")
    return problems


def _artifact_problems(artifact_dir: Path) -> list[str]:
    if not artifact_dir.is_dir():
        return [f"artifact_dir {str(artifact_dir)!r}: not a folder (save the model there first)"]
    if not any(p.is_file() for p in artifact_dir.rglob("*")):
        return [f"artifact_dir {str(artifact_dir)!r}: holds no file"]
    return []


def _param_problems(params: Mapping[str, object]) -> list[str]:
    bad = [k for k in params if not isinstance(k, str) or not k.strip()]
    return [f"params: keys must be non-empty strings, got {bad!r}"] if bad else []


def _feature_problems(features: Sequence[str]) -> list[str]:
    if isinstance(features, str) or not features:
        return [f"features: a non-empty list of column names, got {features!r}"]
    seen: set[str] = set()
    repeated = sorted({f for f in features if f in seen or seen.add(f)})
    return [f"features: repeated {', '.join(repeated)}"] if repeated else []


def _window_problems(window: tuple[dt.date, dt.date]) -> list[str]:
    if (
        not isinstance(window, tuple | list)
        or len(window) != 2
        or not all(isinstance(d, dt.date) and not isinstance(d, dt.datetime) for d in window)
    ):
        return [f"training_window: (start date, end date) as datetime.date, got {window!r}"]
    start, end = window
    if start > end:
        return [f"training_window: start {start} is after end {end}"]
    return []


def _metric_problems(metrics: Mapping[str, float], promotion_metric: str) -> list[str]:
    problems = []
    bad = {k: v for k, v in metrics.items() if not _finite_number(v)}
    if bad:
        problems.append(f"metrics: values must be finite numbers, got {bad!r}")
    if promotion_metric not in metrics:
        present = ", ".join(sorted(metrics)) or "none"
        problems.append(
            f"metrics: the promotion rule compares {promotion_metric!r}, which is missing "
            f"(present: {present})"
        )
    return problems


def _input_version_problems(input_versions: Mapping[str, int]) -> list[str]:
    problems = []
    for table, version in input_versions.items():
        if not _QUALIFIED_TABLE.match(str(table)):
            problems.append(f"input_versions: {table!r} is not a qualified table name (layer.name)")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            problems.append(f"input_versions: {table!r} → {version!r} is not a Delta version")
    return problems


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
