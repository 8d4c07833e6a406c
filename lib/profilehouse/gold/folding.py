"""Folding a snapshot forward: a feature at T1 from its stored value at T0 and the few rows
whose contribution changed between the two dates, without reading the customer's other rows.

Moving a snapshot from T0 to T1 changes what a row gives a feature in three ways: the row
becomes visible (its event time falls in [end(T0), end(T1))), it leaves a w-day window (its
event time falls in [end(T0) - w, end(T1) - w)), or a condition reading ``snapshot_date``
flips. For each row and feature the *contribution* at T0 and at T1 (the value the aggregate
sees, null where the row is not counted) is compared, and the aggregate is updated by the
difference where the aggregate allows it exactly:

- ``count`` and ``sum`` of integral or decimal values: add the T1 contributions and subtract
  the T0 ones (decimal arithmetic, so a double feature gets the same bits as a full
  recompute: the stored value is turned back into the exact decimal it was cast from, which
  holds below 10^12);
- ``count_distinct`` of the event day (``to_date(<time>)``): window edges fall on midnight, so
  a day's rows enter and leave together; add the days entering, subtract the days leaving;
- ``max`` / ``min``: take the greatest / least of the stored value and the entering values;
  a leaving value equal to the stored one (or beyond it) means the new extreme is unknown.

Anything else cannot be folded: ``avg``, other distinct counts, sums of floating values, and
every feature of a ``latest_by`` source (a newer row replaces an older one). A customer with
such a change, or an unknown extreme, is *refolded*: the caller recomputes the source for them.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DecimalType, FractionalType, IntegralType, LongType

from profilehouse.gold.feature_config import (
    FeatureConfig,
    FeatureSource,
    FeatureSpec,
    result_type,
)
from profilehouse.gold.features import (
    MASTER_ID,
    SNAPSHOT_DATE,
    event_ts,
    kept_value,
    reads_snapshot_date,
    snapshot_end,
    spec_reads_date,
    visible_on,
    with_calendars,
)

REFOLD = "__refold"
# a double holds every decimal with two places exactly enough to recover it below this
_EXACT_BELOW = 1e12


@dataclass(frozen=True)
class FoldedColumn:
    """One feature column of a source and how it folds (``None``: it cannot)."""

    column: str
    spec: FeatureSpec
    window: int | None
    stored: DataType
    how: str | None
    exact: DataType | None = None  # the exact type sums are added in


def folded_columns(
    rows: DataFrame, source: FeatureSource, config: FeatureConfig, snapshot_date: dt.date
) -> list[FoldedColumn]:
    """Every feature column of ``source`` with how it folds (value types read from ``rows``)."""
    specs = [
        (config.columns_of(name, spec)[i], spec, window)
        for name, spec in source.features.items()
        for i, window in enumerate(config.windows_of(spec))
    ]
    typed = with_calendars(rows, source, config).withColumn(SNAPSHOT_DATE, F.lit(snapshot_date))
    probe = typed.select(
        *[
            kept_value(spec, source, window, snapshot_date).alias(f"v{i}")
            for i, (_, spec, window) in enumerate(specs)
        ],
        *[
            F.lit(None).cast(result_type(spec)).alias(f"s{i}")
            for i, (_, spec, _) in enumerate(specs)
        ],
    ).schema
    result = []
    for i, (column, spec, window) in enumerate(specs):
        value, stored = probe[f"v{i}"].dataType, probe[f"s{i}"].dataType
        how, exact = _fold_of(spec, source, value, stored)
        result.append(FoldedColumn(column, spec, window, stored, how, exact))
    return result


def _fold_of(
    spec: FeatureSpec, source: FeatureSource, value: DataType, stored: DataType
) -> tuple[str | None, DataType | None]:
    if source.latest_by:
        return None, None
    if spec.agg == "count":
        return _added(LongType(), stored)
    if spec.agg == "sum":
        return _added(value, stored)
    if spec.agg == "count_distinct":
        return ("add_days", None) if _is_event_day(spec, source) else (None, None)
    if spec.agg in ("max", "min"):
        return spec.agg, None
    return None, None


def _added(value: DataType, stored: DataType) -> tuple[str | None, DataType | None]:
    """Whether adding differences reproduces the stored sum exactly, and in which type."""
    if isinstance(value, IntegralType):
        exact: DataType = DecimalType(38, 0)
    elif isinstance(value, DecimalType):
        exact = DecimalType(38, value.scale)
    else:
        return None, None
    if isinstance(stored, IntegralType) and exact.scale == 0:  # type: ignore[attr-defined]
        return "add", exact
    if isinstance(stored, DecimalType) and stored.scale >= exact.scale:  # type: ignore[attr-defined]
        return "add", exact
    if isinstance(stored, FractionalType) and not isinstance(stored, DecimalType):
        return "add", exact
    return None, None


def _is_event_day(spec: FeatureSpec, source: FeatureSource) -> bool:
    """Whether the value is the row's event day and the condition does not read the date."""
    if source.time is None or spec.value is None or reads_snapshot_date(spec.where):
        return False
    return _compact(spec.value) == f"to_date({_compact(source.time)})"


def _compact(sql: str) -> str:
    return re.sub(r"\s+", "", sql).lower()


