"""Probabilistic record linkage on Spark: blocking → comparisons → Fellegi–Sunter scores.

Works on any table of person-like records given its settings (:class:`LinkageSettings`,
declared in YAML): deduplicating one table, or linking two (``link_only`` with a ``dataset``
column). Parameters are estimated from the records themselves (:func:`train`), so no ground
truth and no hand-tuning is needed; :func:`score_pairs` then scores every candidate pair.

    model = train(records, settings)
    pairs = score_pairs(records, settings, model)       # uid_l, uid_r, match_weight, ...
    links = pairs.where(pairs.match_probability >= settings.match_threshold)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import Field, model_validator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from profilehouse.config import StrictModel
from profilehouse.errors import SchemaError
from profilehouse.han import homophone_key_expr, simplified_expr
from profilehouse.identity.blocking import DATASET, UID, candidate_pairs
from profilehouse.identity.comparisons import ComparisonSpec, gamma_column, gamma_sql
from profilehouse.identity.fellegi_sunter import (
    FellegiSunterModel,
    candidate_match_share,
    estimate_u,
    expectation_maximisation,
    pattern_counts,
    pattern_counts_by_rule,
)


class LinkageSettings(StrictModel):
    """How records are blocked, compared and scored."""

    simplified_chinese: list[str] = Field(
        default_factory=list,
        description="Columns whose traditional Chinese characters become simplified, before "
        "anything else (a name written in either form compares equal).",
    )
    homophone_keys: dict[str, str] = Field(
        default_factory=dict,
        description="New column → column: a key equal for names that sound the same in "
        "Mandarin (toneless pinyin), for blocking on homophone typos.",
    )
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="Extra record columns (name → Spark SQL over the record), computed first; "
        "blocking keys and comparisons may use them.",
    )
    comparisons: list[ComparisonSpec] = Field(min_length=1)
    blocking: list[list[str]] = Field(
        min_length=1,
        description="Rules: lists of Spark SQL expressions over one record; equal on both "
        "records (and non-null) makes a candidate pair. Rules are OR-ed.",
    )
    match_threshold: float = Field(
        default=0.99, gt=0, lt=1, description="Match probability from which a pair is linked."
    )
    max_block_size: int = Field(
        default=200, ge=2, description="Blocks with more records are skipped (and reported)."
    )
    u_sample_pairs: int = Field(
        default=2_000_000, ge=1_000, description="Random pairs used to estimate u."
    )
    em_max_iterations: int = Field(default=100, ge=1)
    seed: int = 42

    @model_validator(mode="after")
    def _names_unique(self) -> LinkageSettings:
        names = [c.name for c in self.comparisons]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"comparison names must be unique, repeated: {', '.join(dupes)}")
        if any(not rule for rule in self.blocking):
            raise ValueError("a blocking rule needs at least one expression")
        return self

    def attribute_columns(self) -> list[str]:
        """Columns the comparisons read."""
        return sorted({c.column for c in self.comparisons})


def tf_column(spec: ComparisonSpec) -> str:
    return f"__tf_{spec.column}"


def prepared_records(
    records: DataFrame,
    settings: LinkageSettings,
    term_frequencies: dict[str, DataFrame] | None = None,
) -> DataFrame:
    """Records with the derived columns and term frequencies added; checks required columns.

    ``term_frequencies``: per comparison name, a frame ``(<column>, <tf column>)`` to use
    instead of counting the records (the frequencies a model was trained with, so a later run
    scores pairs exactly as that run did; values it never saw get no frequency adjustment).
    """
    if UID not in records.columns:
        raise SchemaError(f"linkage records need a '{UID}' column; present: {records.columns}")
    absent = [
        c
        for c in [*settings.simplified_chinese, *settings.homophone_keys.values()]
        if c not in records.columns
    ]
    if absent:
        raise SchemaError(
            f"simplified_chinese / homophone_keys column(s) {', '.join(sorted(set(absent)))} "
            f"not in the records (present: {', '.join(records.columns)})"
        )
    out = records.withColumns({c: simplified_expr(F.col(c)) for c in settings.simplified_chinese})
    out = out.withColumns(
        {k: homophone_key_expr(F.col(v)) for k, v in settings.homophone_keys.items()}
    )
    out = out.withColumns({k: F.expr(v) for k, v in settings.derived.items()})
    missing = [c for c in settings.attribute_columns() if c not in out.columns]
    if missing:
        raise SchemaError(
            f"comparison column(s) {', '.join(missing)} not in the records "
            f"(present: {', '.join(out.columns)})"
        )
    frozen = term_frequencies or {}
    for spec in settings.comparisons:
        if not spec.term_frequency or tf_column(spec) in out.columns:
            continue
        if spec.name in frozen:
            table = frozen[spec.name].select(spec.column, tf_column(spec))
            if spec.column in settings.simplified_chinese:  # both forms of a value: one row
                table = table.withColumn(spec.column, simplified_expr(F.col(spec.column)))
                table = table.groupBy(spec.column).agg(
                    F.max(tf_column(spec)).alias(tf_column(spec))
                )
            out = out.join(table, spec.column, "left")
        else:
            out = _with_term_frequency(out, spec.column, tf_column(spec))
    return out


def term_frequency_tables(prepared: DataFrame, settings: LinkageSettings) -> dict[str, DataFrame]:
    """Per term-frequency comparison, its distinct ``(<column>, <tf column>)`` in ``prepared``."""
    return {
        spec.name: prepared.where(F.col(spec.column).isNotNull())
        .select(spec.column, tf_column(spec))
        .distinct()
        for spec in settings.comparisons
        if spec.term_frequency
    }


def _with_term_frequency(records: DataFrame, column: str, name: str) -> DataFrame:
    """``records`` plus ``name``: the share of records (with a value) holding this value."""
    counts = records.where(F.col(column).isNotNull()).groupBy(column).count()
    total = counts.agg(F.sum("count").alias("__total"))  # one row, broadcast below
    freq = counts.crossJoin(F.broadcast(total)).select(
        column, (F.col("count") / F.col("__total")).alias(name)
    )
    return records.join(freq, column, "left")


def comparison_vectors(
    pairs: DataFrame, records: DataFrame, settings: LinkageSettings
) -> DataFrame:
    """Pairs with both records as structs ``l`` and ``r`` and one gamma column per comparison."""
    side = records.select(UID, F.struct(*records.columns).alias("rec"))
    joined = pairs.join(
        side.select(F.col(UID).alias("uid_l"), F.col("rec").alias("l")), "uid_l"
    ).join(side.select(F.col(UID).alias("uid_r"), F.col("rec").alias("r")), "uid_r")
    return joined.withColumns(
        {gamma_column(c): F.expr(gamma_sql(c)).cast("int") for c in settings.comparisons}
    )


def random_sample(records: DataFrame, max_pairs: int, seed: int) -> DataFrame:
    """Random record ``uid``s whose pairs number about ``max_pairs``."""
    n = records.count()
    sample = max(2, math.ceil(math.sqrt(2 * max_pairs)))
    fraction = min(1.0, sample / max(n, 1))
    return records.select(UID).sample(fraction=fraction, seed=seed)


def random_pairs(picked: DataFrame) -> DataFrame:
    """Every pair ``(uid_l, uid_r)`` of the sampled ``picked`` (nearly all of them
    non-matches); cache ``picked`` first, it is read twice."""
    return (
        picked.alias("a")
        .crossJoin(picked.alias("b"))
        .where(F.col(f"a.{UID}") < F.col(f"b.{UID}"))
        .select(F.col(f"a.{UID}").alias("uid_l"), F.col(f"b.{UID}").alias("uid_r"))
    )


@dataclass(frozen=True)
class TrainingReport:
    """The fitted model and what training saw."""

    model: FellegiSunterModel
    random_pairs: int
    candidate_pairs: int


def _referenced_columns(sql: str, derived: dict[str, str], depth: int = 0) -> set[str]:
    """Identifiers a SQL expression mentions, derived columns expanded to what they read."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    if depth < 5:
        for name in names & set(derived):
            names |= _referenced_columns(derived[name], derived, depth + 1)
    return names


