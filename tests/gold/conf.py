"""A gold configuration folder for tests: features, KPIs and one family of tags."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from profilehouse.config import DEFAULT_CONF_DIR


def _dump(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def write_gold_conf(
    conf: Path, features: dict, kpis: dict, tags: dict, hierarchy: dict[str, dict]
) -> Path:
    """``conf/`` with features.yaml, kpis.yaml, tags/hierarchy.yaml, tags/shop.yaml and the
    shipped identity.yaml (the record keys the gold stage links rows by); returns ``conf``."""
    (conf / "tags").mkdir(parents=True)
    shutil.copy(DEFAULT_CONF_DIR / "identity.yaml", conf / "identity.yaml")
    _dump(conf / "features.yaml", features)
    _dump(conf / "kpis.yaml", kpis)
    _dump(conf / "tags" / "hierarchy.yaml", {"hierarchy": hierarchy})
    _dump(conf / "tags" / "shop.yaml", tags)
    return conf
