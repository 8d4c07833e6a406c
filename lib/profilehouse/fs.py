"""File-system helpers that work on any Hadoop-compatible URI (local, HDFS, S3, ABFS).

They go through the JVM's Hadoop FileSystem so the same code runs locally and on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import SparkSession

from profilehouse.errors import DemoOnlyError

if TYPE_CHECKING:
    from profilehouse.config import EnvironmentConfig


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


def has_entries(spark: SparkSession, uri: str) -> bool:
    """True when ``uri`` is a folder holding anything, or a file."""
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        return False
    return not fs.getFileStatus(path).isDirectory() or len(fs.listStatus(path)) > 0


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


def holds_delta_tables(spark: SparkSession, uri: str) -> bool:
    """True when ``uri`` is a Delta table, a layer folder of tables or a warehouse root."""
    fs, _ = _fs_and_path(spark, uri)
    pattern = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(
        f"{uri.rstrip('/')}/{{_delta_log,*/_delta_log,*/*/_delta_log}}"
    )
    found = fs.globStatus(pattern)
    return found is not None and len(found) > 0


def delete_path(spark: SparkSession, uri: str, env: EnvironmentConfig | None = None) -> None:
    """Delete ``uri`` recursively if it exists.

    A path holding Delta tables (a table, a layer, a warehouse root) is deleted only for a demo
    environment profile passed as ``env``: production never deletes a table, and a caller that
    forgets it gets a :class:`DemoOnlyError` instead of a lost table.
    """
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        return
    if holds_delta_tables(spark, uri):
        if env is None:
            raise DemoOnlyError(
                f"refusing to delete {uri}: it holds Delta tables, which only a demo profile's "
                "warehouse reset deletes (pass its environment profile)"
            )
        env.require_demo(f"delete {uri}")
    fs.delete(path, True)