def _free_comparisons(rule: list[str], settings: LinkageSettings) -> list[int]:
    """Indices of the comparisons a blocking rule does not force to agree."""
    sources = {**settings.derived, **settings.homophone_keys}  # a key forces its column
    used = set().union(*(_referenced_columns(e, sources) for e in rule))
    return [i for i, c in enumerate(settings.comparisons) if c.column not in used]


def _session_m(
    counts: dict[tuple[int, ...], int],
    free: list[int],
    specs: list[ComparisonSpec],
    u: dict[str, list[float]],
    max_iterations: int,
) -> tuple[dict[str, list[float]], float]:
    """m of the free comparisons by EM over one rule's pairs, and the expected matches."""
    restricted: dict[tuple[int, ...], int] = {}
    for pattern, count in counts.items():
        key = tuple(pattern[i] for i in free)
        restricted[key] = restricted.get(key, 0) + count
    free_specs = [specs[i] for i in free]
    fitted = expectation_maximisation(
        restricted,
        free_specs,
        {s.name: u[s.name] for s in free_specs},
        max_iterations=max_iterations,
    )
    return fitted.m, fitted.prior * sum(restricted.values())


def train(records: DataFrame, settings: LinkageSettings, link_only: bool = False) -> TrainingReport:
    """Estimate u from random pairs, m by EM per blocking rule, and the prior.

    - u: level frequencies among random pairs (nearly all non-matches);
    - m: for each blocking rule, EM over the pairs it found, estimating only the comparisons the
      rule does not force to agree (a pair blocked on birth date says nothing about how often
      matches agree on birth date); each comparison's m is the average over those sessions,
      weighted by their expected matches;
    - prior: the probability that two *random* records match (expected matches among the
      candidates, by EM with m and u fixed, over all possible pairs), so blocking itself is not
      counted as evidence and only the compared fields decide.
    """
    prepared = prepared_records(records, settings).cache()
    specs = list(settings.comparisons)
    picked = random_sample(prepared, settings.u_sample_pairs, settings.seed).cache()
    randoms = comparison_vectors(random_pairs(picked), prepared, settings)
    u_counts = pattern_counts(randoms, specs)
    picked.unpersist()
    u = estimate_u(u_counts, specs)
    hits, _oversize = candidate_pairs(
        prepared, settings.blocking, settings.max_block_size, link_only, every_rule=True
    )
    vectors = comparison_vectors(hits, prepared, settings).cache()
    by_rule = pattern_counts_by_rule(vectors, specs)  # every pair of every rule
    distinct = vectors.groupBy("uid_l", "uid_r").agg(
        *[F.first(gamma_column(s)).alias(gamma_column(s)) for s in specs]
    )
    all_counts = pattern_counts(distinct, specs)  # each candidate pair once
    vectors.unpersist()
    sums: dict[str, list[float]] = {s.name: [0.0] * len(u[s.name]) for s in specs}
    weights: dict[str, float] = dict.fromkeys(sums, 0.0)
    for rule, counts in by_rule.items():
        free = _free_comparisons(settings.blocking[rule], settings)
        if not free:
            continue
        m_rule, expected = _session_m(counts, free, specs, u, settings.em_max_iterations)
        for name, values in m_rule.items():
            sums[name] = [a + expected * b for a, b in zip(sums[name], values, strict=True)]
            weights[name] += expected
    fallback = expectation_maximisation(
        all_counts, specs, u, max_iterations=settings.em_max_iterations
    )
    m = {
        s.name: (
            [x / weights[s.name] for x in sums[s.name]]
            if weights[s.name] > 0
            else fallback.m[s.name]
        )
        for s in specs
    }
    candidates = sum(all_counts.values())
    expected_matches = candidate_match_share(all_counts, specs, m, u) * candidates
    prior = min(max(expected_matches / max(_possible_pairs(prepared, link_only), 1), 1e-12), 0.5)
    tf = {s.name: tf_column(s) for s in specs if s.term_frequency}
    model = FellegiSunterModel(tuple(specs), prior, m, u, fallback.em_iterations, tf)
    prepared.unpersist()
    return TrainingReport(model, sum(u_counts.values()), candidates)


