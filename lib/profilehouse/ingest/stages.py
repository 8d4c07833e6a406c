"""The bronze and silver stages over every declared source, with summaries for people and JSON.

Used by ``jobs/bronze.py``, ``jobs/silver.py`` and the pipeline job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pyspark.sql import SparkSession

from profilehouse import locks
from profilehouse.catalog import TableCatalog
from profilehouse.config import EnvironmentConfig
from profilehouse.errors import ConfigError
from profilehouse.ingest.bronze import BronzeLoad, file_log_by_source, load_bronze_sources
from profilehouse.ingest.silver import (
    RejectRateError,
    SilverLoad,
    load_silver_sources,
)
from profilehouse.ingest.source_config import SourceSpec, load_sources
from profilehouse.privacy.tokens import load_token_key

log = logging.getLogger(__name__)

T = TypeVar("T")


def selected_sources(conf_dir: Path | None, names: Iterable[str] | None = None) -> list[SourceSpec]:
    """The declared sources (all, or those named ``system_table`` / their key in the file)."""
    sources = load_sources(conf_dir)
    if not names:
        return list(sources.values())
    by_name = {**{s.name: s for s in sources.values()}, **sources}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            "sources.yaml",
            [f"unknown source(s) {', '.join(unknown)} (declared: {', '.join(sorted(sources))})"],
        )
    return [by_name[n] for n in names]


def _for_each_source(
    spark: SparkSession,
    sources: list[SourceSpec],
    parallelism: int,
    stage: str,
    work: Callable[[SourceSpec], T],
) -> list[T | BaseException]:
    """``work`` for every source, ``parallelism`` at a time; results (or the exception each
    raised) in source order. Each thread labels its Spark jobs '<stage> <source>'."""

    def labelled(spec: SourceSpec) -> T | BaseException:
        spark.sparkContext.setJobDescription(f"{stage} {spec.name}")
        try:
            return work(spec)
        except Exception as exc:  # reported by the caller, after the other sources ran
            return exc
        finally:
            spark.sparkContext.setJobDescription(None)

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix=stage) as pool:
        return list(pool.map(labelled, sources))


def _raise_first_error(
    sources: list[SourceSpec], results: list, stage: str, skip: type[Exception] | None = None
) -> None:
    """Re-raise the first source's exception (noting which other sources failed too)."""
    failed = [
        (spec.name, r)
        for spec, r in zip(sources, results, strict=True)
        if isinstance(r, BaseException) and not (skip and isinstance(r, skip))
    ]
    if failed:
        first = failed[0][1]
        if len(failed) > 1:
            first.add_note(f"{stage} also failed for: {', '.join(n for n, _ in failed[1:])}")
        raise first


def run_bronze_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    sources: list[SourceSpec],
) -> list[BronzeLoad]:
    """Load each source's new landing files into bronze (``env.ingest_parallelism`` at once),
    holding the ``bronze:<source>`` locks of all of them (``env.locks``; taken together)."""
    if not sources:
        return []
    catalog = TableCatalog.for_environment(env)
    names = [f"bronze:{spec.name}" for spec in sources]
    with locks.hold(spark, catalog, names, env.locks):
        # the file logs are read under the locks: a run that held them before may have loaded
        logs = file_log_by_source(spark, catalog)
        return _bronze_sources(spark, env, catalog, sources, logs)


def _bronze_sources(
    spark: SparkSession,
    env: EnvironmentConfig,
    catalog: TableCatalog,
    sources: list[SourceSpec],
    logs: dict,
) -> list[BronzeLoad]:
    """Every source's bronze load (the caller holds their locks), ``env.ingest_parallelism``
    sources at a time between the stage-wide file-log commits."""

    def in_parallel(specs: list[SourceSpec], work: Callable[[SourceSpec], T]) -> list:
        return _for_each_source(spark, specs, env.ingest_parallelism, "bronze", work)

    results = load_bronze_sources(spark, catalog, sources, env.landing_uri, logs, in_parallel)
    for result in results:
        if isinstance(result, BronzeLoad):
            resumed = result.resumed_pending
            log.info(
                f"  bronze {result.source}: {result.files} new file(s), {result.rows:,} rows"
                + (f", finished {resumed} interrupted load(s)" if resumed else "")
            )
    _raise_first_error(sources, results, "bronze")
    return results


def run_silver_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    sources: list[SourceSpec],
) -> list[SilverLoad]:
    """Process each source's new bronze loads into silver (``env.ingest_parallelism`` at once),
    holding the ``silver:<source>`` locks of all of them (``env.locks``; taken together).

    A source whose reject rate exceeds its threshold does not stop the others; the stage raises
    :class:`RejectRateError` listing all such sources at the end.
    """
    if not sources:
        return []
    catalog = TableCatalog.for_environment(env)
    key = load_token_key()
    names = [f"silver:{spec.name}" for spec in sources]
    with locks.hold(spark, catalog, names, env.locks):
        return _silver_sources(spark, env, catalog, sources, key)


