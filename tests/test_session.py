"""The session factory builds a real Delta-enabled session that works offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.catalog import TableCatalog
from profilehouse.config import load_environment
from profilehouse.delta_io import (
    read_table,
    register_table,
    table_exists,
    table_version,
    write_table,
)
from profilehouse.errors import SetupError
from profilehouse.session import delta_maven_coordinates, local_delta_jars, spark_conf_for


def test_session_is_configured_for_delta_and_utc(spark: SparkSession) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert "DeltaSparkSessionExtension" in spark.conf.get("spark.sql.extensions")
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"


def test_delta_write_overwrite_and_time_travel(spark: SparkSession, tmp_path: Path) -> None:
    ref = TableCatalog(str(tmp_path)).table("bronze", "numbers")
    first = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    second = spark.createDataFrame([(3, "c")], "id int, v string")
    write_table(first, ref)
    write_table(second, ref, mode="overwrite")
    assert table_exists(spark, ref)
    assert table_version(spark, ref) == 1
    assert_df_equality(read_table(spark, ref), second, ignore_row_order=True)
    assert_df_equality(read_table(spark, ref, version=0), first, ignore_row_order=True)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{ref.location}`").select("operation").collect()
    assert [r.operation for r in history] == ["WRITE", "WRITE"]


def test_registered_table_is_queryable_by_name(spark: SparkSession, tmp_path: Path) -> None:
    ref = TableCatalog(str(tmp_path)).table("gold", "demo_profiles")
    write_table(spark.createDataFrame([(1,)], "id int"), ref)
    register_table(spark, ref)
    assert spark.sql("SELECT count(*) AS n FROM gold.demo_profiles").first().n == 1


def test_change_data_feed_property(spark: SparkSession, tmp_path: Path) -> None:
    ref = TableCatalog(str(tmp_path)).table("silver", "cdf_demo")
    write_table(spark.range(3), ref, properties={"delta.enableChangeDataFeed": "true"})
    changes = (
        spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
    )
    assert changes.load(ref.location).count() == 3


def test_missing_jars_named_with_fix(tmp_path: Path) -> None:
    (tmp_path / "other.jar").write_bytes(b"")
    with pytest.raises(SetupError) as err:
        local_delta_jars(tmp_path)
    message = str(err.value)
    assert "delta-spark_4.2_2.13-" in message and "delta-storage-" in message
    assert "(present: other.jar)" in message
    assert "scripts/setup.sh" in message


def test_local_conf_points_at_fetched_jars_and_cluster_conf_does_not() -> None:
    local = spark_conf_for(load_environment("local"))
    assert all(Path(j).is_file() for j in local["spark.jars"].split(","))
    cluster = spark_conf_for(load_environment("cluster"))
    assert "spark.jars" not in cluster
    assert cluster["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")


def test_maven_coordinates_match_installed_versions() -> None:
    from importlib import metadata

    import pyspark

    spark_coord, storage = delta_maven_coordinates()
    minor = ".".join(pyspark.__version__.split(".")[:2])
    assert spark_coord == f"io.delta:delta-spark_{minor}_2.13:{metadata.version('delta-spark')}"
    assert storage.startswith("io.delta:delta-storage:")


def test_a_small_broadcast_costs_the_driver_little_heap(spark: SparkSession) -> None:
    """In local mode a broadcast's hash table sits in the driver heap with at least one memory
    page; with Spark's default page (32-64 MiB) a few dozen live broadcasts exhausted the heap."""
    memory = spark.sparkContext._jsc.sc().env().memoryManager()
    small = spark.range(100).withColumn("k", F.col("id").cast("string"))
    large = spark.range(1000).withColumn("k", F.col("id").cast("string"))
    before = memory.storageMemoryUsed()
    joined = large.join(F.broadcast(small), "k")
    assert joined.count() == 100
    assert memory.storageMemoryUsed() - before < 8 * 2**20
