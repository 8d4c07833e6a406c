"""The identity stage: silver records → master customer IDs, links, golden records, metrics.

Steps (each a DataFrame transform from the modules beside this one; reads and writes here):

1. identity records of every source in ``conf/identity.yaml`` (:mod:`.records`);
2. person records get their vault values (in memory only), the Fellegi–Sunter model is
   estimated from them (:mod:`.linker`) and every candidate pair is scored;
3. records are clustered (:mod:`.graph`) and clusters get stable master IDs (:mod:`.stable_ids`);
4. golden records are chosen (:mod:`.golden`);
5. tables are written, and the quality report against the generator's ground truth, when
   present (:mod:`.quality`).

Tables: ``identity.master_members`` (record → master ID), ``identity.identifier_map``
(identifier value → master ID, for later stages), ``identity.match_links`` (scored matches with
per-field evidence), ``identity.identifier_links`` (which identifiers linked which records),
``identity.master_aliases``, ``identity.master_lineage``, ``identity.golden_records``,
``identity.noisy_identifiers``; ``ops.identity_metrics`` and ``ops.identity_models`` (one row per
run, appended idempotently). Re-running on unchanged silver gives the same master IDs.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io, fs
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.config import EnvironmentConfig
from profilehouse.errors import SchemaError
from profilehouse.identity import linker, quality
from profilehouse.identity.golden import build_golden_records
from profilehouse.identity.graph import cluster_records, node_id_expr
from profilehouse.identity.records import (
    RECORD_ID,
    identifier_values,
    person_attributes,
    record_list,
    truth_keys,
    with_vault_values,
)
from profilehouse.identity.settings import IdentitySettings, load_identity_settings
from profilehouse.identity.stable_ids import assign_master_ids
from profilehouse.ingest.silver import vault_table

_LEVEL = StorageLevel.MEMORY_AND_DISK


def identity_table(catalog: TableCatalog, name: str) -> TableRef:
    return catalog.table(Layer.IDENTITY, name)


def metrics_table(catalog: TableCatalog) -> TableRef:
    return catalog.table(Layer.OPS, "identity_metrics")


@dataclass
class IdentityResult:
    run_id: str
    figures: dict


def _union(frames: list[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _silver(spark: SparkSession, catalog: TableCatalog, name: str) -> DataFrame:
    ref = catalog.table(Layer.SILVER, name)
    if not delta_io.table_exists(spark, ref):
        raise SchemaError(
            f"identity: conf/identity.yaml names source {name!r} but silver table "
            f"{ref.qualified_name} does not exist at {ref.location}; run the silver stage first"
        )
    return delta_io.read_table(spark, ref)


def load_identity_inputs(
    spark: SparkSession, catalog: TableCatalog, settings: IdentitySettings
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame | None]:
    """(records, identifiers, person records with vault values, truth keys or None)."""
    records, identifiers, persons, truths = [], [], [], []
    vault = delta_io.read_table(spark, vault_table(catalog))
    for name, source in settings.records.items():
        silver = _silver(spark, catalog, name)
        records.append(record_list(silver, name, source))
        identifiers.append(identifier_values(silver, name, source, settings))
        if source.role == "person":
            attrs = person_attributes(silver, name, source)
            persons.append(with_vault_values(attrs, vault, source))
        keys = truth_keys(silver, name, source)
        if keys is not None:
            truths.append(keys)
    return (
        _union(records),
        _union(identifiers),
        _union(persons),
        _union(truths) if truths else None,
    )


def score_person_matches(
    persons: DataFrame, settings: IdentitySettings
) -> tuple[DataFrame, DataFrame, linker.TrainingReport]:
    """(scored candidate pairs with record IDs, oversize blocks, training report)."""
    keyed = persons.withColumn(linker.UID, node_id_expr(F.col(RECORD_ID)))
    report = linker.train(keyed, settings.linkage)
    scored, oversize = linker.score_pairs(keyed, settings.linkage, report.model)
    ids = keyed.select(linker.UID, RECORD_ID)
    named = scored.join(
        ids.withColumnRenamed(linker.UID, "uid_l").withColumnRenamed(RECORD_ID, "record_id_l"),
        "uid_l",
    ).join(
        ids.withColumnRenamed(linker.UID, "uid_r").withColumnRenamed(RECORD_ID, "record_id_r"),
        "uid_r",
    )
    return named, oversize, report


def _previous_members(spark: SparkSession, catalog: TableCatalog) -> DataFrame | None:
    ref = identity_table(catalog, "master_members")
    if not delta_io.table_exists(spark, ref):
        return None
    return delta_io.read_table(spark, ref).select(F.col(RECORD_ID).alias("record_key"), "master_id")


def _staged(spark: SparkSession, catalog: TableCatalog, name: str, df: DataFrame) -> DataFrame:
    """Write ``df`` as ``identity.<name>`` (overwrite) and read it back (lineage cut)."""
    ref = identity_table(catalog, name)
    delta_io.write_table(df, ref, overwrite_schema=True)
    return delta_io.read_table(spark, ref)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def run_identity_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None = None,
    run_id: str | None = None,
    truth_uri: str | None = None,
    progress: Callable[[str], None] = print,
) -> IdentityResult:
    """Resolve every identity record to a master customer ID and write the identity tables."""
    started = time.perf_counter()
    catalog = TableCatalog(env.warehouse_uri)
    settings = load_identity_settings(conf_dir)
    run_id = run_id or _now().strftime("%Y%m%dT%H%M%SZ")
    records, identifiers, persons, truths = load_identity_inputs(spark, catalog, settings)
    # records without any identifier (an anonymous receipt) are nobody's: not identity records
    records = records.join(identifiers.select(RECORD_ID).distinct(), RECORD_ID, "left_semi")
    # Inputs of the graph go through Delta: the plans the clustering iterates on stay small,
    # and a crashed run restarts from clean tables.
    records = _staged(spark, catalog, "records", records)
    identifiers = _staged(spark, catalog, "record_identifiers", identifiers)
    persons = persons.persist(_LEVEL)  # holds vault values: memory only, never written
    scored, oversize, training = score_person_matches(persons, settings)
    scored = _staged(spark, catalog, "scored_pairs", scored)
    oversize = _staged(spark, catalog, "oversize_blocks", oversize)
    matches = scored.where(F.col("match_probability") >= settings.linkage.match_threshold)
    progress(
        f"  linkage: {training.candidate_pairs:,} candidate pairs, prior "
        f"{training.model.prior:.4f}, {matches.count():,} matches"
    )
    clustering = cluster_records(
        records, identifiers, matches, settings, catalog.checkpoint_dir("identity")
    )
    assignment = assign_master_ids(
        clustering.clusters.select(F.col(RECORD_ID).alias("record_key"), "cluster_id"),
        _previous_members(spark, catalog),
        run_id,
    )
    members = (
        assignment.members.withColumnRenamed("record_key", RECORD_ID)
        .join(clustering.clusters.select(RECORD_ID, "role", "how"), RECORD_ID)
        .join(records.select(RECORD_ID, "source", "updated_at"), RECORD_ID)
        .withColumn("run_id", F.lit(run_id))
        .persist(_LEVEL)
    )
    golden = build_golden_records(
        persons.join(members.select(RECORD_ID, "master_id"), RECORD_ID), settings.golden_record
    )
    figures = dict(clustering.figures)
    figures |= {
        "records": members.count(),
        "person_record_count": persons.count(),
        "candidate_pairs": training.candidate_pairs,
        "matches": matches.count(),
        "oversize_blocks": oversize.count(),
        "model_prior": training.model.prior,
        "em_iterations": training.model.em_iterations,
    }
    figures["comparisons_per_person_record"] = round(
        training.candidate_pairs / max(figures["person_record_count"], 1), 2
    )
    _write_outputs(spark, catalog, members, scored, matches, clustering, assignment, golden)
    if truths is not None and truth_uri and fs.path_exists(spark, f"{truth_uri}/records"):
        report = quality.evaluate(
            spark,
            members.select(RECORD_ID, "master_id", "role", "how"),
            truths,
            truth_uri,
            scored.select("record_id_l", "record_id_r"),
            identifiers,
            persons.select(RECORD_ID),
            [k for k, spec in settings.identifiers.items() if spec.trust == "strong"],
        )
        figures |= report
        progress(quality.format_report(report))
    figures["seconds"] = round(time.perf_counter() - started, 2)
    _append_metrics(spark, catalog, run_id, figures, training.model.to_json())
    for df in (persons, members):
        df.unpersist()
    clustering.unpersist()
    assignment.unpersist()
    return IdentityResult(run_id, figures)


def _write_outputs(
    spark: SparkSession,
    catalog: TableCatalog,
    members: DataFrame,
    scored: DataFrame,
    matches: DataFrame,
    clustering,
    assignment,
    golden: DataFrame,
) -> None:
    """Overwrite the current-state tables; append aliases and lineage."""

    def overwrite(name: str, df: DataFrame) -> None:
        delta_io.write_table(df, identity_table(catalog, name), overwrite_schema=True)

    overwrite("master_members", members)
    identifier_map = (
        clustering.evidence.join(members.select(RECORD_ID, "master_id"), RECORD_ID)
        .groupBy("kind", "value", "master_id")
        .agg(F.countDistinct(RECORD_ID).alias("records"))
    )
    overwrite("identifier_map", identifier_map)

    def as_map(prefix: str, cast: str) -> F.Column:
        entries = [
            F.struct(F.lit(c[len(prefix) :]).alias("k"), F.col(c).cast(cast).alias("v"))
            for c in scored.columns
            if c.startswith(prefix)
        ]
        return F.map_from_entries(F.array(*entries))

    links = matches.select(
        "record_id_l",
        "record_id_r",
        "match_weight",
        "match_probability",
        as_map("bf_", "double").alias("weights"),
        as_map("gamma_", "int").alias("levels"),
        "rule",
    )
    overwrite("match_links", links)
    overwrite("identifier_links", clustering.evidence)
    overwrite("noisy_identifiers", clustering.noise)
    overwrite("golden_records", golden)
    delta_io.write_table(
        assignment.aliases, identity_table(catalog, "master_aliases"), mode="append"
    )
    delta_io.write_table(
        assignment.lineage, identity_table(catalog, "master_lineage"), mode="append"
    )


_METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
        T.StructField("figures", T.StringType(), False),
        T.StructField("model", T.StringType(), False),
    ]
)


def _append_metrics(
    spark: SparkSession, catalog: TableCatalog, run_id: str, figures: dict, model: str
) -> None:
    row = [(run_id, _now(), json.dumps(figures, default=str), model)]
    delta_io.write_table(
        spark.createDataFrame(row, _METRICS_SCHEMA).coalesce(1),
        metrics_table(catalog),
        mode="append",
    )
