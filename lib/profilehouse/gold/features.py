"""Point-in-time feature snapshots: one row per master customer per snapshot date.

A snapshot at date T reads only rows whose event time is on or before T (*as of event time*).
Which table versions it reads is the caller's choice: the current ones, or the versions pinned
by the run that first made snapshot T (*as known at*, see :mod:`profilehouse.gold.stage`).

Per feature source (``conf/features.yaml``) the rows up to T are joined to their master customer
once, and every feature over every window is one conditional aggregate of a single
``groupBy(master_id)``: one pass over the source, whatever the number of features and windows.
The sources' results are stacked and collapsed by master ID (one shuffle of per-customer rows,
no chain of joins), every master customer gets a row (customers without events get zero counts
and sums), then derived features are added in one projection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from profilehouse.errors import ConfigError, SchemaError, first_error_line
from profilehouse.gold.feature_config import (
    FEATURES_FILE,
    FeatureConfig,
    FeatureSource,
    FeatureSpec,
    RecordLink,
    result_type,
)
from profilehouse.identity.records import RECORD_ID

MASTER_ID = "master_id"
SNAPSHOT_DATE = "snapshot_date"

_ZERO_WHEN_ABSENT = ("count", "sum", "count_distinct")


def snapshot_end(snapshot_date: dt.date) -> dt.datetime:
    """The first instant after the snapshot date (rows before it are in the snapshot)."""
    return dt.datetime.combine(snapshot_date + dt.timedelta(days=1), dt.time())


def source_rows(
    spark: SparkSession, name: str, source: FeatureSource, tables: Mapping[str, DataFrame]
) -> DataFrame:
    """The source's rows: its query over ``tables`` (by name), or the table of its own name."""
    if source.query is None:
        if name not in tables:
            raise SchemaError(f"feature source {name}: no table {name!r} to read")
        return tables[name]
    return spark.sql(source.query, **dict(tables))


def rows_as_of(
    rows: DataFrame, source: FeatureSource, config: FeatureConfig, snapshot_date: dt.date
) -> DataFrame:
    """Rows with event time on or before ``snapshot_date`` (with ``latest_by``, each key's newest
    such row only), carrying ``snapshot_date`` and an ``in_<calendar>`` flag per calendar."""
    rows = with_calendars(rows, source, config).withColumn(SNAPSHOT_DATE, F.lit(snapshot_date))
    if source.time is None:
        return rows
    rows = rows.where(visible_on(source, snapshot_date))
    if not source.latest_by:
        return rows
    newest_first = Window.partitionBy(*[F.expr(k) for k in source.latest_by]).orderBy(
        event_ts(source).desc()
    )
    return (
        rows.withColumn("__rank", F.row_number().over(newest_first))
        .where("__rank = 1")
        .drop("__rank")
    )


def with_calendars(rows: DataFrame, source: FeatureSource, config: FeatureConfig) -> DataFrame:
    """``rows`` with an ``in_<calendar>`` flag per calendar (false for a source without time)."""
    if source.time is None:
        return rows
    day = F.to_date(event_ts(source))
    for name, calendar in config.calendars.items():
        dates = F.array(*[F.lit(d) for d in calendar.dates])
        near = F.exists(dates, _within(day, calendar.days_around))
        rows = rows.withColumn(f"in_{name}", F.coalesce(near, F.lit(False)))
    return rows


def visible_on(source: FeatureSource, snapshot_date: dt.date) -> Column:
    """Whether a row is in the snapshot of ``snapshot_date`` (event time on or before it)."""
    if source.time is None:
        return F.lit(True)
    return event_ts(source) < F.lit(snapshot_end(snapshot_date))


def _within(day: Column, days: int) -> Callable[[Column], Column]:
    """A one-argument predicate (Spark passes an index to two-argument lambdas)."""
    return lambda date: F.abs(F.datediff(day, date)) <= days


def with_master_id(rows: DataFrame, link: RecordLink, members: DataFrame) -> DataFrame:
    """``rows`` with the master ID of their identity record (rows of no record are dropped: they
    belong to no customer)."""
    return rows.withColumn(RECORD_ID, record_id_of(link)).join(
        members.select(RECORD_ID, MASTER_ID), RECORD_ID
    )


