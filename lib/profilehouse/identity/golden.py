"""Golden records (survivorship): one best value per attribute per master customer.

Every member record of a master customer offers a candidate value for each attribute; a
:class:`SurvivorshipRule` per attribute (``conf/identity.yaml``) says which candidate survives.
Null values, and for string columns values that are empty or whitespace only, never compete
(nor do values whose ``<attr>_valid`` flag is not true under ``valid_only``); when no candidate
is left the golden value and its source are null. Values are compared as they are (silver has
standardised them): ``"A"`` and ``"a"`` are different values.

Precedence (the first key that differs decides; a higher key wins):

* ``source_priority``: preferred source → most recent ``updated_at`` → most frequent value;
* ``most_recent``: most recent ``updated_at`` → preferred source (when ``sources`` is given);
* ``most_frequent``: most frequent value → most recent occurrence of it;

then the greatest value, then the greatest source name, so the result never depends on the
input order. A null ``updated_at`` is older than any timestamp; sources not in ``sources`` rank
after every listed one (and equal to each other). Frequencies count competing rows of the
master customer across all sources.

Approach: one ``groupBy(master_id)`` takes, per attribute, the ``max`` of a struct (keys in
precedence order, value, source): no row is multiplied by the number of attributes, no joins.
Frequencies, when a rule needs them, come from windows over (master_id, value) after a single
shuffle by ``master_id``, which those windows and the aggregation reuse (local sorts only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StringType

from profilehouse.config import StrictModel
from profilehouse.errors import SchemaError

MASTER_ID = "master_id"
SOURCE = "source"
UPDATED_AT = "updated_at"
RECORD_COUNT = "record_count"

# Internal column prefixes; the index of the attribute in ``rules`` follows.
_COMPETES = "__golden_competes_"
_FREQUENCY = "__golden_frequency_"
_BEST = "__golden_best_"


class SurvivorshipRule(StrictModel):
    """How the golden value of one attribute is chosen among a master customer's records."""

    strategy: Literal["source_priority", "most_recent", "most_frequent"]
    sources: list[str] = Field(
        default_factory=list,
        description="Sources in order of preference (earlier wins); unlisted sources rank after "
        "all listed ones. Required by source_priority, the first tie-break of most_recent, "
        "not used by most_frequent.",
    )
    valid_only: bool = Field(
        default=False,
        description="Only values whose validity column <attr>_valid (boolean) is true compete.",
    )

    @model_validator(mode="after")
    def _source_priority_needs_sources(self) -> SurvivorshipRule:
        if self.strategy == "source_priority" and not self.sources:
            raise ValueError(
                "strategy source_priority needs a non-empty 'sources' list "
                "(source names in order of preference)"
            )
        return self


def validity_column(attribute: str) -> str:
    """Name of the boolean column that says whether ``attribute``'s value is valid."""
    return f"{attribute}_valid"


def source_column(attribute: str) -> str:
    """Name of the output column holding the source the golden ``attribute`` came from."""
    return f"{attribute}_source"


def golden_record_columns(rules: dict[str, SurvivorshipRule]) -> list[str]:
    """Output columns of :func:`build_golden_records`, in order.

    ``master_id``, then ``<attr>, <attr>_source`` per attribute in the order of ``rules``, then
    ``record_count``.
    """
    per_attribute = [name for attr in rules for name in (attr, source_column(attr))]
    return [MASTER_ID, *per_attribute, RECORD_COUNT]


def build_golden_records(members: DataFrame, rules: dict[str, SurvivorshipRule]) -> DataFrame:
    """One row per master customer: the surviving value and its source per attribute.

    ``members`` has one row per source record: ``master_id``, ``source`` (string),
    ``updated_at`` (timestamp, may be null), one column per attribute in ``rules`` (any
    orderable type) and ``<attr>_valid`` (boolean) for every ``valid_only`` rule. Output columns
    are :func:`golden_record_columns`; ``record_count`` counts all member rows. Raises
    SchemaError when a needed column is missing or a validity column is not boolean.
    """
    _check_members(members, rules)
    flagged = members.withColumns(
        {f"{_COMPETES}{i}": _competes(members, attr, rule) for i, (attr, rule) in _indexed(rules)}
    )
    counted = _with_value_frequencies(flagged, rules)
    best = counted.groupBy(MASTER_ID).agg(
        *(
            _best_candidate(attr, rule, i).alias(f"{_BEST}{i}")
            for i, (attr, rule) in _indexed(rules)
        ),
        F.count(F.lit(1)).alias(RECORD_COUNT),
    )
    return best.select(MASTER_ID, *_winner_columns(rules), RECORD_COUNT)


def _indexed(rules: dict[str, SurvivorshipRule]) -> list[tuple[int, tuple[str, SurvivorshipRule]]]:
    """``(index, (attribute, rule))`` pairs in the order of ``rules``."""
    return list(enumerate(rules.items()))


