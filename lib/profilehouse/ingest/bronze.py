"""Bronze: landing files → one Delta table per source, rows as received, loaded exactly once.

Every value is kept as text exactly as received under its *logical* column name (the export's
names are mapped by ``conf/sources.yaml``), so one bronze schema per source survives exports
whose column names, order or types drift. Alongside come ``_rescued_data`` (JSON of columns
the config does not know, when the source rescues them), ``_corrupt_record`` (the raw line of a
row the reader could not split or parse), ``_absent_columns`` (the configured columns the row's
file did not carry, so silver can tell them from empty values) and the ingest metadata
``_source_file``, ``_batch``, ``_load_id``, ``_ingested_at`` and ``_row_hash``.

Exactly-once, crash-safe loading uses a file log (``ops.ingest_file_log``) and Delta's
idempotent writes, in three steps per load:

1. the new files are logged as ``pending`` under a new load ID;
2. their rows are appended to bronze with ``txnAppId = bronze:<source>``,
   ``txnVersion = <load ID>`` (Delta skips the append if that version was committed before);
3. the files are logged as ``loaded`` with their row counts.

Steps 1 and 3 are one file-log commit each for all the sources of a run (an insert-only MERGE
that skips a load another run logged first), step 2 one bronze commit per load.

A run first finishes any pending load exactly as logged, then lists the landing folder and
loads only files the log has never seen. A crash between any two commits therefore neither
loses nor duplicates a file.

What a listing holds back or sets aside, each reported in :class:`BronzeLoad` and the run
summary:

* files still being uploaded (``*._COPYING_``, ``*.tmp``, ``*.filepart``, ... and, with
  ``min_file_age_seconds``, files modified too recently) are skipped until complete;
* a file whose bytes equal those of a file logged before (or of another new file) is logged as
  ``duplicate`` with ``duplicate_of`` and not loaded. The content hash (SHA-256, stored in the
  nullable ``content_sha256`` column) is computed only for files whose size equals the size of
  a logged file or of another new file: equal content implies equal size, so most deliveries
  are never hashed. Hashing streams the file inside the JVM (``DigestUtils.sha256Hex`` over the
  Hadoop stream, one Py4J call per file); no byte passes through Python. Logs written before
  the column existed still work: a logged file without a hash is hashed when a new file of its
  size arrives and it is still in the landing zone;
* a file with no rows (0 bytes or only whitespace) is logged ``loaded`` with 0 rows and listed
  as empty.

Text files are read in the source's ``encoding`` (header and rows, CSV and JSON lines), and a
file that does not decode cleanly fails the load naming the file, its first bad line and the
likely encoding (:mod:`profilehouse.ingest.encodings`), never with replacement characters.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io, locks
from profilehouse.catalog import TableCatalog
from profilehouse.config import LockSettings
from profilehouse.errors import ProfilehouseError, SchemaError
from profilehouse.ingest.encodings import allow_java_charsets, is_utf8, validate_text_encoding
from profilehouse.ingest.landing import (
    LandingFile,
    content_sha256,
    list_landing_files,
    read_header,
    read_parquet_schema,
    split_in_flight,
)
from profilehouse.ingest.parallel import MapSources, in_turn
from profilehouse.ingest.source_config import SourceSpec
from profilehouse.tables import bronze_table, file_log_table
from profilehouse.timing import StepTimer

RESCUED = "_rescued_data"
CORRUPT = "_corrupt_record"
ABSENT = "_absent_columns"  # the configured columns the row's file did not carry
METADATA_COLUMNS = ("_source_file", "_batch", "_load_id", "_ingested_at", "_row_hash")
FILE_LOG_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("file_path", T.StringType(), False),
        T.StructField("spark_path", T.StringType(), False),
        T.StructField("size", T.LongType(), False),
        T.StructField("modification_time", T.LongType(), False),
        T.StructField("batch", T.StringType(), False),
        T.StructField("load_id", T.LongType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("rows", T.LongType(), True),
        T.StructField("logged_at", T.TimestampType(), False),
        T.StructField("content_sha256", T.StringType(), True),  # only when a size collided
        T.StructField("duplicate_of", T.StringType(), True),  # status duplicate: the original
    ]
)
PENDING, LOADED, DUPLICATE = "pending", "loaded", "duplicate"
_FILE = "_file"  # Spark's path of the file a row came from, before the file table is joined
_NULL_MARK = "\u0000"
_FIELD_SEP = "\u001f"


@dataclass
class BronzeLoad:
    """What one bronze run did for one source."""

    source: str
    load_ids: list[int] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    bytes: int = 0
    batches: dict[str, int] = field(default_factory=dict)  # batch → rows
    resumed_pending: int = 0  # pending loads from a crashed run, finished by this run
    seconds: float = 0.0
    in_flight: list[str] = field(default_factory=list)  # skipped until their upload completes
    duplicates: dict[str, str] = field(default_factory=dict)  # re-delivered file → original
    empty_files: list[str] = field(default_factory=list)  # loaded, but held no rows
    timer: StepTimer = field(default_factory=StepTimer, repr=False, compare=False)

    @property
    def seconds_by_step(self) -> dict[str, float]:
        """Seconds per step: file log, listing, duplicate check, claim, write, row counts,
        marking the files loaded."""
        return self.timer.seconds_by_step()


# --- reading the landing files -------------------------------------------------------------------


def _text(col: Column, data_type: T.DataType) -> Column:
    """A typed value rendered as text without loss (instants keep their offset)."""
    if isinstance(data_type, T.TimestampType):
        return F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
    if isinstance(data_type, T.StructType | T.ArrayType | T.MapType):
        return F.to_json(col)
    if isinstance(data_type, T.BinaryType):
        return F.base64(col)
    return col.cast("string")


def _rescued_expr(extras: list[tuple[str, Column]]) -> Column:
    """JSON object of the non-null unknown columns; null when there are none."""
    if not extras:
        return F.lit(None).cast("string")
    pairs = F.map_filter(
        F.create_map(*[x for name, col in extras for x in (F.lit(name), col)]),
        lambda _k, v: v.isNotNull(),
    )
    return F.when(F.size(pairs) > 0, F.to_json(pairs))


def _check_columns(
    spec: SourceSpec, file: str, present: list[str], first_line: bool = False
) -> list[str]:
    """The export columns of ``file`` that the config does not know; SchemaError when a
    required column is missing, or an unknown one appears and the source does not rescue.

    ``first_line``: ``present`` is a CSV file's first line, which may be a data row when the
    export has no header; the error then names the field count, never the values.
    """
    known = {spec.source_column(c) for c in spec.columns}
    missing = [
        f"{spec.source_column(c)}" + (f" (logical {c})" if spec.source_column(c) != c else "")
        for c, col in spec.columns.items()
        if col.required and spec.source_column(c) not in present
    ]
    if missing:
        raise SchemaError(
            f"{spec.name}: file {file} lacks required column(s) {', '.join(missing)}"
            + _present_columns(known, present, first_line)
        )
    extras = [c for c in present if c not in known]
    if extras and spec.extra_columns == "fail":
        if first_line and not known.intersection(present):
            raise SchemaError(f"{spec.name}: file {file}" + _present_columns(known, present, True))
        raise SchemaError(
            f"{spec.name}: file {file} has unexpected column(s) {', '.join(extras)} "
            "(extra_columns: fail; declare them in conf/sources.yaml or set "
            "extra_columns: rescue)"
        )
    return extras


def _present_columns(known: set[str], present: list[str], first_line: bool) -> str:
    """The columns present, for an error; when a first line shares no name with the config it
    is likely data, so only its field count is given (no raw values in messages)."""
    if first_line and not known.intersection(present):
        return (
            f"; its first line ({len(present)} fields) has none of the declared column names: "
            "it is probably a data row, not a header (exports must start with a header line)"
        )
    return f" (its columns: {', '.join(present)})"


def _logical_select(
    spec: SourceSpec, present: dict[str, T.DataType], extras: list[str]
) -> list[Column]:
    """Logical columns as text (null when absent), then rescued data and the absent columns."""
    cols = []
    for logical in spec.columns:
        source = spec.source_column(logical)
        if source in present:
            cols.append(_text(F.col(f"`{source}`"), present[source]).alias(logical))
        else:
            cols.append(F.lit(None).cast("string").alias(logical))
    rescued = [(name, _text(F.col(f"`{name}`"), present[name])) for name in extras]
    cols.append(_rescued_expr(rescued).alias(RESCUED))
    absent = [c for c in spec.columns if spec.source_column(c) not in present]
    cols.append(_absent_expr(absent).alias(ABSENT))
    return cols


def _absent_expr(absent: list[str]) -> Column:
    """array<string> literal of the logical columns a file did not carry (empty when none).

    Silver needs it because an absent column and an empty value are both null in bronze, and
    only the empty value may overwrite what silver holds (``missing_columns`` in the config).
    """
    return F.array(*[F.lit(c) for c in absent]).cast("array<string>")


def _absent_by_file_expr(absent_by_file: dict[str, list[str]], file: Column) -> Column:
    """The absent columns of the row's file, looked up in a literal map of the files with any."""
    if not absent_by_file:
        return _absent_expr([])
    lookup = F.create_map(
        *[x for f, cols in absent_by_file.items() for x in (F.lit(f), _absent_expr(cols))]
    )
    return F.coalesce(F.element_at(lookup, file), _absent_expr([]))


