"""Connected components of a large undirected graph on Spark DataFrames (no GraphFrames).

Identity resolution links records and identifiers into a graph; a master customer is one
connected component, labelled by its smallest node id.

Algorithm: the alternating Large-Star / Small-Star algorithm of Kiveris et al., "Connected
Components in MapReduce and Beyond" (SoCC 2014). It converges in O(log n) rounds in practice
(proven O(log² n)), also on long chains where min-label propagation needs O(diameter) rounds.
Edges are kept distinct and oriented: ``src < dst`` before Large-Star, ``src > dst`` after it.

- Large-Star: for each node u, link every strictly larger neighbour to m(u), the smallest of u
  and its neighbours.
- Small-Star: for each node u, link u and its smaller neighbours to the smallest of them.
- It has converged when the edges form stars, each centred on its component's smallest node:
  no centre is also a leaf and no leaf has two centres. That test is one aggregate over the
  per-node table each round needs anyway (no collect of the graph).

Skew: a hub (a node with millions of edges, e.g. a store's default till mobile) is a heavy key.
Per-node minima and degrees are plain ``min``/``count`` aggregates (partial aggregation merges
a hub's edges before the shuffle; neighbour lists are never collected). In the join that hands
each edge its new parent, the edges of nodes with more than ``hub_threshold`` edges take a
broadcast join of the few hubs' parents instead of the shuffle, so no task receives a hub's
whole edge list (adaptive execution's skew-join splitting still covers the rest).

Storage: each round's edges are checkpointed so query plans stay one round deep (the plan of
an uncut round refers to the round before several times, so uncut rounds grow plans, and the
driver's planning time, geometrically). Without ``checkpoint_dir`` every round is locally
checkpointed. With it, every ``checkpoint_every``-th round is checkpointed reliably and the
rounds in between are cached, so a lost executor costs a recomputation from the last reliable
checkpoint rather than the run. Every intermediate is freed before returning, also on errors.
The result is checkpointed too and belongs to the caller: call ``Components.unpersist()`` (or
use ``with``) when done with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, IntegralType

from profilehouse import fs

SRC, DST, NODE, COMPONENT = "src", "dst", "node", "component"
PARENT, DEG, OUT_DEG = "parent", "deg", "out_deg"
DEFAULT_HUB_THRESHOLD = 1_000_000


@dataclass
class Components:
    """Connected components: ``df`` (node, component) plus how the run went.

    ``df`` has one row per node; ``component`` is the smallest node id of its component. It is
    checkpointed (lineage cut; blocks on the executors, or files under ``checkpoint_dir``):
    call ``unpersist()`` or use ``with`` when done, after which ``df`` must not be used.
    ``iterations`` counts Large-Star + Small-Star rounds (0 when the input is already stars);
    ``hub_steps`` counts the join steps that sent hub edges through the broadcast join.
    """

    df: DataFrame
    iterations: int
    hub_steps: int
    _release: Callable[[], None] = field(repr=False, default=lambda: None)

    def unpersist(self) -> None:
        """Free the result's checkpoint: its blocks or files (idempotent)."""
        self._release()
        self._release = lambda: None

    def __enter__(self) -> Components:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unpersist()


def connected_components(
    edges: DataFrame,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 2,
    max_iterations: int = 60,
    *,
    hub_threshold: int = DEFAULT_HUB_THRESHOLD,
) -> Components:
    """Connected components of the undirected graph ``edges`` (columns src, dst: integer ids).

    Duplicate edges, both directions and self-loops are allowed; a row with one null end adds
    only its other end. Every node in ``edges`` gets one row in the result (see ``Components``).
    ``checkpoint_dir``: reliable checkpoints there every ``checkpoint_every`` rounds (it becomes
    the SparkContext's checkpoint dir; keep ``checkpoint_every`` at 1-2, plans grow fast);
    None: a local checkpoint every round. ``hub_threshold``: nodes with more edges than this
    in a join step get their parent by broadcast (at most 2·edges/hub_threshold nodes are
    broadcast, so keep it large on big graphs). Raises ValueError for a bad schema or argument
    and RuntimeError when not converged within ``max_iterations`` rounds.
    """
    return _resolve(edges, None, checkpoint_dir, checkpoint_every, max_iterations, hub_threshold)


def components_with_isolated(
    nodes: DataFrame,
    edges: DataFrame,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 2,
    max_iterations: int = 60,
    *,
    hub_threshold: int = DEFAULT_HUB_THRESHOLD,
) -> Components:
    """Like ``connected_components`` plus every ``nodes.node`` without edges as its own component.

    ``nodes`` needs an integer column ``node`` (duplicates and nulls are ignored); nodes that
    occur only in ``edges`` are included too.
    """
    _require_integer_columns(nodes, "nodes", (NODE,))
    extra = nodes.select(F.col(NODE).cast("long").alias(NODE)).where(F.col(NODE).isNotNull())
    return _resolve(edges, extra, checkpoint_dir, checkpoint_every, max_iterations, hub_threshold)


