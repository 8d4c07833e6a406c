"""Stable master customer IDs: carry the previous run's IDs over to this run's clusters.

Identity resolution re-clusters every record on every run, and cluster ids mean nothing from one
run to the next. :func:`assign_master_ids` gives each new cluster a master ID, inheriting the
previous run's IDs by member overlap: greedy maximum-overlap one-to-one matching, largest overlap
first, ties broken by the smaller master ID and then the smaller cluster id. What follows:

* a new cluster matched to an old master keeps its ID (lineage ``kept``); records new to this run
  simply take the ID of the cluster they joined;
* old masters left unmatched although some of their records are still present lost their ID in a
  merge: each is an alias of the surviving ID of the cluster holding most of its records
  (``aliases``, reason ``merged``; that cluster's lineage is ``merged``);
* a cluster left unmatched although it holds previous records is a split-off part of old masters
  that kept their IDs on larger parts: it gets a new ID (lineage ``split``);
* a cluster without previous records gets a new ID (lineage ``new``);
* an old master none of whose records are present any more appears nowhere (it is not an alias).

New master IDs are ``'MC'`` followed by 20 lowercase hex characters: the first 80 bits of
SHA-256 over the UTF-8 text ``'<run_id>:<cluster_id>'`` (:data:`MASTER_ID_PATTERN`). The run id
salts them, so they are opaque (never a function of record keys alone), yet deterministic for the
same inputs, so a recomputed DataFrame yields the same IDs. Inherited IDs are kept as they are.

Everything is Spark built-ins; only the matching's per-round counts reach the driver.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse.errors import SchemaError

MASTER_ID_PREFIX = "MC"
MASTER_ID_HEX_CHARS = 20
MASTER_ID_PATTERN = rf"^{MASTER_ID_PREFIX}[0-9a-f]{{{MASTER_ID_HEX_CHARS}}}$"

REASON_MERGED = "merged"
EVENT_NEW = "new"
EVENT_KEPT = "kept"
EVENT_MERGED = "merged"
EVENT_SPLIT = "split"

_CACHE_LEVEL = StorageLevel.MEMORY_AND_DISK
_FLAGGED_SCHEMA = T.StructType(
    [
        T.StructField("cluster_id", T.LongType()),
        T.StructField("master_id", T.StringType()),
        T.StructField("overlap", T.LongType()),
        T.StructField("matched", T.BooleanType()),
    ]
)
# An ID with the overlap it is ranked by; sort_array orders these largest overlap first.
_RANKED_ID = T.StructType(
    [T.StructField("neg_overlap", T.LongType()), T.StructField("id", T.StringType())]
)


@dataclass(frozen=True)
class MasterIdAssignment:
    """The master IDs of one run, with the aliases and lineage that explain them.

    ``members``: record_key, master_id — one row per record of the run.
    ``aliases``: retired_id, surviving_id, reason ('merged'), run_id — old IDs absorbed by a merge.
    ``lineage``: master_id, event ('new' | 'kept' | 'merged' | 'split'), from_ids array<string>,
    run_id — one row per master ID of the run. ``from_ids`` lists the previous run's IDs the
    master descends from: [its own ID] when kept, its own ID then the absorbed IDs when merged,
    the old masters its records came from when split (largest overlap first), [] when new.

    All three are computed from ``cached`` (the flagged overlap candidates, persisted at
    MEMORY_AND_DISK so that writing each output does not redo the matching rounds): call
    :meth:`unpersist` once all three are written.
    """

    members: DataFrame
    aliases: DataFrame
    lineage: DataFrame
    cached: tuple[DataFrame, ...] = field(default=(), repr=False, compare=False)

    def unpersist(self) -> None:
        """Release the cached intermediates (the outputs stay valid but recompute them)."""
        for frame in self.cached:
            frame.unpersist()


def assign_master_ids(
    clusters: DataFrame, previous: DataFrame | None, run_id: str
) -> MasterIdAssignment:
    """This run's master IDs: previous IDs inherited by greedy maximum overlap, new ones minted.

    ``clusters`` (record_key, cluster_id) is this run's clustering; ``previous`` (record_key,
    master_id) the previous run's members, None on the first run. record_key must be unique in
    each and cluster_id / master_id non-null. ``clusters`` is read three times (overlaps,
    members, lineage): persist it first if it is costly to compute. With a previous run, runs
    the matching's Spark jobs before returning (a few per round); see
    :class:`MasterIdAssignment` for the outputs and their cache. Raises SchemaError when a
    column is missing, ValueError when ``run_id`` is empty.
    """
    _require_columns(clusters, "clusters", ("record_key", "cluster_id"))
    if previous is not None:
        _require_columns(previous, "previous", ("record_key", "master_id"))
    if not run_id:
        raise ValueError("run_id must be a non-empty string (it salts new master IDs)")

    if previous is None:  # first run: nothing to inherit, no Spark job needed
        flagged = clusters.sparkSession.createDataFrame([], _FLAGGED_SCHEMA)
        cached: tuple[DataFrame, ...] = ()
    else:
        flagged = greedy_overlap_matching(overlap_candidates(clusters, previous))
        cached = (flagged,)
    retired = _retired_masters(flagged)
    return MasterIdAssignment(
        members=_members(clusters, flagged, run_id),
        aliases=_aliases(retired, run_id),
        lineage=_lineage(clusters, flagged, retired, run_id),
        cached=cached,
    )


def new_master_id_expr(run_id: str, cluster_id: Column) -> Column:
    """A new master ID: 'MC' + the first 20 hex characters of sha2('<run_id>:<cluster_id>')."""
    digest = F.sha2(F.concat(F.lit(f"{run_id}:"), cluster_id.cast("string")), 256)
    return F.concat(F.lit(MASTER_ID_PREFIX), F.substring(digest, 1, MASTER_ID_HEX_CHARS))


def overlap_candidates(clusters: DataFrame, previous: DataFrame) -> DataFrame:
    """cluster_id, master_id, overlap: records each new cluster shares with each old master.

    Only pairs sharing at least one record appear.
    """
    return (
        clusters.select("record_key", F.col("cluster_id").cast("long"))
        .join(previous.select("record_key", F.col("master_id").cast("string")), "record_key")
        .groupBy("cluster_id", "master_id")
        .agg(F.count(F.lit(1)).alias("overlap"))
    )


def greedy_overlap_matching(candidates: DataFrame) -> DataFrame:
    """cluster_id, master_id, overlap, matched: the candidates, flagged when in the matching.

    The matching is the greedy maximum-overlap one-to-one matching: take the candidate pairs in
    the order (overlap desc, master_id, cluster_id) and keep each whose cluster and master are
    both still free. It is computed distributedly in rounds: an undecided pair is matched when
    it is the first, in that order, among the undecided pairs of both its cluster and its
    master; the undecided pairs of the clusters and masters matched in the round are then
    rejected. Each round matches at least the best undecided pair, and typically far more:
    rounds are few in practice (3 on a random re-clustering of 3,000 records), though a long
    chain of ever larger contested overlaps takes about half its length. The matching is
    maximal: every candidate pair has a matched cluster or a matched master. The result is
    persisted (MEMORY_AND_DISK) and materialised; the caller unpersists it.
    """
    state = _mutual_best_pairs_round(
        candidates.withColumn("matched", F.lit(None).cast("boolean"))
    ).persist(_CACHE_LEVEL)
    undecided = _undecided_count(state)
    while undecided:
        next_state = _mutual_best_pairs_round(state).persist(_CACHE_LEVEL)
        undecided = _undecided_count(next_state)  # materialises it before state is released
        state.unpersist()
        state = next_state
    return state


def _mutual_best_pairs_round(pairs: DataFrame) -> DataFrame:
    """cluster_id, master_id, overlap, matched: one round of mutual best pairs.

    ``matched`` is null while a pair is undecided, then true or false for good.
    """
    undecided = F.col("matched").isNull()
    by_cluster = Window.partitionBy("cluster_id").orderBy(
        undecided.desc(), F.desc("overlap"), F.asc("master_id")
    )
    by_master = Window.partitionBy("master_id").orderBy(
        undecided.desc(), F.desc("overlap"), F.asc("cluster_id")
    )
    best_for_both = (F.row_number().over(by_cluster) == 1) & (F.row_number().over(by_master) == 1)
    ranked = pairs.select(
        "cluster_id", "master_id", "overlap", "matched", (undecided & best_for_both).alias("won")
    )
    # master first: the rows are then already partitioned by master, and end by cluster_id,
    # which is how the next round's first window wants them
    flagged = ranked.withColumn(
        "master_won", F.bool_or("won").over(Window.partitionBy("master_id"))
    ).withColumn("cluster_won", F.bool_or("won").over(Window.partitionBy("cluster_id")))
    matched = (
        F.when(F.col("won"), F.lit(True))
        .when(undecided & (F.col("master_won") | F.col("cluster_won")), F.lit(False))
        .otherwise(F.col("matched"))
    )
    return flagged.select("cluster_id", "master_id", "overlap", matched.alias("matched"))


def _undecided_count(state: DataFrame) -> int:
    """How many pairs of a round's output are still undecided (runs a Spark job)."""
    return state.filter(F.col("matched").isNull()).count()


