"""The whole pipeline, stage by stage, with a readable summary and a JSON run summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from profilehouse import fs
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.config import EnvironmentConfig
from profilehouse.generator.orchestrator import GenerationReport, generate
from profilehouse.generator.settings import load_generator_settings
from profilehouse.identity.stage import run_identity_stage
from profilehouse.ingest.stages import (
    format_ingest_table,
    ingest_figures,
    run_bronze_stage,
    run_silver_stage,
    selected_sources,
)
from profilehouse.run_summary import RunSummary


def run_generate_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None,
    scale_factor: float | None = None,
    seed: int | None = None,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> GenerationReport:
    """Generate the demo sources into the environment's landing zone (skipped if present)."""
    cfg = load_generator_settings(conf_dir).with_overrides(scale_factor=scale_factor, seed=seed)
    return generate(spark, cfg, env.landing_uri, env.truth_uri, force=force, progress=progress)


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


def reset_warehouse(
    spark: SparkSession, catalog: TableCatalog, progress: Callable[[str], None] = print
) -> None:
    """Drop every table of the demo warehouse: freshly generated data replaces the old files,
    which the ingest would otherwise (rightly) refuse as changed after loading."""
    dropped = [layer.value for layer in Layer if fs.path_exists(spark, f"{catalog.root}/{layer}")]
    for layer in dropped:
        fs.delete_path(spark, f"{catalog.root}/{layer}")
    if dropped:
        progress(f"  new demo data: dropped the warehouse's {', '.join(dropped)} tables")


def run_pipeline(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None = None,
    scale_factor: float | None = None,
    regenerate: bool = False,
    progress: Callable[[str], None] = print,
) -> tuple[RunSummary, str]:
    """Run every stage in order; return the run summary and the path it was written to."""
    catalog = TableCatalog(env.warehouse_uri)
    summary = RunSummary.start(env.name)
    try:
        progress("== stage: generate (demo source data)")
        report = run_generate_stage(
            spark, env, conf_dir, scale_factor, force=regenerate, progress=progress
        )
        summary.record("generate", generation_figures(report))
        progress(format_generation_table(report))
        if not report.reused:
            reset_warehouse(spark, catalog, progress)
        sources = selected_sources(conf_dir)
        progress("== stage: bronze (new landing files → bronze tables)")
        bronze = run_bronze_stage(spark, env, sources, progress)
        summary.record("bronze", ingest_figures(bronze, [])["per_source"])
        progress("== stage: silver (typed, validated, tokenised, deduplicated)")
        silver = run_silver_stage(spark, env, sources, progress)
        summary.record("ingest", ingest_figures(bronze, silver))
        progress(format_ingest_table(bronze, silver))
        progress("== stage: identity (records → stable master customer IDs)")
        identity = run_identity_stage(
            spark,
            env,
            conf_dir,
            run_id=summary.run_id,
            truth_uri=env.truth_uri,
            progress=progress,
            mode="auto",
        )
        summary.record("identity", identity.figures)
        summary.finish("succeeded")
    except BaseException:
        summary.finish("failed")
        path = summary.write(spark, catalog)
        progress(f"run summary: {path}")
        raise
    return summary, summary.write(spark, catalog)
