"""Config loading: YAML files in ``conf/`` → typed, validated objects.

Every file is validated as a whole and every problem is reported at once in one
:class:`~profilehouse.errors.ConfigError` naming the file, the key path, the bad value and what is
expected. Unknown keys are rejected with the list of allowed keys.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from profilehouse.catalog import sibling_restricted_root
from profilehouse.errors import ConfigError, DemoOnlyError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONF_DIR = PROJECT_ROOT / "conf"
CONF_DIR_ENV = "PROFILEHOUSE_CONF_DIR"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config objects: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# environments.yaml
# ---------------------------------------------------------------------------------------------


class LockSettings(StrictModel):
    """How stage locks behave (see :mod:`profilehouse.locks`)."""

    lease_seconds: int = Field(
        default=600,
        ge=10,
        description="A lock not renewed for this long belongs to a dead run and is taken over.",
    )
    wait_seconds: int = Field(
        default=0,
        ge=0,
        description="How long a run waits for a lock another live run holds before failing.",
    )
    poll_seconds: float = Field(default=5.0, gt=0, description="Pause between tries while waiting.")

    @property
    def heartbeat_seconds(self) -> float:
        """How often a holder renews its lease: three renewals per lease."""
        return self.lease_seconds / 3


class EnvironmentConfig(StrictModel):
    """One environment profile: where data lives and how the Spark session is built."""

    name: str = ""
    master: str | None = Field(
        default=None, description="Spark master URL; null on a cluster (spark-submit decides)."
    )
    demo: bool = Field(
        default=False,
        description="A demo profile: the pipeline may generate synthetic data into landing and "
        "reset the warehouse. Off unless set, so a profile pointing at real exports and a real "
        "warehouse can never have them overwritten or deleted.",
    )
    warehouse: str = Field(
        description="Root of the analyst zone: silver, identity, gold and ops tables (local "
        "path or Hadoop URI)."
    )
    restricted_warehouse: str | None = Field(
        default=None,
        validate_default=True,
        description="Root of the restricted zone holding clear PII: bronze, vault and "
        "ops.quarantine. Must not lie inside the warehouse root (nor it inside this one). "
        "Default: the warehouse root's sibling '<warehouse>-restricted'.",
    )
    landing: str = Field(description="Root of the landing zone where source files arrive.")
    truth: str | None = Field(
        default=None,
        validate_default=True,
        description="Root of the generator's ground truth, read only by the identity quality "
        "report; required on demo profiles, absent in production (no truth exists there).",
    )
    delta_jars: Literal["local", "provided"] = Field(
        description="'local': use the jars fetched by scripts/setup.sh; 'provided': the cluster "
        "supplies them (spark-submit --packages or pre-installed jars)."
    )
    spark_conf: dict[str, str] = Field(default_factory=dict)
    ingest_parallelism: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Sources ingested at once. Each source is a chain of small jobs and Delta "
        "commits; running several side by side keeps the executors busy.",
    )

    locks: LockSettings = Field(
        default_factory=LockSettings,
        description="Per-stage locks: lease (crashed runs' locks expire) and wait.",
    )

    @field_validator("restricted_warehouse")
    @classmethod
    def _restricted_apart_from_warehouse(cls, value: str | None, info: ValidationInfo) -> Any:
        warehouse = info.data.get("warehouse")
        if value is None or warehouse is None:
            return value
        a, b = _normalised(value), _normalised(warehouse)
        if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
            raise ValueError(
                f"must be a root apart from warehouse {warehouse!r} (neither inside the other), "
                "so that analysts' access to the warehouse never reaches clear PII"
            )
        return value

    @field_validator("truth")
    @classmethod
    def _truth_on_demo_profiles(cls, value: str | None, info: ValidationInfo) -> Any:
        if value is None and info.data.get("demo"):
            raise ValueError(
                "a demo profile (demo: true) needs a truth folder: the generator writes its "
                "ground truth there"
            )
        return value

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _stringify_conf_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _spark_conf_value(v) for k, v in value.items()}
        return value

    def resolve_path(self, location: str) -> str:
        """Return ``location`` as an absolute path or URI (relative paths are project-relative)."""
        if "://" in location or location.startswith("/"):
            return location
        return str(PROJECT_ROOT / location)

    @property
    def warehouse_uri(self) -> str:
        return self.resolve_path(self.warehouse)

    @property
    def landing_uri(self) -> str:
        return self.resolve_path(self.landing)

    @property
    def restricted_warehouse_uri(self) -> str:
        """Root of the restricted zone (bronze, vault, ops.quarantine): the configured one, else
        the warehouse root's sibling ``<warehouse>-restricted``."""
        if self.restricted_warehouse:
            return self.resolve_path(self.restricted_warehouse)
        return sibling_restricted_root(self.warehouse_uri)

    @property
    def truth_uri(self) -> str | None:
        """Root of the ground truth, or None on a profile without one (production)."""
        return self.resolve_path(self.truth) if self.truth else None

    def require_demo(self, action: str) -> None:
        """Raise :class:`DemoOnlyError` unless this is a demo profile.

        Every action that writes to landing or deletes tables calls it first, so no caller can
        reach those actions on a production profile by accident.
        """
        if not self.demo:
            raise DemoOnlyError(
                f"refusing to {action}: environment '{self.name or '?'}' is not a demo profile "
                "(demo: false in environments.yaml); demo data generation and warehouse resets "
                "run only on demo profiles"
            )