def _retired_masters(flagged: DataFrame) -> DataFrame:
    """retired_id, surviving_id, cluster_id, overlap: unmatched old masters and their heirs.

    An unmatched old master is absorbed by the cluster holding most of its records (ties: the
    smaller cluster id); that cluster is always matched (the matching is maximal), and its
    master ID survives.
    """
    surviving = F.max(F.when(F.col("matched"), F.col("master_id")))
    best = Window.partitionBy("master_id").orderBy(F.desc("overlap"), F.asc("cluster_id"))
    return (
        flagged.withColumn("surviving_id", surviving.over(Window.partitionBy("cluster_id")))
        .withColumn("kept", F.bool_or("matched").over(Window.partitionBy("master_id")))
        .withColumn("rank", F.row_number().over(best))
        .filter(~F.col("kept") & (F.col("rank") == 1))
        .select(F.col("master_id").alias("retired_id"), "surviving_id", "cluster_id", "overlap")
    )


def _members(clusters: DataFrame, flagged: DataFrame, run_id: str) -> DataFrame:
    """record_key, master_id: every record with its cluster's inherited or new master ID."""
    inherited = flagged.filter(F.col("matched")).select(
        "cluster_id", F.col("master_id").alias("inherited_id")
    )
    records = clusters.select("record_key", F.col("cluster_id").cast("long"))
    return records.join(inherited, "cluster_id", "left").select(
        "record_key", _master_id_expr(run_id).alias("master_id")
    )


