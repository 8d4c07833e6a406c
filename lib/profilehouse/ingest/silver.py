"""Silver: bronze loads → typed, standardised, tokenised, deduplicated Delta tables.

Each bronze load of a source is processed once, in load order:

1. its rows are typed and validated (:mod:`profilehouse.ingest.validate`) and the counts per
   batch and per reason are computed; a file whose typed column parses for none of its values
   stops the job (:class:`SchemaError` naming file and column), and a load whose share of
   rejected rows exceeds the source's ``reject_rate_threshold`` (with at least
   ``reject_min_rows`` rejected) stops it too
   (:class:`RejectRateError`, recorded as ``failed`` in the reconciliation table); a file
   that did not carry an optional column (bronze's ``_absent_columns``) stops it when the
   source says ``missing_columns: fail`` (:class:`SchemaError` naming file and column);
2. accepted rows, PII replaced by tokens and masks, are deduplicated by business key and
   MERGEd into ``silver.<source>``: a key's newest version wins (``order_by``, then batch, load
   and row hash), so re-delivered corrections update in place and replays change nothing.
   Schema drift (``missing_columns: keep``, the default): a column the winning version's file
   did not carry takes its value from the newest version that carried it, within the load or
   in silver (whichever is newer), so a later file without ``email`` never blanks the e-mails;
   each such file is reported (``SilverLoad.absent_columns``) and counted as the warn rule
   ``absent:<column>`` in ``ops.dq_rule_counts`` (rows of the file);
3. the normalised PII values are added to ``vault.pii`` (insert-only MERGE on the token);
4. rejected rows are appended to ``ops.quarantine`` with their reasons and the raw row;
5. per-rule counts go to ``ops.dq_rule_counts`` and the per-batch reconciliation
   (rows in = accepted + quarantined) to ``ops.ingest_reconciliation``; this last commit marks
   the load as done.

Step 2 is a commit per load; steps 3–5 are one commit each for all the loads of a run, every
source's (:func:`commit_outputs`): a load's vault and quarantine rows are kept (persisted)
until then. Steps 4 and 5 insert a load's rows only if the table has none of that load yet
(a ``failed`` reconciliation is keyed by its status too, so a load that keeps failing is
recorded once, by its first failure) and steps 2 and 3 change nothing when replayed, so a run
that dies between any two commits is finished by the next run with the same result as an
uninterrupted one. :data:`AFTER_COMMIT` is the seam tests use to stop a run after a commit.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog, TableRef
from profilehouse.errors import ProfilehouseError, SchemaError
from profilehouse.ingest.bronze import ABSENT, bronze_table, loaded_load_ids_by_source
from profilehouse.ingest.parallel import MapSources, in_turn
from profilehouse.ingest.source_config import ColumnSpec, SourceSpec
from profilehouse.ingest.validate import (
    ERRORS,
    RAW,
    WARNINGS,
    protected_frame,
    validated_frame,
)
from profilehouse.privacy.tokens import KEY_INNER, KEY_OUTER, token_key_frame
from profilehouse.tables import (
    quarantine_table,
    reconciliation_table,
    rule_counts_table,
    silver_table,
    vault_table,
)
from profilehouse.timing import StepTimer

CDF = {"delta.enableChangeDataFeed": "true"}
META_COLUMNS = ("_batch", "_load_id", "_source_file", "_row_hash", "_ingested_at")
PASSED, FAILED = "passed", "failed"
MIN_ROWS_FOR_TYPE_CHECK = 10
RECONCILIATION_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("load_id", T.LongType(), False),
        T.StructField("batch", T.StringType(), False),
        T.StructField("rows_in", T.LongType(), False),
        T.StructField("accepted", T.LongType(), False),
        T.StructField("quarantined", T.LongType(), False),
        T.StructField("warned", T.LongType(), False),
        T.StructField("reject_rate", T.DoubleType(), False),
        T.StructField("threshold", T.DoubleType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("processed_at", T.TimestampType(), False),
    ]
)
RULE_COUNTS_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("load_id", T.LongType(), False),
        T.StructField("batch", T.StringType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("rows", T.LongType(), False),
    ]
)


# The commits of a run, in order: ``silver`` once per load, then the others once for all the
# run's loads. After each, AFTER_COMMIT(commit, load_id) is called when set (load_id None for
# the shared ones): a failure-injection seam for tests (a hook that raises is a crash right
# after that commit); production code never sets it.
COMMITS = ("silver", "vault", "quarantine", "rule_counts", "reconciliation")
AFTER_COMMIT: Callable[[str, int | None], None] | None = None


def _committed(commit: str, load_id: int | None) -> None:
    if AFTER_COMMIT is not None:
        AFTER_COMMIT(commit, load_id)


class RejectRateError(ProfilehouseError):
    """A load rejected a larger share of its rows than its source allows."""


@dataclass
class SilverLoad:
    """What one silver run did for one source (sums over the loads it processed)."""

    source: str
    load_ids: list[int] = field(default_factory=list)
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    warned: int = 0
    inserted: int = 0
    updated: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # quarantine reason → rows
    warnings: dict[str, int] = field(default_factory=dict)  # warning → rows
    absent_columns: dict[str, list[str]] = field(default_factory=dict)  # file → columns it lacked
    seconds: float = 0.0
    timer: StepTimer = field(default_factory=StepTimer, repr=False, compare=False)

    @property
    def seconds_by_step(self) -> dict[str, float]:
        """Seconds per step, summed over the loads: validate (read bronze, check, tokenise,
        count), then each commit."""
        return self.timer.seconds_by_step()


# --- column lists and keys -----------------------------------------------------------------------


def derived_columns(name: str, col: ColumnSpec) -> list[str]:
    """The silver columns that the logical column ``name`` becomes (its value, or its token and
    mask and address parts, and its validity flag): what a file without ``name`` cannot set."""
    columns = []
    if col.is_pii:
        columns += [name] if col.partly_pii else []
        columns += [f"{name}_token", f"{name}_masked"]
        if col.standardize == "address":
            columns += [f"{name}_province", f"{name}_city"]
    else:
        columns.append(name)
    if col.standardize in ("mobile", "email", "id_no"):
        columns.append(f"{name}_valid")
    return columns


def silver_columns(spec: SourceSpec) -> list[str]:
    """The columns of ``silver.<source>``, in order."""
    columns = [c for name, col in spec.columns.items() for c in derived_columns(name, col)]
    return [*columns, WARNINGS, *META_COLUMNS]


def key_sql(spec: SourceSpec, alias: str) -> list[str]:
    """SQL of each business-key part in silver (a PII key is its token), prefixed by ``alias``."""
    parts = []
    for name in spec.business_key:
        col = spec.columns[name]
        if col.partly_pii:
            parts.append(f"coalesce({alias}.`{name}`, {alias}.`{name}_token`)")
        elif col.is_pii:
            parts.append(f"{alias}.`{name}_token`")
        else:
            parts.append(f"{alias}.`{name}`")
    return parts


def version_sql(spec: SourceSpec, alias: str) -> str:
    """SQL struct ordering versions of one key: the newest is the greatest."""
    parts = [f"`{spec.order_by}`"] if spec.order_by else []
    parts += ["_batch", "_load_id", "_row_hash"]
    return "struct(" + ", ".join(f"{alias}.{p}" for p in parts) + ")"


def carried_version_column(name: str) -> str:
    """Helper column: the version of the newest row of a key that carried column ``name``."""
    return f"__version_{name}"


def latest_per_key(accepted: DataFrame, spec: SourceSpec, absent: Sequence[str] = ()) -> DataFrame:
    """One row per business key: its newest version within ``accepted``.

    ``absent``: logical columns some file of ``accepted`` did not carry (``_absent_columns``).
    For each, the row takes that column's silver columns from the key's newest version that
    carried it (null when none did) and gains :func:`carried_version_column` (that version, or
    null), which the MERGE compares with silver's version to decide whose value is newer.
    """
    keys = [F.expr(k) for k in key_sql(spec, "a")]
    version = F.expr(version_sql(spec, "a"))
    newest = Window.partitionBy(*keys).orderBy(version.desc())
    ranked = accepted.alias("a").withColumns(
        {**_newest_carried(spec, absent, keys, version), "__rank": F.row_number().over(newest)}
    )
    latest = ranked.where("__rank = 1").drop("__rank")
    if not absent:
        return latest
    carried = {
        column: F.col(f"__carried_{name}").getField(column)
        for name in absent
        for column in derived_columns(name, spec.columns[name])
    }
    return latest.withColumns(carried).drop(*[f"__carried_{name}" for name in absent])


def _newest_carried(
    spec: SourceSpec, absent: Sequence[str], keys: list[Column], version: Column
) -> dict[str, Column]:
    """Per absent column: the silver columns and the version of the key's newest row whose file
    carried it (window aggregates over the key, sharing the deduplication's partitioning)."""
    whole = Window.partitionBy(*keys)
    columns: dict[str, Column] = {}
    for name in absent:
        carried_version = F.when(~F.array_contains(F.col(ABSENT), name), version)
        values = F.struct(*[F.col(c) for c in derived_columns(name, spec.columns[name])])
        columns[f"__carried_{name}"] = F.max_by(values, carried_version).over(whole)
        columns[carried_version_column(name)] = F.max(carried_version).over(whole)
    return columns


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadFigures:
    per_batch: dict[str, dict[str, int]]  # batch → rows_in / quarantined / warned
    rules: list[tuple[str, str, str, int]]  # (batch, rule, severity, rows)
    absent: dict[str, list[str]] = field(default_factory=dict)  # file → columns it lacked

    @property
    def absent_columns(self) -> list[str]:
        """The logical columns that some file of the load did not carry."""
        return sorted({c for columns in self.absent.values() for c in columns})

    @property
    def rows_in(self) -> int:
        return sum(b["rows_in"] for b in self.per_batch.values())

    @property
    def quarantined(self) -> int:
        return sum(b["quarantined"] for b in self.per_batch.values())

    @property
    def warned(self) -> int:
        return sum(b["warned"] for b in self.per_batch.values())


def _typed_columns(spec: SourceSpec) -> list[str]:
    return [n for n, c in spec.columns.items() if c.type != "string"]


def _load_figures(validated: DataFrame, spec: SourceSpec) -> _LoadFigures:
    """Counts per batch and per (batch, reason), after checking that typed columns parse
    (:func:`_check_types_parse`). Two small aggregations, collected."""
    rejected = F.size(ERRORS) > 0
    aggs = [
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(rejected.cast("long")).alias("quarantined"),
        F.sum((~rejected & (F.size(WARNINGS) > 0)).cast("long")).alias("warned"),
    ]
    for i, name in enumerate(_typed_columns(spec)):
        present = F.nullif(F.trim(F.col(f"__raw_{name}")), F.lit("")).isNotNull()
        failed = F.array_contains(F.concat(ERRORS, WARNINGS), f"unparseable:{name}")
        aggs += [
            F.sum(present.cast("long")).alias(f"p{i}"),
            F.sum(failed.cast("long")).alias(f"f{i}"),
            F.first(F.when(failed, F.col(f"__raw_{name}")), ignorenulls=True).alias(f"e{i}"),
        ]
    aggs.append(F.max(ABSENT).alias("absent"))  # the same for every row of a file
    files = validated.groupBy("_batch", "_source_file").agg(*aggs).collect()  # row per file
    _check_types_parse(files, spec)
    absent = {row["_source_file"]: list(row["absent"]) for row in files if row["absent"]}
    per_batch: dict[str, dict[str, int]] = {}
    for row in files:
        counts = per_batch.setdefault(row["_batch"], dict.fromkeys(_COUNTS, 0))
        for k in _COUNTS:
            counts[k] += int(row[k])
    reasons = validated.select(
        "_batch",
        F.explode(
            F.concat(
                F.transform(ERRORS, lambda x: F.struct(x.alias("rule"), F.lit("error"))),
                F.transform(WARNINGS, lambda x: F.struct(x.alias("rule"), F.lit("warn"))),
            )
        ).alias("r"),
    )
    rules = reasons.groupBy("_batch", "r.rule", F.col("r.col2").alias("severity")).count()
    row_rules = [(r["_batch"], r["rule"], r["severity"], int(r["count"])) for r in rules.collect()]
    return _LoadFigures(per_batch, sorted(row_rules + _absent_rules(files)), absent)


def _absent_rules(files: list) -> list[tuple[str, str, str, int]]:
    """The warn rule ``absent:<column>`` per batch, counting the rows of files without it."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in files:
        for column in row["absent"] or []:
            counts[(row["_batch"], f"absent:{column}")] += int(row["rows_in"])
    return [(batch, rule, "warn", n) for (batch, rule), n in counts.items()]


_COUNTS = ("rows_in", "quarantined", "warned")


def _check_types_parse(files: list, spec: SourceSpec) -> None:
    """SchemaError naming file and column when a typed column of a file parses for none of its
    (at least MIN_ROWS_FOR_TYPE_CHECK) values: a format or type change, not dirty rows."""
    for row in files:
        for i, name in enumerate(_typed_columns(spec)):
            present, failed = row[f"p{i}"] or 0, row[f"f{i}"] or 0
            if present >= MIN_ROWS_FOR_TYPE_CHECK and failed == present:
                col = spec.columns[name]
                how = f"formats {col.formats}" if col.formats else f"epoch {col.epoch}"
                how = how if (col.formats or col.epoch) else "its default formats"
                raise SchemaError(
                    f"{spec.name}: file {row['_source_file']}: column {spec.source_column(name)}"
                    f" (logical {name}): none of its {present} values parse as {col.type} "
                    f"with {how}; e.g. a value shaped {value_shape(row[f'e{i}'])!r} "
                    "(9 = digit, a/A = letter, 字 = Chinese character)"
                )


def _check_missing_columns(spec: SourceSpec, figures: _LoadFigures) -> None:
    """SchemaError naming the files and the optional columns they lacked, when the source says
    ``missing_columns: fail`` (required columns missing are refused by bronze already)."""
    if spec.missing_columns != "fail" or not figures.absent:
        return
    listed = "; ".join(
        f"file {file} lacks column(s) {', '.join(_export_name(spec, c) for c in columns)}"
        for file, columns in sorted(figures.absent.items())[:5]
    )
    more = f" (and {len(figures.absent) - 5} more file(s))" if len(figures.absent) > 5 else ""
    raise SchemaError(
        f"{spec.name}: {listed}{more}. The source has missing_columns: fail in "
        "conf/sources.yaml; deliver the file(s) with the column(s), or set missing_columns: keep "
        "to keep silver's existing values for them, and re-run."
    )


def _export_name(spec: SourceSpec, logical: str) -> str:
    source = spec.source_column(logical)
    return source if source == logical else f"{source} (logical {logical})"


def value_shape(value: object, limit: int = 40) -> str:
    """The shape of a value for error messages, never the value: each digit becomes '9', each
    letter 'a' or 'A', each Chinese character '字' (other characters are kept), at most
    ``limit`` characters. Enough to see a date format ('99/99/9999'), nothing of a person."""
    text = str(value)
    shape = "".join(_char_shape(c) for c in text[:limit])
    return shape + ("…" if len(text) > limit else "")


def _char_shape(char: str) -> str:
    if char.isdigit():
        return "9"
    if "\u3400" <= char <= "\u9fff":
        return "字"
    if char.isalpha():
        return "A" if char.isupper() else "a"
    return char


def _check_reject_rate(spec: SourceSpec, load_id: int, figures: _LoadFigures) -> str | None:
    """A message when the load's share of rejected rows exceeds the threshold; else None."""
    if not figures.rows_in:
        return None
    rate = figures.quarantined / figures.rows_in
    if rate <= spec.reject_rate_threshold or figures.quarantined < spec.reject_min_rows:
        return None
    errors: dict[str, int] = {}
    for _batch, rule, severity, rows in figures.rules:
        if severity == "error":
            errors[rule] = errors.get(rule, 0) + rows
    top = ", ".join(f"{r} {n:,}" for r, n in sorted(errors.items(), key=lambda kv: -kv[1])[:5])
    return (
        f"{spec.name} load {load_id}: {figures.quarantined:,} of {figures.rows_in:,} rows "
        f"rejected ({rate:.2%}) > reject_rate_threshold {spec.reject_rate_threshold:.2%}; "
        f"top reasons: {top}. Nothing of this load was written to silver; fix the input or the "
        "source's rules/threshold in conf/sources.yaml and re-run."
    )


def _reconciliation_rows(
    spec: SourceSpec, load_id: int, figures: _LoadFigures, status: str
) -> list[tuple]:
    now = _now()
    return [
        (
            spec.name,
            load_id,
            batch,
            b["rows_in"],
            b["rows_in"] - b["quarantined"],
            b["quarantined"],
            b["warned"],
            b["quarantined"] / b["rows_in"] if b["rows_in"] else 0.0,
            spec.reject_rate_threshold,
            status,
            now,
        )
        for batch, b in sorted(figures.per_batch.items())
    ]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


# --- writes --------------------------------------------------------------------------------------


def _merge_silver(
    spark: SparkSession,
    ref: TableRef,
    rows: DataFrame,
    spec: SourceSpec,
    absent: Sequence[str] = (),
) -> dict:
    """Create the silver table from ``rows``, or MERGE them in (newest version per key wins).

    ``absent``: columns some file of the load did not carry; ``rows`` then hold their
    :func:`carried_version_column` and the update keeps silver's value of such a column unless
    the row's carried version is newer than silver's (one MERGE: a CASE per affected column).
    """
    columns = silver_columns(spec)
    if not delta_io.table_exists(spark, ref):
        delta_io.write_table(rows.select(*columns), ref, mode="append", properties=CDF)
        return {"inserted": delta_io.last_operation_metric(spark, ref, "numOutputRows")}
    on = " AND ".join(
        f"{t} <=> {s}" for t, s in zip(key_sql(spec, "t"), key_sql(spec, "s"), strict=True)
    )
    newer = f"{version_sql(spec, 's')} > {version_sql(spec, 't')}"
    if absent:
        metrics = delta_io.merge_rows(
            spark,
            ref,
            rows,
            on,
            update_when=newer,
            update_set=_update_set_sql(spec, absent),
            insert_values={c: f"s.`{c}`" for c in columns},
        )
    else:
        metrics = delta_io.merge_rows(spark, ref, rows.select(*columns), on, update_when=newer)
    return {
        "inserted": metrics.get("numTargetRowsInserted", 0),
        "updated": metrics.get("numTargetRowsUpdated", 0),
    }


def _update_set_sql(spec: SourceSpec, absent: Sequence[str]) -> dict[str, str]:
    """Silver column → SQL of its updated value: the source row's, except that a column derived
    from an ``absent`` column keeps silver's value unless the source carried a newer one."""
    kept_by = {
        column: name for name in absent for column in derived_columns(name, spec.columns[name])
    }
    target_version = version_sql(spec, "t")
    update = {}
    for column in silver_columns(spec):
        name = kept_by.get(column)
        update[column] = (
            f"s.`{column}`"
            if name is None
            else f"CASE WHEN s.`{carried_version_column(name)}` > {target_version} "
            f"THEN s.`{column}` ELSE t.`{column}` END"
        )
    return update


def _vault_rows(protected: DataFrame, spec: SourceSpec) -> DataFrame | None:
    """Distinct (kind, token, normalised value) of the PII in ``protected``; None when none."""
    parts = [
        protected.select(
            F.col(f"__pii_kind_{name}").alias("kind"),
            F.col(f"{name}_token").alias("token"),
            F.col(f"__pii_{name}").alias("value"),
        )
        for name, col in spec.columns.items()
        if col.is_pii
    ]
    if not parts:
        return None
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.unionByName(part)
    return (
        rows.where(F.col("token").isNotNull())
        .dropDuplicates(["token"])
        .withColumns({"first_source": F.lit(spec.name), "first_seen_at": F.lit(_now())})
    )


def _merge_vault(spark: SparkSession, catalog: TableCatalog, rows: DataFrame) -> None:
    """Insert the tokens the vault does not hold yet.

    Sources share values (an account number in accounts, balances and transactions), and two
    runs may add the same token at once, so rows only ever arrive by an insert-only MERGE on
    the token into a vault created *empty* (:func:`delta_io.insert_once`): concurrent MERGEs
    conflict in Delta and the loser is retried against the winner's rows, whereas two writers
    creating the table with their rows would both land, duplicating tokens.
    """
    delta_io.insert_once(spark, vault_table(catalog), rows, "t.token = s.token")


def _quarantine_rows(validated: DataFrame, spec: SourceSpec) -> DataFrame:
    return validated.where(F.size(ERRORS) > 0).select(
        F.lit(spec.name).alias("source"),
        F.col("_load_id").alias("load_id"),
        F.col("_batch").alias("batch"),
        F.col("_source_file").alias("source_file"),
        F.col("_row_hash").alias("row_hash"),
        F.col(ERRORS).alias("reasons"),
        F.col(RAW).alias("raw"),
        F.col("_ingested_at").alias("ingested_at"),
        F.lit(_now()).alias("quarantined_at"),
    )


_ONCE_PER_LOAD = "t.source = s.source AND t.load_id = s.load_id"


def _append_quarantine(
    spark: SparkSession, catalog: TableCatalog, outputs: list[LoadOutput]
) -> None:
    frames = [o.quarantine for o in outputs if o.quarantine is not None]
    ref = quarantine_table(catalog)
    if frames and (any(o.quarantined for o in outputs) or not delta_io.table_exists(spark, ref)):
        rows = reduce(DataFrame.unionByName, frames).coalesce(1)
        delta_io.insert_once(spark, ref, rows, _ONCE_PER_LOAD)


def _append_rule_counts(
    spark: SparkSession, catalog: TableCatalog, outputs: list[LoadOutput]
) -> None:
    rows = [r for o in outputs for r in o.rule_counts]
    ref = rule_counts_table(catalog)
    if rows or (outputs and not delta_io.table_exists(spark, ref)):
        frame = spark.createDataFrame(rows, RULE_COUNTS_SCHEMA).coalesce(1)
        delta_io.insert_once(spark, ref, frame, _ONCE_PER_LOAD)


def _append_reconciliation(
    spark: SparkSession, catalog: TableCatalog, outputs: list[LoadOutput]
) -> None:
    """Record the loads' per-batch reconciliation; a ``passed`` record marks a load done, a
    ``failed`` one is recorded once per load however often it fails."""
    rows = [r for o in outputs for r in o.reconciliation]
    if rows:
        frame = spark.createDataFrame(rows, RECONCILIATION_SCHEMA).coalesce(1)
        on = f"{_ONCE_PER_LOAD} AND t.status = s.status"
        delta_io.insert_once(spark, reconciliation_table(catalog), frame, on)


def _vault_union(outputs: list[LoadOutput]) -> DataFrame | None:
    """The loads' vault rows, one per token (its first source by name, for a stable pick)."""
    frames = [o.vault for o in outputs if o.vault is not None]
    if not frames:
        return None
    if len(frames) == 1:
        return frames[0]  # distinct tokens already
    rows = reduce(DataFrame.unionByName, frames)
    columns = rows.columns
    first = F.min_by(F.struct(*columns), F.col("first_source")).alias("row")
    return rows.groupBy("token").agg(first).select(*[F.col(f"row.{c}") for c in columns])


def _add_to_vault(spark: SparkSession, catalog: TableCatalog, outputs: list[LoadOutput]) -> None:
    vault = _vault_union(outputs)
    if vault is not None:
        _merge_vault(spark, catalog, vault)


def commit_outputs(
    spark: SparkSession, catalog: TableCatalog, outputs: list[LoadOutput]
) -> dict[str, float]:
    """The shared commits of a run's processed loads (any sources): vault, quarantine, rule
    counts, then reconciliation, which marks the loads done. One commit each for all the loads
    (a commit costs seconds; per load and source they were half of a daily increment), each
    keyed so that replaying it adds nothing. Returns the seconds of each commit."""
    timer = StepTimer()
    try:
        for name, commit in (
            ("vault", _add_to_vault),
            ("quarantine", _append_quarantine),
            ("rule_counts", _append_rule_counts),
            ("reconciliation", _append_reconciliation),
        ):
            with timer.step(name):
                commit(spark, catalog, outputs)
            _committed(name, None)
    finally:
        for output in outputs:
            output.release()
    return timer.seconds_by_step()


# --- the load ------------------------------------------------------------------------------------


def pending_loads_by_source(spark: SparkSession, catalog: TableCatalog) -> dict[str, list[int]]:
    """For each source, its bronze loads not yet processed into silver, oldest first."""
    ref = reconciliation_table(catalog)
    done: set[tuple[str, int]] = set()
    if delta_io.table_exists(spark, ref):
        rows = (
            delta_io.read_table(spark, ref)
            .where(F.col("status") == PASSED)
            .select("source", "load_id")
            .distinct()
            .collect()
        )
        done = {(r["source"], int(r["load_id"])) for r in rows}
    return {
        source: [i for i in load_ids if (source, i) not in done]
        for source, load_ids in loaded_load_ids_by_source(spark, catalog).items()
    }


def pending_load_ids(spark: SparkSession, catalog: TableCatalog, source: str) -> list[int]:
    """Bronze loads of ``source`` not yet in silver, oldest first."""
    return pending_loads_by_source(spark, catalog).get(source, [])


def validated_load(
    spark: SparkSession, catalog: TableCatalog, spec: SourceSpec, load_id: int, key: bytes
) -> DataFrame:
    """The bronze rows of one load, validated and PII-protected (not yet deduplicated).

    The token key's columns are dropped in the same projection that computes the tokens, so
    no cached, spilled, shuffled or written row of the result holds them.
    """
    bronze = delta_io.read_table(spark, bronze_table(catalog, spec)).where(
        F.col("_load_id") == load_id
    )
    nothing_absent = F.array().cast("array<string>")  # bronze written before the marker existed
    bronze = bronze.withColumn(
        ABSENT,
        F.coalesce(F.col(ABSENT), nothing_absent) if ABSENT in bronze.columns else nothing_absent,
    )
    keyed = bronze.crossJoin(F.broadcast(token_key_frame(spark, key)))
    return protected_frame(validated_frame(keyed, spec), spec).drop(KEY_INNER, KEY_OUTER)


@dataclass
class LoadOutput:
    """What a processed load leaves for the run's shared commits (:func:`commit_outputs`):
    its reconciliation and rule-count rows, and its vault and quarantine rows (persisted)."""

    source: str
    load_id: int
    reconciliation: list[tuple]
    rule_counts: list[tuple] = field(default_factory=list)
    vault: DataFrame | None = None
    quarantine: DataFrame | None = None  # (persisted only when it holds rows)
    quarantined: int = 0

    def release(self) -> None:
        for frame in (self.vault, self.quarantine):
            if frame is not None and frame.is_cached:
                frame.unpersist()


def _set_aside(frame: DataFrame) -> DataFrame:
    """``frame`` persisted and computed, to outlive the load's validated rows."""
    kept = frame.persist(StorageLevel.MEMORY_AND_DISK)
    kept.count()
    return kept


def load_silver_load(
    spark: SparkSession,
    catalog: TableCatalog,
    spec: SourceSpec,
    load_id: int,
    key: bytes,
    result: SilverLoad,
) -> LoadOutput:
    """Process bronze load ``load_id`` of ``spec`` into silver; what it leaves for the shared
    commits. A load over its reject rate leaves only its ``failed`` reconciliation
    (``LoadOutput.rule_counts`` empty, nothing MERGEd): see :func:`load_silver_sources`."""
    step = result.timer.step
    validated = validated_load(spark, catalog, spec, load_id, key).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        with step("validate"):
            figures = _load_figures(validated, spec)
        _check_missing_columns(spec, figures)
        problem = _check_reject_rate(spec, load_id, figures)
        if problem:
            failed = _reconciliation_rows(spec, load_id, figures, FAILED)
            raise _RejectedLoadError(problem, LoadOutput(spec.name, load_id, failed))
        accepted = validated.where(F.size(ERRORS) == 0)
        absent = figures.absent_columns
        rows = latest_per_key(accepted, spec, absent).select(
            *silver_columns(spec), *[carried_version_column(c) for c in absent]
        )
        with step("silver"):
            merged = _merge_silver(spark, silver_table(catalog, spec), rows, spec, absent)
        _committed("silver", load_id)
        with step("set_aside"):
            vault = _vault_rows(accepted, spec)
            output = LoadOutput(
                spec.name,
                load_id,
                _reconciliation_rows(spec, load_id, figures, PASSED),
                [(spec.name, load_id, b, rule, sev, n) for b, rule, sev, n in figures.rules],
                None if vault is None else _set_aside(vault),
                _set_aside(_quarantine_rows(validated, spec))
                if figures.quarantined
                else _quarantine_rows(validated, spec).limit(0),  # no scan: an empty relation
                figures.quarantined,
            )
    finally:
        validated.unpersist()
    result.load_ids.append(load_id)
    result.rows_in += figures.rows_in
    result.quarantined += figures.quarantined
    result.accepted += figures.rows_in - figures.quarantined
    result.warned += figures.warned
    result.inserted += int(merged.get("inserted", 0))
    result.updated += int(merged.get("updated", 0))
    for _batch, rule, severity, rows_count in figures.rules:
        counts = result.errors if severity == "error" else result.warnings
        counts[rule] = counts.get(rule, 0) + rows_count
    result.absent_columns.update(figures.absent)
    return output


class _RejectedLoadError(Exception):
    """A load over its reject rate, with the ``failed`` reconciliation to record."""

    def __init__(self, problem: str, output: LoadOutput) -> None:
        super().__init__(problem)
        self.problem, self.output = problem, output


def _processed_source(
    spark: SparkSession,
    catalog: TableCatalog,
    spec: SourceSpec,
    key: bytes,
    pending: list[int],
) -> tuple[SilverLoad, list[LoadOutput], Exception | None]:
    """Every pending load of ``spec`` into silver, oldest first, until one fails; the outputs
    of the processed loads (and of a rejected one) and what stopped the source, if anything."""
    started = time.perf_counter()
    result, outputs = SilverLoad(spec.name), []
    error: Exception | None = None
    try:
        for load_id in pending:
            outputs.append(load_silver_load(spark, catalog, spec, load_id, key, result))
    except _RejectedLoadError as rejected:
        outputs.append(rejected.output)
        error = RejectRateError(rejected.problem)
    except Exception as exc:  # the loads before it are committed by the caller regardless
        error = exc
    result.seconds = round(time.perf_counter() - started, 2)
    return result, outputs, error


def load_silver_sources(
    spark: SparkSession,
    catalog: TableCatalog,
    specs: list[SourceSpec],
    key: bytes,
    pending: dict[str, list[int]] | None = None,
    map_sources: MapSources = in_turn,
) -> list[SilverLoad | BaseException]:
    """Process every bronze load of each source not yet in silver (the caller holds their
    ``silver:<source>`` locks), then make the shared commits of all the loads.

    Per source the loads go through silver oldest first, ``map_sources`` running the sources
    (one after the other by default; the stage passes its thread pool); then one vault, one
    quarantine, one rule-count and one reconciliation commit hold them all
    (:func:`commit_outputs`). A source stopped by a bad load (a :class:`SchemaError`, a
    :class:`RejectRateError`, whose ``failed`` reconciliation is recorded) still has the loads
    before it committed, and does not stop the others. ``pending``: each source's load IDs when
    the caller has read them already (:func:`pending_loads_by_source`).

    Returns, in source order, each source's :class:`SilverLoad` or the exception that stopped it.
    """
    if pending is None:
        pending = pending_loads_by_source(spark, catalog)
    known = pending
    processed = map_sources(
        specs,
        lambda spec: _processed_source(spark, catalog, spec, key, known.get(spec.name, [])),
    )
    outputs = [o for p in processed if not isinstance(p, BaseException) for o in p[1]]
    shared = commit_outputs(spark, catalog, outputs)
    done = [p for p in processed if not isinstance(p, BaseException)]
    results: list[SilverLoad | BaseException] = []
    for p in processed:
        if isinstance(p, BaseException):
            results.append(p)
            continue
        result, _outputs, error = p
        for step, took in shared.items():  # the shared commits, split evenly
            result.timer.add(step, took / len(done))
            result.seconds = round(result.seconds + took / len(done), 2)
        results.append(error if error is not None else result)
    return results


def load_silver_source(
    spark: SparkSession,
    catalog: TableCatalog,
    spec: SourceSpec,
    key: bytes,
    pending: list[int] | None = None,
) -> SilverLoad:
    """Process every bronze load of ``spec`` not yet in silver, oldest first (``pending``: those
    load IDs when the caller has read them already, see :func:`pending_loads_by_source`);
    :func:`load_silver_sources` for one source, raising what stopped it."""
    by_source = None if pending is None else {spec.name: pending}
    (result,) = load_silver_sources(spark, catalog, [spec], key, by_source)
    if isinstance(result, BaseException):
        raise result
    return result
