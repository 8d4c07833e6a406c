"""Tag values from a feature snapshot, in dependency order, in as few passes as possible.

Tags of one dependency level are one projection; levels stack as projections over the same
scan, so all SQL tags are computed in a single pass. A level with builtins first computes every
builtin's population statistics of that level in one aggregate (quantile cut points, averages).

Values are checked against the registry: a category value outside its ``values`` or a number
outside its ``range`` is nulled, and the tag's code is listed in ``__invalid_tags`` of that row,
so the stage can report how many values each tag lost (never silently).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.gold.builtins import BUILTINS
from profilehouse.gold.features import MASTER_ID, SNAPSHOT_DATE
from profilehouse.gold.tag_registry import TAG_COLUMN_TYPES, Tag, TagRegistry

INVALID_TAGS = "__invalid_tags"


def tag_values(features: DataFrame, registry: TagRegistry) -> DataFrame:
    """``(master_id, snapshot_date, <one column per online tag>, __invalid_tags)``."""
    frame = features
    for level in registry.levels():
        statistics = _builtin_statistics(frame, level)
        frame = frame.withColumns({tag.code: _raw(tag, statistics) for tag in level})
    online = registry.online()
    invalid = F.filter(
        F.array(*[F.when(_invalid(tag), F.lit(tag.code)) for tag in online]),
        lambda code: code.isNotNull(),
    )
    return frame.select(
        MASTER_ID,
        SNAPSHOT_DATE,
        *[F.when(~_invalid(tag), F.col(tag.code)).alias(tag.code) for tag in online],
        invalid.alias(INVALID_TAGS),
    )


def long_tag_values(wide: DataFrame, registry: TagRegistry) -> DataFrame:
    """``(master_id, snapshot_date, tag_code, value, tag_version)``: one row per non-null tag
    value, values as strings (booleans 'true' / 'false'), for audience selection."""
    entries = F.array(
        *[
            F.struct(
                F.lit(tag.code).alias("tag_code"),
                F.col(tag.code).cast("string").alias("value"),
                F.lit(tag.definition.version).alias("tag_version"),
            )
            for tag in registry.online()
        ]
    )
    return (
        wide.select(MASTER_ID, SNAPSHOT_DATE, F.explode(entries).alias("t"))
        .where(F.col("t.value").isNotNull())
        .select(MASTER_ID, SNAPSHOT_DATE, "t.tag_code", "t.value", "t.tag_version")
    )


def _builtin_statistics(frame: DataFrame, level: list[Tag]) -> dict[str, Any]:
    aggregates: list[Column] = []
    for tag in level:
        call = tag.definition.builtin
        if call is None:
            continue
        builtin = BUILTINS[call.name]
        params, _ = builtin.parse(call.params)
        aggregates += builtin.statistics(params, tag.code)
    if not aggregates:
        return {}
    row = frame.agg(*aggregates).first()
    return row.asDict() if row else {}


def _raw(tag: Tag, statistics: dict[str, Any]) -> Column:
    definition = tag.definition
    if definition.builtin is not None:
        builtin = BUILTINS[definition.builtin.name]
        params, _ = builtin.parse(definition.builtin.params)
        value = builtin.column(params, tag.code, statistics)
    else:
        value = F.expr(definition.sql)  # type: ignore[arg-type]
    return value.cast(TAG_COLUMN_TYPES[definition.value_type])


def _invalid(tag: Tag) -> Column:
    """True where the tag has a value outside its allowed values or range."""
    definition, value = tag.definition, F.col(tag.code)
    if definition.values is not None:
        return value.isNotNull() & ~value.isin(*definition.values)
    if definition.range is not None:
        low, high = definition.range
        return value.isNotNull() & ~value.between(low, high)
    return F.lit(False)
