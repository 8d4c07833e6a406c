"""The one reader of ``conf/models.yaml``: one top-level section per model, each validated by
that model's settings class, the others ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profilehouse.config import StrictModel, conf_path, parse_model, read_yaml

MODELS_FILE = "models.yaml"


def models_file(path: str | Path | None = None) -> Path:
    """``path``, or ``models.yaml`` in the config folder (:func:`profilehouse.config.conf_path`)."""
    return Path(path) if path is not None else conf_path(MODELS_FILE)


def models_section(path: str | Path | None, section: str, wrapper: type[StrictModel]) -> Any:
    """Section ``section`` of the models file, parsed by ``wrapper`` (a model with that one
    field); ConfigError names the file and every bad key, its value and what is allowed."""
    source = models_file(path)
    data = {key: value for key, value in read_yaml(source).items() if key == section}
    return getattr(parse_model(data, wrapper, source=str(source)), section)