def _read_csv(spark: SparkSession, spec: SourceSpec, files: list[LandingFile]) -> list[DataFrame]:
    """One DataFrame per distinct header; empty files contribute nothing."""
    delimiter = spec.options.get("sep", spec.options.get("delimiter", ","))
    groups: dict[tuple[str, ...], list[LandingFile]] = defaultdict(list)
    for file in files:
        header = read_header(spark, file, delimiter, spec.encoding, spec.name)
        if header is not None:
            groups[tuple(header)].append(file)
    _validate_encoding(spark, spec, [f for group in groups.values() for f in group])
    frames = []
    for header, group in groups.items():
        extras = _check_columns(spec, group[0].path, list(header), first_line=True)
        schema = T.StructType(
            [T.StructField(n, T.StringType()) for n in header]
            + [T.StructField(CORRUPT, T.StringType())]
        )
        options = {
            **spec.options,
            "header": "true",
            "enforceSchema": "true",
            "mode": "PERMISSIVE",
            "columnNameOfCorruptRecord": CORRUPT,
        }
        df = spark.read.schema(schema).options(**options).csv([f.path for f in group])
        present = dict.fromkeys(header, T.StringType())
        frames.append(
            df.select(
                *_logical_select(spec, present, extras),
                F.col(CORRUPT),
                F.col("_metadata.file_path").alias(_FILE),
            )
        )
    return frames


