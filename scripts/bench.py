"""Benchmark harness: stage timings, rows/s, bytes, peak memory, and a floor to compare with.

For each scale factor it runs each stage (today: the generator) and, in the same run, a *floor*:
a plain Spark scan of the stage's output bytes written straight back out. Each stage then reads
as a ratio to the floor, which cancels much of the machine's noise.

    .venv/bin/python scripts/bench.py --scale-factors 0.1 1 [--out bench-results]

Writes ``<out>/<timestamp>/bench.json`` and ``bench.md`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from delta.tables import DeltaTable
from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from profilehouse import fs  # noqa: E402
from profilehouse.catalog import TableCatalog  # noqa: E402
from profilehouse.config import load_environment  # noqa: E402
from profilehouse.generator.orchestrator import generate  # noqa: E402
from profilehouse.generator.settings import load_generator_settings  # noqa: E402
from profilehouse.gold.audience import select_audience  # noqa: E402
from profilehouse.gold.feature_config import load_feature_config  # noqa: E402
from profilehouse.gold.features import SNAPSHOT_DATE  # noqa: E402
from profilehouse.gold.stage import FEATURES, gold_table, run_gold_stage  # noqa: E402
from profilehouse.gold.tag_registry import load_tag_registry  # noqa: E402
from profilehouse.identity.settings import load_identity_settings  # noqa: E402
from profilehouse.identity.stage import run_identity_stage  # noqa: E402
from profilehouse.ingest.stages import (  # noqa: E402
    run_bronze_stage,
    run_silver_stage,
    selected_sources,
)
from profilehouse.privacy.tokens import TOKEN_KEY_ENV  # noqa: E402
from profilehouse.session import build_spark_session  # noqa: E402
from profilehouse.tables import silver_table  # noqa: E402


class PeakMemory:
    """Samples the resident memory of this process and its children (the JVM) every 0.2 s."""

    def __init__(self) -> None:
        self._proc = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class StageResult:
    scale_factor: float
    stage: str
    seconds: float
    rows_in: int
    rows_out: int
    bytes_out: int
    rows_per_s: float
    peak_rss_mib: float
    floor_seconds: float
    ratio_to_floor: float
    figures: dict | None = None


def floor_seconds(spark, path: str, scratch: str) -> float:
    """Time of a plain scan + write of every byte under ``path`` (the floor)."""
    started = time.perf_counter()
    spark.read.option("recursiveFileLookup", "true").text(path).write.mode("overwrite").text(
        scratch
    )
    elapsed = time.perf_counter() - started
    fs.delete_path(spark, scratch)
    return elapsed


def bench_generate(spark, env, sf: float, work: Path) -> StageResult:
    cfg = load_generator_settings().with_overrides(scale_factor=sf)
    landing, truth = work / f"sf{sf}" / "landing", work / f"sf{sf}" / "truth"
    with PeakMemory() as mem:
        report = generate(spark, cfg, str(landing), str(truth), force=True)
    floor = floor_seconds(spark, str(landing), str(work / "floor"))
    return StageResult(
        scale_factor=sf,
        stage="generate",
        seconds=round(report.seconds, 2),
        rows_in=cfg.persons,
        rows_out=report.rows,
        bytes_out=report.bytes,
        rows_per_s=round(report.rows / report.seconds),
        peak_rss_mib=round(mem.peak / 2**20),
        floor_seconds=round(floor, 2),
        ratio_to_floor=round(report.seconds / floor, 2),
    )


def to_markdown(results: list[StageResult], meta: dict) -> str:
    lines = [
        f"Run {meta['started_at']} on {meta['cores']} cores, {meta['memory_gib']} GiB, "
        f"Spark {meta['spark']}, driver memory {meta['driver_memory']}.",
        "",
        "| SF | stage | seconds | rows in | rows out | MiB out | rows/s | peak RSS MiB "
        "| floor s | × floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.scale_factor:g} | {r.stage} | {r.seconds:.1f} | {r.rows_in:,} "
            f"| {r.rows_out:,} | "
            f"{r.bytes_out / 2**20:,.0f} | {r.rows_per_s:,.0f} | {r.peak_rss_mib:,.0f} | "
            f"{r.floor_seconds:.1f} | {r.ratio_to_floor:.2f} |"
        )
    for r in results:
        if r.figures:
            shown = ", ".join(
                f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in r.figures.items()
            )
            lines += ["", f"{r.stage} at SF {r.scale_factor:g}: {shown}."]
    by_stage: dict[str, list[StageResult]] = {}
    for r in results:
        by_stage.setdefault(r.stage, []).append(r)
    for stage, rs in by_stage.items():
        if len(rs) >= 2:
            import math

            a, b = rs[0], rs[-1]
            exponent = math.log(b.seconds / a.seconds) / math.log(b.scale_factor / a.scale_factor)
            lines.append("")
            lines.append(
                f"{stage}: time scales as SF^{exponent:.2f} between SF {a.scale_factor:g} and "
                f"SF {b.scale_factor:g} (1.0 = linear)."
            )
    return "\n".join(lines)


def _hold_back_last_batch(landing: Path, held: Path) -> str:
    """Move every source's newest batch folder out of ``landing`` (to deliver it later)."""
    batches = sorted({p.name for p in landing.glob("*/*/batch=*")})
    last = batches[-1]
    for folder in landing.glob(f"*/*/{last}"):
        target = held / folder.relative_to(landing)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(target)
    return last.removeprefix("batch=")