def _check_members(members: DataFrame, rules: dict[str, SurvivorshipRule]) -> None:
    """Raise SchemaError when ``members`` cannot feed ``rules`` (see the checks below)."""
    _require_columns(members, rules)
    _require_boolean_flags(members, rules)
    _require_distinct_outputs(rules)


def _require_columns(members: DataFrame, rules: dict[str, SurvivorshipRule]) -> None:
    """SchemaError naming every missing key, attribute or validity column and the ones present."""
    present = members.columns
    needed = [MASTER_ID, SOURCE, UPDATED_AT, *rules]
    needed += [validity_column(a) for a, rule in rules.items() if rule.valid_only]
    missing = [c for c in dict.fromkeys(needed) if c not in present]
    if missing:
        raise SchemaError(
            f"golden records: members lack column(s) {', '.join(missing)} "
            f"(columns present: {', '.join(present)})"
        )


def _require_boolean_flags(members: DataFrame, rules: dict[str, SurvivorshipRule]) -> None:
    """SchemaError when the validity column of a ``valid_only`` rule is not boolean."""
    types = dict(members.dtypes)
    for attr, rule in rules.items():
        flag = validity_column(attr)
        if rule.valid_only and not isinstance(members.schema[flag].dataType, BooleanType):
            raise SchemaError(
                f"golden records: validity column {flag} must be boolean, is {types[flag]}"
            )


def _require_distinct_outputs(rules: dict[str, SurvivorshipRule]) -> None:
    """SchemaError when attribute names would give two output columns the same name."""
    outputs = golden_record_columns(rules)
    clashes = sorted({c for c in outputs if outputs.count(c) > 1})
    if clashes:
        raise SchemaError(
            f"golden records: attribute names give duplicate output column(s) {', '.join(clashes)}"
        )


def _competes(members: DataFrame, attribute: str, rule: SurvivorshipRule) -> Column:
    """True when the row's ``attribute`` value is a candidate: present (not null, not blank) and,
    under ``valid_only``, flagged valid; null counts as false."""
    value = F.col(attribute)
    if isinstance(members.schema[attribute].dataType, StringType):
        present = value.rlike(r"(?U)\S")  # any non-whitespace character, Unicode spaces included
    else:
        present = value.isNotNull()
    if rule.valid_only:
        present = present & F.col(validity_column(attribute))
    return F.coalesce(present, F.lit(False))


def _with_value_frequencies(flagged: DataFrame, rules: dict[str, SurvivorshipRule]) -> DataFrame:
    """``flagged`` plus, for each rule that uses frequencies, how many competing rows of the same
    master customer carry the row's value; shuffled once by ``master_id`` when any is needed."""
    frequencies = {
        f"{_FREQUENCY}{i}": F.count(F.when(F.col(f"{_COMPETES}{i}"), 1)).over(
            Window.partitionBy(MASTER_ID, attr)
        )
        for i, (attr, rule) in _indexed(rules)
        if rule.strategy != "most_recent"
    }
    if not frequencies:
        return flagged
    return flagged.repartition(MASTER_ID).withColumns(frequencies)


def _source_preference(sources: list[str]) -> Column:
    """Higher for preferred sources: ``len(sources)`` for the first listed, 1 for the last listed,
    0 for unlisted (or null) sources."""
    position = F.array_position(F.array(*(F.lit(s) for s in sources)), F.col(SOURCE))
    return F.when(position > 0, len(sources) + 1 - position).otherwise(0)


def _precedence_keys(rule: SurvivorshipRule, index: int) -> list[Column]:
    """The keys that rank candidates under ``rule``, most significant first (higher wins)."""
    recency = F.col(UPDATED_AT)  # null sorts below any timestamp in struct ordering
    frequency = F.col(f"{_FREQUENCY}{index}")
    if rule.strategy == "source_priority":
        return [_source_preference(rule.sources), recency, frequency]
    if rule.strategy == "most_recent":
        return [recency, _source_preference(rule.sources)] if rule.sources else [recency]
    return [frequency, recency]


def _best_candidate(attribute: str, rule: SurvivorshipRule, index: int) -> Column:
    """Aggregate: struct ``(keys…, value, source)`` of the winning candidate; null when none."""
    keys = [key.alias(f"k{j}") for j, key in enumerate(_precedence_keys(rule, index))]
    candidate = F.struct(*keys, F.col(attribute).alias("value"), F.col(SOURCE).alias("source"))
    return F.max(F.when(F.col(f"{_COMPETES}{index}"), candidate))


def _winner_columns(rules: dict[str, SurvivorshipRule]) -> list[Column]:
    """``<attr>, <attr>_source`` columns taken from the winning structs, in the order of rules."""
    columns = []
    for i, (attr, _rule) in _indexed(rules):
        best = F.col(f"{_BEST}{i}")
        columns += [best["value"].alias(attr), best["source"].alias(source_column(attr))]
    return columns
