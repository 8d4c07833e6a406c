"""Clustering identity records into persons: noise guards, two linking phases, components.

Phase 1 links records by **strong** identifiers (national ID, customer/member numbers, openids,
devices, ...) and by **probabilistic matches** between person records; connected components of
that graph are the phase-1 clusters. A cluster holding at least one person record is *anchored*.

Phase 2 uses **medium** identifiers (mobile, e-mail), which families share:

- a value held by person records of two or more phase-1 clusters (a family mobile) links
  nothing and is reported (``shared_by_persons``);
- unanchored clusters (e.g. an e-commerce buyer's orders, receipts with a typed mobile) are
  grouped by the medium values no person holds; a group reaching exactly one anchored cluster
  through values that cluster alone holds joins it; a group reaching several stays on its own
  (reported as ``ambiguous_attachment``); anchored clusters are never merged in phase 2.

Before either phase, an identifier value held by more than its kind's ``max_records`` records of
one source is noise (a store's default till mobile): reported, never used to link.

Node ids are 64-bit hashes of the record ID or the namespaced identifier value; a collision is
detected (one aggregate) and raised rather than silently merging two nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.errors import ProfilehouseError
from profilehouse.identity.components import StoredFrames, components_with_isolated
from profilehouse.identity.records import RECORD_ID
from profilehouse.identity.settings import IdentitySettings


class NodeIdCollisionError(ProfilehouseError):
    """Two distinct record IDs or identifier values hashed to the same node id."""


def node_id_expr(key: Column) -> Column:
    """64-bit node id of a record ID or namespaced identifier value."""
    return F.xxhash64(key)


@dataclass(frozen=True)
class PreviousClusters:
    """The previous run's phase-1 clusters and the records whose links may have changed since.

    ``clusters``: ``(record_id, c1)``; ``dirty``: ``(record_id)`` — every record that is new,
    changed or gone, holds a value whose noise status changed, or is an end of a match that
    appeared, disappeared or was re-scored. A previous cluster without dirty records kept all
    its internal links, so it is one node of the new graph, labelled by its old ``c1`` (the
    smallest node id in it, as a full run labels it); only dirty clusters are taken apart into
    records. Phase 1 then costs in proportion to the change, and its clusters and labels equal
    a full run's.
    """

    clusters: DataFrame
    dirty: DataFrame


def _contracted_graph(
    record_nodes: DataFrame,
    strong: DataFrame,
    matched: DataFrame,
    previous: PreviousClusters,
    keep,
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(nodes, edges, label) of phase 1 with clean previous clusters as single nodes.

    ``label``: ``(node, at)`` — the graph node each record's node stands for (its clean
    cluster's ``c1``, or itself when its cluster was taken apart or it is new).
    """
    touched = previous.clusters.join(previous.dirty, RECORD_ID, "left_semi").select("c1")
    clean = previous.clusters.join(touched.distinct(), "c1", "left_anti")
    label = keep(
        record_nodes.join(clean, RECORD_ID, "left").select(
            "node", F.coalesce("c1", "node").alias("at"), F.col("c1").isNull().alias("apart")
        )
    )
    apart = label.where("apart").select(F.col("node").alias("src"))
    # every strong value an apart record holds, with all its holders (clean ones as clusters)
    values = strong.join(apart, "src", "left_semi").select("dst").distinct()
    at = label.select(F.col("node").alias("src"), "at")
    value_edges = (
        strong.join(values, "dst", "left_semi")
        .join(at, "src")
        .select(F.col("at").alias("src"), "dst")
    )
    # matches with an apart end (a match inside a clean cluster is already in its node)
    match_edges = (
        matched.join(at.withColumnRenamed("at", "at_src"), "src")
        .join(at.withColumnRenamed("src", "dst").withColumnRenamed("at", "at_dst"), "dst")
        .where(F.col("at_src") != F.col("at_dst"))
        .select(F.col("at_src").alias("src"), F.col("at_dst").alias("dst"))
    )
    nodes = label.where("apart").select("node")
    return nodes, value_edges.unionByName(match_edges), label.select("node", "at")


def _phase1_labels(
    record_nodes: DataFrame, components: DataFrame, label: DataFrame | None
) -> DataFrame:
    """``(record_id, role, c1)``: each record's phase-1 component."""
    if label is None:
        return record_nodes.join(components.withColumnRenamed("component", "c1"), "node").select(
            RECORD_ID, "role", "c1"
        )
    found = components.select(F.col("node").alias("at"), F.col("component").alias("c1"))
    # clean clusters no new link reached are not in the graph: they keep their label
    return (
        record_nodes.join(label, "node")
        .join(found, "at", "left")
        .select(RECORD_ID, "role", F.coalesce("c1", "at").alias("c1"))
    )