def record_id_of(link: RecordLink) -> Column:
    """The identity record ID (``source|key``) a row reaches through ``link``."""
    parts = [F.coalesce(F.expr(k).cast("string"), F.lit("")) for k in link.key]
    source = F.lit(link.source) if link.source else F.col(link.source_column)  # type: ignore[arg-type]
    return F.concat_ws("|", source, *parts)


def with_source_master_id(
    rows: DataFrame,
    name: str,
    source: FeatureSource,
    members: DataFrame,
    record_keys: Mapping[str, list[str]],
) -> DataFrame:
    """``rows`` of feature source ``name`` with their ``master_id``, for the masters of
    ``members`` only: by the record link, or the source's own master ID column."""
    if source.master_id:
        customers = members.select(MASTER_ID).distinct()
        return rows.withColumnRenamed(source.master_id, MASTER_ID).join(
            customers, MASTER_ID, "left_semi"
        )
    return with_master_id(rows, source.record or _default_link(name, record_keys), members)


def source_features(
    rows: DataFrame,
    source_name: str,
    source: FeatureSource,
    config: FeatureConfig,
    snapshot_date: dt.date,
) -> DataFrame:
    """``(master_id, <feature columns>)`` for rows that already carry ``master_id``."""
    aggregates = [
        _aggregate(spec, source, window, snapshot_date).alias(column)
        for name, spec in source.features.items()
        for window, column in zip(
            config.windows_of(spec), config.columns_of(name, spec), strict=True
        )
    ]
    if not aggregates:
        raise SchemaError(f"feature source {source_name}: no features")
    try:
        return rows.groupBy(MASTER_ID).agg(*aggregates)
    except (AnalysisException, ParseException):
        raise ConfigError(
            FEATURES_FILE, _feature_problems(rows, source_name, source, snapshot_date)
        ) from None


def _feature_problems(
    rows: DataFrame, source_name: str, source: FeatureSource, snapshot_date: dt.date
) -> list[str]:
    """Each feature of a source whose SQL does not analyse over the source's rows, named."""
    problems = []
    for name, spec in source.features.items():
        try:
            rows.groupBy(MASTER_ID).agg(_aggregate(spec, source, None, snapshot_date))
        except (AnalysisException, ParseException) as exc:
            problems.append(f"sources.{source_name}.features.{name}: {first_error_line(str(exc))}")
    return problems or [f"sources.{source_name}: its features do not analyse together"]


def event_ts(source: FeatureSource) -> Column:
    """The source's event time as a timestamp (the source must have a ``time``)."""
    return F.expr(source.time).cast("timestamp")  # type: ignore[arg-type]


def reads_snapshot_date(sql: str | None) -> bool:
    """Whether a feature's ``where`` or ``value`` SQL reads ``snapshot_date``."""
    return SNAPSHOT_DATE in (sql or "")


def spec_reads_date(spec: FeatureSpec) -> bool:
    """Whether a feature's condition or value reads ``snapshot_date``."""
    return reads_snapshot_date(spec.where) or reads_snapshot_date(spec.value)


def kept_value(
    spec: FeatureSpec, source: FeatureSource, window: int | None, snapshot_date: dt.date
) -> Column:
    """What a row gives a feature over ``window`` at ``snapshot_date``: its value where the
    feature's condition and window hold, else null (rows must carry ``snapshot_date``)."""
    condition = F.expr(spec.where) if spec.where else F.lit(True)
    if window is not None:
        start = snapshot_end(snapshot_date) - dt.timedelta(days=window)
        condition = condition & (event_ts(source) >= F.lit(start))
    value = F.expr(spec.value) if spec.value else F.lit(1)
    return F.when(condition, value)


def _aggregate(
    spec: FeatureSpec, source: FeatureSource, window: int | None, snapshot_date: dt.date
) -> Column:
    kept = kept_value(spec, source, window, snapshot_date)
    if spec.agg == "count":
        result = F.count(kept)
    elif spec.agg == "sum":
        result = F.sum(kept)
    elif spec.agg == "min":
        result = F.min(kept)
    elif spec.agg == "max":
        result = F.max(kept)
    elif spec.agg == "avg":
        result = F.avg(kept)
    else:
        result = F.size(F.collect_set(kept))
    return result.cast(result_type(spec))


