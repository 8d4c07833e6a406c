"""Shared fixtures: one Spark session for the whole run, tuned for tests (2 cores, UI off)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from profilehouse import delta_io
from profilehouse.catalog import RESTRICTED_SUFFIX, TableCatalog
from profilehouse.config import load_environment
from profilehouse.generator.orchestrator import GenerationReport, generate
from profilehouse.generator.settings import GeneratorSettings, load_generator_settings
from profilehouse.gold.stage import GoldResult, run_gold_stage
from profilehouse.identity.stage import IdentityResult, identity_table, run_identity_stage
from profilehouse.ingest.bronze import BronzeLoad
from profilehouse.ingest.silver import SilverLoad
from profilehouse.ingest.source_config import SourceSpec
from profilehouse.ingest.stages import run_bronze_stage, run_silver_stage, selected_sources
from profilehouse.privacy.tokens import TOKEN_KEY_ENV, TOKEN_KEY_FILE_ENV
from profilehouse.session import build_spark_session

SHARED_DATA_FIXTURES = frozenset({"generated", "ingested", "first_resolution", "gold_made"})
SHARED_DATA_GROUP = "shared-generated-data"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the markers (its hook runs early)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Work units for pytest-xdist's ``--dist loadgroup`` (``scripts/test.sh`` runs two workers):
    every test that uses the generated-data fixtures runs on one worker, so the generation, the
    ingest, the identity run and the gold run behind them happen once; any other test runs with
    the rest of its module, so a module-scoped fixture is built once. Without xdist the markers
    do nothing."""
    for item in items:
        uses_shared_data = SHARED_DATA_FIXTURES & set(getattr(item, "fixturenames", ()))
        group = SHARED_DATA_GROUP if uses_shared_data else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop a ``--dist loadgroup`` worker whose tests xdist did not tag with their group (it
    then spreads every module over the workers, building each shared fixture on each one)."""
    tagged = any("@" in item.nodeid for item in session.items)
    if getattr(session.config.option, "loadgroup", False) and session.items and not tagged:
        raise pytest.UsageError(
            "pytest-xdist did not group the tests (--dist loadgroup): install the pytest and "
            "pytest-xdist versions pyproject.toml pins (scripts/setup.sh does)"
        )


@pytest.fixture(scope="session", autouse=True)
def token_key() -> Iterator[bytes]:
    """A random PII token key for the whole run, as jobs read it (from the environment)."""
    key = secrets.token_hex(32)
    saved = {k: os.environ.pop(k, None) for k in (TOKEN_KEY_ENV, TOKEN_KEY_FILE_ENV)}
    os.environ[TOKEN_KEY_ENV] = key
    yield key.encode()
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


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


@dataclass(frozen=True)
class Generated:
    cfg: GeneratorSettings
    report: GenerationReport
    landing: str
    truth: str


@pytest.fixture(scope="session")
def generated(
    spark: SparkSession, gen_cfg: GeneratorSettings, tmp_path_factory: pytest.TempPathFactory
) -> Generated:
    """One generation at SF 0.01 into a temp folder, shared by generator and ingest tests."""
    root = tmp_path_factory.mktemp("gen")
    landing, truth = str(root / "landing"), str(root / "truth")
    report = generate(spark, gen_cfg, landing, truth)
    return Generated(gen_cfg, report, landing, truth)


@dataclass(frozen=True)
class Ingested:
    catalog: TableCatalog
    sources: list[SourceSpec]
    bronze: list[BronzeLoad]
    silver: list[SilverLoad]
    env: object


@pytest.fixture(scope="session")
def ingested(
    spark: SparkSession, generated: Generated, tmp_path_factory: pytest.TempPathFactory
) -> Ingested:
    """Bronze + silver over the SF 0.01 generation, shared by ingest and identity tests."""
    env = load_environment("test").model_copy(
        update={
            "landing": generated.landing,
            "warehouse": str(tmp_path_factory.mktemp("ingest-warehouse")),
        }
    )
    sources = selected_sources(None)
    bronze = run_bronze_stage(spark, env, sources)
    silver = run_silver_stage(spark, env, sources)
    return Ingested(TableCatalog.for_environment(env), sources, bronze, silver, env)


@dataclass(frozen=True)
class FirstResolution:
    result: IdentityResult
    members: list  # (record_id, master_id) rows right after the run


@pytest.fixture(scope="session")
def first_resolution(
    spark: SparkSession, generated: Generated, ingested: Ingested
) -> FirstResolution:
    """The first identity run over the ingested warehouse (with the ground truth), shared by
    the identity, gold and privacy tests: one full resolution per test session."""
    env = ingested.env.model_copy(update={"truth": generated.truth})
    result = run_identity_stage(spark, env, run_id="run-1", truth_uri=generated.truth)
    members = identity_table(ingested.catalog, "master_members")
    rows = delta_io.read_table(spark, members).select("record_id", "master_id").collect()
    return FirstResolution(result, rows)


@pytest.fixture(scope="session")
def gold_made(
    spark: SparkSession, generated: Generated, ingested: Ingested, first_resolution: FirstResolution
) -> GoldResult:
    """The gold stage over the resolved warehouse (snapshot at the newest event date, plus the
    KPI window starts it makes; planted signals measured), shared by gold and privacy tests."""
    return run_gold_stage(spark, ingested.env, run_id="gold-1", truth_uri=generated.truth)


class _Collect(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def logged_messages() -> Iterator[list[str]]:
    """The progress messages the ``profilehouse`` loggers give inside the block, in order (as a
    fixture of any scope can use, unlike pytest's function-scoped ``caplog``)."""
    messages: list[str] = []
    logger = logging.getLogger("profilehouse")
    handler, level = _Collect(messages), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def copy_warehouse(
    warehouse: str | Path, target: Path, ignore: Callable[..., object] | None = None
) -> TableCatalog:
    """Copy a warehouse and its restricted zone (the default sibling ``<root>-restricted``,
    which holds bronze, the vault and the quarantine) to ``target`` and its sibling; return the
    copy's catalog. ``ignore``: as for :func:`shutil.copytree`."""
    source = TableCatalog(str(warehouse))
    shutil.copytree(source.root, target, ignore=ignore)
    if Path(source.restricted_root).exists():
        shutil.copytree(source.restricted_root, f"{target}{RESTRICTED_SUFFIX}", ignore=ignore)
    return TableCatalog(str(target))


@pytest.fixture(scope="module", autouse=True)
def _free_cached_data() -> Iterator[None]:
    """Drop every cached DataFrame after each test module, so the shared session's small driver
    heap does not fill up over the run (a broadcast late in the suite failed for lack of it)."""
    yield
    session = SparkSession.getActiveSession()
    if session is not None:
        session.catalog.clearCache()