def _read_jsonl(spark: SparkSession, spec: SourceSpec, files: list[LandingFile]) -> list[DataFrame]:
    """JSON lines read as text and parsed with every known field as text."""
    known = [spec.source_column(c) for c in spec.columns]
    schema = T.StructType(
        [T.StructField(n, T.StringType()) for n in known] + [T.StructField(CORRUPT, T.StringType())]
    )
    _validate_encoding(spark, spec, files)
    lines = _decoded_lines(spark, [f.path for f in files], spec.encoding).where(
        F.trim("value") != ""
    )
    parsed = lines.select(
        F.from_json("value", schema, {"columnNameOfCorruptRecord": CORRUPT}).alias("r"),
        F.array_except(F.json_object_keys("value"), F.array(*map(F.lit, known))).alias("x"),
        "value",
        _FILE,
    )
    absent_by_file = _check_json_files(spec, parsed)
    rescued = F.when(
        F.size("x") > 0,
        F.to_json(
            F.map_filter(
                F.from_json("value", "map<string,string>"),
                lambda k, v: F.array_contains(F.col("x"), k) & v.isNotNull(),
            )
        ),
    )
    cols = [F.col(f"r.`{spec.source_column(c)}`").alias(c) for c in spec.columns]
    return [
        parsed.select(
            *cols,
            F.when(F.size("x") > 0, rescued).alias(RESCUED),
            F.when(F.col(f"r.{CORRUPT}").isNotNull(), F.col("value")).alias(CORRUPT),
            _absent_by_file_expr(absent_by_file, F.col(_FILE)).alias(ABSENT),
            _FILE,
        )
    ]


def _validate_encoding(spark: SparkSession, spec: SourceSpec, files: list[LandingFile]) -> None:
    """SchemaError naming the first line of ``files`` that is not valid in the source's
    encoding (one distributed scan; see :mod:`profilehouse.ingest.encodings`)."""
    allow_java_charsets(spark, spec.encoding)
    display = {f.spark_path: f.path for f in files}
    validate_text_encoding(spark, [f.path for f in files], spec.encoding, spec.name, display)


def _decoded_lines(spark: SparkSession, paths: list[str], encoding: str) -> DataFrame:
    """Lines of text files as ``value`` (decoded from ``encoding``) and ``_file``."""
    text = spark.read.text(paths)
    file = F.col("_metadata.file_path").alias(_FILE)
    if is_utf8(encoding):
        return text.select("value", file)
    return text.select(F.decode(F.col("value").cast("binary"), encoding).alias("value"), file)