def _deliver_held_batch(landing: Path, held: Path) -> None:
    for folder in held.glob("*/*/batch=*"):
        target = landing / folder.relative_to(held)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(target)


def _ingest_results(
    sf: float, label: str, bronze_loads, silver_loads, mem_peak: int, floor: float, seconds: dict
) -> list[StageResult]:
    rows_in = sum(b.rows for b in bronze_loads)
    bytes_in = sum(b.bytes for b in bronze_loads)
    accepted = sum(s.accepted for s in silver_loads)
    results = []
    for stage, rows_out in (("bronze", rows_in), ("silver", accepted)):
        took = seconds[stage]
        results.append(
            StageResult(
                scale_factor=sf,
                stage=f"{stage}{label}",
                seconds=round(took, 2),
                rows_in=rows_in,
                rows_out=rows_out,
                bytes_out=bytes_in,
                rows_per_s=round(rows_in / took) if took else 0,
                peak_rss_mib=round(mem_peak / 2**20),
                floor_seconds=round(floor, 2),
                ratio_to_floor=round(took / floor, 2) if floor else 0,
                figures=_steps(silver_loads if stage == "silver" else bronze_loads),
            )
        )
    return results


def _steps(loads) -> dict:
    """Seconds per step of a bronze or silver run, summed over the sources (where the time
    goes)."""
    steps: dict[str, float] = {}
    for load in loads:
        for step, took in load.seconds_by_step.items():
            steps[step] = round(steps.get(step, 0.0) + took, 1)
    return {f"seconds_{step}": took for step, took in steps.items()}


def bench_ingest(spark, env, sf: float, work: Path) -> list[StageResult]:
    """Bronze + silver over the full history, then over one held-back daily batch."""
    os.environ.setdefault(TOKEN_KEY_ENV, secrets.token_hex(32))
    landing, held = work / f"sf{sf}" / "landing", work / f"sf{sf}" / "held"
    env = env.model_copy(
        update={"landing": str(landing), "warehouse": str(work / f"sf{sf}" / "warehouse")}
    )
    sources = selected_sources(None)
    results = []
    _hold_back_last_batch(landing, held)
    for label in ("", "_increment"):
        if label:
            _deliver_held_batch(landing, held)
        seconds = {}
        with PeakMemory() as mem:
            started = time.perf_counter()
            bronze = run_bronze_stage(spark, env, sources)
            seconds["bronze"] = time.perf_counter() - started
            started = time.perf_counter()
            silver = run_silver_stage(spark, env, sources)
            seconds["silver"] = time.perf_counter() - started
        loaded = _held_files(landing) if label else _data_files(landing, "batch=*")
        floor = _floor_of_files(spark, loaded, work)
        results += _ingest_results(sf, label, bronze, silver, mem.peak, floor, seconds)
    return results