def _resolve(
    edges: DataFrame,
    extra_nodes: DataFrame | None,
    checkpoint_dir: str | None,
    checkpoint_every: int,
    max_iterations: int,
    hub_threshold: int,
) -> Components:
    """Run the algorithm; free every intermediate whatever happens."""
    _require_integer_columns(edges, "edges", (SRC, DST))
    _require_arguments(checkpoint_every, max_iterations, hub_threshold)
    spark = edges.sparkSession
    if checkpoint_dir is not None:
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    store = StoredFrames(spark, reliable=checkpoint_dir is not None)
    try:
        base = store.cache(_canonical_edges(edges))
        loops = base.where(F.col(SRC) == F.col(DST)).select(F.col(SRC).alias(NODE))
        proper = base.where(F.col(SRC) < F.col(DST))
        stars, iterations, hub_steps = _iterate_to_stars(
            store, proper, checkpoint_every, max_iterations, hub_threshold
        )
        singles = loops if extra_nodes is None else loops.unionByName(extra_nodes)
        result = store.checkpoint(_labels_with_singletons(_labels_of_stars(stars), singles))
        return Components(result, iterations, hub_steps, store.detach(result))
    finally:
        store.release_all()


def _iterate_to_stars(
    store: StoredFrames,
    edges: DataFrame,
    checkpoint_every: int,
    max_iterations: int,
    hub_threshold: int,
) -> tuple[DataFrame, int, int]:
    """Star edges (src = component's smallest node < dst), rounds run, hub join steps.

    ``edges`` must be distinct with src < dst. A cached (not checkpointed) round is computed
    by the next round's statistics, after which the round before is released. The newest
    checkpoint is kept until a newer one exists, so later rounds can be recomputed from it.
    The returned stars (and that checkpoint) stay in ``store``.
    """
    hub_steps, spent, anchor = 0, (), None
    for iteration in range(max_iterations + 1):
        parents = store.cache(_large_star_parents(edges))
        stats = _star_stats(parents, hub_threshold)
        store.release(*spent)
        if stats["moved"] == 0 and stats["multi"] == 0:
            store.release(parents)
            return edges, iteration, hub_steps
        if iteration == max_iterations:
            raise RuntimeError(
                f"connected components did not converge within {max_iterations} iterations "
                f"({stats['moved']} edges still moving, {stats['multi']} nodes with several "
                "parents); raise max_iterations"
            )
        new_edges, spent = _one_round(store, edges, parents, stats, hub_threshold)
        hub_steps += int(stats["hubs"] > 0) + int(stats["small_hubs"] > 0)
        if store.reliable and (iteration + 1) % checkpoint_every:
            new_edges = store.cache(new_edges)
            spent = tuple(df for df in spent if df is not anchor)
        else:
            new_edges = store.checkpoint(new_edges)
            store.release(*spent, *([anchor] if anchor is not None else []))
            spent, anchor = (), new_edges
        edges = new_edges
    raise AssertionError("unreachable")  # pragma: no cover


def _one_round(
    store: StoredFrames,
    edges: DataFrame,
    parents: DataFrame,
    stats: dict[str, int],
    hub_threshold: int,
) -> tuple[DataFrame, tuple[DataFrame, ...]]:
    """Large-Star then Small-Star (lazy), and the DataFrames to release once it is stored.

    Without Small-Star hubs, Large-Star's output is partitioned by src, so Small-Star's
    aggregate and join need no further shuffle (and its parents are read once, uncached).
    """
    small_hubs = stats["small_hubs"] > 0
    larger = store.cache(
        _large_star(edges, parents, hub_threshold, stats["hubs"] > 0, by_src=not small_hubs)
    )
    small_parents = _small_star_parents(larger)
    if small_hubs:  # read twice by the hub join
        small_parents = store.cache(small_parents)
    new_edges = _small_star(larger, small_parents, hub_threshold, small_hubs)
    return new_edges, (edges, parents, larger, small_parents)


def _canonical_edges(edges: DataFrame) -> DataFrame:
    """Distinct (src, dst) with src <= dst; src == dst marks a node without a proper edge here.

    Self-loops and rows with one null end become (n, n); rows with two null ends are dropped.
    """
    src, dst = F.col(SRC).cast("long"), F.col(DST).cast("long")
    lo = F.coalesce(F.least(src, dst), src, dst)
    hi = F.coalesce(F.greatest(src, dst), src, dst)
    return edges.select(lo.alias(SRC), hi.alias(DST)).where(F.col(SRC).isNotNull()).distinct()