def _check_json_files(spec: SourceSpec, parsed: DataFrame) -> dict[str, list[str]]:
    """SchemaError naming the file when a required field is absent from every well-formed
    record of a file, or an unknown field appears and the source does not rescue.

    Returns the optional logical columns absent from every well-formed record of each file
    (only files with any): a key that some records of a file lack is an empty value there, as
    JSON writers drop null fields; a key that no record has is a column the file did not carry.
    """
    required = [spec.source_column(c) for c, col in spec.columns.items() if col.required]
    optional = [c for c, col in spec.columns.items() if not col.required]
    good = F.col(f"r.{CORRUPT}").isNull() & F.col("x").isNotNull()
    aggs = [F.sum(good.cast("int")).alias("good")]
    aggs += [
        F.max(good & F.array_contains(F.json_object_keys("value"), name)).alias(f"has_{i}")
        for i, name in enumerate(required)
    ]
    aggs += [
        F.max(good & F.array_contains(F.json_object_keys("value"), spec.source_column(c))).alias(
            f"carries_{i}"
        )
        for i, c in enumerate(optional)
    ]
    absent_by_file: dict[str, list[str]] = {}
    if spec.extra_columns == "fail":
        aggs.append(F.array_sort(F.array_distinct(F.flatten(F.collect_set("x")))).alias("extra"))
    for row in parsed.groupBy(_FILE).agg(*aggs).collect():  # one row per file
        if not row["good"]:
            continue
        missing = [name for i, name in enumerate(required) if not row[f"has_{i}"]]
        if missing:
            raise SchemaError(
                f"{spec.name}: file {row[_FILE]} lacks required column(s) "
                f"{', '.join(missing)} (no record has the field)"
            )
        if spec.extra_columns == "fail" and row["extra"]:
            _check_columns(spec, row[_FILE], required + list(row["extra"]))
        absent = [c for i, c in enumerate(optional) if not row[f"carries_{i}"]]
        if absent:
            absent_by_file[row[_FILE]] = absent
    return absent_by_file


def _read_parquet(
    spark: SparkSession, spec: SourceSpec, files: list[LandingFile]
) -> list[DataFrame]:
    """One DataFrame per distinct file schema, every value rendered as text."""
    groups: dict[str, tuple[T.StructType, list[LandingFile]]] = {}
    for file in files:
        schema = read_parquet_schema(spark, file)
        groups.setdefault(schema.json(), (schema, []))[1].append(file)
    frames = []
    for schema, group in groups.values():
        present = {f.name: f.dataType for f in schema.fields}
        extras = _check_columns(spec, group[0].path, list(present))
        df = spark.read.schema(schema).parquet(*[f.path for f in group])
        frames.append(
            df.select(
                *_logical_select(spec, present, extras),
                F.lit(None).cast("string").alias(CORRUPT),
                F.col("_metadata.file_path").alias(_FILE),
            )
        )
    return frames


_READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}


def _row_hash_expr(columns: list[str]) -> Column:
    """SHA-256 of the row's values (nulls marked), identifying a row version."""
    return F.sha2(
        F.concat_ws(_FIELD_SEP, *[F.coalesce(F.col(c), F.lit(_NULL_MARK)) for c in columns]),
        256,
    )


def bronze_frame(
    spark: SparkSession,
    spec: SourceSpec,
    files: list[LandingFile],
    load_id: int,
    ingested_at: dt.datetime,
) -> DataFrame:
    """The rows of ``files`` as bronze rows: logical text columns, rescued/corrupt, metadata.

    Raises :class:`SchemaError` naming the file and column when a file lacks a required column,
    has an unexpected one the source does not rescue, or cannot be read.
    """
    value_columns = [*spec.columns, RESCUED, CORRUPT]
    frames = _READERS[spec.format](spark, spec, files)
    file_table = spark.createDataFrame(
        [(f.spark_path, f.path, f.batch) for f in files],
        "spark_path string, _source_file string, _batch string",
    )
    if not frames:
        empty = T.StructType(
            [T.StructField(c, T.StringType()) for c in [*value_columns, _FILE]]
            + [T.StructField(ABSENT, T.ArrayType(T.StringType()))]
        )
        frames = [spark.createDataFrame([], empty)]
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    joined = rows.join(F.broadcast(file_table), rows[_FILE] == file_table["spark_path"], "left")
    return joined.select(
        *value_columns,
        ABSENT,
        F.coalesce("_source_file", _FILE).alias("_source_file"),
        F.coalesce("_batch", F.lit("unknown")).alias("_batch"),
        F.lit(load_id).cast("long").alias("_load_id"),
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
        _row_hash_expr(value_columns).alias("_row_hash"),
    )


# --- the file log and the exactly-once load ------------------------------------------------------


@dataclass(frozen=True)
class _LoggedFile:
    file: LandingFile
    load_id: int
    status: str
    rows: int | None
    logged_at: dt.datetime
    content_sha256: str | None = None