def _split_too_large(
    first: DataFrame,
    strong: DataFrame,
    matches: DataFrame,
    settings: IdentitySettings,
    checkpoint_dir: str | None,
    keep,
) -> tuple[DataFrame, int]:
    """Phase-1 clusters with more than ``max_person_records`` person records re-linked by the
    stronger evidence only (strong identifiers, matches from ``split_match_threshold``):
    ``(record_id, role, c1)`` and how many clusters were split. The parts are labelled by their
    smallest node, so the result depends only on the cluster's own links."""
    cap = settings.clusters.max_person_records
    large = keep(
        first.where(F.col("role") == "person")
        .groupBy("c1")
        .count()
        .where(F.col("count") > cap)
        .select("c1")
    )
    found = large.count()
    if found == 0:
        return first, 0
    inside = first.join(large, "c1", "left_semi").withColumn("node", node_id_expr(F.col(RECORD_ID)))
    nodes = inside.select(F.col("node").alias("src"))
    value_edges = strong.join(nodes, "src", "left_semi")
    if "match_probability" in matches.columns:
        sure = matches.where(F.col("match_probability") >= settings.clusters.split_match_threshold)
    else:
        sure = matches.limit(0)
    match_edges = (
        sure.select(
            node_id_expr(F.col("record_id_l")).alias("src"),
            node_id_expr(F.col("record_id_r")).alias("dst"),
        )
        .join(nodes, "src", "left_semi")
        .join(nodes.withColumnRenamed("src", "dst"), "dst", "left_semi")
    )
    with components_with_isolated(
        inside.select("node"),
        value_edges.unionByName(match_edges),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=settings.clusters.checkpoint_every,
    ) as parts:
        relabelled = inside.join(parts.df.withColumnRenamed("component", "part"), "node").select(
            RECORD_ID, "role", F.col("part").alias("c1")
        )
        out = keep(first.join(large, "c1", "left_anti").unionByName(relabelled))
        out.count()
    return out, found


@dataclass
class Clustering:
    """Result of :func:`cluster_records` (checkpointed DataFrames; call ``unpersist``)."""

    clusters: DataFrame  # record_id, cluster_id (long), phase ('1' anchored, '2' attached, ...)
    phase1: DataFrame  # record_id, c1: the phase-1 clusters (an incremental run's starting point)
    noise: DataFrame  # kind, value, source, records, reason
    evidence: DataFrame  # record_id, kind, value, evidence ('identifier' | 'attached')
    figures: dict
    _store: StoredFrames | None = None

    def unpersist(self) -> None:
        """Free the checkpointed intermediates (the DataFrames above must not be used after)."""
        if self._store is not None:
            self._store.release_all()


def _trust_map(settings: IdentitySettings) -> Column:
    pairs = [x for k, spec in settings.identifiers.items() for x in (F.lit(k), F.lit(spec.trust))]
    return F.create_map(*pairs)


def _cap_map(settings: IdentitySettings) -> Column:
    pairs = [
        x for k, spec in settings.identifiers.items() for x in (F.lit(k), F.lit(spec.max_records))
    ]
    return F.create_map(*pairs)


def noisy_values(identifiers: DataFrame, settings: IdentitySettings) -> DataFrame:
    """Identifier values held by more records of one source than their kind allows."""
    return (
        identifiers.groupBy("kind", "value", "source")
        .agg(F.countDistinct(RECORD_ID).alias("records"))
        .where(F.col("records") > F.element_at(_cap_map(settings), F.col("kind")))
        .withColumn("reason", F.lit("max_records"))
    )


