"""Run summaries: each pipeline run records stage → key figures as JSON.

Scripts and monitoring read a run's figures from the file named on the run's last output line
(``run summary: <path>``). Every stage run through :meth:`RunSummary.timed` carries its wall
time as ``stages.<stage>.seconds``, so each run shows where its time went.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from profilehouse import fs
from profilehouse.catalog import TableCatalog


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run ID: UTC timestamp + random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass
class RunSummary:
    """Figures of one pipeline run, stage by stage."""

    run_id: str
    environment: str
    started_at: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: str | None = None
    status: str = "running"

    @classmethod
    def start(cls, environment: str) -> RunSummary:
        now = dt.datetime.now(dt.UTC)
        return cls(new_run_id(now), environment, now.isoformat(timespec="seconds"))

    def record(self, stage: str, figures: dict[str, Any]) -> None:
        """Record (or replace) the figures of ``stage``."""
        self.stages[stage] = figures

    @contextmanager
    def timed(self, stage: str) -> Iterator[dict[str, Any]]:
        """Time the block as ``stage``: the block fills the yielded dict with the stage's
        figures, which are recorded with ``seconds`` (wall, first key) even when it fails."""
        figures: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield figures
        finally:
            seconds = round(time.perf_counter() - started, 2)
            self.stages[stage] = {"seconds": seconds, **_without_seconds(figures)}

    def seconds_by_stage(self) -> dict[str, float]:
        """Wall seconds of each timed stage, in run order."""
        return {k: v["seconds"] for k, v in self.stages.items() if "seconds" in v}

    def format_timings(self) -> str:
        """``stage 1.2 s · stage 3.4 s · total 4.6 s``: where the run's time went."""
        seconds = self.seconds_by_stage()
        parts = [f"{stage} {s:,.1f} s" for stage, s in seconds.items()]
        return " · ".join([*parts, f"total {sum(seconds.values()):,.1f} s"])

    def finish(self, status: str = "succeeded") -> None:
        self.status = status
        self.finished_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "environment": self.environment,
                "status": self.status,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "stages": self.stages,
            },
            indent=2,
            ensure_ascii=False,
            default=str,
        )

    def write(self, spark: SparkSession, catalog: TableCatalog) -> str:
        """Write the summary as ``<warehouse>/_runs/<run_id>.json`` and return that path."""
        path = f"{catalog.run_summaries_dir()}/{self.run_id}.json"
        fs.write_text(spark, path, self.to_json())
        return path


def _without_seconds(figures: dict[str, Any]) -> dict[str, Any]:
    """A stage's own figures, minus a ``seconds`` of its own (the wall time replaces it)."""
    return {k: v for k, v in figures.items() if k != "seconds"}
