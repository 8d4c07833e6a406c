"""Field comparisons for probabilistic linkage: each turns a record pair into a level (gamma).

A comparison compares one attribute of the left record (struct column ``l``) with the right
record's (``r``) and yields an integer level: ``-1`` when either value is null (no evidence),
``0`` for disagreement and higher levels for closer agreement, the top level being an exact
match. Levels are plain Spark SQL, so a comparison costs no Python per pair.

Kinds (declared in config, :class:`ComparisonSpec`):

- ``exact``: exact / else;
- ``string``: exact / Levenshtein distance ≤ each threshold (ascending) / else;
- ``date``: exact / day and month swapped / one character off when written ``yyyyMMdd`` / else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from profilehouse.config import StrictModel

ComparisonKind = Literal["exact", "string", "date"]


class ComparisonSpec(StrictModel):
    """One compared attribute and how agreement is graded."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Names the gamma column.")
    kind: ComparisonKind
    column: str = Field(description="Attribute column of the records being compared.")
    thresholds: list[int] = Field(
        default_factory=list, description="string: Levenshtein distances, ascending."
    )
    term_frequency: bool = Field(
        default=False,
        description="Adjust the exact-match weight by how common the value is (a common name "
        "agreeing is weaker evidence than a rare one).",
    )

    @model_validator(mode="after")
    def _thresholds_fit_kind(self) -> ComparisonSpec:
        if self.kind == "string" and not self.thresholds:
            raise ValueError("kind 'string' needs thresholds, e.g. [1, 2]")
        if self.kind != "string" and self.thresholds:
            raise ValueError(f"thresholds apply to kind 'string' only, not {self.kind!r}")
        if self.thresholds != sorted(set(self.thresholds)) or any(t < 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be ascending positive integers: {self.thresholds}")
        return self


@dataclass(frozen=True)
class Level:
    """One agreement level: its label and the SQL condition (checked best level first)."""

    label: str
    condition_sql: str


def levels(spec: ComparisonSpec) -> list[Level]:
    """The agreement levels of ``spec``, best (exact) first, ending with the catch-all 'else'."""
    left, right = f"l.`{spec.column}`", f"r.`{spec.column}`"
    best = [Level("exact", f"{left} = {right}")]
    if spec.kind == "string":
        best += [
            Level(f"levenshtein<={t}", f"levenshtein({left}, {right}, {t}) BETWEEN 0 AND {t}")
            for t in spec.thresholds
        ]
    elif spec.kind == "date":
        swapped = (
            f"(year({left}) = year({right}) AND month({left}) = day({right}) "
            f"AND day({left}) = month({right}))"
        )
        text = "date_format({}, 'yyyyMMdd')"
        best += [
            Level("day_month_swapped", swapped),
            Level(
                "one_digit_off",
                f"levenshtein({text.format(left)}, {text.format(right)}, 1) = 1",
            ),
        ]
    return [*best, Level("else", "true")]


def level_count(spec: ComparisonSpec) -> int:
    """Number of non-null levels (else = 0 … exact = level_count - 1)."""
    return len(levels(spec))


def level_labels(spec: ComparisonSpec) -> list[str]:
    """Labels indexed by gamma value (0 = 'else', last = 'exact')."""
    return [lvl.label for lvl in reversed(levels(spec))]


def gamma_sql(spec: ComparisonSpec) -> str:
    """SQL giving the comparison's gamma: -1 null, 0 else, …, level_count-1 exact."""
    top = level_count(spec) - 1
    null = f"l.`{spec.column}` IS NULL OR r.`{spec.column}` IS NULL"
    cases = [f"WHEN {null} THEN -1"]
    cases += [f"WHEN {lvl.condition_sql} THEN {top - i}" for i, lvl in enumerate(levels(spec))]
    return "CASE " + " ".join(cases) + " END"


def gamma_column(spec: ComparisonSpec) -> str:
    """Name of the gamma column of ``spec``."""
    return f"gamma_{spec.name}"
