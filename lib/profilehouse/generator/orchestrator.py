"""Orchestrates the generator: persons → every source → landing files + ground truth.

Outputs (all under roots from the environment profile):

- ``<landing>/<system>/<table>/batch=<date>/part-*`` the source exports;
- ``<landing>/_GENERATED.json`` a marker written last, naming the settings and figures; a run with
  the same settings finds it and skips generation (a crashed run leaves no marker, so it redoes);
- ``<truth>/persons`` (Parquet) every true person with persona and planted labels;
- ``<truth>/records/source=<system.table>`` (Parquet) record key → person, batch, patterns;
- ``<truth>/planted.json`` the configured effects (rates, uplifts) the truth was drawn with.

The pipeline never reads ``<truth>``; only quality reports and tests do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from profilehouse import fs
from profilehouse.errors import ProfilehouseError
from profilehouse.generator.bank import build_bank_sources
from profilehouse.generator.marketing import build_marketing_sources
from profilehouse.generator.persons import build_persons
from profilehouse.generator.retail import build_retail_sources
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.sources import GeneratedSource
from profilehouse.generator.writer import select_for_truth, write_source
from profilehouse.truth import persons_dir, records_dir

log = logging.getLogger(__name__)

MARKER = "_GENERATED.json"
# Written first into a landing folder the generator fills, never removed: the generator only
# ever overwrites a folder that is empty or carries it (or a finished run's MARKER).
OWNER_MARKER = "_DEMO_LANDING"
SUFFIXES = {"csv": (".csv",), "jsonl": (".txt", ".json"), "parquet": (".parquet",)}


@dataclass
class SourceReport:
    """What was written for one source table."""

    name: str
    format: str
    path: str
    rows: int
    files: int
    bytes: int
    batches: dict[str, int]
    seconds: float


@dataclass
class GenerationReport:
    """Figures of one generation run (or of the earlier run it found and reused)."""

    seed: int
    scale_factor: float
    persons: int
    settings_hash: str
    landing: str
    truth: str
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0
    reused: bool = False

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sources)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.sources)

    @property
    def files(self) -> int:
        return sum(s.files for s in self.sources)

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(rows=self.rows, bytes=self.bytes, files=self.files)
        return data

    @classmethod
    def from_json(cls, data: dict) -> GenerationReport:
        sources = [SourceReport(**s) for s in data.get("sources", [])]
        keep = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "sources"}
        return cls(**keep, sources=sources)


def settings_hash(cfg: GeneratorSettings) -> str:
    """Stable hash of everything that shapes the output."""
    return hashlib.sha256(cfg.model_dump_json().encode("utf-8")).hexdigest()[:16]


def build_all_sources(
    spark: SparkSession, cfg: GeneratorSettings
) -> tuple[DataFrame, list[GeneratedSource]]:
    """The persons DataFrame and every source (bank, retail, marketing), not yet written."""
    persons = build_persons(spark, cfg)
    sources = [
        *build_bank_sources(persons, cfg),
        *build_retail_sources(persons, cfg),
        *build_marketing_sources(persons, cfg),
    ]
    return persons, sources


def find_previous_run(
    spark: SparkSession, cfg: GeneratorSettings, landing: str
) -> GenerationReport | None:
    """The report of an earlier complete run with the same settings at ``landing``, if any."""
    text = fs.read_text(spark, f"{landing.rstrip('/')}/{MARKER}")
    if not text:
        return None
    data = json.loads(text)
    if data.get("settings_hash") != settings_hash(cfg):
        return None
    report = GenerationReport.from_json(data)
    report.reused = True
    return report


def generate(
    spark: SparkSession,
    cfg: GeneratorSettings,
    landing: str,
    truth: str,
    force: bool = False,
) -> GenerationReport:
    """Generate every source into ``landing`` and the ground truth into ``truth``.

    Skips the work when a complete earlier run with identical settings is found (unless
    ``force``). Safe to re-run: every output folder is overwritten whole.
    """
    landing, truth = landing.rstrip("/"), truth.rstrip("/")
    if not force:
        previous = find_previous_run(spark, cfg, landing)
        if previous is not None:
            log.info(f"demo data present (seed {cfg.seed}, SF {cfg.scale_factor}): {landing}")
            return previous
    started = time.perf_counter()
    require_demo_landing(spark, landing)
    fs.write_text(spark, f"{landing}/{OWNER_MARKER}", "written by the demo generator\n")
    fs.delete_path(spark, f"{landing}/{MARKER}")
    report = GenerationReport(
        cfg.seed, cfg.scale_factor, cfg.persons, settings_hash(cfg), landing, truth
    )
    persons, sources = build_all_sources(spark, cfg)
    persons = persons.persist(StorageLevel.MEMORY_AND_DISK)
    log.info(
        f"generating {cfg.persons:,} persons at SF {cfg.scale_factor} (seed {cfg.seed}) "
        f"into {landing}"
    )
    _write_persons_truth(persons, truth)
    for i, source in enumerate(sources, start=1):
        report.sources.append(_write_one(spark, source, cfg, landing, truth))
        s = report.sources[-1]
        log.info(
            f"  [{i:2d}/{len(sources)}] {s.name:<24} {s.rows:>12,} rows {s.files:>4} files "
            f"{s.bytes / 2**20:>9.1f} MiB {s.seconds:>6.1f} s"
        )
    persons.unpersist()
    fs.write_text(
        spark, f"{truth}/planted.json", json.dumps(planted_truth(cfg), indent=2, default=str)
    )
    report.seconds = round(time.perf_counter() - started, 2)
    fs.write_text(spark, f"{landing}/{MARKER}", json.dumps(report.to_json(), indent=2))
    return report


def require_demo_landing(spark: SparkSession, landing: str) -> None:
    """Raise unless ``landing`` is empty or was filled by the generator: it overwrites whole
    source folders, so it must never run over a landing zone holding real exports."""
    if not fs.has_entries(spark, landing):
        return
    if fs.path_exists(spark, f"{landing}/{OWNER_MARKER}") or fs.path_exists(
        spark, f"{landing}/{MARKER}"
    ):
        return
    raise ProfilehouseError(
        f"refusing to generate demo data into {landing}: it holds files the demo generator did "
        f"not write (no {OWNER_MARKER} or {MARKER} marker); generate into an empty folder"
    )


def _write_persons_truth(persons: DataFrame, truth: str) -> None:
    params = [c for c in persons.columns if c.startswith("p_")]
    persons.drop(*params).write.mode("overwrite").parquet(persons_dir(truth))


def _write_one(
    spark: SparkSession, source: GeneratedSource, cfg: GeneratorSettings, landing: str, truth: str
) -> SourceReport:
    started = time.perf_counter()
    spec = source.spec
    df = source.df.persist(StorageLevel.MEMORY_AND_DISK)
    write_source(df, spec, landing, cfg.history.initial_batch.isoformat(), source.expected_rows)
    truth_rows = select_for_truth(df, spec, extra=("malformed_kind", "patterns")).drop("source")
    truth_rows.write.mode("overwrite").parquet(f"{records_dir(truth)}/source={spec.name}")
    batches = {r["batch"]: int(r["count"]) for r in df.groupBy("batch").count().collect()}
    df.unpersist()
    out = spec.path(landing)
    summary = fs.summarize_path(spark, out, SUFFIXES[spec.fmt])
    return SourceReport(
        name=spec.name,
        format=spec.fmt,
        path=out,
        rows=sum(batches.values()),
        files=summary.files,
        bytes=summary.bytes,
        batches=dict(sorted(batches.items())),
        seconds=round(time.perf_counter() - started, 2),
    )


def planted_truth(cfg: GeneratorSettings) -> dict:
    """The configured effects the ground truth was drawn with (for tests and quality reports)."""
    return {
        "seed": cfg.seed,
        "scale_factor": cfg.scale_factor,
        "persons": cfg.persons,
        "history": cfg.history.model_dump(mode="json"),
        "dirt": cfg.dirt.model_dump(),
        "signal": cfg.signal.model_dump(),
        "campaigns": [c.model_dump(mode="json") for c in cfg.campaigns],
        "personas": {k: v.weight for k, v in cfg.personas.items()},
    }