def _silver_sources(
    spark: SparkSession,
    env: EnvironmentConfig,
    catalog: TableCatalog,
    sources: list[SourceSpec],
    key: bytes,
) -> list[SilverLoad]:
    """Every source's pending loads into silver (the caller holds their locks; the pending
    loads are read under them: a run that held them before may have done some),
    ``env.ingest_parallelism`` sources at a time, then the shared commits."""

    def in_parallel(specs: list[SourceSpec], work: Callable[[SourceSpec], T]) -> list:
        return _for_each_source(spark, specs, env.ingest_parallelism, "silver", work)

    results = load_silver_sources(spark, catalog, sources, key, map_sources=in_parallel)
    for result in results:
        if isinstance(result, SilverLoad):
            log.info(
                f"  silver {result.source}: {result.rows_in:,} in, {result.accepted:,} "
                f"accepted, {result.quarantined:,} quarantined"
            )
    rejected = [r for r in results if isinstance(r, RejectRateError)]
    for error in rejected:
        log.error(f"  silver FAILED: {error}")
    _raise_first_error(sources, results, "silver", skip=RejectRateError)
    if rejected:
        raise RejectRateError(
            f"{len(rejected)} source(s) rejected too many rows:\n"
            + "\n".join(str(e) for e in rejected)
        )
    return results


def bronze_figures(bronze: list[BronzeLoad]) -> dict:
    """The bronze stage's figures for the run summary: totals, then per source."""
    per_source = {
        b.source: {
            "load_ids": b.load_ids,
            "files": b.files,
            "rows": b.rows,
            "bytes": b.bytes,
            "batches": b.batches,
            "resumed_pending_loads": b.resumed_pending,
            "seconds": b.seconds,
            "in_flight": b.in_flight,
            "duplicates": b.duplicates,
            "empty_files": b.empty_files,
        }
        for b in bronze
    }
    return {
        "files": sum(b.files for b in bronze),
        "rows": sum(b.rows for b in bronze),
        "bytes": sum(b.bytes for b in bronze),
        "per_source": per_source,
    }


def silver_figures(silver: list[SilverLoad]) -> dict:
    """The silver stage's figures for the run summary: totals, then per source."""
    per_source = {
        s.source: {
            "load_ids": s.load_ids,
            "rows_in": s.rows_in,
            "accepted": s.accepted,
            "quarantined": s.quarantined,
            "warned": s.warned,
            "inserted": s.inserted,
            "updated": s.updated,
            "quarantined_by_rule": s.errors,
            "warnings_by_rule": s.warnings,
            "absent_columns": s.absent_columns,  # file → optional columns it did not carry
            "seconds": s.seconds,
        }
        for s in silver
    }
    return {
        "rows_in": sum(s.rows_in for s in silver),
        "accepted": sum(s.accepted for s in silver),
        "quarantined": sum(s.quarantined for s in silver),
        "per_source": per_source,
    }


def ingest_figures(bronze: list[BronzeLoad], silver: list[SilverLoad]) -> dict:
    """Both stages' figures side by side, per source (``per_source.<source>.bronze|silver``)."""
    per_source: dict[str, dict] = {}
    for stage, figures in (("bronze", bronze_figures(bronze)), ("silver", silver_figures(silver))):
        for source, values in figures["per_source"].items():
            per_source.setdefault(source, {})[stage] = values
    return {
        "files": sum(b.files for b in bronze),
        "bronze_rows": sum(b.rows for b in bronze),
        "rows_in": sum(s.rows_in for s in silver),
        "accepted": sum(s.accepted for s in silver),
        "quarantined": sum(s.quarantined for s in silver),
        "per_source": per_source,
    }


def format_ingest_table(bronze: list[BronzeLoad], silver: list[SilverLoad]) -> str:
    """One line per source: files, rows in, accepted, quarantined (by rule), warned."""
    files = {b.source: b.files for b in bronze}
    header = (
        f"{'source':<24}{'files':>6}{'rows in':>12}{'accepted':>12}{'quarant.':>10}"
        f"{'warned':>9}  quarantined by rule"
    )
    lines = [header, "-" * 110]
    for s in silver:
        rules = ", ".join(f"{r} {n:,}" for r, n in sorted(s.errors.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"{s.source:<24}{files.get(s.source, 0):>6}{s.rows_in:>12,}{s.accepted:>12,}"
            f"{s.quarantined:>10,}{s.warned:>9,}  {rules or '-'}"
        )
    lines.append("-" * 110)
    lines.append(
        f"{'total':<24}{sum(files.values()):>6}{sum(s.rows_in for s in silver):>12,}"
        f"{sum(s.accepted for s in silver):>12,}{sum(s.quarantined for s in silver):>10,}"
        f"{sum(s.warned for s in silver):>9,}"
    )
    return "\n".join(lines)