IDENTITY_FIGURES = (
    "mode",
    "changed_records",
    "rescored_pairs",
    "dirty_records",
    "records",
    "person_record_count",
    "candidate_pairs",
    "comparisons_per_person_record",
    "precision",
    "recall",
    "f1",
    "blocking_recall",
    "with_evidence",
    "recall_ceiling",
    "records_without_evidence",
    "person_precision",
    "person_recall",
    "clusters",
    "largest_cluster",
    "seconds_by_step",
)


def _silver_tables(env, names: list[str]) -> list[str]:
    catalog = TableCatalog.for_environment(env)
    return [silver_table(catalog, n).location for n in names]


def _versions_before_last_batch(spark, locations: list[str]) -> tuple[dict, dict]:
    """(latest version, newest version holding no row of the last batch) per silver table."""

    def newest_batch(location: str, version: int):
        df = spark.read.format("delta").option("versionAsOf", version).load(location)
        return df.agg(F.max("_batch")).first()[0]

    latest = {
        loc: DeltaTable.forPath(spark, loc).history(1).first()["version"] for loc in locations
    }
    last = max(b for loc in locations if (b := newest_batch(loc, latest[loc])) is not None)
    before = {}
    for loc in locations:
        version = latest[loc]
        while version > 0 and (newest_batch(loc, version) or "") >= last:
            version -= 1
        before[loc] = version
    return latest, before


def _identity_result(
    stage: str, sf: float, figures: dict, took: float, peak: int, floor: float, identity_bytes: int
) -> StageResult:
    rows_in = figures["records"]
    return StageResult(
        scale_factor=sf,
        stage=stage,
        seconds=round(took, 2),
        rows_in=rows_in,
        rows_out=figures.get("clusters", 0),
        bytes_out=identity_bytes,
        rows_per_s=round(rows_in / took),
        peak_rss_mib=round(peak / 2**20),
        floor_seconds=round(floor, 2),
        ratio_to_floor=round(took / floor, 2),
        figures={k: figures[k] for k in IDENTITY_FIGURES if k in figures},
    )


def bench_identity(spark, env, sf: float, work: Path) -> list[StageResult]:
    """The identity stage over the silver tables ``ingest`` left (needs ingest): a full run on
    the history without the last daily batch, an incremental run once the batch is back, and a
    full re-run on everything (what the incremental run is compared with)."""
    data = work / f"sf{sf}"
    env = env.model_copy(
        update={"warehouse": str(data / "warehouse"), "truth": str(data / "truth")}
    )
    shutil.rmtree(data / "warehouse" / "identity", ignore_errors=True)  # start from no state
    locations = _silver_tables(env, list(load_identity_settings().records))
    latest, before = _versions_before_last_batch(spark, locations)
    floor = floor_seconds(spark, str(data / "warehouse" / "silver"), str(work / "floor"))
    results = []
    runs = (
        ("identity_history", "full", before),
        ("identity_increment", "incremental", latest),
        ("identity", "full", latest),
    )
    for stage, mode, versions in runs:
        for loc in locations:
            if DeltaTable.forPath(spark, loc).history(1).first()["version"] != versions[loc]:
                DeltaTable.forPath(spark, loc).restoreToVersion(versions[loc])
        print(f"  {stage} ({mode}) ...", flush=True)
        with PeakMemory() as mem:
            started = time.perf_counter()
            result = run_identity_stage(
                spark,
                env,
                run_id=f"bench-sf{sf:g}-{stage}",
                truth_uri=env.truth_uri,
                mode=mode,
            )
            took = time.perf_counter() - started
        size = fs.summarize_path(spark, str(data / "warehouse" / "identity")).bytes
        results.append(_identity_result(stage, sf, result.figures, took, mem.peak, floor, size))
    return results


