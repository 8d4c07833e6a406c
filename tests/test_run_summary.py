"""The run summary: each timed stage carries its wall seconds, also when it fails."""

from __future__ import annotations

import json
import time

import pytest

from profilehouse.run_summary import RunSummary


def test_a_timed_stage_records_its_figures_with_its_wall_seconds_first() -> None:
    summary = RunSummary.start("test")
    with summary.timed("bronze") as figures:
        time.sleep(0.05)
        figures.update({"files": 3, "seconds": 999.0})  # a stage's own timer is replaced
    stage = summary.stages["bronze"]
    assert list(stage) == ["seconds", "files"]
    assert 0.05 <= stage["seconds"] < 5
    assert json.loads(summary.to_json())["stages"]["bronze"]["files"] == 3


def test_a_failed_stage_keeps_its_time_and_the_timings_line_adds_up() -> None:
    summary = RunSummary.start("test")
    with summary.timed("generate"):
        pass
    with pytest.raises(RuntimeError), summary.timed("silver") as figures:
        figures["rows_in"] = 7
        raise RuntimeError("boom")
    summary.record("notes", {"without": "time"})
    assert list(summary.seconds_by_stage()) == ["generate", "silver"]
    assert summary.stages["silver"]["rows_in"] == 7
    line = summary.format_timings()
    assert line.startswith("generate ") and " · silver " in line and line.endswith(" s")
    assert "notes" not in line
