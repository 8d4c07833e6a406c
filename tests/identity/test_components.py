"""Connected components (Large-Star / Small-Star) checked against a pure-Python union-find."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from profilehouse.identity.components import (
    Components,
    components_with_isolated,
    connected_components,
)

Edge = tuple[int | None, int | None]
EDGES_SCHEMA = "src long, dst long"


# --- oracle and helpers --------------------------------------------------------------------------


def union_find(edges: Iterable[Edge], nodes: Iterable[int] = ()) -> dict[int, int]:
    """node → smallest node of its component, for every non-null node in edges and nodes."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ends = [n for n in (a, b) if n is not None]
        for n in ends:
            find(n)
        if len(ends) == 2:
            ra, rb = find(ends[0]), find(ends[1])
            parent[max(ra, rb)] = min(ra, rb)
    for n in nodes:
        find(n)
    return {n: find(n) for n in parent}


def shuffled_labels(n: int, seed: int) -> list[int]:
    """0..n-1 in a random order: position i of a shape gets label labels[i]."""
    labels = list(range(n))
    random.Random(seed).shuffle(labels)
    return labels


def edges_df(spark: SparkSession, edges: list[Edge]) -> DataFrame:
    return spark.createDataFrame(edges, EDGES_SCHEMA)


def expected_df(spark: SparkSession, labels: dict[int, int]) -> DataFrame:
    return spark.createDataFrame(sorted(labels.items()), "node long, component long")


def assert_components(spark: SparkSession, result: Components, wanted: dict[int, int]) -> None:
    """chispa comparison, for small expected results written out in the test."""
    assert result.df.columns == ["node", "component"]
    assert_df_equality(
        result.df, expected_df(spark, wanted), ignore_row_order=True, ignore_nullable=True
    )


def assert_labels(result: Components, wanted: dict[int, int]) -> None:
    """One collect, compared in Python (cheaper than sorting both sides for thousands of rows)."""
    assert result.df.columns == ["node", "component"]
    rows = result.df.collect()
    got = {r["node"]: r["component"] for r in rows}
    assert len(got) == len(rows), "a node has more than one row"
    wrong = sorted(n for n in wanted.keys() | got.keys() if got.get(n) != wanted.get(n))
    assert not wrong, [(n, got.get(n), wanted.get(n)) for n in wrong[:10]]


def persistent_rdd_ids(spark: SparkSession) -> set[int]:
    return {int(i) for i in spark.sparkContext._jsc.getPersistentRDDs().keySet()}


@pytest.fixture(autouse=True)
def nothing_left_cached(spark: SparkSession) -> Iterator[None]:
    """Every test must leave no cached or locally checkpointed data behind.

    Only new ids count: data other tests left behind may be cleaned up by Spark's
    ContextCleaner while this test runs, so ids can also disappear.
    """
    before = persistent_rdd_ids(spark)
    yield
    assert persistent_rdd_ids(spark) - before == set()


# --- shapes --------------------------------------------------------------------------------------


def test_long_chain_in_random_label_order_converges_in_logarithmic_rounds(
    spark: SparkSession,
) -> None:
    n = 2_000
    labels = shuffled_labels(n, seed=11)
    edges: list[Edge] = [(labels[i], labels[i + 1]) for i in range(n - 1)]
    with connected_components(edges_df(spark, edges)) as result:
        assert_labels(result, dict.fromkeys(range(n), 0))
        # min-label propagation would need about as many rounds as the chain's distance
        # from label 0 to its farther end (hundreds here)
        assert 1 <= result.iterations <= 2 * math.ceil(math.log2(n))
        assert result.hub_steps == 0


@pytest.mark.parametrize(
    ("hub", "hub_threshold", "hub_steps"),
    [(2_500, 100, 2), (5_000, 1_000_000, 0)],
    ids=["middle-hub-broadcast", "largest-hub-shuffle"],
)
def test_star_with_5000_leaves(
    spark: SparkSession, hub: int, hub_threshold: int, hub_steps: int
) -> None:
    edges: list[Edge] = [(hub, leaf) for leaf in range(5_001) if leaf != hub]
    df = edges_df(spark, edges)
    with connected_components(df, hub_threshold=hub_threshold) as result:
        assert_labels(result, dict.fromkeys(range(5_001), 0))
        assert result.iterations == 1
        # middle hub: Large-Star and Small-Star both take the hub's edges by broadcast
        assert result.hub_steps == hub_steps


