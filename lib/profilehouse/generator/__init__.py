"""Synthetic bank + retail + marketing source data with planted signal and ground truth.

The orchestration names are imported lazily (PEP 562) so that light modules such as
``generator.settings`` load without pulling in every builder.
"""

from __future__ import annotations

from typing import Any

from profilehouse.generator.settings import GeneratorSettings, load_generator_settings
from profilehouse.truth import read_truth_persons, read_truth_records

_LAZY = {"GenerationReport", "SourceReport", "build_all_sources", "generate"}

__all__ = [  # noqa: RUF022 - settings first, then the lazily imported names
    "GeneratorSettings",
    "load_generator_settings",
    "GenerationReport",
    "SourceReport",
    "build_all_sources",
    "generate",
    "read_truth_persons",
    "read_truth_records",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from profilehouse.generator import orchestrator

        return getattr(orchestrator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
