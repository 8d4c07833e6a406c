"""Per-source work of a stage: how a stage's sources are run between its shared commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from profilehouse.ingest.source_config import SourceSpec

# runs ``work`` for each source; returns, in source order, each result or the exception raised
MapSources = Callable[[list[SourceSpec], Callable[[SourceSpec], Any]], list[Any]]


def in_turn(specs: list[SourceSpec], work: Callable[[SourceSpec], Any]) -> list[Any]:
    """``work`` for each source one after the other; results or the exception each raised."""
    out: list[Any] = []
    for spec in specs:
        try:
            out.append(work(spec))
        except Exception as exc:  # reported by the caller, after the other sources ran
            out.append(exc)
    return out
