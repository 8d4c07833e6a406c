"""Every job imports and every conf/ file loads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from profilehouse.config import load_environment, read_yaml
from profilehouse.generator.settings import load_generator_settings
from profilehouse.identity.resolve import load_linkage_spec
from profilehouse.identity.settings import load_identity_settings
from profilehouse.ingest.source_config import load_sources

ROOT = Path(__file__).resolve().parents[1]
JOBS = sorted((ROOT / "jobs").glob("*.py"))


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.stem)
def test_job_imports_and_has_main(job: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"job_{job.stem}", job)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main)


def test_every_conf_file_loads() -> None:
    for path in sorted((ROOT / "conf").glob("*.yaml")):
        assert read_yaml(path), path
    for name in ("local", "test", "cluster"):
        load_environment(name)
    load_generator_settings()
    sources = load_sources()
    identity = load_identity_settings()
    assert set(identity.records) <= set(sources), "identity.yaml names undeclared sources"
    for path in sorted((ROOT / "conf" / "linkage").glob("*.yaml")):
        load_linkage_spec(path)
