"""Reading the ground truth: which true person each delivered source record belongs to.

Only demo and test runs have a ground truth (the generator writes it beside its landing files);
the identity quality report reads it when a profile names one. This module is the neutral home
of the format, so production code never imports the generator:

- ``<truth>/persons`` (Parquet) every true person with persona and planted labels;
- ``<truth>/records/source=<system.table>`` (Parquet) record key → person, batch, patterns.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def records_dir(truth: str) -> str:
    """Folder of the per-record truth (partitioned by ``source``)."""
    return f"{truth.rstrip('/')}/records"


def persons_dir(truth: str) -> str:
    """Folder of the per-person truth."""
    return f"{truth.rstrip('/')}/persons"


def read_truth_records(spark: SparkSession, truth: str) -> DataFrame:
    """Ground truth: one row per delivered source record (source, record_key, person_id, ...)."""
    return spark.read.parquet(records_dir(truth)).withColumn(
        "source", F.col("source").cast("string")
    )


def read_truth_persons(spark: SparkSession, truth: str) -> DataFrame:
    """Ground truth: one row per true person with persona and planted labels."""
    return spark.read.parquet(persons_dir(truth))
