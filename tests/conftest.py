"""Shared fixtures: one Spark session for the whole run, tuned for tests (2 cores, UI off)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from profilehouse.config import load_environment
from profilehouse.generator.settings import GeneratorSettings, load_generator_settings
from profilehouse.session import build_spark_session


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    env = load_environment("test")
    warehouse = tmp_path_factory.mktemp("warehouse")
    env = env.model_copy(update={"warehouse": str(warehouse)})
    session = build_spark_session(env, app_name="profilehouse-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def gen_cfg() -> GeneratorSettings:
    """Generator settings at SF 0.01 (1,000 persons): seconds to build."""
    return load_generator_settings().with_overrides(scale_factor=0.01)
