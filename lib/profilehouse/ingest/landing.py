"""The landing zone as the ingest sees it: the data files of a source, their batch and header.

Everything here runs on the driver through the JVM's Hadoop FileSystem (local, HDFS, S3, ABFS)
and touches only file metadata, a CSV file's first line or a Parquet footer: never the data.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from profilehouse.errors import SchemaError

BATCH_PATTERN = re.compile(r"/batch=([^/]+)/")
_MAX_HEADER_BYTES = 1 << 20
_EMPTY_AUTHORITY = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):///")


@dataclass(frozen=True)
class LandingFile:
    """One data file in the landing zone."""

    path: str  # fully qualified Hadoop path: what readers are given and the file log records
    spark_path: str  # the same path URL-encoded, as Spark's ``_metadata.file_path`` reports it
    size: int
    modification_time: int  # epoch milliseconds
    batch: str  # the batch=<...> folder, else the file's modification date (UTC)


def batch_of(path: str, modification_time_ms: int) -> str:
    """The ``batch=<value>`` folder of ``path``; the modification date when there is none."""
    match = BATCH_PATTERN.search(path)
    if match:
        return match.group(1)
    return dt.datetime.fromtimestamp(modification_time_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def _jvm_fs(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return jvm, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def list_landing_files(spark: SparkSession, folder: str) -> list[LandingFile]:
    """Every data file under ``folder`` (recursively), sorted by path.

    Names starting with '_' or '.' (``_SUCCESS``, checksums, in-progress uploads) are skipped,
    and so are folders with such names. Raises :class:`SchemaError` when ``folder`` is missing.
    """
    _jvm, fs, path = _jvm_fs(spark, folder)
    if not fs.exists(path):
        raise SchemaError(f"landing folder {folder} does not exist")
    root = fs.makeQualified(path).toUri().getPath().rstrip("/")
    found = []
    files = fs.listFiles(path, True)
    while files.hasNext():
        status = files.next()
        qualified = status.getPath()
        relative = qualified.toUri().getPath()[len(root) :]
        if any(part.startswith(("_", ".")) for part in relative.split("/") if part):
            continue
        name = str(qualified.toString())
        mtime = int(status.getModificationTime())
        found.append(
            LandingFile(
                name,
                _spark_file_path(qualified),
                int(status.getLen()),
                mtime,
                batch_of(name, mtime),
            )
        )
    return sorted(found, key=lambda f: f.path)


def _spark_file_path(path) -> str:
    """The path as Spark's file sources report it in ``_metadata.file_path``."""
    return _EMPTY_AUTHORITY.sub(r"\1:/", str(path.toUri().toString()))


def read_header(spark: SparkSession, file: LandingFile, delimiter: str = ",") -> list[str] | None:
    """The column names in the first line of a CSV file; None for an empty file.

    Compressed files (.gz, .bz2, ...) are decompressed by Hadoop's codec for their suffix.
    Raises :class:`SchemaError` naming the file when it cannot be read or the header is bad.
    """
    jvm, fs, path = _jvm_fs(spark, file.path)
    try:
        stream = fs.open(path)
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
            spark.sparkContext._jsc.hadoopConfiguration()
        ).getCodec(path)
        if codec is not None:
            stream = codec.createInputStream(stream)
        try:
            reader = jvm.java.io.BufferedReader(
                jvm.java.io.InputStreamReader(stream, "UTF-8"), 65536
            )
            line = reader.readLine()
        finally:
            stream.close()
    except Exception as exc:  # Py4J wraps every JVM exception
        raise SchemaError(f"cannot read {file.path}: {_jvm_message(exc)}") from None
    if line is None or not line.strip():
        return None
    if len(line) > _MAX_HEADER_BYTES:
        raise SchemaError(f"{file.path}: the first line is not a header (over 1 MiB)")
    names = [n.strip() for n in next(csv.reader([line.lstrip("\ufeff")], delimiter=delimiter))]
    blank = [i + 1 for i, n in enumerate(names) if not n]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if blank or dupes:
        problem = f"blank column name at position(s) {blank}" if blank else ""
        problem += ("; " if problem and dupes else "") + (
            f"duplicate column(s) {', '.join(dupes)}" if dupes else ""
        )
        raise SchemaError(f"{file.path}: bad CSV header: {problem}")
    return names


def read_parquet_schema(spark: SparkSession, file: LandingFile) -> StructType:
    """The schema in a Parquet file's footer; :class:`SchemaError` naming the file if unreadable."""
    try:
        return spark.read.parquet(file.path).schema
    except Exception as exc:
        raise SchemaError(f"cannot read Parquet file {file.path}: {_jvm_message(exc)}") from None


def _jvm_message(exc: Exception) -> str:
    """The first line of a (Py4J-wrapped) JVM exception's message."""
    text = str(exc).strip()
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line and not line.startswith(("An error occurred", "Traceback")):
            return line[:500]
    return type(exc).__name__
