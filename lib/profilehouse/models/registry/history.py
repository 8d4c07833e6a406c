"""``ops.model_versions``: every registered model version as a Delta row, queryable from Spark,
and the columns a scoring job stamps on each score."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.models.registry.versions import ModelVersion

TABLE = "model_versions"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"

MODEL_VERSIONS_SCHEMA = T.StructType(
    [
        T.StructField("model_name", T.StringType(), False),
        T.StructField("version", T.IntegerType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("created_at", T.TimestampType(), False),
        T.StructField("params", T.MapType(T.StringType(), T.StringType()), False),
        T.StructField("features", T.ArrayType(T.StringType(), False), False),
        T.StructField("train_start", T.DateType(), False),
        T.StructField("train_end", T.DateType(), False),
        T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()), False),
        T.StructField("input_versions", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("fingerprint", T.StringType(), False),
        T.StructField("artifact_uri", T.StringType(), False),
        T.StructField("promoted", T.BooleanType(), False),
        T.StructField("champion_before", T.IntegerType(), True),
        T.StructField("reason", T.StringType(), False),
    ]
)


def model_versions_table(catalog: TableCatalog) -> TableRef:
    """The Delta table of registered model versions (``ops.model_versions``)."""
    return catalog.table(Layer.OPS, TABLE)


def append_model_version(spark: SparkSession, catalog: TableCatalog, version: ModelVersion) -> None:
    """Add ``version``'s row to ``ops.model_versions`` unless it is there already (a retried
    registration adds nothing)."""
    row = spark.createDataFrame([_row_of(version)], MODEL_VERSIONS_SCHEMA)
    on = "t.model_name = s.model_name AND t.version = s.version"
    delta_io.insert_once(spark, model_versions_table(catalog), row, on=on)


def model_history(spark: SparkSession, catalog: TableCatalog) -> DataFrame:
    """Every registered model version (``ops.model_versions``); empty before the first."""
    ref = model_versions_table(catalog)
    if not delta_io.table_exists(spark, ref):
        return spark.createDataFrame([], MODEL_VERSIONS_SCHEMA)
    return delta_io.read_table(spark, ref)


def with_model_version(scores: DataFrame, version: ModelVersion) -> DataFrame:
    """``scores`` with the model version behind them: ``model_name`` and ``model_version``."""
    return scores.withColumns(
        {
            MODEL_NAME: F.lit(version.model_name),
            MODEL_VERSION: F.lit(version.version).cast("int"),
        }
    )


def _row_of(version: ModelVersion) -> tuple[object, ...]:
    return (
        version.model_name,
        version.version,
        version.kind,
        version.run_id,
        version.created_at,
        version.params,
        list(version.features),
        version.train_start,
        version.train_end,
        version.metrics,
        version.input_versions,
        version.fingerprint,
        version.artifact_uri,
        version.promoted,
        version.champion_before,
        version.reason,
    )
