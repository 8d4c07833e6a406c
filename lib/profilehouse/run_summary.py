"""Run summaries: each pipeline run records stage → key figures as JSON.

Scripts and monitoring read a run's figures from the file named on the run's last output line
(``run summary: <path>``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
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
