"""The identity stage end to end on the generator's SF 0.01 data (real Spark + Delta): every
record gets one master ID, quality is measured against the ground truth, a re-run keeps every
master ID, and no raw PII reaches the identity tables."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.identity.explain import explain_master
from profilehouse.identity.stable_ids import MASTER_ID_PATTERN
from profilehouse.identity.stage import IdentityResult, identity_table, run_identity_stage
from profilehouse.ingest.silver import vault_table
from tests.conftest import FirstResolution, Generated, Ingested


@dataclass(frozen=True)
class Resolved:
    first: IdentityResult
    first_members: list
    second: IdentityResult


@pytest.fixture(scope="module")
def resolved(
    generated: Generated, ingested: Ingested, first_resolution: FirstResolution, spark: SparkSession
) -> Resolved:
    env = ingested.env.model_copy(update={"truth": generated.truth})
    second = run_identity_stage(spark, env, run_id="run-2", truth_uri=generated.truth)
    return Resolved(first_resolution.result, first_resolution.members, second)


def test_every_record_has_one_opaque_master_id(spark, ingested, resolved):
    members = delta_io.read_table(spark, identity_table(ingested.catalog, "master_members"))
    assert members.count() == members.select("record_id").distinct().count() > 0
    assert members.where(~F.col("master_id").rlike(MASTER_ID_PATTERN)).count() == 0


def test_quality_against_ground_truth(resolved):
    figures = resolved.first.figures
    for key in ("precision", "recall", "f1", "blocking_recall", "clusters", "largest_cluster"):
        assert key in figures, key
    assert figures["person_records"]["precision"] >= 0.98
    assert figures["person_records"]["recall"] >= 0.9
    assert figures["blocking_recall"] >= 0.98
    # leaving out records nothing could link can only raise recall
    assert figures["with_evidence"]["recall"] >= figures["recall"]
    assert figures["records_without_evidence"] > 0
    assert figures["recall"] <= figures["recall_ceiling"] < 1


def test_a_rerun_keeps_every_master_id(spark, ingested, resolved):
    members = delta_io.read_table(spark, identity_table(ingested.catalog, "master_members"))
    now = {r["record_id"]: r["master_id"] for r in members.collect()}
    before = {r["record_id"]: r["master_id"] for r in resolved.first_members}
    assert now == before


def test_no_raw_pii_in_identity_tables(spark, ingested, resolved):
    vault = delta_io.read_table(spark, vault_table(ingested.catalog)).select("value").distinct()
    for name in ("master_members", "golden_records", "match_links", "identifier_map"):
        table = delta_io.read_table(spark, identity_table(ingested.catalog, name))
        strings = [f.name for f in table.schema.fields if f.dataType.simpleString() == "string"]
        for column in strings:
            leaked = table.select(F.col(column).alias("value")).join(vault, "value")
            assert leaked.limit(1).count() == 0, f"{name}.{column} holds raw PII"


def test_golden_records_one_per_anchored_master(spark, ingested, resolved):
    golden = delta_io.read_table(spark, identity_table(ingested.catalog, "golden_records"))
    assert golden.count() == golden.select("master_id").distinct().count()
    assert golden.count() == resolved.first.figures["anchored_clusters"]


def test_every_record_of_a_multi_record_master_is_explained(spark, ingested, resolved):
    members = delta_io.read_table(spark, identity_table(ingested.catalog, "master_members"))
    sizes = members.groupBy("master_id").count().where("count > 1")
    with_match = (
        delta_io.read_table(spark, identity_table(ingested.catalog, "match_links"))
        .join(members.withColumnRenamed("record_id", "record_id_l"), "record_id_l")
        .select("master_id")
    )
    picked = [
        r["master_id"] for r in sizes.join(with_match, "master_id").distinct().limit(3).collect()
    ]
    picked += [r["master_id"] for r in sizes.orderBy(F.desc("count")).limit(2).collect()]
    assert len(picked) == 5
    for master_id in picked:
        evidence = explain_master(spark, ingested.catalog, master_id).where(
            ~F.col("evidence").startswith("ignored:")
        )
        explained = {r["record_id"] for r in evidence.collect()} | {
            r["other"] for r in evidence.collect() if r["other"]
        }
        records = {r["record_id"] for r in members.where(F.col("master_id") == master_id).collect()}
        assert records <= explained, master_id
    assert (
        explain_master(spark, ingested.catalog, picked[0]).where("evidence = 'match'").count() > 0
    )


def test_explanations_name_the_values_that_linked_nothing(spark, ingested, resolved):
    noise = delta_io.read_table(spark, identity_table(ingested.catalog, "noisy_identifiers"))
    held = delta_io.read_table(spark, identity_table(ingested.catalog, "record_identifiers"))
    members = delta_io.read_table(spark, identity_table(ingested.catalog, "master_members"))
    row = (
        held.join(noise.select("value", "reason"), "value")
        .join(members, "record_id")
        .select("master_id", "value", "reason")
        .first()
    )
    assert row is not None, "the SF 0.01 data has noisy values (till mobiles, family mobiles)"
    evidence = explain_master(spark, ingested.catalog, row["master_id"])
    ignored = evidence.where(F.col("value") == row["value"]).select("evidence").collect()
    assert f"ignored:{row['reason']}" in {r["evidence"] for r in ignored}
