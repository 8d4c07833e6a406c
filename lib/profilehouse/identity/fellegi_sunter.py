"""Fellegi–Sunter match weights with parameters estimated from the data itself.

For each comparison, ``m[level]`` is the probability of that agreement level among true matches
and ``u[level]`` among non-matches; a pair's match weight is ``log2(λ/(1-λ)) + Σ log2(m/u)`` over
its non-null comparisons, and its match probability ``2^w / (1 + 2^w)``.

Estimation needs no ground truth:

- ``u`` from random record pairs (almost all non-matches): :func:`estimate_u`;
- ``m`` and the prior ``λ`` by expectation–maximisation over the blocked candidate pairs with
  ``u`` held fixed: :func:`expectation_maximisation`.

Both work on *pattern counts* — how many pairs show each combination of levels — which are a
small aggregate (at most the product of the level counts) computed by Spark, so estimation
costs one aggregation over the pairs, whatever their number; the EM iterations run on the
driver over that small table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame

from profilehouse.identity.comparisons import (
    ComparisonSpec,
    gamma_column,
    level_count,
    level_labels,
)

Pattern = tuple[int, ...]
PROBABILITY_FLOOR = 1e-6


@dataclass(frozen=True)
class FellegiSunterModel:
    """Estimated parameters: prior match probability among candidate pairs, m and u per level."""

    comparisons: tuple[ComparisonSpec, ...]
    prior: float
    m: dict[str, list[float]]
    u: dict[str, list[float]]
    em_iterations: int = 0
    tf_columns: dict[str, str] = field(default_factory=dict)  # comparison → tf column

    def bayes_factor_sql(self, spec: ComparisonSpec) -> str:
        """SQL of ``log2(m/u)`` for the pair's level of ``spec`` (0 when either value is null).

        With a term-frequency column, an exact match weighs ``log2(m_exact / tf(value))``.
        """
        gamma = gamma_column(spec)
        weights = [
            _log2_ratio(m, u) for m, u in zip(self.m[spec.name], self.u[spec.name], strict=True)
        ]
        cases = [f"WHEN {gamma} = {level} THEN {w!r}" for level, w in enumerate(weights)]
        tf = self.tf_columns.get(spec.name)
        if tf:
            top = len(weights) - 1
            m_exact = max(self.m[spec.name][top], PROBABILITY_FLOOR)
            cases.insert(
                0,
                f"WHEN {gamma} = {top} AND l.`{tf}` IS NOT NULL "
                f"THEN log2({m_exact!r} / greatest(l.`{tf}`, {PROBABILITY_FLOOR!r}))",
            )
        return "CASE " + " ".join(cases) + " ELSE 0.0 END"

    def prior_weight(self) -> float:
        return _log2_ratio(self.prior, 1 - self.prior)

    def to_dict(self) -> dict:
        """Plain data (for the model registry and explanations)."""
        return {
            "prior": self.prior,
            "em_iterations": self.em_iterations,
            "comparisons": {
                spec.name: {
                    "kind": spec.kind,
                    "column": spec.column,
                    "levels": level_labels(spec),
                    "m": self.m[spec.name],
                    "u": self.u[spec.name],
                    "weights": [
                        _log2_ratio(m, u)
                        for m, u in zip(self.m[spec.name], self.u[spec.name], strict=True)
                    ],
                    "term_frequency": spec.name in self.tf_columns,
                }
                for spec in self.comparisons
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(
        cls, data: dict, comparisons: Sequence[ComparisonSpec], tf_columns: dict[str, str]
    ) -> FellegiSunterModel:
        """The model :meth:`to_dict` wrote, for ``comparisons`` as configured now.

        Raises ValueError when the configured comparisons differ from the stored model's (a
        comparison added, removed or given other levels): such a model cannot score them.
        """
        stored = data["comparisons"]
        problems = []
        for spec in comparisons:
            entry = stored.get(spec.name)
            if entry is None:
                problems.append(f"{spec.name!r} is not in the stored model")
            elif (entry["kind"], entry["column"], entry["levels"]) != (
                spec.kind,
                spec.column,
                level_labels(spec),
            ):
                problems.append(f"{spec.name!r} is configured differently")
            elif entry["term_frequency"] != (spec.name in tf_columns):
                problems.append(f"{spec.name!r} term_frequency differs")
        extra = sorted(set(stored) - {s.name for s in comparisons})
        problems += [f"{name!r} is in the stored model but not configured" for name in extra]
        if problems:
            raise ValueError(
                "the stored model does not fit the comparisons: " + "; ".join(problems)
            )
        return cls(
            tuple(comparisons),
            float(data["prior"]),
            {s.name: [float(x) for x in stored[s.name]["m"]] for s in comparisons},
            {s.name: [float(x) for x in stored[s.name]["u"]] for s in comparisons},
            int(data.get("em_iterations", 0)),
            dict(tf_columns),
        )


def _log2_ratio(a: float, b: float) -> float:
    return math.log2(max(a, PROBABILITY_FLOOR) / max(b, PROBABILITY_FLOOR))


def pattern_counts(gammas: DataFrame, specs: Sequence[ComparisonSpec]) -> dict[Pattern, int]:
    """How many pairs show each combination of levels (a small aggregate, collected)."""
    cols = [gamma_column(s) for s in specs]
    rows = gammas.groupBy(*cols).count().collect()
    return {tuple(int(r[c]) for c in cols): int(r["count"]) for r in rows}


def pattern_counts_by_rule(
    gammas: DataFrame, specs: Sequence[ComparisonSpec]
) -> dict[int, dict[Pattern, int]]:
    """Pattern counts per blocking rule (column ``rule``): one small aggregate, collected."""
    cols = [gamma_column(s) for s in specs]
    out: dict[int, dict[Pattern, int]] = {}
    for r in gammas.groupBy("rule", *cols).count().collect():
        out.setdefault(int(r["rule"]), {})[tuple(int(r[c]) for c in cols)] = int(r["count"])
    return out


def candidate_match_share(
    counts: dict[Pattern, int],
    specs: Sequence[ComparisonSpec],
    m: dict[str, list[float]],
    u: dict[str, list[float]],
    max_iterations: int = 200,
) -> float:
    """The share of matches among pairs with these pattern counts, m and u held fixed (EM on
    the prior alone)."""
    names = [s.name for s in specs]
    share = 0.5
    for _ in range(max_iterations):
        posteriors = _match_posteriors(counts, names, m, u, share)
        new = _updated_prior(counts, posteriors, share)
        if abs(new - share) < 1e-9:
            return new
        share = new
    return share


def estimate_u(
    counts: dict[Pattern, int], specs: Sequence[ComparisonSpec]
) -> dict[str, list[float]]:
    """u per level from the pattern counts of random pairs (treated as non-matches).

    A level never seen among random pairs gets a pseudo-count of one, so no weight is infinite.
    """
    u = {}
    for k, spec in enumerate(specs):
        n = level_count(spec)
        seen = [0.0] * n
        for pattern, count in counts.items():
            if pattern[k] >= 0:
                seen[pattern[k]] += count
        seen = [max(c, 1.0) for c in seen]
        total = sum(seen)
        u[spec.name] = [c / total for c in seen]
    return u


def _initial_m(spec: ComparisonSpec) -> list[float]:
    """A neutral start: matches mostly agree exactly, the rest spread over the other levels."""
    n = level_count(spec)
    rest = 0.1 / (n - 1)
    return [rest] * (n - 1) + [0.9]


def expectation_maximisation(
    counts: dict[Pattern, int],
    specs: Sequence[ComparisonSpec],
    u: dict[str, list[float]],
    prior: float = 0.1,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> FellegiSunterModel:
    """m and the prior by EM over candidate-pair pattern counts, ``u`` held fixed."""
    m = {spec.name: _initial_m(spec) for spec in specs}
    names = [spec.name for spec in specs]
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (reported below)
        posteriors = _match_posteriors(counts, names, m, u, prior)
        new_m = _updated_m(counts, posteriors, specs)
        new_prior = _updated_prior(counts, posteriors, prior)
        change = max(
            abs(new_prior - prior),
            *(abs(a - b) for n in names for a, b in zip(new_m[n], m[n], strict=True)),
        )
        m, prior = new_m, new_prior
        if change < tolerance:
            break
    return FellegiSunterModel(tuple(specs), prior, m, u, em_iterations=iterations)


def _match_posteriors(
    counts: dict[Pattern, int],
    names: list[str],
    m: dict[str, list[float]],
    u: dict[str, list[float]],
    prior: float,
) -> dict[Pattern, float]:
    """P(match | pattern) under the current parameters."""
    posteriors = {}
    prior_weight = _log2_ratio(prior, 1 - prior)
    for pattern in counts:
        weight = prior_weight + sum(
            _log2_ratio(m[name][level], u[name][level])
            for name, level in zip(names, pattern, strict=True)
            if level >= 0
        )
        posteriors[pattern] = _probability(weight)
    return posteriors


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    odds = 2.0**weight
    return odds / (1 + odds)


def _updated_m(
    counts: dict[Pattern, int], posteriors: dict[Pattern, float], specs: Sequence[ComparisonSpec]
) -> dict[str, list[float]]:
    m = {}
    for k, spec in enumerate(specs):
        mass = [0.0] * level_count(spec)
        for pattern, count in counts.items():
            if pattern[k] >= 0:
                mass[pattern[k]] += count * posteriors[pattern]
        total = sum(mass)
        if total <= 0:
            m[spec.name] = _initial_m(spec)
            continue
        m[spec.name] = [max(x / total, PROBABILITY_FLOOR) for x in mass]
    return m


def _updated_prior(
    counts: dict[Pattern, int], posteriors: dict[Pattern, float], prior: float
) -> float:
    total = sum(counts.values())
    if not total:
        return prior
    share = sum(c * posteriors[p] for p, c in counts.items()) / total
    return min(max(share, PROBABILITY_FLOOR), 1 - PROBABILITY_FLOOR)


def match_probability(weight: float) -> float:
    """The match probability of a match weight (log2 odds)."""
    return _probability(weight)
