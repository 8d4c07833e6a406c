"""File-system helpers that work on any Hadoop-compatible URI (local, HDFS, S3, ABFS).

They go through the JVM's Hadoop FileSystem so the same code runs locally and on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class PathSummary:
    files: int
    bytes: int


def _fs_and_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def path_exists(spark: SparkSession, uri: str) -> bool:
    """True when ``uri`` exists."""
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.exists(path))


def summarize_path(spark: SparkSession, uri: str, suffixes: tuple[str, ...] = ()) -> PathSummary:
    """Number and total size of the data files under ``uri`` (hidden/_ files are skipped).

    ``suffixes``: only count files ending with one of these (e.g. ``(".csv",)``).
    """
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        return PathSummary(0, 0)
    files = fs.listFiles(path, True)
    count = size = 0
    while files.hasNext():
        status = files.next()
        name = status.getPath().getName()
        if name.startswith(("_", ".")):
            continue
        if suffixes and not name.endswith(suffixes):
            continue
        count += 1
        size += int(status.getLen())
    return PathSummary(count, size)


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small text file (overwriting) at ``uri``."""
    fs, path = _fs_and_path(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def read_text(spark: SparkSession, uri: str) -> str | None:
    """Contents of a small text file at ``uri``, or None when absent."""
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        return None
    jvm = spark.sparkContext._jvm
    stream = fs.open(path)
    try:
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def delete_path(spark: SparkSession, uri: str) -> None:
    """Delete ``uri`` recursively if it exists."""
    fs, path = _fs_and_path(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)
