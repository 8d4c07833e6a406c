"""Incremental refresh of a feature snapshot: recompute only the customers whose inputs changed.

A snapshot at T is made from a *base*: a snapshot at B ≤ T made with the same feature
configuration, whose input table versions ``gold.snapshot_runs`` pinned. A customer (master
ID) is recomputed when

1. identity moved one of their records (a record new, removed or given another master — the
   merges and splits of master IDs) or changed their golden record: the old and the new master;
2. one of their silver rows changed after the base's version (the Change Data Feed: inserts,
   deletes, both images of updates); a source's query runs over the changed rows of each table
   it reads, with the other tables whole, so a change reaches the customer through joins too;
3. the move from B to T changes what one of their rows gives a feature: the row becomes
   visible, leaves a window, or a condition on ``snapshot_date`` flips. Each row's
   contributions at B and at T are compared — a filter over the rows, no aggregation.

Every other customer keeps the base's features, re-dated to T, with the derived features (which
may read ``snapshot_date``: days since the last purchase, age) computed again. Customers no
longer in identity are dropped. The result equals a full recompute (tested).

When more than ``snapshot.incremental_max_share`` of the customers changed, recomputing them
all is cheaper: :class:`IncrementalUnavailableError` says so and the caller runs the full
snapshot instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import ProfilehouseError, first_error_line
from profilehouse.gold.feature_config import FeatureConfig, FeatureSource, FeatureSpec
from profilehouse.gold.features import (
    MASTER_ID,
    SNAPSHOT_DATE,
    feature_snapshot,
    kept_value,
    source_rows,
    visible_on,
    with_calendars,
    with_derived,
    with_source_master_id,
)
from profilehouse.identity.records import RECORD_ID

MEMBERS = "master_members"
# below this many changed customers their list is broadcast to the scans of the sources
BROADCAST_CHANGED = 200_000


class IncrementalUnavailableError(ProfilehouseError):
    """The snapshot cannot (or should not) be made incrementally; the message says why."""


@dataclass(frozen=True)
class Base:
    """The snapshot an incremental run starts from, and the input versions it was made from."""

    snapshot_date: dt.date
    versions: Mapping[str, int]


@dataclass(frozen=True)
class Inputs:
    """How to read the inputs: a table at a version, and a silver table's changed rows."""

    read: Callable[[str, int], DataFrame]
    changes: Callable[[str, int, int], DataFrame]
    identity_tables: tuple[str, ...]