def file_log_by_source(
    spark: SparkSession, catalog: TableCatalog, source: str | None = None
) -> dict[str, list[_LoggedFile]]:
    """The file-log entries (one per file and status; metadata only) of each source, or of
    ``source`` only."""
    ref = file_log_table(catalog)
    if not delta_io.table_exists(spark, ref):
        return {}
    log = delta_io.read_table(spark, ref)
    if source is not None:
        log = log.where(F.col("source") == source)
    entries: dict[str, list[_LoggedFile]] = defaultdict(list)
    for r in log.collect():
        entries[r.source].append(
            _LoggedFile(
                LandingFile(r.file_path, r.spark_path, r.size, r.modification_time, r.batch),
                r.load_id,
                r.status,
                r.rows,
                r.logged_at,
                r.asDict().get("content_sha256"),  # absent from logs written before hashes
            )
        )
    return dict(entries)


def _log_entries(
    source: str,
    files: list[LandingFile],
    load_id: int,
    status: str,
    logged_at: dt.datetime,
    rows_per_file: dict[str, int] | None = None,
    hashes: dict[str, str] | None = None,
    duplicate_of: dict[str, str] | None = None,
) -> list[tuple]:
    """File-log rows (``FILE_LOG_SCHEMA``) for ``files`` of one load and status."""
    hashes, duplicate_of = hashes or {}, duplicate_of or {}
    return [
        (
            source,
            f.path,
            f.spark_path,
            f.size,
            f.modification_time,
            f.batch,
            load_id,
            status,
            None if rows_per_file is None else rows_per_file.get(f.path, 0),
            logged_at,
            hashes.get(f.path),
            duplicate_of.get(f.path),
        )
        for f in files
    ]


def _log_once_per_load(
    spark: SparkSession, catalog: TableCatalog, entries: list[tuple], statuses: tuple[str, ...]
) -> None:
    """Add file-log ``entries`` (of any number of loads, all sources) in one commit, each
    load's only when the log holds no entry of ``statuses`` for that load yet.

    Keyed by (source, load ID) (:func:`delta_io.insert_once`): a load another run logged first
    is skipped whole, as Delta's idempotent appends did per load. One commit for a stage's
    loads instead of one per load: a commit costs seconds, which per source added up to a
    third of a daily increment.
    """
    if entries:
        listed = ", ".join(f"'{s}'" for s in statuses)
        delta_io.insert_once(
            spark,
            file_log_table(catalog),
            spark.createDataFrame(entries, FILE_LOG_SCHEMA).coalesce(1),
            f"t.source = s.source AND t.load_id = s.load_id AND t.status IN ({listed})",
        )


def _write_bronze(
    spark: SparkSession,
    catalog: TableCatalog,
    spec: SourceSpec,
    files: list[LandingFile],
    load_id: int,
    ingested_at: dt.datetime,
) -> None:
    rows = bronze_frame(spark, spec, files, load_id, ingested_at)
    delta_io.write_table(
        rows,
        bronze_table(catalog, spec),
        mode="append",
        options={
            **delta_io.idempotent_options(f"bronze:{spec.name}", load_id),
            "mergeSchema": "true",
        },
    )


def _rows_per_file(
    spark: SparkSession, catalog: TableCatalog, spec: SourceSpec, load_id: int
) -> dict[str, int]:
    """Bronze rows of load ``load_id`` per source file (data skipping on ``_load_id``)."""
    ref = bronze_table(catalog, spec)
    if not delta_io.table_exists(spark, ref):
        return {}
    counts = (
        delta_io.read_table(spark, ref)
        .where(F.col("_load_id") == load_id)
        .groupBy("_source_file")
        .count()
        .collect()
    )
    return {r["_source_file"]: int(r["count"]) for r in counts}


def _mark_loaded(spark: SparkSession, catalog: TableCatalog, entries: list[tuple]) -> None:
    """Commit 3 of the stage's loads: their files logged ``loaded`` with row counts."""
    _log_once_per_load(spark, catalog, entries, (LOADED,))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _changed_files(logged: dict[str, LandingFile], listed: list[LandingFile]) -> list[str]:
    return [
        f"{f.path} (size {logged[f.path].size} → {f.size})"
        if logged[f.path].size != f.size
        else f"{f.path} (modified after it was loaded)"
        for f in listed
        if f.path in logged
        and (
            logged[f.path].size != f.size or logged[f.path].modification_time != f.modification_time
        )
    ]