def conflicting_values(
    records: DataFrame, identifiers: DataFrame, scored: DataFrame, settings: IdentitySettings
) -> DataFrame:
    """Strong identifier values held by two person records the linkage model calls different
    persons (``clusters.conflicting_persons`` over their scored pair): a national ID typed
    into the wrong customer, a shared device. Same columns as :func:`noisy_values`."""
    condition = settings.clusters.conflicting_persons
    strong = [k for k, spec in settings.identifiers.items() if spec.trust == "strong"]
    held = (
        identifiers.where(F.col("kind").isin(*strong))
        .join(records.where(F.col("role") == "person").select(RECORD_ID), RECORD_ID, "left_semi")
        .select(RECORD_ID, "kind", "value", "source")
    )
    if condition is None:
        return held.limit(0).select(
            "kind",
            "value",
            "source",
            F.lit(0).cast("long").alias("records"),
            F.lit("").alias("reason"),
        )
    left, right = held.alias("a"), held.alias("b")
    pairs = left.join(
        right,
        (F.col("a.value") == F.col("b.value"))
        & (F.col(f"a.{RECORD_ID}") < F.col(f"b.{RECORD_ID}")),
    ).select(
        "a.kind", "a.value", F.col(f"a.{RECORD_ID}").alias("x"), F.col(f"b.{RECORD_ID}").alias("y")
    )
    different = scored.where(F.expr(condition)).select(
        F.least("record_id_l", "record_id_r").alias("x"),
        F.greatest("record_id_l", "record_id_r").alias("y"),
    )
    values = pairs.join(different, ["x", "y"], "left_semi").select("value").distinct()
    return (
        held.join(values, "value", "left_semi")
        .groupBy("kind", "value", "source")
        .agg(F.countDistinct(RECORD_ID).alias("records"))
        .withColumn("reason", F.lit("conflicting_holders"))
    )


def _check_no_collisions(nodes: DataFrame) -> None:
    """Raise when two distinct keys share a node id (one small aggregate)."""
    clash = (
        nodes.groupBy("node").agg(F.countDistinct("key").alias("keys")).where("keys > 1").limit(1)
    ).collect()
    if clash:
        raise NodeIdCollisionError(
            f"node id {clash[0]['node']} is shared by {clash[0]['keys']} keys; "
            "re-run with a different hash salt"
        )