def config_fingerprint(config: FeatureConfig, record_keys: Mapping[str, list[str]]) -> str:
    """A short hash of everything that shapes the features: a base made under another
    configuration is never reused."""
    text = json.dumps(
        {
            "features": config.model_dump(
                mode="json", exclude={"snapshot": {"incremental_max_share"}}
            ),
            "record_keys": dict(record_keys),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tables_read_by(name: str, source: FeatureSource) -> list[str]:
    """The input tables a feature source reads: its query's placeholders, or its own name."""
    if source.query is None:
        return [name]
    return [f for _, f, _, _ in string.Formatter().parse(source.query) if f]


def moved_masters(before: DataFrame, after: DataFrame) -> DataFrame:
    """``master_id`` (old and new) of every record whose master changed, appeared or went."""
    joined = before.select(RECORD_ID, F.col(MASTER_ID).alias("__before")).join(
        after.select(RECORD_ID, F.col(MASTER_ID).alias("__after")), RECORD_ID, "full_outer"
    )
    moved = joined.where(~F.col("__before").eqNullSafe(F.col("__after")))
    return _masters(moved.select(F.explode(F.array("__before", "__after")).alias(MASTER_ID)))


def changed_rows_of_masters(before: DataFrame, after: DataFrame, master_column: str) -> DataFrame:
    """``master_id`` of every master whose rows in a master-keyed table (golden records)
    changed, appeared or went (compared by the sorted hashes of all their columns)."""

    def hashed(df: DataFrame, alias: str) -> DataFrame:
        row_hash = F.sha2(F.to_json(F.struct(*sorted(df.columns))), 256)
        return df.groupBy(F.col(master_column).alias(MASTER_ID)).agg(
            F.sort_array(F.collect_list(row_hash)).alias(alias)
        )

    joined = hashed(before, "__before").join(hashed(after, "__after"), MASTER_ID, "full_outer")
    return _masters(joined.where(~F.col("__before").eqNullSafe(F.col("__after"))))


def _masters(df: DataFrame) -> DataFrame:
    return df.select(MASTER_ID).where(F.col(MASTER_ID).isNotNull()).distinct()


def depends_on_date(source: FeatureSource) -> bool:
    """Whether a row's contributions can change with the snapshot date alone."""
    return source.time is not None or any(_reads_date(s) for s in source.features.values())


def _reads_date(spec: FeatureSpec) -> bool:
    return SNAPSHOT_DATE in (spec.where or "") or SNAPSHOT_DATE in (spec.value or "")


def contributions(
    source: FeatureSource, config: FeatureConfig, snapshot_date: dt.date
) -> list[Column]:
    """What a row gives the snapshot of ``snapshot_date`` that can depend on the date alone:
    whether it is visible, and its value for each windowed or date-reading feature (null where
    a condition does not hold). Rows must carry ``snapshot_date`` set to that date."""
    visible = visible_on(source, snapshot_date)
    return [visible] + [
        F.when(visible, kept_value(spec, source, window, snapshot_date))
        for spec in source.features.values()
        for window in config.windows_of(spec)
        if window is not None or _reads_date(spec)
    ]


def rows_changed_by_date(
    rows: DataFrame, source: FeatureSource, config: FeatureConfig, before: dt.date, after: dt.date
) -> DataFrame:
    """The rows whose contributions differ between the snapshots of ``before`` and ``after``
    (typed values compared null-safely, one column each: no casts, no arrays)."""
    at_before = contributions(source, config, before)
    at_after = contributions(source, config, after)
    names = [f"__c{i}" for i in range(len(at_before))]
    flagged = (
        with_calendars(rows, source, config)
        .withColumn(SNAPSHOT_DATE, F.lit(before))
        .withColumns({f"{n}_b": c for n, c in zip(names, at_before, strict=True)})
        .withColumn(SNAPSHOT_DATE, F.lit(after))
        .withColumns({f"{n}_a": c for n, c in zip(names, at_after, strict=True)})
    )
    differs = [~F.col(f"{n}_b").eqNullSafe(F.col(f"{n}_a")) for n in names]
    return flagged.where(reduce(operator.or_, differs)).drop(
        *[f"{n}_{side}" for n in names for side in ("b", "a")]
    )


def changed_tables(versions: Mapping[str, int], base: Base, inputs: Inputs) -> dict[str, DataFrame]:
    """Per input table changed since the base: a silver table's changed rows, an identity
    table's rows at the base (to compare whole). ``master_members`` is compared separately."""
    changed: dict[str, DataFrame] = {}
    for name, version in versions.items():
        then = base.versions.get(name)
        if then is None:
            raise IncrementalUnavailableError(f"the base snapshot did not read {name}")
        if version < then:
            raise IncrementalUnavailableError(
                f"{name} is at version {version}, before the base's {then}"
            )
        if version == then or name == MEMBERS:
            continue
        try:
            if name in inputs.identity_tables:
                changed[name] = inputs.read(name, then)
            else:
                changed[name] = inputs.changes(name, then, version)
                changed[name].limit(1).collect()  # planning checks the feed covers the range
        except PySparkException as exc:
            raise IncrementalUnavailableError(
                f"no history of {name} since the base: {first_error_line(str(exc))}"
            ) from exc
    return changed


def changed_masters(
    spark: SparkSession,
    config: FeatureConfig,
    record_keys: Mapping[str, list[str]],
    tables: Mapping[str, DataFrame],
    versions: Mapping[str, int],
    base: Base,
    snapshot_date: dt.date,
    inputs: Inputs,
) -> DataFrame:
    """``master_id`` of every customer whose snapshot may differ from the base's (see the
    module docstring); raises IncrementalUnavailableError when a table's history cannot tell."""
    members = tables[MEMBERS]
    found = [moved_masters(inputs.read(MEMBERS, base.versions[MEMBERS]), members)]
    changed = changed_tables(versions, base, inputs)

    def masters_of(rows: DataFrame, name: str, source: FeatureSource) -> DataFrame:
        return _masters(with_source_master_id(rows, name, source, members, record_keys))

    for name, source in config.sources.items():
        for table in [t for t in tables_read_by(name, source) if t in changed]:
            if table not in inputs.identity_tables:
                rows = source_rows(spark, name, source, {**tables, table: changed[table]})
                found.append(masters_of(rows, name, source))
            elif source.master_id and source.query is None:
                before, now = changed[table], tables[table]
                found.append(changed_rows_of_masters(before, now, source.master_id))
            else:
                raise IncrementalUnavailableError(
                    f"feature source {name} reads identity table {table} through a query"
                )
        if base.snapshot_date != snapshot_date and depends_on_date(source):
            rows = source_rows(spark, name, source, tables)
            moved = rows_changed_by_date(rows, source, config, base.snapshot_date, snapshot_date)
            found.append(masters_of(moved, name, source))
    union = found[0]
    for part in found[1:]:
        union = union.unionByName(part)
    return union.distinct()


@dataclass(frozen=True)
class IncrementalSnapshot:
    features: DataFrame
    recomputed: int
    customers: int


def incremental_snapshot(
    spark: SparkSession,
    config: FeatureConfig,
    record_keys: Mapping[str, list[str]],
    tables: Mapping[str, DataFrame],
    versions: Mapping[str, int],
    base: Base,
    base_features: DataFrame,
    snapshot_date: dt.date,
    inputs: Inputs,
) -> IncrementalSnapshot:
    """The snapshot at ``snapshot_date``: changed customers recomputed, the others carried
    from ``base_features`` (the base's stored partition)."""
    affected = changed_masters(
        spark, config, record_keys, tables, versions, base, snapshot_date, inputs
    ).localCheckpoint()
    members = tables[MEMBERS]
    customers = members.select(MASTER_ID).distinct()
    recomputed, total = affected.count(), customers.count()
    max_share = config.snapshot.incremental_max_share
    if recomputed > max_share * total:
        raise IncrementalUnavailableError(
            f"{recomputed:,} of {total:,} customers changed (more than {max_share:.0%}): "
            "a full recompute is cheaper"
        )
    listed = F.broadcast(affected) if recomputed <= BROADCAST_CHANGED else affected
    fresh = feature_snapshot(
        spark,
        config,
        tables,
        members.join(listed, MASTER_ID, "left_semi"),
        record_keys,
        snapshot_date,
    )
    base_columns = [c for c in config.schema if c not in config.derived]
    kept = (
        base_features.join(listed, MASTER_ID, "left_anti")
        .join(customers, MASTER_ID, "left_semi")
        .select(MASTER_ID, F.lit(snapshot_date).alias(SNAPSHOT_DATE), *base_columns)
    )
    carried = with_derived(kept, config).select(*fresh.columns)
    return IncrementalSnapshot(fresh.unionByName(carried), recomputed, total)