def _possible_pairs(records: DataFrame, link_only: bool) -> int:
    if not link_only:
        n = records.count()
        return n * (n - 1) // 2
    sizes = [r["count"] for r in records.groupBy(DATASET).count().collect()]
    return sizes[0] * sizes[1] if len(sizes) == 2 else 0


def scored_vectors(vectors: DataFrame, model: FellegiSunterModel) -> DataFrame:
    """Comparison vectors plus ``bf_<name>`` per comparison, ``match_weight`` and probability."""
    bfs = {f"bf_{s.name}": F.expr(model.bayes_factor_sql(s)) for s in model.comparisons}
    out = vectors.withColumns(bfs)
    weight = F.lit(model.prior_weight())
    for name in bfs:
        weight = weight + F.col(name)
    return out.withColumn("match_weight", weight).withColumn(
        "match_probability",
        F.pow(F.lit(2.0), F.col("match_weight"))
        / (F.lit(1.0) + F.pow(F.lit(2.0), F.col("match_weight"))),
    )


def score_pairs(
    records: DataFrame,
    settings: LinkageSettings,
    model: FellegiSunterModel,
    link_only: bool = False,
    *,
    focus: DataFrame | None = None,
    term_frequencies: dict[str, DataFrame] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Every candidate pair scored (``uid_l, uid_r, rule, gamma_*, bf_*, match_weight,
    match_probability``) and the oversize blocks skipped by blocking.

    ``focus`` (``uid``): only the pairs with at least one of these records (see
    :func:`~profilehouse.identity.blocking.candidate_pairs`); ``term_frequencies``: frozen
    frequencies (see :func:`prepared_records`).
    """
    prepared = prepared_records(records, settings, term_frequencies)
    pairs, oversize = candidate_pairs(
        prepared, settings.blocking, settings.max_block_size, link_only, focus=focus
    )
    vectors = comparison_vectors(pairs, prepared, settings)
    gammas = [gamma_column(s) for s in settings.comparisons]
    scored = scored_vectors(vectors, model)
    keep = ["uid_l", "uid_r", "rule", *gammas, *[f"bf_{s.name}" for s in settings.comparisons]]
    return scored.select(*keep, "match_weight", "match_probability"), oversize


__all__ = [
    "DATASET",
    "UID",
    "LinkageSettings",
    "TrainingReport",
    "comparison_vectors",
    "prepared_records",
    "score_pairs",
    "train",
]