def test_binary_tree_with_random_labels(spark: SparkSession) -> None:
    n = 4_095  # complete tree of depth 11
    labels = shuffled_labels(n, seed=5)
    edges: list[Edge] = [(labels[i], labels[(i - 1) // 2]) for i in range(1, n)]
    with connected_components(edges_df(spark, edges)) as result:
        assert_labels(result, dict.fromkeys(range(n), 0))
        assert result.iterations <= 2 * math.ceil(math.log2(n))


def test_many_small_components_pairs_and_triangles(spark: SparkSession) -> None:
    labels = shuffled_labels(1_500 * 2 + 1_500 * 3, seed=3)
    edges: list[Edge] = []
    for p in range(1_500):
        a, b = labels[2 * p], labels[2 * p + 1]
        edges.append((a, b))
    for t in range(1_500):
        a, b, c = labels[3_000 + 3 * t : 3_000 + 3 * t + 3]
        edges += [(a, b), (b, c), (c, a)]
    wanted = union_find(edges)
    assert len(set(wanted.values())) == 3_000
    with connected_components(edges_df(spark, edges)) as result:
        assert_labels(result, wanted)


def test_duplicate_edges_both_directions_self_loops_and_nulls(spark: SparkSession) -> None:
    edges: list[Edge] = [
        (1, 2), (2, 1), (1, 2), (2, 2),  # duplicates, reverse, a loop on a linked node
        (3, 3), (3, 3),  # a node seen only in self-loops
        (5, 4), (4, 5), (5, 5),
        (7, 6), (6, 7), (6, 9), (9, 7),
        (None, 8), (10, None), (None, None),  # a null end adds only the other end
    ]  # fmt: skip
    with connected_components(edges_df(spark, edges)) as result:
        wanted = {1: 1, 2: 1, 3: 3, 4: 4, 5: 4, 6: 6, 7: 6, 9: 6, 8: 8, 10: 10}
        assert wanted == union_find(edges)
        assert_components(spark, result, wanted)


def test_random_graph_matches_union_find(spark: SparkSession) -> None:
    rng = random.Random(20251231)
    n = 3_000
    edges: list[Edge] = [(rng.randrange(n), rng.randrange(n)) for _ in range(2_400)]
    edges += [(b, a) for a, b in edges[:100]]  # some edges again, reversed
    wanted = union_find(edges)
    assert 100 < len(set(wanted.values())) < len(wanted)  # many components, some large
    with connected_components(edges_df(spark, edges)) as result:
        assert_labels(result, wanted)


def test_int_ids_are_accepted_and_empty_edges_give_empty_result(spark: SparkSession) -> None:
    df = spark.createDataFrame([(2, 1)], "src int, dst int")
    with connected_components(df) as result:
        assert_components(spark, result, {1: 1, 2: 1})
    with connected_components(spark.createDataFrame([], EDGES_SCHEMA)) as result:
        assert result.df.count() == 0
        assert result.iterations == 0


# --- isolated nodes ------------------------------------------------------------------------------


def test_components_with_isolated_adds_nodes_without_edges(spark: SparkSession) -> None:
    edges: list[Edge] = [(4, 2), (2, 7), (11, 12), (30, 30)]
    node_ids = [0, 1, 2, 2, 4, 5, 7, 11, 20, 20]  # duplicates; 12 and 30 only in edges
    rows = [(n, f"r{n}") for n in node_ids] + [(None, "x")]
    nodes = spark.createDataFrame(rows, "node long, record string")
    with components_with_isolated(nodes, edges_df(spark, edges)) as result:
        wanted = union_find(edges, node_ids)
        assert wanted[0] == 0 and wanted[7] == 2 and wanted[30] == 30
        assert_components(spark, result, wanted)


# --- errors, checkpoints -------------------------------------------------------------------------


def test_missing_columns_are_named_with_those_present(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, 2)], "src long, target long")
    with pytest.raises(ValueError) as caught:
        connected_components(df)
    assert str(caught.value) == (
        "edges is missing column(s) dst: it needs src, dst and has src, target"
    )
    nodes = spark.createDataFrame([(1,)], "id long")
    with pytest.raises(
        ValueError, match=re.escape("nodes is missing column(s) node: it needs node and has id")
    ):
        components_with_isolated(nodes, df.withColumnRenamed("target", "dst"))


def test_non_integer_ids_and_bad_arguments_are_rejected(spark: SparkSession) -> None:
    df = spark.createDataFrame([("a", 2)], "src string, dst long")
    with pytest.raises(
        ValueError, match=re.escape("edges node ids must be integers (long); got src: string")
    ):
        connected_components(df)
    good = edges_df(spark, [(1, 2)])
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1, got 0"):
        connected_components(good, checkpoint_every=0)


def test_not_converging_within_max_iterations_raises_and_frees_everything(
    spark: SparkSession,
) -> None:
    labels = shuffled_labels(200, seed=2)
    edges: list[Edge] = [(labels[i], labels[i + 1]) for i in range(199)]
    with pytest.raises(RuntimeError, match=r"did not converge within 1 iterations"):
        connected_components(edges_df(spark, edges), max_iterations=1)
    # the autouse fixture checks that nothing stayed cached


def test_reliable_checkpoints_in_a_directory(spark: SparkSession, tmp_path: Path) -> None:
    n = 32
    labels = shuffled_labels(n, seed=8)
    edges: list[Edge] = [(labels[i], labels[i + 1]) for i in range(n - 1)]
    result = connected_components(edges_df(spark, edges), str(tmp_path), checkpoint_every=2)
    try:
        assert str(tmp_path) in (spark.sparkContext.getCheckpointDir() or "")
        assert_labels(result, dict.fromkeys(range(n), 0))
        assert result.iterations >= 3  # so intermediate checkpoints were written and removed
        # only the result's checkpoint is left while the result is in use
        assert len(list(tmp_path.glob("*/rdd-*"))) == 1
    finally:
        result.unpersist()
    assert list(tmp_path.glob("*/rdd-*")) == []
    result.unpersist()  # idempotent


def test_correct_when_cached_rounds_are_not_reused(spark: SparkSession, tmp_path: Path) -> None:
    """Without adaptive execution Spark misses some caches over checkpoints and recomputes.

    Cached rounds between reliable checkpoints must then still find their lineage.
    """
    labels = shuffled_labels(24, seed=4)
    edges: list[Edge] = [(labels[i], labels[i + 1]) for i in range(23)]
    adaptive = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        df = edges_df(spark, edges)
        with connected_components(df, str(tmp_path), checkpoint_every=2) as result:
            assert result.iterations >= 4  # a reliable checkpoint, then cached rounds after it
            assert_labels(result, dict.fromkeys(range(24), 0))
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)