def _set_aside_duplicates(
    spark: SparkSession, new: list[LandingFile], log: list[_LoggedFile], listed: list[LandingFile]
) -> tuple[list[LandingFile], dict[str, str], dict[str, str]]:
    """(files to load, duplicate → file with the same bytes, path → SHA-256 of each new file
    hashed). Only files whose size another logged or new file shares are hashed."""
    new_sizes = Counter(f.size for f in new)
    originals = _logged_originals(log)
    logged_sizes = {e.file.size for e in originals}
    suspects = {
        f.path for f in new if f.size > 0 and (new_sizes[f.size] > 1 or f.size in logged_sizes)
    }
    if not suspects:
        return new, {}, {}
    sizes = {f.size for f in new if f.path in suspects}
    still_listed = {f.path for f in listed}
    seen: dict[str, str] = {}  # content hash → first file holding it
    for entry in originals:
        if entry.file.size in sizes:
            digest = entry.content_sha256
            if digest is None and entry.file.path in still_listed:
                digest = content_sha256(spark, entry.file)
            if digest is not None:
                seen.setdefault(digest, entry.file.path)
    keep, duplicates, hashes = [], {}, {}
    for file in new:
        if file.path in suspects:
            digest = hashes[file.path] = content_sha256(spark, file)
            if digest in seen:
                duplicates[file.path] = seen[digest]
                continue
            seen[digest] = file.path
        keep.append(file)
    return keep, duplicates, hashes


def _logged_originals(log: list[_LoggedFile]) -> list[_LoggedFile]:
    """One entry per logged file that was loaded (or is pending), hashed entries first."""
    by_path: dict[str, _LoggedFile] = {}
    for entry in sorted(log, key=lambda e: (e.file.path, e.content_sha256 is None)):
        if entry.status != DUPLICATE:
            by_path.setdefault(entry.file.path, entry)
    return list(by_path.values())


class _LoadIdTakenError(ProfilehouseError):
    """Another run claimed the load ID this run picked (its file log was stale)."""


@dataclass
class _PlannedLoad:
    """What a bronze run is to do for one source, from its file log and landing listing."""

    spec: SourceSpec
    result: BronzeLoad
    resume: list[tuple[int, list[LandingFile], dt.datetime]]  # pending loads of a crashed run
    new: list[LandingFile]  # files to load under ``load_id``
    duplicates: list[LandingFile]  # re-delivered files, logged under ``load_id`` as such
    hashes: dict[str, str]
    load_id: int
    ingested_at: dt.datetime | None = None  # set by the claim

    @property
    def claims(self) -> bool:
        return bool(self.new or self.duplicates)

    def claim_entries(self, logged_at: dt.datetime) -> list[tuple]:
        name, dup_of = self.spec.name, self.result.duplicates
        return _log_entries(
            name, self.new, self.load_id, PENDING, logged_at, hashes=self.hashes
        ) + _log_entries(
            name, self.duplicates, self.load_id, DUPLICATE, logged_at, None, self.hashes, dup_of
        )


def _planned_load(
    spark: SparkSession, spec: SourceSpec, landing_root: str, log: list[_LoggedFile]
) -> _PlannedLoad:
    """The pending loads to finish and the new files to claim (duplicates and in-flight
    uploads set aside). Raises :class:`ProfilehouseError` when a loaded file has changed."""
    result = BronzeLoad(spec.name)
    loaded_ids = {e.load_id for e in log if e.status == LOADED}
    pending: dict[int, list[_LoggedFile]] = defaultdict(list)
    for entry in log:
        if entry.status == PENDING and entry.load_id not in loaded_ids:
            pending[entry.load_id].append(entry)
    resume = []
    for load_id in sorted(pending):
        entries = sorted(pending[load_id], key=lambda e: e.file.path)
        resume.append((load_id, [e.file for e in entries], entries[0].logged_at))

    with result.timer.step("list"):
        listed = list_landing_files(spark, f"{landing_root.rstrip('/')}/{spec.location}")
    logged = {e.file.path: e.file for e in log}
    changed = _changed_files(logged, listed)
    if changed:
        raise ProfilehouseError(
            f"{spec.name}: {len(changed)} landing file(s) changed after they were loaded; "
            f"deliver corrections as new files: {'; '.join(changed[:5])}"
        )
    unlogged = [f for f in listed if f.path not in logged]
    unlogged, in_flight = split_in_flight(unlogged, spec.min_file_age_seconds)
    result.in_flight = [f.path for f in in_flight]
    with result.timer.step("duplicates"):
        new, duplicates, hashes = _set_aside_duplicates(spark, unlogged, log, listed)
    result.duplicates = duplicates
    return _PlannedLoad(
        spec,
        result,
        resume,
        new,
        [f for f in unlogged if f.path in duplicates],
        hashes,
        max((e.load_id for e in log), default=0) + 1,
    )