def cluster_records(
    records: DataFrame,
    identifiers: DataFrame,
    matches: DataFrame,
    settings: IdentitySettings,
    checkpoint_dir: str | None = None,
    previous: PreviousClusters | None = None,
    conflicts: DataFrame | None = None,
) -> Clustering:
    """Cluster ``records`` (record_id, role) by ``identifiers`` (record_id, source, kind,
    value) and probabilistic ``matches`` between person records (record_id_l, record_id_r).

    With ``previous`` (an incremental run) phase 1 only re-links what may have changed; the
    clusters are the same as without it (see :class:`PreviousClusters`). ``conflicts``
    (:func:`conflicting_values`) are values kept from linking, like noise.
    """
    store = StoredFrames(records.sparkSession, reliable=False)

    def keep(df: DataFrame) -> DataFrame:
        # A checkpoint, not persist(): later plans see a leaf instead of this whole plan, so the
        # DAG of reused intermediates never turns into an exponentially large plan tree.
        return store.checkpoint(df)

    noise = noisy_values(identifiers, settings)
    noise = keep(noise if conflicts is None else noise.unionByName(conflicts))
    usable = keep(
        identifiers.join(F.broadcast(noise.select("value").distinct()), "value", "left_anti")
        .withColumn("trust", F.element_at(_trust_map(settings), F.col("kind")))
        .withColumn("record_node", node_id_expr(F.col(RECORD_ID)))
        .withColumn("value_node", node_id_expr(F.concat(F.lit("v|"), F.col("value"))))
    )
    record_nodes = keep(
        records.select(RECORD_ID, "role").withColumn("node", node_id_expr(F.col(RECORD_ID)))
    )
    _check_no_collisions(
        record_nodes.select("node", F.col(RECORD_ID).alias("key")).unionByName(
            usable.select(F.col("value_node").alias("node"), F.col("value").alias("key"))
        )
    )

    # phase 1: strong identifiers + probabilistic matches
    strong = usable.where(F.col("trust") == "strong").select(
        F.col("record_node").alias("src"), F.col("value_node").alias("dst")
    )
    matched = matches.select(
        node_id_expr(F.col("record_id_l")).alias("src"),
        node_id_expr(F.col("record_id_r")).alias("dst"),
    )
    if previous is None:
        nodes, edges, label = record_nodes.select("node"), strong.unionByName(matched), None
    else:
        nodes, edges, label = _contracted_graph(record_nodes, strong, matched, previous, keep)
    with components_with_isolated(
        nodes,
        edges,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=settings.clusters.checkpoint_every,
    ) as phase1:
        joined = keep(_phase1_labels(record_nodes, phase1.df, label))
        joined.count()  # materialise before the components' checkpoint is released
        phase1_iterations = phase1.iterations
    first, split = _split_too_large(joined, strong, matches, settings, checkpoint_dir, keep)
    anchored = keep(first.where(F.col("role") == "person").select("c1").distinct())

    # phase 2: medium identifiers
    medium = usable.where(F.col("trust") == "medium").join(
        first.select(RECORD_ID, "c1", "role"), RECORD_ID
    )
    holders = (
        medium.where(F.col("role") == "person")
        .groupBy("value")
        .agg(F.countDistinct("c1").alias("person_clusters"), F.min("c1").alias("owner"))
    )
    shared = holders.where(F.col("person_clusters") > 1)
    owned = holders.where(F.col("person_clusters") == 1).select("value", "owner")
    loose = medium.join(anchored, "c1", "left_anti")  # records of unanchored clusters
    unowned = loose.join(holders.select("value"), "value", "left_anti")
    loose_clusters = loose.select(F.col("c1").alias("node")).distinct()
    with components_with_isolated(
        loose_clusters,
        unowned.select(F.col("c1").alias("src"), F.col("value_node").alias("dst")),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=settings.clusters.checkpoint_every,
    ) as phase2:
        groups = keep(
            phase2.df.join(loose_clusters, "node").select(
                F.col("node").alias("c1"), F.col("component").alias("group")
            )
        )
        groups.count()
        phase2_iterations = phase2.iterations
    reach = (
        loose.join(owned, "value")
        .join(groups, "c1")
        .groupBy("group")
        .agg(F.countDistinct("owner").alias("owners"), F.min("owner").alias("owner"))
    )
    attach = groups.join(reach, "group", "left").select(
        "c1",
        F.when(F.col("owners") == 1, F.col("owner")).otherwise(F.col("group")).alias("final"),
        F.when(F.col("owners") == 1, F.lit("attached"))
        .when(F.col("owners") > 1, F.lit("ambiguous_attachment"))
        .otherwise(F.lit("unattached"))
        .alias("how"),
    )
    with_usable = usable.select(RECORD_ID).distinct().withColumn("__usable", F.lit(True))
    clusters = keep(
        first.join(attach, "c1", "left")
        .join(with_usable, RECORD_ID, "left")
        .select(
            RECORD_ID,
            "role",
            F.coalesce("final", "c1").alias("cluster_id"),
            # no usable identifier left (only noise) and not a person: nothing can link it
            F.when((F.col("role") != "person") & F.col("__usable").isNull(), F.lit("unlinkable"))
            .otherwise(F.coalesce("how", F.lit("phase1")))
            .alias("how"),
        )
    )
    noise_report = keep(
        noise.unionByName(
            medium.join(shared.select("value", "person_clusters"), "value")
            .groupBy("kind", "value", "source")
            .agg(F.countDistinct(RECORD_ID).alias("records"))
            .withColumn("reason", F.lit("shared_by_persons"))
        )
    )
    evidence = usable.select(
        RECORD_ID,
        "kind",
        "value",
        F.when(F.col("trust") == "strong", F.lit("strong_identifier"))
        .otherwise(F.lit("medium_identifier"))
        .alias("evidence"),
    ).join(noise_report.select("value").distinct(), "value", "left_anti")
    figures = _clustering_figures(clusters, noise_report)
    figures |= {
        "phase1_iterations": phase1_iterations,
        "phase2_iterations": phase2_iterations,
        "split_clusters": split,
    }
    return Clustering(
        clusters, first.select(RECORD_ID, "c1"), noise_report, evidence, figures, store
    )


def _clustering_figures(clusters: DataFrame, noise: DataFrame) -> dict:
    """Counts for the run summary (two small aggregates)."""
    sizes = clusters.groupBy("cluster_id").agg(
        F.count(F.lit(1)).alias("records"),
        F.sum((F.col("role") == "person").cast("int")).alias("persons"),
    )
    row = sizes.agg(
        F.count(F.lit(1)).alias("clusters"),
        F.max("records").alias("largest_cluster"),
        F.max("persons").alias("most_person_records"),
        F.sum((F.col("persons") > 0).cast("int")).alias("anchored_clusters"),
    ).first()
    how = {r["how"]: int(r["count"]) for r in clusters.groupBy("how").count().collect()}
    reasons = {r["reason"]: int(r["count"]) for r in noise.groupBy("reason").count().collect()}
    return {
        "clusters": int(row["clusters"] or 0),
        "largest_cluster": int(row["largest_cluster"] or 0),
        "most_person_records_in_a_cluster": int(row["most_person_records"] or 0),
        "anchored_clusters": int(row["anchored_clusters"] or 0),
        "records_by_how": how,
        "noisy_values_by_reason": reasons,
    }
