"""The resolver as a library call on a table it knows nothing about (real Spark)."""

from __future__ import annotations

import random

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.errors import SchemaError
from profilehouse.identity.resolve import LinkageSpec, resolve_records

SPEC = LinkageSpec.model_validate(
    {
        "id_column": "ref",
        "columns": {
            "first": "lower(trim(GIVEN))",
            "last": "lower(trim(FAMILY))",
            "zip": "POSTCODE",
            "ssn": "regexp_replace(SSN, '-', '')",
        },
        "linkage": {
            "comparisons": [
                {"name": "first", "kind": "string", "column": "first", "thresholds": [1]},
                {"name": "last", "kind": "string", "column": "last", "thresholds": [1]},
                {"name": "zip", "kind": "exact", "column": "zip"},
                {"name": "ssn", "kind": "string", "column": "ssn", "thresholds": [1]},
            ],
            "blocking": [["last"], ["ssn"], ["zip"]],
            "u_sample_pairs": 20_000,
        },
    }
)

FIRST = ["anna", "ben", "carla", "dmitri", "erin", "farid", "gita", "hugo", "ines", "jon"]
LAST = ["smith", "ng", "garcia", "okafor", "meyer", "rossi", "tanaka", "silva", "kowalski", "li"]


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return word[:i] + rng.choice("aeiou") + word[i + 1 :]


def _files(n: int, seed: int) -> tuple[list, list]:
    """Two files of the same n persons (ids p<i>), the second with a typo in one field each."""
    rng = random.Random(seed)
    a, b = [], []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        zip_code, ssn = f"{rng.randrange(1000, 9999)}", f"{rng.randrange(10**8, 10**9)}"
        a.append((f"p{i}-a", first.upper(), last, zip_code, ssn))
        field = rng.randrange(3)
        b.append(
            (
                f"p{i}-b",
                _typo(first, rng) if field == 0 else first,
                _typo(last, rng) if field == 1 else f" {last} ",
                zip_code,
                f"{ssn[:3]}-{ssn[3:]}" if field != 2 else _typo(ssn, rng),
            )
        )
    return a, b


SCHEMA = "ref string, GIVEN string, FAMILY string, POSTCODE string, SSN string"


def test_links_two_unseen_files(spark: SparkSession):
    a, b = _files(300, seed=3)
    result = resolve_records(
        spark, [spark.createDataFrame(a, SCHEMA), spark.createDataFrame(b, SCHEMA)], SPEC
    )
    person = F.regexp_extract("record_id", r"^(p\d+)-", 1)
    clusters = result.clusters.withColumn("person", person)
    right = clusters.groupBy("cluster_id").agg(F.countDistinct("person").alias("persons"))
    assert right.where("persons > 1").count() == 0  # no cluster mixes persons
    together = clusters.groupBy("person").agg(F.countDistinct("cluster_id").alias("clusters"))
    assert together.where("clusters = 1").count() >= 0.97 * 300
    assert result.model.prior > 0


def test_deduplicates_one_file(spark: SparkSession):
    a, b = _files(200, seed=4)
    result = resolve_records(spark, [spark.createDataFrame(a + b, SCHEMA)], SPEC)
    clusters = result.clusters.withColumn("person", F.regexp_extract("record_id", r"^(p\d+)-", 1))
    per_cluster = clusters.groupBy("cluster_id").agg(F.countDistinct("person").alias("persons"))
    assert per_cluster.where("persons > 1").count() == 0
    assert clusters.select("cluster_id").distinct().count() <= 1.05 * 200


def test_missing_id_column_is_named(spark: SparkSession):
    df = spark.createDataFrame([("x",)], "name string")
    with pytest.raises(SchemaError) as err:
        resolve_records(spark, [df], SPEC)
    assert str(err.value) == "input 0: id column 'ref' missing (present: name)"
