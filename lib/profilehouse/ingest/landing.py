"""The landing zone as the ingest sees it: the data files of a source, their batch and header.

Everything here runs on the driver through the JVM's Hadoop FileSystem (local, HDFS, S3, ABFS)
and touches only file metadata, the first bytes of a CSV file (at most :data:`MAX_HEADER_BYTES`),
a Parquet footer, or, to tell a re-delivered file, the content hash computed inside the JVM.

Files still being uploaded are held back: names ending in :data:`IN_FLIGHT_SUFFIXES`
(``._COPYING_`` of ``hdfs dfs -put``, ``.tmp``, WinSCP's ``.filepart``, ``.part``, browsers'
``.crdownload``) and, when a source sets ``min_file_age_seconds``, files modified more recently
than that. Names starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc`` checksums, rsync's hidden
temporaries) are never data and are skipped silently.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from profilehouse.errors import SchemaError
from profilehouse.ingest.encodings import DEFAULT_ENCODING, undecodable_line_message

BATCH_PATTERN = re.compile(r"/batch=([^/]+)/")
MAX_HEADER_BYTES = 1 << 20  # a first line longer than this is not a header
IN_FLIGHT_SUFFIXES = ("._COPYING_", ".tmp", ".filepart", ".part", ".crdownload")
_FIRST_READ_BYTES = 1 << 16
_UTF8_BOM = b"\xef\xbb\xbf"
_WHITESPACE_BYTES = bytes(range(33))  # what Java's String.trim() removes, as Spark's CSV does
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


def split_in_flight(
    files: list[LandingFile], min_age_seconds: int = 0, now_ms: int | None = None
) -> tuple[list[LandingFile], list[LandingFile]]:
    """(complete files, files still being uploaded): a name with an upload suffix
    (:data:`IN_FLIGHT_SUFFIXES`) or, when ``min_age_seconds`` > 0, modified within that many
    seconds before ``now_ms`` (default: now)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now_ms - min_age_seconds * 1000
    complete, in_flight = [], []
    for file in files:
        uploading = file.path.endswith(IN_FLIGHT_SUFFIXES)
        fresh = min_age_seconds > 0 and file.modification_time > cutoff
        (in_flight if uploading or fresh else complete).append(file)
    return complete, in_flight


def content_sha256(spark: SparkSession, file: LandingFile) -> str:
    """SHA-256 (hex) of the file's bytes as stored, streamed inside the JVM in one Py4J call."""
    jvm, fs, path = _jvm_fs(spark, file.path)
    try:
        stream = fs.open(path)
        try:
            return str(jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
        finally:
            stream.close()
    except Exception as exc:  # Py4J wraps every JVM exception
        raise SchemaError(f"cannot read {file.path}: {_jvm_message(exc)}") from None


def _spark_file_path(path) -> str:
    """The path as Spark's file sources report it in ``_metadata.file_path``."""
    return _EMPTY_AUTHORITY.sub(r"\1:/", str(path.toUri().toString()))


def read_header(
    spark: SparkSession,
    file: LandingFile,
    delimiter: str = ",",
    encoding: str = DEFAULT_ENCODING,
    source: str | None = None,
) -> list[str] | None:
    """The column names (trimmed) in the first non-blank line of a CSV file; None when the
    file holds only whitespace.

    Reads at most :data:`MAX_HEADER_BYTES` bytes, decoded with ``encoding``; blank lines before
    the header are skipped (Spark's CSV reader skips them too). Compressed files (.gz, .bz2,
    ...) are decompressed by Hadoop's codec for their suffix. Raises :class:`SchemaError` naming
    the file when it cannot be read, has no line end within the limit, does not decode, or the
    header has blank or duplicate names. ``source`` is named in the encoding hint.
    """
    first = min(_FIRST_READ_BYTES, MAX_HEADER_BYTES + 1)
    head = _read_head(spark, file, first)
    if len(head) == first and _first_content_line(head, complete=False) is None:
        head = _read_head(spark, file, MAX_HEADER_BYTES + 1)
    found = _first_content_line(head, complete=len(head) <= MAX_HEADER_BYTES)
    if found is None and len(head) <= MAX_HEADER_BYTES:
        return None
    if found is None or len(found[1]) > MAX_HEADER_BYTES:
        raise SchemaError(
            f"{file.path}: no line end within the first {MAX_HEADER_BYTES} bytes: the first "
            "line is not a CSV header (check the file's format and sep/lineSep options)"
        )
    number, raw = found
    try:
        line = raw.decode(encoding)
    except UnicodeDecodeError:
        raise SchemaError(
            undecodable_line_message(file.path, number, raw, encoding, source)
        ) from None
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


def _first_content_line(data: bytes, complete: bool) -> tuple[int, bytes] | None:
    """(1-based number, bytes) of the first line of ``data`` holding more than whitespace.

    ``complete``: ``data`` is the whole file, so a last line without a line end counts. The
    newline byte is searched in the raw bytes: safe for the ASCII-compatible encodings the
    source config allows (a GBK or UTF-8 multi-byte character never contains byte 0x0a).
    """
    number, start = 1, 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            if not complete:
                return None
            end = len(data)
        raw = data[start:end].rstrip(b"\r")
        if raw.removeprefix(_UTF8_BOM).strip(_WHITESPACE_BYTES):
            return number, raw
        number, start = number + 1, end + 1
    return None


def _read_head(spark: SparkSession, file: LandingFile, limit: int) -> bytes:
    """The first ``limit`` bytes of ``file`` (decompressed), read inside the JVM."""
    jvm, fs, path = _jvm_fs(spark, file.path)
    try:
        stream = fs.open(path)
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
            spark.sparkContext._jsc.hadoopConfiguration()
        ).getCodec(path)
        if codec is not None:
            stream = codec.createInputStream(stream)
        try:
            bounded = jvm.org.apache.commons.io.input.BoundedInputStream(stream, limit)
            return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(bounded))
        finally:
            stream.close()
    except Exception as exc:  # Py4J wraps every JVM exception
        raise SchemaError(f"cannot read {file.path}: {_jvm_message(exc)}") from None


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
