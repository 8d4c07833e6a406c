"""The resolver as a library call on any table of person-like records.

    spec = load_linkage_spec("conf/linkage/febrl.yaml")
    result = resolve_records(spark, [df], spec)              # deduplicate one table
    result = resolve_records(spark, [df_a, df_b], spec)      # link two tables

A :class:`LinkageSpec` maps the file's own columns to the names the comparisons use and holds
the :class:`~profilehouse.identity.linker.LinkageSettings`; nothing is specific to our own data:
the parameters are estimated from the records themselves on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from pydantic import Field
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.config import StrictModel, load_model
from profilehouse.errors import SchemaError
from profilehouse.identity import linker
from profilehouse.identity.components import components_with_isolated
from profilehouse.identity.fellegi_sunter import FellegiSunterModel


class LinkageSpec(StrictModel):
    """A person file's column mapping plus how its records are linked."""

    id_column: str = Field(description="The file's record identifier (unique per file).")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Logical name used by the comparisons → the file's column (SQL allowed).",
    )
    linkage: linker.LinkageSettings


def load_linkage_spec(path: str | Path) -> LinkageSpec:
    """Load and validate a linkage spec YAML file (ConfigError naming file and keys)."""
    return load_model(path, LinkageSpec)


@dataclass
class Resolution:
    """Clusters ``(dataset, record_id, cluster_id)``, linked pairs and the fitted model."""

    clusters: DataFrame
    links: DataFrame
    model: FellegiSunterModel
    candidate_pairs: int
    iterations: int

    def unpersist(self) -> None:
        """Release the persisted clusters and links (once written)."""
        self.clusters.unpersist()
        self.links.unpersist()


def mapped_records(frames: list[DataFrame], spec: LinkageSpec) -> DataFrame:
    """One table: dataset index, record_id, uid and the logical columns of every frame."""
    parts = []
    for i, df in enumerate(frames):
        if spec.id_column not in df.columns:
            raise SchemaError(
                f"input {i}: id column {spec.id_column!r} missing "
                f"(present: {', '.join(df.columns)})"
            )
        columns = [F.expr(sql).alias(name) for name, sql in spec.columns.items()]
        try:
            part = df.select(
                F.lit(str(i)).alias(linker.DATASET),
                F.col(spec.id_column).cast("string").alias("record_id"),
                *columns,
            )
        except AnalysisException as exc:
            raise SchemaError(_unresolved_message(i, df, spec, exc)) from None
        parts.append(part)
    records = reduce(lambda a, b: a.unionByName(b), parts)
    return records.withColumn(linker.UID, F.xxhash64(F.concat_ws("|", linker.DATASET, "record_id")))


def _unresolved_message(i: int, df: DataFrame, spec: LinkageSpec, exc: AnalysisException) -> str:
    """One line naming the column a spec expression needs and the columns the input has."""
    present = ", ".join(df.columns)
    condition = exc.getCondition() or ""
    if condition.startswith("UNRESOLVED_COLUMN"):
        column = (exc.getMessageParameters() or {}).get("objectName", "?").strip("`")
        users = [name for name, sql in spec.columns.items() if column in sql]
        used = f" (used by columns.{', columns.'.join(users)} of the spec)" if users else ""
        return (
            f"input {i}: column {column!r}{used} missing (present: {present}); "
            "rename it in the spec's columns or in the file's header"
        )
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"input {i}: the spec's columns cannot be computed: {first} (present: {present})"


def resolve_records(
    spark: SparkSession,
    frames: list[DataFrame],
    spec: LinkageSpec,
    checkpoint_dir: str | None = None,
) -> Resolution:
    """Deduplicate one table (one frame) or link two (two frames: only cross pairs compared).

    Trains the model on the records, links pairs at or above ``match_threshold`` and clusters
    them by connected components. The returned frames are persisted (call
    ``Resolution.unpersist()`` once they are written); the records and the clusters' component
    checkpoint are released once the clusters are materialised.
    """
    if len(frames) not in (1, 2):
        raise ValueError(f"resolve_records takes one or two tables, got {len(frames)}")
    link_only = len(frames) == 2
    records = mapped_records(frames, spec).persist()
    report = linker.train(records, spec.linkage, link_only=link_only)
    scored, _oversize = linker.score_pairs(records, spec.linkage, report.model, link_only)
    links = scored.where(F.col("match_probability") >= spec.linkage.match_threshold).persist()
    edges = links.select(F.col("uid_l").alias("src"), F.col("uid_r").alias("dst"))
    with components_with_isolated(
        records.select(F.col(linker.UID).alias("node")), edges, checkpoint_dir=checkpoint_dir
    ) as components:
        clusters = (
            records.join(components.df.withColumnRenamed("node", linker.UID), linker.UID)
            .select(linker.DATASET, "record_id", F.col("component").alias("cluster_id"))
            .persist()
        )
        clusters.count()
        iterations = components.iterations
    records.unpersist()
    return Resolution(clusters, links, report.model, report.candidate_pairs, iterations)


INPUT_FORMATS = ("csv", "parquet", "json", "delta")


def read_person_file(spark: SparkSession, path: str, file_format: str | None = None) -> DataFrame:
    """A person file as a DataFrame: CSV (with a header; every column a string), Parquet, JSON
    lines or a Delta table; the format from ``file_format`` or the path's extension."""
    chosen = file_format or Path(path.rstrip("/")).suffix.lstrip(".").lower() or "delta"
    if chosen == "jsonl":
        chosen = "json"
    if chosen not in INPUT_FORMATS:
        raise SchemaError(
            f"{path}: cannot tell the file format from {chosen!r}; pass one of "
            f"{', '.join(INPUT_FORMATS)}"
        )
    reader = spark.read.format(chosen)
    if chosen == "csv":
        reader = reader.option("header", "true").option("inferSchema", "false")
        return _trimmed_header(reader.load(path), path)
    return reader.load(path)


def _trimmed_header(df: DataFrame, path: str) -> DataFrame:
    """``df`` with its CSV header names trimmed (``rec_id, given_name`` exports put a space
    after each comma), as ``ignoreLeadingWhiteSpace`` does for values; SchemaError when two
    names become equal."""
    names = [c.strip().lstrip("\ufeff").strip() for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"{path}: header names repeat once trimmed: {', '.join(dupes)}")
    return df.toDF(*names) if names != df.columns else df


def write_resolution(result: Resolution, output: str) -> dict:
    """Write ``<output>/clusters`` and ``<output>/links`` as Delta tables (overwritten: a re-run
    replaces them) and return the figures of the run."""
    result.clusters.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
        f"{output}/clusters"
    )
    result.links.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
        f"{output}/links"
    )
    sizes = result.clusters.groupBy("cluster_id").count()
    row = sizes.agg(F.count(F.lit(1)).alias("clusters"), F.max("count").alias("largest")).first()
    return {
        "records": result.clusters.count(),
        "clusters": int(row["clusters"] or 0),
        "largest_cluster": int(row["largest"] or 0),
        "candidate_pairs": result.candidate_pairs,
        "links": result.links.count(),
        "model": result.model.to_dict(),
    }
