"""Audience selection (人群圈选): a boolean expression over tags → a count and a member list.

Tags are named by code or by their Chinese name (``存贷客户 = false AND 高净值客户 IN ('A','B')
AND 数字活跃 = '高'``). The expression is validated against the registry before any data is
read: an unknown name, a value a category tag cannot take, or SQL that does not parse or is not
boolean fails with a message naming it and what is allowed.

Customers carrying a tag marked ``suppresses_audiences`` (营销退订: opted out of marketing) are
left out of every audience unless ``include_suppressed`` is asked for; the result says how many.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import time
from dataclasses import dataclass
from functools import reduce

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.errors import ProfilehouseError, first_error_line
from profilehouse.gold.tag_registry import TAG_COLUMN_TYPES, TagRegistry

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_COMPARED = re.compile(
    r"`(?P<code>[a-z][a-z0-9_]*)`\s*(?:=|==|!=|<>)\s*'(?P<value>(?:[^'\\]|\\.)*)'"
)
_LISTED = re.compile(r"`(?P<code>[a-z][a-z0-9_]*)`\s+(?:NOT\s+)?IN\s*\((?P<values>[^)]*)\)", re.I)


class AudienceError(ProfilehouseError):
    """An audience expression names an unknown tag or value, or is not a boolean expression."""


@dataclass(frozen=True)
class Audience:
    expression: str
    condition: str  # the expression over tag codes
    suppressed_by: tuple[str, ...] = ()  # codes of the tags whose customers are left out

    @property
    def suppression(self) -> Column:
        """True for a customer some suppressing tag leaves out."""
        flags = [F.coalesce(F.col(code), F.lit(False)) for code in self.suppressed_by]
        return reduce(operator.or_, flags, F.lit(False))


def parse_audience(
    spark: SparkSession,
    registry: TagRegistry,
    expression: str,
    include_suppressed: bool = False,
) -> Audience:
    """Translate tag names to codes and validate; raise :class:`AudienceError` naming every
    problem. Unless ``include_suppressed``, the tags marked ``suppresses_audiences`` leave
    their customers out."""
    condition = _with_codes(expression, registry)
    problems = _value_problems(condition, registry)
    columns = ", ".join(
        f"`{t.code}` {TAG_COLUMN_TYPES[t.definition.value_type]}" for t in registry.online()
    )
    empty = spark.createDataFrame([], columns)
    try:
        result = empty.select(F.expr(condition).alias("in_audience")).schema[0].dataType
    except (ParseException, AnalysisException) as exc:
        problems.append(_explain(str(exc), registry))
    else:
        if not isinstance(result, BooleanType):
            problems.append(f"the expression gives {result.simpleString()}, not true/false")
    if problems:
        raise AudienceError(
            f"invalid audience {expression!r}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    suppressed_by = (
        ()
        if include_suppressed
        else tuple(t.code for t in registry.online() if t.definition.suppresses_audiences)
    )
    return Audience(expression, condition, suppressed_by)


def audience_members(wide: DataFrame, audience: Audience) -> DataFrame:
    """``(master_id, snapshot_date)`` of the customers in the audience (null counts as no),
    suppressed customers left out."""
    kept = _matching(wide, audience).where(~audience.suppression)
    return kept.select("master_id", "snapshot_date")


def _matching(wide: DataFrame, audience: Audience) -> DataFrame:
    return wide.where(F.coalesce(F.expr(audience.condition), F.lit(False)))


def _with_codes(expression: str, registry: TagRegistry) -> str:
    """Backquoted codes for tag names and codes outside string literals (longest names first,
    so 高净值客户 is not read as 高净值 + 客户)."""
    names: dict[str, str] = {}
    for tag in registry.online():
        names[tag.definition.name.zh] = tag.code
        names[tag.code] = tag.code
    pattern = re.compile(
        "|".join(
            rf"(?<![\w`]){re.escape(n)}(?![\w`])" for n in sorted(names, key=len, reverse=True)
        )
    )
    parts, last = [], 0
    for literal in _QUOTED.finditer(expression):
        outside = expression[last : literal.start()]
        parts.append(pattern.sub(lambda m: f"`{names[m.group(0)]}`", outside))
        parts.append(literal.group(0))
        last = literal.end()
    parts.append(pattern.sub(lambda m: f"`{names[m.group(0)]}`", expression[last:]))
    return "".join(parts)


def _value_problems(condition: str, registry: TagRegistry) -> list[str]:
    problems = []
    compared = [(m["code"], m["value"]) for m in _COMPARED.finditer(condition)]
    for match in _LISTED.finditer(condition):
        compared += [
            (match["code"], v) for v in re.findall(r"'((?:[^'\\]|\\.)*)'", match["values"])
        ]
    for code, value in compared:
        tag = registry.by_code.get(code)
        if tag is None or tag.definition.values is None:
            continue
        if value not in tag.definition.values:
            problems.append(
                f"tag {tag.definition.name.zh} ({code}) has no value {value!r} "
                f"(values: {', '.join(tag.definition.values)})"
            )
    return problems


def _explain(message: str, registry: TagRegistry) -> str:
    first = first_error_line(message)
    unknown = re.search(r"name `([^`]+)` cannot be resolved", first)
    if unknown:
        return (
            f"unknown tag {unknown.group(1)!r}: name a tag by its code or Chinese name "
            f"(e.g. {', '.join(t.definition.name.zh for t in registry.online()[:5])}, …; see "
            "docs/tag_dictionary.md)"
        )
    return first


@dataclass(frozen=True)
class AudienceResult:
    name: str
    expression: str
    snapshot_date: dt.date
    count: int
    suppressed: int  # matched the expression, left out by a suppressing tag
    seconds_to_count: float
    table: str


def select_audience(
    spark: SparkSession,
    catalog: TableCatalog,
    registry: TagRegistry,
    name: str,
    expression: str,
    snapshot_date: dt.date | None = None,
    include_suppressed: bool = False,
) -> AudienceResult:
    """Count the audience on ``gold.customer_tags`` at ``snapshot_date`` (default: the newest
    snapshot), then write its members to ``gold.audiences`` (the audience's rows for that
    snapshot replaced, so a re-run never duplicates)."""
    if not _NAME.match(name):
        raise AudienceError(f"audience name {name!r} must be lower_snake_case")
    audience = parse_audience(spark, registry, expression, include_suppressed)
    wide = delta_io.read_table(spark, catalog.table(Layer.GOLD, "customer_tags"))
    if snapshot_date is None:
        newest = wide.agg(F.max("snapshot_date").alias("d")).first()
        if newest is None or newest["d"] is None:
            raise AudienceError("gold.customer_tags holds no snapshot yet: run the gold stage")
        snapshot_date = newest["d"]
    snapshot = wide.where(F.col("snapshot_date") == F.lit(snapshot_date))
    members = audience_members(snapshot, audience)
    started = time.perf_counter()
    counts = (
        _matching(snapshot, audience)
        .agg(
            F.count_if(~audience.suppression).alias("count"),
            F.count_if(audience.suppression).alias("suppressed"),
        )
        .first()
    )
    seconds = time.perf_counter() - started
    ref = catalog.table(Layer.GOLD, "audiences")
    rows = members.select(
        F.lit(name).alias("audience"),
        "snapshot_date",
        "master_id",
        F.lit(expression).alias("expression"),
        F.lit(audience.condition).alias("condition"),
    )
    replace = f"audience = '{name}' AND snapshot_date = DATE'{snapshot_date.isoformat()}'"
    if delta_io.table_exists(spark, ref):
        delta_io.write_table(rows, ref, mode="overwrite", options={"replaceWhere": replace})
    else:
        delta_io.write_table(rows, ref, partition_by=["audience"])
    return AudienceResult(
        name,
        expression,
        snapshot_date,
        counts["count"],
        counts["suppressed"],
        seconds,
        ref.qualified_name,
    )