def _large_star_parents(edges: DataFrame) -> DataFrame:
    """Per node (column src): parent = min(node, neighbours), deg, out_deg (edges where it is src).

    ``edges`` oriented src < dst; read once (both directions come from one explode).
    """
    both = edges.select(
        F.explode(
            F.array(
                F.struct(F.col(SRC).alias("node"), F.col(DST).alias("nbr"), F.lit(1).alias("out")),
                F.struct(F.col(DST).alias("node"), F.col(SRC).alias("nbr"), F.lit(0).alias("out")),
            )
        ).alias("e")
    ).select(F.col("e.node").alias(SRC), "e.nbr", "e.out")
    return both.groupBy(SRC).agg(
        F.least(F.col(SRC), F.min("nbr")).alias(PARENT),
        F.count(F.lit(1)).alias(DEG),
        F.sum("out").alias(OUT_DEG),
    )


def _star_stats(parents: DataFrame, hub_threshold: int) -> dict[str, int]:
    """One aggregate over the Large-Star parents: convergence test and hub counts.

    moved: edges Large-Star would re-parent; multi: nodes with several smaller neighbours
    (moved == multi == 0: the edges already are stars centred on their smallest node).
    hubs: nodes with > ``hub_threshold`` larger neighbours (Large-Star join keys);
    small_hubs: nodes with > ``hub_threshold`` smaller neighbours, an upper bound for the
    Small-Star join keys of this round.
    """
    in_deg = F.col(DEG) - F.col(OUT_DEG)
    row = parents.agg(
        F.coalesce(F.sum(F.when(F.col(PARENT) < F.col(SRC), F.col(OUT_DEG))), F.lit(0)),
        F.count_if(in_deg > 1),
        F.count_if(F.col(OUT_DEG) > hub_threshold),
        F.count_if(in_deg > hub_threshold),
    ).first()
    assert row is not None
    return dict(zip(("moved", "multi", "hubs", "small_hubs"), map(int, row), strict=True))


def _large_star(
    edges: DataFrame, parents: DataFrame, hub_threshold: int, has_hubs: bool, *, by_src: bool
) -> DataFrame:
    """Large-Star: every edge (u, v), u < v, becomes (v, m(u)); distinct, oriented src > dst.

    ``by_src``: hash-partition the result by src (only safe when no node gets more than
    ``hub_threshold`` edges as src, else that partition is skewed).
    """
    keyed = parents.select(SRC, PARENT, F.col(OUT_DEG).alias(DEG))
    joined = _edges_with_parent(edges, keyed, hub_threshold, has_hubs)
    swapped = joined.select(F.col(DST).alias(SRC), F.col(PARENT).alias(DST))
    return (swapped.repartition(SRC) if by_src else swapped).distinct()


def _small_star_parents(edges: DataFrame) -> DataFrame:
    """Per node with smaller neighbours (column src): parent = the smallest of them, deg.

    ``edges`` oriented src > dst.
    """
    return edges.groupBy(SRC).agg(F.min(DST).alias(PARENT), F.count(F.lit(1)).alias(DEG))


def _small_star(
    edges: DataFrame, parents: DataFrame, hub_threshold: int, has_hubs: bool
) -> DataFrame:
    """Small-Star: u and its smaller neighbours all link to the smallest; oriented src < dst.

    Each edge (u, v) with parent m yields (m, v) and (m, u); (m, m) is dropped and the
    repeated (m, u) are merged by the distinct's partial aggregation.
    """
    joined = _edges_with_parent(edges, parents, hub_threshold, has_hubs)
    pairs = F.array(
        F.struct(F.col(PARENT).alias(SRC), F.col(DST).alias(DST)),
        F.struct(F.col(PARENT).alias(SRC), F.col(SRC).alias(DST)),
    )
    linked = joined.select(F.explode(pairs).alias("e")).select("e.src", "e.dst")
    return linked.where(F.col(SRC) != F.col(DST)).distinct()


def _edges_with_parent(
    edges: DataFrame, parents: DataFrame, hub_threshold: int, has_hubs: bool
) -> DataFrame:
    """``edges`` plus the parent of each edge's src (inner join on src).

    With ``has_hubs``, edges of nodes with deg > ``hub_threshold`` get their parent from a
    broadcast of those few nodes (at most 2·edges/hub_threshold rows) instead of the shuffle.
    """
    if not has_hubs:
        return edges.join(parents.select(SRC, PARENT), SRC)
    hub_parents = parents.where(F.col(DEG) > hub_threshold).select(
        SRC, F.col(PARENT).alias("hub_parent")
    )
    tagged = edges.join(F.broadcast(hub_parents), SRC, "left")
    via_hub = tagged.where(F.col("hub_parent").isNotNull()).select(
        SRC, DST, F.col("hub_parent").alias(PARENT)
    )
    others = parents.where(F.col(DEG) <= hub_threshold).select(SRC, PARENT)
    via_shuffle = tagged.where(F.col("hub_parent").isNull()).select(SRC, DST).join(others, SRC)
    return via_hub.unionByName(via_shuffle)


