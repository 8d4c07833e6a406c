"""Why records share a master ID: every link of one master customer with its evidence.

    explain_master(spark, catalog, "MC0123…").show(truncate=False)

One row per piece of evidence among the master's records:

- ``match``: a probabilistic match between two person records, with its match probability,
  weight and the level and weight of every compared field (``detail``);
- ``strong_identifier`` / ``medium_identifier``: an identifier value (a token or a clear key,
  never raw PII) held by this record and at least one other record of the same master;
- ``ignored:<reason>``: a value the record holds that linked nothing (``max_records``,
  ``conflicting_holders``, ``shared_by_persons``) — why the record is *not* with others.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.tables import identity_table


def _table(spark: SparkSession, catalog: TableCatalog, name: str) -> DataFrame:
    return delta_io.read_table(spark, identity_table(catalog, name))


def _value_evidence(held: DataFrame, evidence: Column) -> DataFrame:
    """Evidence rows of identifier values held by records (no other record, score or detail)."""
    return held.select(
        evidence.alias("evidence"),
        "record_id",
        F.lit(None).cast("string").alias("other"),
        "kind",
        "value",
        F.lit(None).cast("double").alias("score"),
        F.lit(None).cast("string").alias("detail"),
    )


def explain_master(spark: SparkSession, catalog: TableCatalog, master_id: str) -> DataFrame:
    """Evidence rows (evidence, record_id, other, kind, value, score, detail) of one master."""
    members = _table(spark, catalog, "master_members").where(F.col("master_id") == master_id)
    ids = members.select("record_id")
    matches = (
        _table(spark, catalog, "match_links")
        .join(ids.withColumnRenamed("record_id", "record_id_l"), "record_id_l", "left_semi")
        .select(
            F.lit("match").alias("evidence"),
            F.col("record_id_l").alias("record_id"),
            F.col("record_id_r").alias("other"),
            F.lit(None).cast("string").alias("kind"),
            F.lit(None).cast("string").alias("value"),
            F.col("match_probability").alias("score"),
            F.to_json(F.struct("match_weight", "levels", "weights")).alias("detail"),
        )
    )
    held = _table(spark, catalog, "identifier_links").join(ids, "record_id", "left_semi")
    shared = held.groupBy("value").agg(F.count(F.lit(1)).alias("holders")).where("holders > 1")
    identifiers = _value_evidence(held.join(shared, "value", "left_semi"), F.col("evidence"))
    noise = _table(spark, catalog, "noisy_identifiers").select("value", "reason").distinct()
    held_noise = (
        _table(spark, catalog, "record_identifiers")
        .join(ids, "record_id", "left_semi")
        .join(noise, "value")
    )
    ignored = _value_evidence(held_noise, F.concat(F.lit("ignored:"), "reason"))
    return matches.unionByName(identifiers).unionByName(ignored)