def feature_snapshot(
    spark: SparkSession,
    config: FeatureConfig,
    tables: Mapping[str, DataFrame],
    members: DataFrame,
    record_keys: Mapping[str, list[str]],
    snapshot_date: dt.date,
) -> DataFrame:
    """The snapshot at ``snapshot_date``: ``(master_id, snapshot_date, <every feature>)``.

    ``tables`` are the inputs by name (silver tables, golden records) at the versions to read;
    ``members`` is ``identity.master_members`` (or the part of it whose masters to compute: the
    snapshot has a row for each of its masters and no other); ``record_keys`` gives each
    identity record source's key expressions (``conf/identity.yaml``), the default record link
    of a source.
    """
    customers = members.select(MASTER_ID).distinct()
    parts = [customers]
    for name, source in config.sources.items():
        parts.append(
            source_snapshot(
                spark, name, source, config, tables, members, record_keys, snapshot_date
            )
        )
    stacked = parts[0]
    for part in parts[1:]:
        stacked = stacked.unionByName(part, allowMissingColumns=True)
    columns = [c for c in config.schema if c not in config.derived]
    collapsed = stacked.groupBy(MASTER_ID).agg(*[F.max(c).alias(c) for c in columns])
    return finished_snapshot(collapsed, config, snapshot_date)


def source_snapshot(
    spark: SparkSession,
    name: str,
    source: FeatureSource,
    config: FeatureConfig,
    tables: Mapping[str, DataFrame],
    members: DataFrame,
    record_keys: Mapping[str, list[str]],
    snapshot_date: dt.date,
) -> DataFrame:
    """``(master_id, <the source's feature columns>)`` at ``snapshot_date`` for the masters
    of ``members`` that have rows in the source (unfilled: no row, no zero counts)."""
    rows = rows_as_of(source_rows(spark, name, source, tables), source, config, snapshot_date)
    rows = with_source_master_id(rows, name, source, members, record_keys)
    return source_features(rows, name, source, config, snapshot_date)


def finished_snapshot(collapsed: DataFrame, config: FeatureConfig, day: dt.date) -> DataFrame:
    """``(master_id, <aggregated features>)`` dated ``day``, absent counts and sums filled
    with zero, and the derived features added."""
    columns = [c for c in config.schema if c not in config.derived]
    filled = collapsed.select(
        MASTER_ID, F.lit(day).alias(SNAPSHOT_DATE), *[_filled(c, config) for c in columns]
    )
    return with_derived(filled, config)


def source_columns(source: FeatureSource, config: FeatureConfig) -> list[str]:
    """The feature columns of a source, in order."""
    return [c for n, spec in source.features.items() for c in config.columns_of(n, spec)]


def _filled(column: str, config: FeatureConfig) -> Column:
    for source in config.sources.values():
        for name, spec in source.features.items():
            if column in config.columns_of(name, spec):
                if spec.agg in _ZERO_WHEN_ABSENT:
                    return F.coalesce(F.col(column), F.lit(0).cast(result_type(spec))).alias(column)
                return F.col(column)
    return F.col(column)


def _default_link(name: str, record_keys: Mapping[str, list[str]]) -> RecordLink:
    if name not in record_keys:
        raise SchemaError(
            f"feature source {name}: not an identity record source; give 'record' (source and "
            f"key) or 'master_id' (identity record sources: {', '.join(sorted(record_keys))})"
        )
    return RecordLink(source=name, key=record_keys[name])


def with_derived(features: DataFrame, config: FeatureConfig) -> DataFrame:
    """Add the derived features in order (each may read the ones before it)."""
    for name, sql in config.derived.items():
        try:
            features = features.withColumn(
                name, F.expr(sql).cast(config.derived_types.get(name, "double"))
            )
        except (AnalysisException, ParseException) as exc:
            raise ConfigError(
                FEATURES_FILE, [f"derived.{name}: {first_error_line(str(exc))}"]
            ) from None
    return features
