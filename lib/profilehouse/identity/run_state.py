"""What a later identity run needs from the last one: the state tables, pinned by version.

Each successful run ends by writing ``identity.run_state`` (one row): its run ID, the run whose
full training produced the linkage model, the model, a hash of the settings the state depends
on, and the Delta version of every state table. A ``rescore`` or ``incremental`` run reads the
state tables *at those versions*, so a run that crashed half-way (having overwritten some of
them) leaves the last good state readable, and the new run's own writes never change what it
reads.

Every run has a sequence number (``seq``, one more than the last committed run's). It first
records itself in ``identity.pending_run``: run ID, seq, mode, settings hash and the Delta
version of every input table (silver, vault) it reads. Its appends (aliases, lineage, metrics)
are idempotent (``txnAppId`` per table and run ID, ``txnVersion = seq``), and ``run_state`` is
its last write: the commit that makes the run the one the next run starts from
(``master_members`` of the previous run is read at the version pinned there, not as the crashed
run may have left it). A run that crashed before that commit is finished by the next one
exactly as planned: same run ID (so the same new master IDs), same mode, the inputs at the
pinned versions, so every table ends as an uninterrupted run would have left it. If the
identity settings changed since, the interrupted run is withdrawn instead (its appended rows
are deleted) and a new one starts.

Term frequencies are stored by vault token for vault attributes (a name's frequency is keyed by
the name's token, never by the name) and by value otherwise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog, TableRef
from profilehouse.errors import ProfilehouseError
from profilehouse.identity import linker
from profilehouse.identity.fellegi_sunter import FellegiSunterModel
from profilehouse.identity.records import vault_token_column
from profilehouse.identity.settings import IdentitySettings
from profilehouse.ingest.silver import vault_table
from profilehouse.tables import identity_table

STATE_TABLES = (
    "records",
    "record_identifiers",
    "scored_pairs",
    "oversize_blocks",
    "phase1_clusters",
    "noisy_identifiers",
    "term_frequencies",
)

_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("mode", T.StringType(), False),
        T.StructField("trained_in", T.StringType(), False),
        T.StructField("trained_at", T.TimestampType(), False),
        T.StructField("settings_hash", T.StringType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("versions", T.StringType(), False),
        T.StructField("seq", T.LongType(), True),
    ]
)
_PENDING_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("seq", T.LongType(), False),
        T.StructField("mode", T.StringType(), False),
        T.StructField("settings_hash", T.StringType(), False),
        T.StructField("inputs", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
    ]
)


class IdentityStateError(ProfilehouseError):
    """A rescore or incremental run has no usable state from an earlier run."""


def settings_hash(settings: IdentitySettings) -> str:
    """Hash of everything the stored state depends on (all settings but the golden record's)."""
    data = settings.model_dump(mode="json", exclude={"golden_record", "linkage_retrain_after_days"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _tf_columns(settings: IdentitySettings) -> dict[str, str]:
    return {s.name: linker.tf_column(s) for s in settings.linkage.comparisons if s.term_frequency}


def _vault_attributes(settings: IdentitySettings) -> set[str]:
    return {a for source in settings.records.values() for a in source.vault_attributes}


@dataclass(frozen=True)
class PreviousRun:
    """The last run's state (DataFrames read at the pinned versions)."""

    run_id: str
    trained_in: str
    trained_at: dt.datetime
    model: FellegiSunterModel
    term_frequencies: dict[str, DataFrame]
    records: DataFrame
    identifiers: DataFrame
    scored: DataFrame
    oversize: DataFrame
    phase1: DataFrame
    noise: DataFrame  # value: the values kept from linking (max_records, conflicting_holders)


def load(spark: SparkSession, catalog: TableCatalog, settings: IdentitySettings) -> PreviousRun:
    """The last successful run's state; IdentityStateError when there is none or it does not
    fit the settings now."""
    ref = identity_table(catalog, "run_state")
    if not delta_io.table_exists(spark, ref):
        raise IdentityStateError(
            f"no earlier identity run in {ref.location} (table {ref.qualified_name})"
        )
    row = delta_io.read_table(spark, ref).first()
    if row is None:
        raise IdentityStateError(f"{ref.qualified_name} is empty")
    if row["settings_hash"] != settings_hash(settings):
        raise IdentityStateError(
            f"conf/identity.yaml changed since run {row['run_id']} (identifiers, records, "
            "linkage or clusters): its state no longer applies"
        )
    try:
        model = FellegiSunterModel.from_dict(
            json.loads(row["model"]), settings.linkage.comparisons, _tf_columns(settings)
        )
    except ValueError as exc:
        raise IdentityStateError(f"{ref.qualified_name}: {exc}") from exc
    versions = json.loads(row["versions"])

    def pinned(name: str) -> DataFrame:
        return delta_io.read_table(spark, identity_table(catalog, name), version=versions[name])

    linked_nothing = F.col("reason").isin("max_records", "conflicting_holders")
    noise = pinned("noisy_identifiers").where(linked_nothing).select("value")
    return PreviousRun(
        run_id=row["run_id"],
        trained_in=row["trained_in"],
        trained_at=row["trained_at"],
        model=model,
        term_frequencies=_frequencies(spark, catalog, pinned("term_frequencies"), settings),
        records=pinned("records"),
        identifiers=pinned("record_identifiers"),
        scored=pinned("scored_pairs"),
        oversize=pinned("oversize_blocks"),
        phase1=pinned("phase1_clusters"),
        noise=noise,
    )


def _frequencies(
    spark: SparkSession, catalog: TableCatalog, stored: DataFrame, settings: IdentitySettings
) -> dict[str, DataFrame]:
    """Per term-frequency comparison, ``(<column>, <tf column>)`` (vault tokens → values)."""
    vault = delta_io.read_table(spark, vault_table(catalog)).select(
        F.col("token").alias("key"), "value"
    )
    vault_attributes = _vault_attributes(settings)
    out = {}
    for spec in settings.linkage.comparisons:
        if not spec.term_frequency:
            continue
        rows = stored.where(F.col("comparison") == spec.name)
        if spec.column in vault_attributes:
            value = rows.join(vault, "key").select(F.col("value").alias(spec.column), "tf")
        else:
            stored_type = rows.select("value_type").first()
            cast = stored_type["value_type"] if stored_type else "string"
            value = rows.select(F.col("key").cast(cast).alias(spec.column), "tf")
        out[spec.name] = value.withColumnRenamed("tf", linker.tf_column(spec))
    return out


def write_term_frequencies(
    spark: SparkSession,
    catalog: TableCatalog,
    frequencies: dict[str, DataFrame],
    keyed: DataFrame,
    settings: IdentitySettings,
) -> None:
    """Store a full run's term frequencies (tokens for vault attributes, values otherwise)."""
    specs = {s.name: s for s in settings.linkage.comparisons}
    # the values as compared (e.g. simplified), beside the token of the value as stored
    prepared = linker.prepared_records(keyed, settings.linkage)
    parts = []
    for name, frame in frequencies.items():
        column, tf = specs[name].column, linker.tf_column(specs[name])
        value_type = keyed.schema[column].dataType.simpleString()
        if column in _vault_attributes(settings):
            tokens = prepared.select(column, vault_token_column(column)).distinct()
            key = frame.join(tokens, column).select(
                F.col(vault_token_column(column)).alias("key"), tf
            )
        else:
            key = frame.select(F.col(column).cast("string").alias("key"), tf)
        parts.append(
            key.select(
                F.lit(name).alias("comparison"),
                "key",
                F.lit(value_type).alias("value_type"),
                F.col(tf).alias("tf"),
            )
        )
    schema = "comparison string, key string, value_type string, tf double"
    table = spark.createDataFrame([], schema)
    for part in parts:
        table = table.unionByName(part)
    delta_io.write_table(table, identity_table(catalog, "term_frequencies"), overwrite_schema=True)


def save(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    run_id: str,
    mode: str,
    model: FellegiSunterModel,
    trained_in: str,
    trained_at: dt.datetime,
    seq: int | None = None,
) -> None:
    """Record this run as the state the next one starts from (the run's last write: the commit
    that makes the run visible). ``seq``: the run's :class:`PlannedRun` sequence number."""
    pinned = (*STATE_TABLES, "master_members")
    versions = {
        name: delta_io.table_version(spark, identity_table(catalog, name)) for name in pinned
    }
    row = [
        (
            run_id,
            mode,
            trained_in,
            trained_at,
            settings_hash(settings),
            model.to_json(),
            json.dumps(versions),
            seq,
        )
    ]
    delta_io.write_table(
        spark.createDataFrame(row, _SCHEMA).coalesce(1),
        identity_table(catalog, "run_state"),
        overwrite_schema=True,
    )


# --- runs: planned, pinned, finished after a crash -----------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """A run as recorded before its first write (see the module docstring)."""

    run_id: str
    seq: int
    mode: str
    inputs: dict[str, int]  # input table (layer.name) → the Delta version the run reads
    started_at: dt.datetime

    def version_of(self, ref: TableRef) -> int | None:
        return self.inputs.get(ref.qualified_name)


def _last_state_row(spark: SparkSession, catalog: TableCatalog):
    ref = identity_table(catalog, "run_state")
    if not delta_io.table_exists(spark, ref):
        return None, ref
    return delta_io.read_table(spark, ref).first(), ref


def committed_seq(spark: SparkSession, catalog: TableCatalog) -> int:
    """Sequence number of the last committed run (0 before the first one)."""
    row, ref = _last_state_row(spark, catalog)
    if row is None:
        return 0
    seq = row.asDict().get("seq")
    if seq is not None:
        return int(seq)
    return delta_io.table_version(spark, ref)  # a state written before runs were numbered


def _pending_row(spark: SparkSession, catalog: TableCatalog):
    ref = identity_table(catalog, "pending_run")
    return delta_io.read_table(spark, ref).first() if delta_io.table_exists(spark, ref) else None


def interrupted_run(
    spark: SparkSession, catalog: TableCatalog, settings: IdentitySettings
) -> PlannedRun | None:
    """The run that started after the last committed one and never committed (it crashed),
    when it can still be finished as planned (the settings are the same); else None."""
    row = _pending_row(spark, catalog)
    if row is None or row["seq"] <= committed_seq(spark, catalog):
        return None
    if row["settings_hash"] != settings_hash(settings):
        return None
    inputs = json.loads(row["inputs"])
    return PlannedRun(row["run_id"], int(row["seq"]), row["mode"], inputs, row["started_at"])


def plan_run(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    run_id: str,
    mode: str,
    inputs: list[TableRef],
    appended: list[TableRef],
) -> PlannedRun:
    """Record a new run before it writes anything: its sequence number and the versions of
    ``inputs`` it will read. An interrupted run that cannot be finished (other settings) is
    withdrawn first: its rows are deleted from the ``appended`` tables."""
    seq = committed_seq(spark, catalog) + 1
    stale = _pending_row(spark, catalog)
    if stale is not None and stale["seq"] >= seq:
        withdraw_run(spark, appended, stale["run_id"])
        seq = int(stale["seq"]) + 1  # its txn versions are used up
    versions = {ref.qualified_name: delta_io.table_version(spark, ref) for ref in inputs}
    planned = PlannedRun(run_id, seq, mode, versions, _utcnow())
    row = [(run_id, seq, mode, settings_hash(settings), json.dumps(versions), planned.started_at)]
    delta_io.write_table(
        spark.createDataFrame(row, _PENDING_SCHEMA).coalesce(1),
        identity_table(catalog, "pending_run"),
        overwrite_schema=True,
    )
    return planned


def withdraw_run(spark: SparkSession, tables: list[TableRef], run_id: str) -> None:
    """Delete the rows of run ``run_id`` from ``tables`` (an abandoned run's appends)."""
    for ref in tables:
        if delta_io.table_exists(spark, ref):
            delta_io.delete_rows(spark, ref, F.col("run_id") == run_id)


def previous_members(spark: SparkSession, catalog: TableCatalog) -> DataFrame | None:
    """``identity.master_members`` as the last committed run left it (the version pinned in
    run_state), never as a crashed run may have overwritten it; None before the first run."""
    row, _ = _last_state_row(spark, catalog)
    ref = identity_table(catalog, "master_members")
    if row is None or not delta_io.table_exists(spark, ref):
        return None
    version = json.loads(row["versions"]).get("master_members")  # absent in old states
    return delta_io.read_table(spark, ref, version=version)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
