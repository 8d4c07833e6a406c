"""Stable master IDs: inheritance by greedy maximum overlap, merges, splits, ties, one-to-one."""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import SchemaError
from profilehouse.identity.stable_ids import (
    MASTER_ID_PATTERN,
    MasterIdAssignment,
    assign_master_ids,
)

Assign = Callable[[DataFrame, DataFrame | None, str], MasterIdAssignment]

MEMBERS_SCHEMA = "record_key string, master_id string"
ALIASES_SCHEMA = "retired_id string, surviving_id string, reason string, run_id string"
LINEAGE_SCHEMA = "master_id string, event string, from_ids array<string>, run_id string"


@pytest.fixture
def assign() -> Iterator[Assign]:
    """assign_master_ids, releasing every assignment's cache when the test ends."""
    made: list[MasterIdAssignment] = []

    def run(clusters: DataFrame, previous: DataFrame | None, run_id: str) -> MasterIdAssignment:
        made.append(assign_master_ids(clusters, previous, run_id))
        return made[-1]

    yield run
    for assignment in made:
        assignment.unpersist()


def keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def clusters_df(spark: SparkSession, clusters: dict[int, list[str]]) -> DataFrame:
    rows = [(key, cid) for cid, members in clusters.items() for key in members]
    return spark.createDataFrame(rows, "record_key string, cluster_id long")


def previous_df(spark: SparkSession, masters: dict[str, list[str]]) -> DataFrame:
    rows = [(key, mid) for mid, members in masters.items() for key in members]
    return spark.createDataFrame(rows, MEMBERS_SCHEMA)


def new_id(run_id: str, cluster_id: int) -> str:
    """The documented format, computed independently of Spark."""
    return "MC" + hashlib.sha256(f"{run_id}:{cluster_id}".encode()).hexdigest()[:20]


def members_of(assignment: MasterIdAssignment) -> dict[str, str]:
    return {r.record_key: r.master_id for r in assignment.members.collect()}


def aliases_of(assignment: MasterIdAssignment) -> set[tuple[str, str, str, str]]:
    return {tuple(r) for r in assignment.aliases.collect()}


def lineage_of(assignment: MasterIdAssignment) -> dict[str, tuple[str, list[str], str]]:
    """master_id → (event, from_ids, run_id), checking there is one row per master ID."""
    rows = assignment.lineage.collect()
    lineage = {r.master_id: (r.event, list(r.from_ids), r.run_id) for r in rows}
    assert len(lineage) == len(rows)
    return lineage