def _labels_of_stars(stars: DataFrame) -> DataFrame:
    """(node, component) from star edges (src = centre < dst): leaves and centres."""
    leaves = stars.select(F.col(DST).alias(NODE), F.col(SRC).alias(COMPONENT))
    centres = stars.select(F.col(SRC).alias(NODE)).distinct()
    return leaves.unionByName(centres.select(NODE, F.col(NODE).alias(COMPONENT)))


def _labels_with_singletons(labels: DataFrame, singles: DataFrame) -> DataFrame:
    """``labels`` plus each ``singles.node`` not labelled yet as its own component."""
    missing = singles.distinct().join(labels.select(NODE), NODE, "left_anti")
    return labels.unionByName(missing.select(NODE, F.col(NODE).alias(COMPONENT)))


def _require_integer_columns(df: DataFrame, name: str, columns: tuple[str, ...]) -> None:
    """Raise ValueError naming missing or non-integer columns and the columns present."""
    types = {f.name: f.dataType for f in df.schema.fields}
    missing = [c for c in columns if c not in types]
    if missing:
        raise ValueError(
            f"{name} is missing column(s) {', '.join(missing)}: it needs {', '.join(columns)} "
            f"and has {', '.join(df.columns) or 'no columns'}"
        )
    wrong = [f"{c}: {types[c].simpleString()}" for c in columns if not _is_integer(types[c])]
    if wrong:
        raise ValueError(f"{name} node ids must be integers (long); got {', '.join(wrong)}")


def _is_integer(data_type: DataType) -> bool:
    """True for byte, short, int and long columns."""
    return isinstance(data_type, IntegralType)


def _require_arguments(checkpoint_every: int, max_iterations: int, hub_threshold: int) -> None:
    """Raise ValueError for a non-positive checkpoint_every/hub_threshold or negative rounds."""
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    if hub_threshold < 1:
        raise ValueError(f"hub_threshold must be >= 1, got {hub_threshold}")


class StoredFrames:
    """What one run persisted or checkpointed, with how to free each (cache, blocks, files).

    Entries are keyed by object identity and keep their DataFrame alive, so an id is never
    reused while held.
    """

    def __init__(self, spark: SparkSession, *, reliable: bool) -> None:
        self._spark = spark
        self.reliable = reliable
        self._held: dict[int, tuple[DataFrame, Callable[[], None]]] = {}

    def cache(self, df: DataFrame) -> DataFrame:
        """``df`` persisted (memory and disk), computed by its first action."""
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self._held[id(df)] = (df, lambda: df.unpersist(blocking=False))
        return df

    def checkpoint(self, df: DataFrame) -> DataFrame:
        """``df`` computed now and checkpointed (reliable or local): its lineage is cut."""
        stored = df.checkpoint(eager=True) if self.reliable else df.localCheckpoint(eager=True)
        self._held[id(stored)] = (stored, self._checkpoint_release(stored))
        return stored

    def release(self, *dfs: DataFrame) -> None:
        """Free the given stored DataFrames (ones not stored here are ignored)."""
        for df in dfs:
            if id(df) in self._held:
                self._held.pop(id(df))[1]()

    def detach(self, df: DataFrame) -> Callable[[], None]:
        """Hand ``df``'s freeing over to the caller: returns its release function."""
        return self._held.pop(id(df))[1]

    def release_all(self) -> None:
        """Free everything still held."""
        while self._held:
            self._held.popitem()[1][1]()

    def _checkpoint_release(self, stored: DataFrame) -> Callable[[], None]:
        """How to free a checkpoint: unpersist its blocks or delete its files.

        Needs the classic (py4j) session; elsewhere Spark's context cleaner frees local
        checkpoints once garbage-collected.
        """
        rdd = _checkpointed_rdd(stored)
        if rdd is None:
            return lambda: None
        if not self.reliable:
            return lambda: rdd.unpersist(False)
        path = rdd.getCheckpointFile()
        uri = str(path.get()) if path.isDefined() else None
        return lambda: fs.delete_path(self._spark, uri) if uri else None


def _checkpointed_rdd(stored: DataFrame) -> Any:
    """The JVM RDD (py4j object) behind a just-checkpointed DataFrame, or None if unreachable."""
    jdf = getattr(stored, "_jdf", None)
    if jdf is None:
        return None
    plan = jdf.queryExecution().analyzed()
    return plan.rdd() if plan.getClass().getSimpleName() == "LogicalRDD" else None