def _gold_result(stage: str, sf: float, result, took: float, peak: int, floor: float, rows_in: int):
    cells = result.customers * result.tags
    return StageResult(
        scale_factor=sf,
        stage=stage,
        seconds=round(took, 2),
        rows_in=rows_in,
        rows_out=result.customers,
        bytes_out=0,
        rows_per_s=round(cells / took),  # customer × tag values per second
        peak_rss_mib=round(peak / 2**20),
        floor_seconds=round(floor, 2),
        ratio_to_floor=round(took / floor, 2),
        figures={
            "customers": result.customers,
            "tags": result.tags,
            "features": result.features,
            "customer_tags_per_s": round(cells / took),
            **{f"refresh_{k}": v for k, v in result.refresh.items()},
            **{f"seconds_{k}": v for k, v in result.seconds_by_step.items()},
            **{
                f"{name}_{k}": v
                for name, figures in result.signals.items()
                if isinstance(figures, dict)
                for k, v in figures.items()
                if k in ("recall", "false_positive_rate", "recall_all")
            },
        },
    )


def bench_gold(spark, env, sf: float, work: Path) -> list[StageResult]:
    """The gold stage as daily runs use it, in a warehouse of its own over the landing that
    ``generate`` left: ingest and resolve the history without the last daily batch and make its
    snapshot (full: no earlier one); deliver the batch, ingest it and resolve it incrementally,
    refresh the snapshot (incremental); then remake that snapshot in full to compare with.
    The floor is a plain scan + write of the silver and identity tables the stage reads."""
    os.environ.setdefault(TOKEN_KEY_ENV, secrets.token_hex(32))
    data = work / f"sf{sf}"
    landing, held, warehouse = data / "landing", data / "held", data / "gold-warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)
    shutil.rmtree(f"{warehouse}-restricted", ignore_errors=True)
    env = env.model_copy(
        update={"landing": str(landing), "warehouse": str(warehouse), "truth": str(data / "truth")}
    )
    sources = selected_sources(None)
    results = []
    kept = ""
    _hold_back_last_batch(landing, held)
    try:
        for batch, identity_mode, gold_runs in (
            ("history", "full", (("gold_history", "auto"),)),
            ("increment", "incremental", (("gold_increment", "incremental"), ("gold", "full"))),
        ):
            if batch == "increment":
                _deliver_held_batch(landing, held)
            print(f"  ingest + identity ({identity_mode}) of the {batch} ...", flush=True)
            run_bronze_stage(spark, env, sources)
            run_silver_stage(spark, env, sources)
            run_identity_stage(spark, env, run_id=f"bench-gold-{batch}", mode=identity_mode)
            floor = floor_seconds(spark, str(warehouse / "silver"), str(work / "floor"))
            floor += floor_seconds(spark, str(warehouse / "identity"), str(work / "floor"))
            rows_in = sum(
                spark.read.format("delta").load(str(p)).count()
                for p in (warehouse / "silver").iterdir()
                if p.is_dir() and not p.name.startswith(("_", "."))
            )
            for stage, mode in gold_runs:
                print(f"  {stage} ({mode}) ...", flush=True)
                with PeakMemory() as mem:
                    started = time.perf_counter()
                    result = run_gold_stage(
                        spark, env, run_id=f"bench-{stage}", truth_uri=env.truth_uri, mode=mode
                    )
                    took = time.perf_counter() - started
                results.append(_gold_result(stage, sf, result, took, mem.peak, floor, rows_in))
                if stage == "gold_increment":
                    kept = _copy_features(spark, env, result.snapshot_date, work / "inc-features")
                elif stage == "gold" and kept:
                    differing = _rows_differing(spark, env, result.snapshot_date, kept)
                    results[-1].figures["feature_rows_differing_from_incremental"] = differing
        results.append(_bench_audience(spark, env, sf, result.customers, floor))
    finally:
        _deliver_held_batch(landing, held)
    return results


def _features_of(spark, env, day):
    catalog = TableCatalog.for_environment(env)
    features = spark.read.format("delta").load(gold_table(catalog, FEATURES).location)
    return features.where(features[SNAPSHOT_DATE] == day)


def _copy_features(spark, env, day, path: Path) -> str:
    """A copy of the features of ``day`` (to compare the next run's with)."""
    _features_of(spark, env, day).write.format("delta").mode("overwrite").save(str(path))
    return str(path)


def _rows_differing(spark, env, day, kept: str) -> int:
    """Rows in one of the features of ``day`` and the copy at ``kept`` but not in the other
    (0: the incremental refresh equals the full recompute on every value)."""
    now, then = _features_of(spark, env, day), spark.read.format("delta").load(kept)
    return now.exceptAll(then).count() + then.exceptAll(now).count()