def _claim(spark: SparkSession, catalog: TableCatalog, plans: list[_PlannedLoad]) -> list[str]:
    """Commit 1 of the stage's loads: log each plan's new files as pending (and its
    re-delivered ones as duplicates) under its new load ID, in one commit; the sources whose
    load ID another run had claimed are returned (nothing of theirs was logged).

    The commit skips a load ID already claimed (:func:`_log_once_per_load`), so the claims are
    read back: a source owns its ID only if the entries logged under it are exactly its files
    at this run's time. (Were the same files claimed under the same ID by two runs in the same
    second, both would finish the one load: its txn-tagged commits land once.)
    """
    claiming = [p for p in plans if p.claims]
    if not claiming:
        return []
    logged_at = _now()
    entries = [e for p in claiming for e in p.claim_entries(logged_at)]
    _log_once_per_load(spark, catalog, entries, (PENDING, DUPLICATE))
    wanted = reduce(
        lambda a, b: a | b,
        [(F.col("source") == p.spec.name) & (F.col("load_id") == p.load_id) for p in claiming],
    )
    claimed: dict[str, set] = defaultdict(set)
    for r in (
        delta_io.read_table(spark, file_log_table(catalog))
        .where(wanted & F.col("status").isin(PENDING, DUPLICATE))
        .select("source", "file_path", "status", "logged_at")
        .collect()
    ):
        claimed[r["source"]].add((r["file_path"], r["status"], r["logged_at"]))
    lost = []
    for p in claiming:
        mine = {(e[1], e[7], logged_at) for e in p.claim_entries(logged_at)}
        if claimed[p.spec.name] == mine:
            p.ingested_at = logged_at
        else:
            lost.append(p.spec.name)
    return lost


def _write_load(
    spark: SparkSession,
    catalog: TableCatalog,
    plan: _PlannedLoad,
    files: list[LandingFile],
    load_id: int,
    ingested_at: dt.datetime,
) -> list[tuple]:
    """Commit 2 of one load (its rows appended to bronze, once); its ``loaded`` log entries."""
    result = plan.result
    with result.timer.step("write"):
        _write_bronze(spark, catalog, plan.spec, files, load_id, ingested_at)
    with result.timer.step("row_counts"):
        counts = _rows_per_file(spark, catalog, plan.spec, load_id)
    result.load_ids.append(load_id)
    result.files += len(files)
    result.bytes += sum(f.size for f in files)
    for f in files:
        n = counts.get(f.path, 0)
        result.rows += n
        result.batches[f.batch] = result.batches.get(f.batch, 0) + n
        if n == 0:
            result.empty_files.append(f.path)
    return _log_entries(plan.spec.name, files, load_id, LOADED, _now(), counts)


def _written_loads(spark: SparkSession, catalog: TableCatalog, plan: _PlannedLoad) -> list[tuple]:
    """The plan's pending loads finished and its new files written; their ``loaded`` entries."""
    entries = []
    for load_id, files, logged_at in plan.resume:
        entries += _write_load(spark, catalog, plan, files, load_id, logged_at)
        plan.result.resumed_pending += 1
    if plan.new:
        assert plan.ingested_at is not None, "write before claim"
        entries += _write_load(spark, catalog, plan, plan.new, plan.load_id, plan.ingested_at)
    return entries


_CLAIM_ATTEMPTS = 5


def _claimed_plans(
    spark: SparkSession,
    catalog: TableCatalog,
    specs: list[SourceSpec],
    landing_root: str,
    logs: dict[str, list[_LoggedFile]] | None,
    map_sources: MapSources,
    timer: StepTimer,
) -> tuple[dict[str, _PlannedLoad], dict[str, BaseException]]:
    """Each source's plan, its new files claimed; and the error of each source that has none.
    A source whose claim was lost is planned again from a fresh file log."""
    plans: dict[str, _PlannedLoad] = {}
    errors: dict[str, BaseException] = {}
    todo = list(specs)
    for attempt in range(1, _CLAIM_ATTEMPTS + 1):
        if logs is None:
            with timer.step("file_log"):
                logs = file_log_by_source(spark, catalog)
        planned = map_sources(
            todo,
            lambda spec, known=logs: _planned_load(
                spark, spec, landing_root, known.get(spec.name, [])
            ),
        )
        for spec, plan in zip(todo, planned, strict=True):
            if isinstance(plan, BaseException):
                errors[spec.name] = plan
                plans.pop(spec.name, None)
            else:
                plans[spec.name] = plan
        with timer.step("claim"):
            lost = _claim(spark, catalog, [plans[s.name] for s in todo if s.name in plans])
        if not lost:
            break
        if attempt == _CLAIM_ATTEMPTS:
            for name in lost:
                errors[name] = _LoadIdTakenError(
                    f"{name}: load ID {plans.pop(name).load_id} was claimed by another run "
                    f"for other files, {_CLAIM_ATTEMPTS} times"
                )
            break
        logs = None  # another run loaded files meanwhile: read the log afresh
        todo = [s for s in specs if s.name in lost]
    return plans, errors