def _normalised(location: str) -> str:
    """``location`` resolved as :meth:`EnvironmentConfig.resolve_path` does, without a slash."""
    if "://" not in location and not location.startswith("/"):
        location = str(PROJECT_ROOT / location)
    return location.rstrip("/")


def _spark_conf_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class EnvironmentsFile(StrictModel):
    environments: dict[str, EnvironmentConfig]


def load_environment(name: str, conf_dir: str | Path | None = None) -> EnvironmentConfig:
    """Load the environment profile ``name`` from ``environments.yaml``.

    Raises ConfigError if the file is invalid or has no such profile (listing the ones it has).
    """
    path = conf_path("environments.yaml", conf_dir)
    envs = load_model(path, EnvironmentsFile).environments
    if name not in envs:
        raise ConfigError(
            str(path),
            [f"environments.{name}: no such environment (present: {', '.join(sorted(envs))})"],
        )
    return envs[name].model_copy(update={"name": name})


# ---------------------------------------------------------------------------------------------
# generic loading
# ---------------------------------------------------------------------------------------------


def conf_path(filename: str, conf_dir: str | Path | None = None) -> Path:
    """Return the path of a config file: ``conf_dir``, else $PROFILEHOUSE_CONF_DIR, else conf/."""
    base = Path(conf_dir or os.environ.get(CONF_DIR_ENV) or DEFAULT_CONF_DIR)
    return base / filename


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping; raise ConfigError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), ["file not found"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"top level must be a mapping, got {type(data).__name__}"])
    return data


def load_model(path: str | Path, model: type[M]) -> M:
    """Load a YAML file and validate it as ``model``; all problems are raised at once."""
    return parse_model(read_yaml(path), model, source=str(path))


def parse_model(data: dict[str, Any], model: type[M], source: str) -> M:
    """Validate an already-parsed mapping as ``model``, reporting problems against ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_validation_errors(exc, model)) from None


def describe_validation_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """Turn pydantic errors into messages naming key path, bad value and what is expected."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "<top level>"
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = allowed_keys(model, loc[:-1])
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            problems.append(f"{key}: unknown key{hint}")
        elif kind == "missing":
            problems.append(f"{key}: required key is missing")
        else:
            problems.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return problems


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Return the field names of the model found at ``loc`` inside ``model`` (best effort)."""
    current: Any = model
    for part in loc:
        current = _step_into(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _step_into(tp: Any, part: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and len(args) == 2:
        return _unwrap(args[1])
    if origin in (list, tuple) and args:
        return _unwrap(args[0])
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Optional/Union wrappers down to the one model type they hold, if any."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(tp) if a is not type(None)]
        return models[0] if len(models) == 1 else tp
    return tp
