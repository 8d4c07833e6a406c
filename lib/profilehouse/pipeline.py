"""The whole pipeline, stage by stage, with a readable summary and a JSON run summary.

On a demo profile (``demo: true``) it first generates the synthetic sources into landing and, when
they are new, resets the warehouse. On any other profile it reads landing as it is and only ever
appends to or merges into the tables it finds: the generator is not even imported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import SparkSession

from profilehouse import fs
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.config import EnvironmentConfig
from profilehouse.gold.stage import format_gold_report, run_gold_stage
from profilehouse.identity.stage import run_identity_stage
from profilehouse.ingest.stages import (
    bronze_figures,
    format_ingest_table,
    run_bronze_stage,
    run_silver_stage,
    selected_sources,
    silver_figures,
)
from profilehouse.models.stage import format_models_report, run_models_stage
from profilehouse.run_summary import RunSummary

if TYPE_CHECKING:
    from profilehouse.generator.orchestrator import GenerationReport

log = logging.getLogger(__name__)


def run_generate_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None,
    scale_factor: float | None = None,
    seed: int | None = None,
    force: bool = False,
) -> GenerationReport:
    """Generate the demo sources into the environment's landing zone (skipped if present).

    Raises DemoOnlyError on a profile that is not a demo profile (its landing holds real exports).
    """
    env.require_demo(f"generate demo data into landing {env.landing_uri}")
    # imported here: production runs never load the generator
    from profilehouse.generator.orchestrator import generate
    from profilehouse.generator.settings import load_generator_settings

    cfg = load_generator_settings(conf_dir).with_overrides(scale_factor=scale_factor, seed=seed)
    return generate(spark, cfg, env.landing_uri, env.truth_uri, force=force)


def generation_figures(report: GenerationReport) -> dict:
    """Key figures of the generate stage for the run summary."""
    return {
        "seed": report.seed,
        "scale_factor": report.scale_factor,
        "persons": report.persons,
        "reused_existing_data": report.reused,
        "sources": len(report.sources),
        "files": report.files,
        "rows": report.rows,
        "bytes": report.bytes,
        "seconds": report.seconds,
        "per_source": {
            s.name: {
                "format": s.format,
                "files": s.files,
                "rows": s.rows,
                "bytes": s.bytes,
                "batches": len(s.batches),
            }
            for s in report.sources
        },
    }


def format_generation_table(report: GenerationReport) -> str:
    """The generate stage as a readable table (one line per source, then totals)."""
    lines = [
        f"{'source':<26}{'format':<9}{'files':>7}{'batches':>9}{'rows':>14}{'MiB':>10}",
        "-" * 75,
    ]
    for s in report.sources:
        lines.append(
            f"{s.name:<26}{s.format:<9}{s.files:>7}{len(s.batches):>9}{s.rows:>14,}"
            f"{s.bytes / 2**20:>10.1f}"
        )
    lines.append("-" * 75)
    lines.append(
        f"{'total':<26}{'':<9}{report.files:>7}{'':>9}{report.rows:>14,}"
        f"{report.bytes / 2**20:>10.1f}"
    )
    return "\n".join(lines)


def reset_warehouse(spark: SparkSession, env: EnvironmentConfig) -> None:
    """Drop every table of the demo warehouse (both zones): freshly generated data replaces the
    old files, which the ingest would otherwise (rightly) refuse as changed after loading.

    Raises DemoOnlyError on a profile that is not a demo profile: production never drops tables.
    """
    env.require_demo("reset the warehouse")
    catalog = TableCatalog.for_environment(env)
    dropped = []
    for layer in Layer:
        present = [d for d in catalog.layer_dirs(layer) if fs.path_exists(spark, d)]
        for folder in present:
            fs.delete_path(spark, folder, env)
        if present:
            dropped.append(layer.value)
    if dropped:
        log.info(f"  new demo data: dropped the warehouse's {', '.join(dropped)} tables")


def validate_run_options(
    env: EnvironmentConfig, scale_factor: float | None, regenerate: bool
) -> None:
    """Raise DemoOnlyError when demo-data options are given for a profile that is not a demo."""
    given = {"--scale-factor": scale_factor is not None, "--regenerate": regenerate}
    options = [name for name, present in given.items() if present]
    if options and not env.demo:
        env.require_demo(f"apply {'/'.join(options)} (they shape the demo data)")


def _demo_generation(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None,
    scale_factor: float | None,
    regenerate: bool,
    summary: RunSummary,
) -> None:
    """The demo profile's first steps: generate the sources, reset the warehouse if they are new."""
    log.info("== stage: generate (demo source data)")
    with summary.timed("generate") as figures:
        report = run_generate_stage(spark, env, conf_dir, scale_factor, force=regenerate)
        figures.update(generation_figures(report))
    log.info(format_generation_table(report))
    if not report.reused:
        reset_warehouse(spark, env)


def run_pipeline(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None = None,
    scale_factor: float | None = None,
    regenerate: bool = False,
) -> tuple[RunSummary, str]:
    """Run every stage in order; return the run summary and the path it was written to.

    Only a demo profile generates data and resets the warehouse; elsewhere ``scale_factor`` or
    ``regenerate`` raise DemoOnlyError before anything runs.
    """
    validate_run_options(env, scale_factor, regenerate)
    catalog = TableCatalog.for_environment(env)
    summary = RunSummary.start(env.name)
    try:
        if env.demo:
            _demo_generation(spark, env, conf_dir, scale_factor, regenerate, summary)
        else:
            log.info(f"== production profile '{env.name}': landing {env.landing_uri} is read as is")
        sources = selected_sources(conf_dir)
        log.info("== stage: bronze (new landing files → bronze tables)")
        with summary.timed("bronze") as figures:
            bronze = run_bronze_stage(spark, env, sources)
            figures.update(bronze_figures(bronze))
        log.info("== stage: silver (typed, validated, tokenised, deduplicated)")
        with summary.timed("silver") as figures:
            silver = run_silver_stage(spark, env, sources)
            figures.update(silver_figures(silver))
        log.info(format_ingest_table(bronze, silver))
        log.info("== stage: identity (records → stable master customer IDs)")
        with summary.timed("identity") as figures:
            identity = run_identity_stage(
                spark, env, conf_dir, run_id=summary.run_id, truth_uri=env.truth_uri, mode="auto"
            )
            figures.update(identity.figures)
        log.info("== stage: gold (features, tags, tag catalog, KPIs per master customer)")
        with summary.timed("gold") as figures:
            gold = run_gold_stage(
                spark, env, conf_dir, run_id=summary.run_id, truth_uri=env.truth_uri
            )
            figures.update(gold.figures)
        log.info(format_gold_report(gold))
        log.info("== stage: models (segments, CLV, propensity scores, customer profile)")
        with summary.timed("models") as figures:
            models = run_models_stage(
                spark, env, conf_dir, run_id=summary.run_id, truth_uri=env.truth_uri
            )
            figures.update(models.figures)
        log.info(format_models_report(models))
        log.info(f"stage times: {summary.format_timings()}")
        summary.finish("succeeded")
    except BaseException:
        summary.finish("failed")
        path = summary.write(spark, catalog)
        log.info(f"run summary: {path}")
        raise
    return summary, summary.write(spark, catalog)
