"""Seconds per named step of a stage, for run summaries and benchmarks (``seconds_by_step``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StepTimer:
    """Wall seconds per named step, in the order steps first ran; a step run several times
    (one per snapshot date, say) adds up."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - started
            self._seconds[name] = self._seconds.get(name, 0.0) + took

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` to step ``name`` (a share of a step timed elsewhere)."""
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def seconds_by_step(self) -> dict[str, float]:
        """Each step's seconds, rounded to a tenth."""
        return {name: round(took, 1) for name, took in self._seconds.items()}