def _aliases(retired: DataFrame, run_id: str) -> DataFrame:
    """retired_id, surviving_id, reason, run_id: each retired ID and the ID that absorbed it."""
    return retired.select(
        "retired_id",
        "surviving_id",
        F.lit(REASON_MERGED).alias("reason"),
        F.lit(run_id).alias("run_id"),
    )


def _lineage(clusters: DataFrame, flagged: DataFrame, retired: DataFrame, run_id: str) -> DataFrame:
    """master_id, event, from_ids, run_id: one row per cluster (so per master ID) of the run.

    One aggregation per cluster over its records, its candidate pairs and the masters it absorbed.
    """
    no_id, no_ranked_id = F.lit(None).cast("string"), F.lit(None).cast(_RANKED_ID)
    facts = (
        clusters.select(
            F.col("cluster_id").cast("long"),
            no_id.alias("inherited_id"),
            no_ranked_id.alias("source"),
            no_ranked_id.alias("absorbed"),
        )
        .unionByName(
            flagged.select(
                "cluster_id",
                F.when(F.col("matched"), F.col("master_id")).alias("inherited_id"),
                _ranked_id("master_id").alias("source"),
                no_ranked_id.alias("absorbed"),
            )
        )
        .unionByName(
            retired.select(
                "cluster_id",
                no_id.alias("inherited_id"),
                no_ranked_id.alias("source"),
                _ranked_id("retired_id").alias("absorbed"),
            )
        )
    )
    summary = facts.groupBy("cluster_id").agg(
        F.max("inherited_id").alias("inherited_id"),
        _ids_by_overlap("source").alias("source_ids"),
        _ids_by_overlap("absorbed").alias("absorbed_ids"),
    )
    inherited = F.col("inherited_id")
    absorbed_ids, source_ids = F.col("absorbed_ids"), F.col("source_ids")
    event = (
        F.when(inherited.isNotNull() & (F.size(absorbed_ids) > 0), EVENT_MERGED)
        .when(inherited.isNotNull(), EVENT_KEPT)
        .when(F.size(source_ids) > 0, EVENT_SPLIT)
        .otherwise(EVENT_NEW)
    )
    from_ids = F.when(inherited.isNotNull(), F.concat(F.array(inherited), absorbed_ids)).otherwise(
        source_ids
    )
    return summary.select(
        _master_id_expr(run_id).alias("master_id"),
        event.alias("event"),
        from_ids.alias("from_ids"),
        F.lit(run_id).alias("run_id"),
    )


def _master_id_expr(run_id: str) -> Column:
    """The inherited ID when there is one (column inherited_id), else a new ID for cluster_id."""
    return F.coalesce(F.col("inherited_id"), new_master_id_expr(run_id, F.col("cluster_id")))


def _ranked_id(id_column: str) -> Column:
    """``id_column`` with the overlap to rank it by (a _RANKED_ID struct)."""
    return F.struct(
        (-F.col("overlap")).alias("neg_overlap"), F.col(id_column).cast("string").alias("id")
    )


def _ids_by_overlap(ranked_ids: str) -> Column:
    """Aggregate: the group's non-null _RANKED_ID ids, largest overlap first (ties: smaller ID)."""
    ranked = F.sort_array(F.collect_list(ranked_ids))
    return F.transform(ranked, lambda pair: pair["id"])


def _require_columns(frame: DataFrame, name: str, columns: Iterable[str]) -> None:
    """Raise SchemaError naming the columns ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{name} lacks column(s) {', '.join(missing)} (has: {', '.join(frame.columns)})"
        )
