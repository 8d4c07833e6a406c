"""Incremental refresh of a feature snapshot: only what changed is recomputed.

A snapshot at T is made from a *base*: a snapshot at B ≤ T made with the same feature
configuration, whose input table versions ``gold.snapshot_runs`` pinned. Per feature source,
each customer (master ID) gets the source's columns in one of three ways:

- **recomputed** from the source's rows, when
  1. identity moved one of their records (a record new, removed or given another master — the
     merges and splits of master IDs) or changed their golden record: the old and the new
     master, for every source;
  2. one of their rows of the source changed after the base's input versions (the Change Data
     Feed: inserts, deletes, both images of updates), as far as the base saw it: a source's
     query runs over the changed rows of each table it reads, with the other tables whole, so
     a change reaches the customer through joins too. A changed row dated after B never
     reached the base, so it counts only through the date move below — unless the source's
     query aggregates rows (one changed input row then changes rows dated before B);
  3. the move from B to T changed one of their rows' contributions in a way that cannot be
     folded (:mod:`.folding`: a distinct count, a ``latest_by`` source, a lost maximum);
- **folded**: the move from B to T only made rows enter or leave windows of counts, sums,
  day counts, maxima or minima, so the base's values are updated by those rows alone;
- **carried** from the base, re-dated to T.

The derived features (which may read ``snapshot_date``: days since the last purchase, age) are
computed again for everyone. Customers no longer in identity are dropped. The result equals a
full recompute (tested).

When more than ``snapshot.incremental_max_share`` of the customers need a source recomputed, it
is recomputed for everyone (as cheap then, and no list to join). Without a base, or when a
table's history cannot tell what changed, :class:`IncrementalUnavailableError` says so and the
caller runs the full snapshot instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import ProfilehouseError, first_error_line
from profilehouse.gold.feature_config import FeatureConfig, FeatureSource
from profilehouse.gold.features import (
    MASTER_ID,
    finished_snapshot,
    source_columns,
    source_rows,
    source_snapshot,
    spec_reads_date,
    visible_on,
    with_source_master_id,
)
from profilehouse.gold.folding import REFOLD, contribution_pairs, folded, folded_columns
from profilehouse.identity.records import RECORD_ID

log = logging.getLogger(__name__)

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
                mode="json", exclude={"snapshot": {"incremental_max_share", "auto_refresh"}}
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
    return source.time is not None or any(map(spec_reads_date, source.features.values()))


# analysed-plan nodes under which each output row comes from one row of each input table
_ROW_LOCAL_NODES = frozenset(
    {
        "Project",
        "Filter",
        "Join",
        "Union",
        "Generate",
        "SubqueryAlias",
        "View",
        "Relation",
        "LogicalRelation",
        "LocalRelation",
        "LogicalRDD",
        "Range",
    }
)


def is_row_local(rows: DataFrame) -> bool:
    """Whether every row of a source query comes from single input rows (no aggregate, window,
    distinct or limit): then its changed input rows give exactly its changed output rows, each
    with its own event time."""
    plan = rows._jdf.queryExecution().analyzed().toString()
    for line in plan.splitlines():
        node = re.match(r"[\s:|+-]*([A-Za-z]+)", line)
        if node and node.group(1) not in _ROW_LOCAL_NODES:
            return False
    return True


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


@dataclass(frozen=True)
class SourceRefresh:
    """How one feature source's columns reach the new snapshot: recomputed for some customers,
    folded for others (checkpointed frames), carried from the base for the rest."""

    index: int
    name: str
    source: FeatureSource
    columns: list[str]
    recompute: DataFrame  # (master_id)
    recomputed: int
    folded: DataFrame | None  # (master_id, <columns>)
    folded_count: int


@dataclass
class IncrementalSnapshot:
    """The refreshed snapshot (lazy: reads checkpointed frames until :meth:`unpersist`)."""

    features: DataFrame
    recomputed: int  # customers with at least one source recomputed
    folded: int  # customers whose changes were all folded into the base's values
    customers: int
    sources_in_full: list[str]  # sources recomputed for every customer
    held: list[DataFrame]

    def unpersist(self) -> None:
        """Release the checkpointed change sets (after ``features`` is written)."""
        for frame in self.held:
            frame.unpersist()
        self.held.clear()


@dataclass(frozen=True)
class IncrementalRefresh:
    """Everything one incremental snapshot reads: the inputs now, the base and its features."""

    spark: SparkSession
    config: FeatureConfig
    record_keys: Mapping[str, list[str]]
    tables: Mapping[str, DataFrame]
    versions: Mapping[str, int]
    base: Base
    base_features: DataFrame
    inputs: Inputs

    @property
    def members(self) -> DataFrame:
        return self.tables[MEMBERS]

    def snapshot(self, snapshot_date: dt.date) -> IncrementalSnapshot:
        """The snapshot at ``snapshot_date`` (see the module docstring); raises
        IncrementalUnavailableError when the inputs' history cannot tell what changed or too
        many customers would be recomputed."""
        held: list[DataFrame] = []
        try:
            moved = moved_masters(
                self.inputs.read(MEMBERS, self.base.versions[MEMBERS]), self.members
            ).localCheckpoint()
            held.append(moved)
            changed = changed_tables(self.versions, self.base, self.inputs)
            refreshes = [
                self._source_refresh(i, name, source, moved, changed, snapshot_date, held)
                for i, (name, source) in enumerate(self.config.sources.items())
            ]
            customers = self.members.select(MASTER_ID).distinct()
            total = customers.count()
            everyone = self.config.snapshot.incremental_max_share * total
            in_full = [r.name for r in refreshes if r.recomputed > everyone]
            lists = _union([r.recompute for r in refreshes])
            recomputed = total if in_full else lists.distinct().count()
            touched = [r.folded.select(MASTER_ID) for r in refreshes if r.folded is not None]
            folded_only = (
                _union(touched).distinct().join(lists, MASTER_ID, "left_anti").count()
                if touched and not in_full
                else 0
            )
            features = self._assembled(customers, refreshes, snapshot_date, everyone)
        except BaseException:
            for frame in held:
                frame.unpersist()
            raise
        return IncrementalSnapshot(features, recomputed, folded_only, total, in_full, held)

    def _source_refresh(
        self,
        index: int,
        name: str,
        source: FeatureSource,
        moved: DataFrame,
        changed: Mapping[str, DataFrame],
        snapshot_date: dt.date,
        held: list[DataFrame],
    ) -> SourceRefresh:
        """Which customers get the source recomputed and which get it folded."""
        started = time.perf_counter()
        hard = [moved, *self._changed_by_feed(name, source, changed)]
        fold = None
        if self.base.snapshot_date != snapshot_date and depends_on_date(source):
            rows = source_rows(self.spark, name, source, self.tables)
            columns = folded_columns(rows, source, self.config, snapshot_date)
            pairs = contribution_pairs(
                rows, source, self.config, columns, self.base.snapshot_date, snapshot_date
            )
            pairs = with_source_master_id(pairs, name, source, self.members, self.record_keys)
            fold = folded(pairs, self.base_features, columns).localCheckpoint()
            held.append(fold)
            hard.append(fold.where(F.col(REFOLD)).select(MASTER_ID))
        recompute = _union(hard).distinct().localCheckpoint()
        held.append(recompute)
        folded_count = 0
        if fold is not None:
            fold = fold.where(~F.col(REFOLD)).join(recompute, MASTER_ID, "left_anti").drop(REFOLD)
            folded_count = fold.count()
        refresh = SourceRefresh(
            index,
            name,
            source,
            source_columns(source, self.config),
            recompute,
            recompute.count(),
            fold if folded_count else None,
            folded_count,
        )
        log.debug(
            f"  gold: {name}: {refresh.recomputed:,} recomputed, {folded_count:,} folded "
            f"({time.perf_counter() - started:.1f} s to tell)"
        )
        return refresh

    def _changed_by_feed(
        self, name: str, source: FeatureSource, changed: Mapping[str, DataFrame]
    ) -> list[DataFrame]:
        """Masters whose rows of the source changed since the base's input versions, as far
        as the base saw them: a changed row dated after the base's snapshot never reached it
        (it enters by the date move) when each source row comes from single input rows."""
        found = []
        for table in [t for t in tables_read_by(name, source) if t in changed]:
            if table not in self.inputs.identity_tables:
                rows = source_rows(self.spark, name, source, {**self.tables, table: changed[table]})
                if source.time is not None and self._row_local(name, source):
                    rows = rows.where(visible_on(source, self.base.snapshot_date))
                found.append(self._masters_of(rows, name, source))
            elif source.master_id and source.query is None:
                before, now = changed[table], self.tables[table]
                found.append(changed_rows_of_masters(before, now, source.master_id))
            else:
                raise IncrementalUnavailableError(
                    f"feature source {name} reads identity table {table} through a query"
                )
        return found

    def _row_local(self, name: str, source: FeatureSource) -> bool:
        return source.query is None or is_row_local(
            source_rows(self.spark, name, source, self.tables)
        )

    def _masters_of(self, rows: DataFrame, name: str, source: FeatureSource) -> DataFrame:
        return _masters(with_source_master_id(rows, name, source, self.members, self.record_keys))

    def _assembled(
        self,
        customers: DataFrame,
        refreshes: list[SourceRefresh],
        snapshot_date: dt.date,
        everyone: float,
    ) -> DataFrame:
        """Every current customer: the base's values, each source's columns replaced where
        the source was recomputed or folded for them."""
        updates: list[DataFrame] = []
        touched: list[SourceRefresh] = []
        for r in refreshes:
            column = f"__u{r.index}"
            parts = []
            if r.recomputed > everyone:
                parts.append(customers.join(self._recomputed(r, snapshot_date), MASTER_ID, "left"))
            else:
                if r.recomputed:
                    recomputed = self._recomputed(r, snapshot_date, listed=True)
                    parts.append(r.recompute.join(recomputed, MASTER_ID, "left"))
                if r.folded is not None:
                    parts.append(r.folded)
            if parts:
                touched.append(r)
                updates += [p.select(MASTER_ID, F.struct(*r.columns).alias(column)) for p in parts]
        base_columns = [c for c in self.config.schema if c not in self.config.derived]
        current = customers.join(
            self.base_features.select(MASTER_ID, *base_columns), MASTER_ID, "left"
        )
        if updates:
            stacked = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), updates)
            names = [f"__u{r.index}" for r in touched]
            collapsed = stacked.groupBy(MASTER_ID).agg(*[F.max(u).alias(u) for u in names])
            current = current.join(collapsed, MASTER_ID, "left")
        replaced = {
            c: F.when(F.col(f"__u{r.index}").isNotNull(), F.col(f"__u{r.index}")[c])
            .otherwise(F.col(c))
            .alias(c)
            for r in touched
            for c in r.columns
        }
        chosen = current.select(MASTER_ID, *[replaced.get(c, F.col(c)) for c in base_columns])
        return finished_snapshot(chosen, self.config, snapshot_date)

    def _recomputed(
        self, r: SourceRefresh, snapshot_date: dt.date, listed: bool = False
    ) -> DataFrame:
        """The source's columns computed afresh for its recompute list (``listed``) or for
        everyone."""
        members = self.members
        if listed:
            small = r.recomputed <= BROADCAST_CHANGED
            members = members.join(
                F.broadcast(r.recompute) if small else r.recompute, MASTER_ID, "left_semi"
            )
        return source_snapshot(
            self.spark,
            r.name,
            r.source,
            self.config,
            self.tables,
            members,
            self.record_keys,
            snapshot_date,
        )


def _union(frames: list[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b), frames)