AUDIENCE = "存贷客户 = false AND 高净值客户 IN ('A','B') AND 数字活跃 = '高'"


def _bench_audience(spark, env, sf: float, customers: int, floor: float) -> StageResult:
    """The time to count a typical audience (人群圈选) on the newest snapshot."""
    registry = load_tag_registry(load_feature_config().schema)
    catalog = TableCatalog.for_environment(env)
    with PeakMemory() as mem:
        started = time.perf_counter()
        result = select_audience(spark, catalog, registry, "bench_dl_prospects", AUDIENCE)
        took = time.perf_counter() - started
    return StageResult(
        scale_factor=sf,
        stage="audience",
        seconds=round(took, 2),
        rows_in=customers,
        rows_out=result.count,
        bytes_out=0,
        rows_per_s=round(customers / result.seconds_to_count) if result.seconds_to_count else 0,
        peak_rss_mib=round(mem.peak / 2**20),
        floor_seconds=round(floor, 2),
        ratio_to_floor=round(took / floor, 2),
        figures={
            "expression": AUDIENCE,
            "seconds_to_count": round(result.seconds_to_count, 3),
            "members": result.count,
            "suppressed": result.suppressed,
        },
    )


def _data_files(landing: Path, batch_glob: str) -> list[Path]:
    files = landing.glob(f"*/*/{batch_glob}/*")
    return [p for p in files if not p.name.startswith((".", "_"))]


def _held_files(landing: Path) -> list[Path]:
    """The files of the newest batch (the daily increment once delivered)."""
    return _data_files(landing, sorted({p.name for p in landing.glob("*/*/batch=*")})[-1])


def _floor_of_files(spark, files: list[Path], work: Path) -> float:
    """Plain text scan + write of exactly these files."""
    started = time.perf_counter()
    spark.read.text([str(f) for f in files]).write.mode("overwrite").text(str(work / "floor"))
    elapsed = time.perf_counter() - started
    fs.delete_path(spark, str(work / "floor"))
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-factors", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["generate", "ingest"],
        choices=["generate", "ingest", "identity", "gold"],
        help="ingest = bronze + silver on the history, then on one daily batch (needs "
        "generate); identity = the identity stage on that warehouse (needs ingest); gold = "
        "ingest, identity and the gold stage, history then one daily batch, in a warehouse of "
        "its own (needs generate)",
    )
    parser.add_argument("--env", default="local")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--keep-data", action="store_true", help="keep generated data")
    parser.add_argument(
        "--data",
        type=Path,
        help="reuse the data folder a --keep-data run left (e.g. to re-run only --stages identity)",
    )
    args = parser.parse_args()

    env = load_environment(args.env)
    spark = build_spark_session(env, app_name="profilehouse-bench")
    started = dt.datetime.now(dt.UTC)
    out = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    work = args.data or out / "data"
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "spark": spark.version,
        "driver_memory": spark.conf.get("spark.driver.memory", "default"),
        "python": platform.python_version(),
    }
    # Warm up the JVM so the first measured stage does not pay for class loading.
    spark.range(1000).selectExpr("sum(id)").collect()
    results = []
    for sf in sorted(args.scale_factors):
        for stage in args.stages:
            print(f"running {stage} at SF {sf:g} ...", flush=True)
            if stage == "generate":
                stage_results = [bench_generate(spark, env, sf, work)]
            elif stage == "ingest":
                stage_results = bench_ingest(spark, env, sf, work)
            elif stage == "identity":
                stage_results = bench_identity(spark, env, sf, work)
            else:
                stage_results = bench_gold(spark, env, sf, work)
            for result in stage_results:
                print(
                    f"  {result.stage}: {result.seconds:.1f} s, {result.rows_out:,} rows, "
                    f"x{result.ratio_to_floor} floor",
                    flush=True,
                )
            results += stage_results
    markdown = to_markdown(results, meta)
    (out / "bench.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2),
        encoding="utf-8",
    )
    (out / "bench.md").write_text(markdown + "\n", encoding="utf-8")
    if not args.keep_data and not args.data:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown)
    print(f"bench results: {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