def load_bronze_sources(
    spark: SparkSession,
    catalog: TableCatalog,
    specs: list[SourceSpec],
    landing_root: str,
    logs: dict[str, list[_LoggedFile]] | None = None,
    map_sources: MapSources = in_turn,
) -> list[BronzeLoad | BaseException]:
    """Load every not-yet-loaded file of each source into its bronze table, exactly once; the
    caller holds the sources' ``bronze:<source>`` locks (:func:`load_bronze_source` takes one).

    Per source, pending loads of a crashed run are finished first, then files the log has never
    seen are loaded. The stage makes three commits to the file log whatever the number of
    sources (the claim, then each source's bronze append, then one ``loaded`` commit).
    ``logs``: the sources' file-log entries when the caller has read them already
    (:func:`file_log_by_source`). ``map_sources`` runs per-source work (one after the other by
    default; the stage passes its thread pool) and returns each result or exception.

    Returns, in source order, each source's :class:`BronzeLoad` or the exception that stopped
    it: :class:`SchemaError` for a missing landing folder or a bad file (naming it),
    :class:`ProfilehouseError` when a file loaded before has changed since (corrections must
    arrive as new files). The other sources load regardless.
    """
    timer = StepTimer()
    plans, errors = _claimed_plans(spark, catalog, specs, landing_root, logs, map_sources, timer)
    writing = [s for s in specs if s.name in plans]
    written = map_sources(writing, lambda spec: _written_loads(spark, catalog, plans[spec.name]))
    loaded: list[tuple] = []
    outcome: dict[str, BronzeLoad | BaseException] = dict(errors)
    for spec, entries in zip(writing, written, strict=True):
        if isinstance(entries, BaseException):
            outcome[spec.name] = entries
        else:
            loaded += entries
    with timer.step("mark_loaded"):
        _mark_loaded(spark, catalog, loaded)

    finished = [p for name, p in plans.items() if name not in outcome]
    for p in finished:
        # the stage-wide steps, shared evenly among the sources
        for step, took in timer.seconds_by_step().items():
            p.result.timer.add(step, took / len(finished))
        p.result.seconds = round(sum(p.result.seconds_by_step.values()), 2)
        outcome[p.spec.name] = p.result
    return [outcome[s.name] for s in specs]


def load_bronze_source(
    spark: SparkSession,
    catalog: TableCatalog,
    spec: SourceSpec,
    landing_root: str,
    log: list[_LoggedFile] | None = None,
    *,
    lock_settings: LockSettings | None = None,
    held: locks.Lock | None = None,
) -> BronzeLoad:
    """Load every not-yet-loaded file of ``spec`` into its bronze table, exactly once
    (:func:`load_bronze_sources` for one source; raises what stopped it).

    Holds the source's ``bronze:<source>`` lock throughout (``lock_settings``: lease and wait;
    :class:`~profilehouse.locks.LockHeldError` when another live run holds it), unless ``held``
    is a :class:`~profilehouse.locks.Lock` the caller holds that covers the source. The claim
    check keeps loads exactly-once even if the lock is bypassed (a lease that expired under a
    stalled run): a run that finds its load ID taken starts over from a fresh file log.
    ``log``: the source's file-log entries when the caller has read them already.
    """
    name = f"bronze:{spec.name}"
    if held is not None and not held.holds(name):
        raise ValueError(f"the lock passed as held ({held.name}) does not cover {name}")
    holding = nullcontext(held) if held else locks.hold(spark, catalog, name, lock_settings)
    with holding:
        logs = None if log is None else {spec.name: log}
        (result,) = load_bronze_sources(spark, catalog, [spec], landing_root, logs)
    if isinstance(result, BaseException):
        raise result
    return result


def loaded_load_ids_by_source(spark: SparkSession, catalog: TableCatalog) -> dict[str, list[int]]:
    """For each source, the load IDs whose rows are committed to bronze, in order."""
    return {
        source: sorted({e.load_id for e in entries if e.status == LOADED})
        for source, entries in file_log_by_source(spark, catalog).items()
    }