def expected(spark: SparkSession, schema: str, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def assert_equal(actual: DataFrame, wanted: DataFrame) -> None:
    assert_df_equality(actual, wanted, ignore_row_order=True, ignore_nullable=True)


# --- first run, determinism, unchanged persons ----------------------------------------------------


def test_first_run_gives_distinct_opaque_ids_of_the_documented_format(
    spark: SparkSession, assign: Assign
) -> None:
    # record keys are never IDs, even keys shaped like IDs or equal to the hashed cluster id
    groups = {1: keys("a", 3), 2: keys("b", 2), 3: [new_id("", 3)], 40: ["MC" + "0" * 20]}
    result = assign(clusters_df(spark, groups), None, "r1")

    members = members_of(result)
    assert sorted(members) == sorted(k for ks in groups.values() for k in ks)
    for cid, ks in groups.items():
        assert {members[k] for k in ks} == {new_id("r1", cid)}
    ids = set(members.values())
    assert len(ids) == len(groups)
    assert all(re.fullmatch(MASTER_ID_PATTERN, i) for i in ids)
    assert not ids & set(members)
    assert result.members.schema.simpleString() == "struct<record_key:string,master_id:string>"
    assert result.aliases.schema.simpleString() == (
        "struct<retired_id:string,surviving_id:string,reason:string,run_id:string>"
    )
    assert result.lineage.schema.simpleString() == (
        "struct<master_id:string,event:string,from_ids:array<string>,run_id:string>"
    )
    assert aliases_of(result) == set()
    assert lineage_of(result) == {i: ("new", [], "r1") for i in ids}


def test_same_input_gives_identical_ids_recomputed_or_inherited_by_a_later_run(
    spark: SparkSession, assign: Assign
) -> None:
    clusters = clusters_df(spark, {1: keys("a", 3), 2: keys("b", 2), 3: keys("c", 1)})
    first = assign(clusters, None, "r1")
    first_ids = members_of(first)
    again = assign(clusters.repartition(3), None, "r1")
    assert members_of(again) == first_ids

    # the next run (another run id, renumbered clusters) inherits every ID unchanged
    renumbered = clusters_df(spark, {7: keys("c", 1), 8: keys("b", 2), 9: keys("a", 3)})
    second = assign(renumbered, first.members, "r2")
    assert_equal(second.members, first.members)
    assert aliases_of(second) == set()
    assert lineage_of(second) == {i: ("kept", [i], "r2") for i in set(first_ids.values())}


def test_unchanged_persons_keep_ids_when_records_and_clusters_come_and_go(
    spark: SparkSession, assign: Assign
) -> None:
    previous = previous_df(
        spark, {"MA": keys("a", 3), "MB": keys("b", 2), "MC": keys("c", 2), "MZ": keys("z", 4)}
    )
    # a new record joins A, a new cluster appears, C loses a record, every record of MZ is gone
    clusters = clusters_df(
        spark, {10: [*keys("a", 3), "a-new"], 20: keys("b", 2), 30: keys("n", 2), 40: ["c1"]}
    )
    result = assign(clusters, previous, "r2")

    fresh = new_id("r2", 30)
    rows = [(k, "MA") for k in [*keys("a", 3), "a-new"]] + [("c1", "MC")]
    rows += [(k, "MB") for k in keys("b", 2)] + [(k, fresh) for k in keys("n", 2)]
    assert_equal(result.members, expected(spark, MEMBERS_SCHEMA, rows))
    assert aliases_of(result) == set()  # MZ vanished: not an alias
    assert lineage_of(result) == {
        "MA": ("kept", ["MA"], "r2"),
        "MB": ("kept", ["MB"], "r2"),
        "MC": ("kept", ["MC"], "r2"),
        fresh: ("new", [], "r2"),
    }


# --- merges, splits, ties, greedy order ---------------------------------------------------------


def test_merge_keeps_the_larger_masters_id_and_aliases_the_other(
    spark: SparkSession, assign: Assign
) -> None:
    # the larger master has the larger ID, so overlap (not the tie-break) decides
    previous = previous_df(spark, {"M9": keys("big", 3), "M1": keys("small", 2)})
    clusters = clusters_df(spark, {7: [*keys("big", 3), *keys("small", 2), "new0"]})
    result = assign(clusters, previous, "r2")

    assert set(members_of(result).values()) == {"M9"}
    assert_equal(result.aliases, expected(spark, ALIASES_SCHEMA, [("M1", "M9", "merged", "r2")]))
    assert lineage_of(result) == {"M9": ("merged", ["M9", "M1"], "r2")}


def test_split_keeps_the_id_on_the_larger_part_and_gives_the_smaller_a_new_id(
    spark: SparkSession, assign: Assign
) -> None:
    previous = previous_df(spark, {"M1": keys("p", 5)})
    clusters = clusters_df(spark, {1: ["p0", "p1"], 2: ["p2", "p3", "p4"]})
    result = assign(clusters, previous, "r2")

    part = new_id("r2", 1)
    assert members_of(result) == {"p0": part, "p1": part, "p2": "M1", "p3": "M1", "p4": "M1"}
    assert aliases_of(result) == set()
    assert_equal(
        result.lineage,
        expected(
            spark,
            LINEAGE_SCHEMA,
            [("M1", "kept", ["M1"], "r2"), (part, "split", ["M1"], "r2")],
        ),
    )


def test_ties_are_broken_by_the_smaller_master_id_then_the_smaller_cluster_id(
    spark: SparkSession, assign: Assign
) -> None:
    previous = previous_df(spark, {"M2": keys("x", 2), "M1": keys("y", 2), "M3": keys("s", 4)})
    groups = {5: [*keys("x", 2), *keys("y", 2)], 9: ["s0", "s1"], 8: ["s2", "s3"]}
    # M2 and cluster 9 come first in the input, which is scattered too: order must not decide
    clusters = clusters_df(spark, groups).repartition(4, "record_key")
    result = assign(clusters, previous.repartition(4, "record_key"), "r2")

    ids = members_of(result)
    assert ids["x0"] == ids["y0"] == "M1"  # 2 vs 2: the smaller master ID survives
    assert ids["s2"] == "M3"  # 2 vs 2: the smaller cluster id keeps the ID
    assert ids["s0"] == new_id("r2", 9)
    assert aliases_of(result) == {("M2", "M1", "merged", "r2")}
    assert lineage_of(result) == {
        "M1": ("merged", ["M1", "M2"], "r2"),
        "M3": ("kept", ["M3"], "r2"),
        new_id("r2", 9): ("split", ["M3"], "r2"),
    }


def test_largest_overlap_first_beats_per_cluster_argmax_along_a_chain(
    spark: SparkSession, assign: Assign
) -> None:
    # overlaps: B-M1 6, A-M1 5, A-M2 4, C-M2 3, C-M3 2. Per-cluster argmax would give A and B
    # both M1 and C M2; greedy takes B-M1, then A-M2 (A-M1 is blocked), then C-M3: three rounds.
    a, b, c = 1, 2, 3
    overlaps = [(b, "M1", 6), (a, "M1", 5), (a, "M2", 4), (c, "M2", 3), (c, "M3", 2)]
    clusters: dict[int, list[str]] = {}
    masters: dict[str, list[str]] = {}
    for cid, mid, n in overlaps:
        records = keys(f"{cid}{mid}-", n)
        clusters.setdefault(cid, []).extend(records)
        masters.setdefault(mid, []).extend(records)
    result = assign(clusters_df(spark, clusters), previous_df(spark, masters), "r2")

    ids = members_of(result)
    assert {cid: {ids[k] for k in ks} for cid, ks in clusters.items()} == {
        b: {"M1"},
        a: {"M2"},
        c: {"M3"},
    }
    assert aliases_of(result) == set()
    assert lineage_of(result) == {m: ("kept", [m], "r2") for m in ("M1", "M2", "M3")}


# --- one-to-one at scale -------------------------------------------------------------------------


def random_reclustering(seed: int) -> tuple[dict[str, str], dict[str, int]]:
    """previous record → master and new record → cluster: merges, splits, moves, adds, drops."""
    rng = random.Random(seed)
    n_masters = 600
    previous = {f"r{i}": f"M{rng.randrange(n_masters):04d}" for i in range(3000)}
    merged_into = {m: rng.randrange(n_masters) for m in range(n_masters) if rng.random() < 0.1}
    split = {m for m in range(n_masters) if rng.random() < 0.1}
    clusters: dict[str, int] = {}
    for key, master in previous.items():
        m = int(master[1:])
        if rng.random() < 0.03:
            continue  # dropped
        base = merged_into.get(m, m)
        if m in split and rng.random() < 0.4:
            base = m + 10_000
        if rng.random() < 0.05:
            base = rng.randrange(n_masters + 100)
        clusters[key] = base * 7 + 3
    for i in range(300):
        clusters[f"new{i}"] = rng.randrange(n_masters + 150) * 7 + 3
    return previous, clusters


def greedy_reference(previous: dict[str, str], clusters: dict[str, int]) -> dict[int, str]:
    """cluster → inherited master, by the sequential greedy the Spark rounds must equal."""
    overlaps = Counter((cid, previous[k]) for k, cid in clusters.items() if k in previous)
    matched: dict[int, str] = {}
    taken_masters: set[str] = set()
    for (cid, mid), _ in sorted(overlaps.items(), key=lambda e: (-e[1], e[0][1], e[0][0])):
        if cid not in matched and mid not in taken_masters:
            matched[cid] = mid
            taken_masters.add(mid)
    return matched


def test_random_reclustering_is_one_to_one_and_equals_sequential_greedy(
    spark: SparkSession, assign: Assign
) -> None:
    previous, clusters = random_reclustering(seed=20251231)
    clusters_frame = spark.createDataFrame(
        list(clusters.items()), "record_key string, cluster_id long"
    )
    previous_frame = spark.createDataFrame(list(previous.items()), MEMBERS_SCHEMA)
    result = assign(clusters_frame, previous_frame, "r2")

    pairs = result.members.join(clusters_frame, "record_key").select("cluster_id", "master_id")
    per_master = pairs.groupBy("master_id").agg(F.countDistinct("cluster_id").alias("n"))
    per_cluster = pairs.groupBy("cluster_id").agg(F.countDistinct("master_id").alias("n"))
    assert per_master.filter("n > 1").count() == 0
    assert per_cluster.filter("n > 1").count() == 0
    assert result.members.count() == len(clusters)

    reference = greedy_reference(previous, clusters)
    got = {r.cluster_id: r.master_id for r in pairs.distinct().collect()}
    assert got == {cid: reference.get(cid, new_id("r2", cid)) for cid in set(clusters.values())}

    # each unmatched old master is absorbed by the cluster holding most of it (ties: smaller id)
    overlaps = Counter((previous[k], cid) for k, cid in clusters.items() if k in previous)
    heirs: dict[str, tuple[int, int]] = {}
    for (mid, cid), n in overlaps.items():
        if mid not in reference.values():
            heirs[mid] = min(heirs.get(mid, (-n, cid)), (-n, cid))
    assert heirs, "the random case should contain merges"
    aliases = result.aliases.collect()
    assert len(aliases) == len(heirs)
    assert {a.retired_id: a.surviving_id for a in aliases} == {
        mid: reference[cid] for mid, (_, cid) in heirs.items()
    }

    lineage = result.lineage.collect()
    assert sorted(r.master_id for r in lineage) == sorted(got.values())
    events = Counter(r.event for r in lineage)
    assert events["kept"] + events["merged"] == len(reference)
    assert events["merged"] == len({a.surviving_id for a in aliases})
    assert events["split"] > 0
    assert events["new"] > 0


def test_missing_columns_and_empty_run_id_are_rejected(spark: SparkSession) -> None:
    clusters = clusters_df(spark, {1: ["a"]})
    with pytest.raises(SchemaError, match="cluster_id"):
        assign_master_ids(clusters.drop("cluster_id"), None, "r1")
    with pytest.raises(SchemaError, match="master_id"):
        assign_master_ids(clusters, clusters, "r1")
    with pytest.raises(ValueError, match="run_id"):
        assign_master_ids(clusters, None, "")