def date_edges(
    source: FeatureSource, config: FeatureConfig, before: dt.date, after: dt.date
) -> Column:
    """Whether a row's event time lies where moving from ``before`` to ``after`` can change
    its contribution to a feature that does not read ``snapshot_date``: becoming visible, or
    leaving one of the source's windows."""
    ts = event_ts(source)
    ranges = [(snapshot_end(before), snapshot_end(after))]
    windows = {w for spec in source.features.values() for w in config.windows_of(spec) if w}
    for w in sorted(windows):
        shift = dt.timedelta(days=w)
        ranges.append((snapshot_end(before) - shift, snapshot_end(after) - shift))
    return reduce(operator.or_, [(ts >= F.lit(lo)) & (ts < F.lit(hi)) for lo, hi in ranges])


def contribution_pairs(
    rows: DataFrame,
    source: FeatureSource,
    config: FeatureConfig,
    columns: list[FoldedColumn],
    before: dt.date,
    after: dt.date,
) -> DataFrame:
    """The rows whose contribution to some feature differs between ``before`` and ``after``,
    with structs ``__b`` / ``__a`` whose field ``c<i>`` is the i-th column's contribution at
    each date (two struct columns, not two per feature: Spark's constraint inference over
    hundreds of aliased CASE expressions takes minutes).

    Rows outside the date edges are checked only against the features reading
    ``snapshot_date``, so most rows cost a time comparison."""
    flagged = with_calendars(rows, source, config)
    for side, day in (("__b", before), ("__a", after)):
        visible = visible_on(source, day)
        flagged = flagged.withColumn(SNAPSHOT_DATE, F.lit(day)).withColumn(
            side,
            F.struct(
                *[
                    F.when(visible, kept_value(c.spec, source, c.window, day)).alias(f"c{i}")
                    for i, c in enumerate(columns)
                ]
            ),
        )
    candidates = [date_edges(source, config, before, after)] if source.time else []
    reading = [i for i, c in enumerate(columns) if spec_reads_date(c.spec)]
    if reading:
        candidates.append(_differ(reading))
    if not candidates:
        return flagged.where(F.lit(False))
    return flagged.where(reduce(operator.or_, candidates)).where(
        ~F.col("__b").eqNullSafe(F.col("__a"))
    )


def _differ(indices: list[int]) -> Column:
    """Whether any of these columns' contributions differ."""
    return reduce(operator.or_, [~_before(i).eqNullSafe(_after(i)) for i in indices])


def _before(i: int) -> Column:
    return F.col("__b").getField(f"c{i}")


def _after(i: int) -> Column:
    return F.col("__a").getField(f"c{i}")


def folded(pairs: DataFrame, base: DataFrame, columns: list[FoldedColumn]) -> DataFrame:
    """``(master_id, __refold, <columns>)`` per customer with changed contributions (``pairs``
    carrying ``master_id``): each column folded from ``base`` (the stored snapshot), and
    ``__refold`` true where some column cannot be folded."""
    aggregates: list[Column] = []
    for i, c in enumerate(columns):
        b, a = _before(i), _after(i)
        changed = ~b.eqNullSafe(a)
        if c.how == "add":
            assert c.exact is not None
            zero = F.lit(0).cast(c.exact)
            if c.spec.agg == "count":
                b, a = F.when(b.isNotNull(), F.lit(1)), F.when(a.isNotNull(), F.lit(1))
            delta = F.sum(F.coalesce(a.cast(c.exact), zero)) - F.sum(
                F.coalesce(b.cast(c.exact), zero)
            )
            aggregates.append(delta.alias(f"__d{i}"))
        elif c.how == "add_days":
            entering = F.count_distinct(F.when(b.isNull(), a))
            leaving = F.count_distinct(F.when(a.isNull(), b))
            aggregates.append((entering - leaving).alias(f"__d{i}"))
        elif c.how in ("max", "min"):
            extreme = F.max if c.how == "max" else F.min
            aggregates.append(extreme(F.when(changed, a)).cast(c.stored).alias(f"__e{i}"))
            aggregates.append(extreme(F.when(changed, b)).cast(c.stored).alias(f"__l{i}"))
        else:
            aggregates.append(F.max(changed).alias(f"__x{i}"))
    deltas = pairs.groupBy(MASTER_ID).agg(*aggregates)
    stored = base.select(MASTER_ID, F.lit(True).alias("__in_base"), *[c.column for c in columns])
    joined = deltas.join(stored, MASTER_ID, "left")
    values, unsafe = [], [F.col("__in_base").isNull()]
    for i, c in enumerate(columns):
        value, problem = _folded_value(c, i)
        values.append(value.alias(c.column))
        unsafe.append(F.coalesce(problem, F.lit(False)))
    return joined.select(MASTER_ID, reduce(operator.or_, unsafe).alias(REFOLD), *values)


def _folded_value(c: FoldedColumn, i: int) -> tuple[Column, Column]:
    """The folded value of column ``c`` and whether it is unsafe (needs a recompute)."""
    base = F.col(c.column)
    if c.how == "add":
        exact = c.exact
        assert exact is not None
        value = (base.cast(exact) + F.col(f"__d{i}")).cast(c.stored)
        if isinstance(c.stored, FractionalType) and not isinstance(c.stored, DecimalType):
            return value, F.abs(base) >= F.lit(_EXACT_BELOW)
        return value, F.lit(False)
    if c.how == "add_days":
        return (base + F.col(f"__d{i}")).cast(c.stored), F.lit(False)
    if c.how in ("max", "min"):
        entering, leaving = F.col(f"__e{i}"), F.col(f"__l{i}")
        if c.how == "max":
            value, lost = F.greatest(base, entering), leaving >= base
        else:
            value, lost = F.least(base, entering), leaving <= base
        return value, leaving.isNotNull() & (base.isNull() | lost)
    return base, F.col(f"__x{i}")
