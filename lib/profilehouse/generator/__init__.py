"""Synthetic bank + retail + marketing source data with planted signal and ground truth.

The orchestration names are imported lazily (PEP 562) so that light modules such as
``generator.settings`` load without pulling in every builder.
"""

from __future__ import annotations

from typing import Any

from profilehouse.generator.settings import GeneratorSettings, load_generator_settings

_LAZY = {
    "GenerationReport", "SourceReport", "build_all_sources", "generate",
    "read_truth_persons", "read_truth_records",
}  # fmt: skip

__all__ = ["GeneratorSettings", "load_generator_settings", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from profilehouse.generator import generate as _generate

        return getattr(_generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
