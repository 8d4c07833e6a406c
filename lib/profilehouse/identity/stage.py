"""The identity stage: silver records → master customer IDs, links, golden records, metrics.

Steps (each a DataFrame transform from the modules beside this one; reads and writes here):

1. identity records of every source in ``conf/identity.yaml`` (:mod:`.records`);
2. person records get their vault values (in memory only), the Fellegi–Sunter model is
   estimated from them (:mod:`.linker`) and every candidate pair is scored;
3. records are clustered (:mod:`.graph`) and clusters get stable master IDs (:mod:`.stable_ids`);
4. golden records are chosen (:mod:`.golden`);
5. tables are written, and the quality report against the generator's ground truth, when
   present (:mod:`.quality`).

Tables: ``identity.master_members`` (record → master ID), ``identity.identifier_map``
(identifier value → master ID, for later stages), ``identity.match_links`` (scored matches with
per-field evidence), ``identity.identifier_links`` (which identifiers linked which records),
``identity.master_aliases``, ``identity.master_lineage``, ``identity.golden_records``,
``identity.noisy_identifiers``; ``ops.identity_metrics`` and ``ops.identity_models`` (one row per
run, appended idempotently). Re-running on unchanged silver gives the same master IDs.

Concurrency and crashes: a run holds the ``identity`` lock (:mod:`profilehouse.locks`) from
start to end, so two runs never write each other's staging tables. Its inputs are pinned and
its appends idempotent, and ``identity.run_state`` is its last write (:mod:`.run_state`): a run
that crashed after any write is finished by the next run exactly as planned.
:data:`WRITE_BOUNDARIES` names the writes in order; :func:`crash_after` is the test seam that
stops a run right after one of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io, fs, locks
from profilehouse.catalog import TableCatalog, TableRef
from profilehouse.config import EnvironmentConfig
from profilehouse.errors import SchemaError
from profilehouse.identity import linker, quality, run_state
from profilehouse.identity.blocking import tokenised_block_keys
from profilehouse.identity.golden import build_golden_records
from profilehouse.identity.graph import (
    PreviousClusters,
    cluster_records,
    conflicting_values,
    node_id_expr,
    noisy_values,
)
from profilehouse.identity.incremental import (
    LinkageState,
    changed_records,
    flipped_noise,
    record_fingerprints,
    rescored_pairs,
)
from profilehouse.identity.records import (
    RECORD_ID,
    identifier_values,
    person_attributes,
    record_list,
    truth_keys,
    with_vault_values,
)
from profilehouse.identity.settings import IdentitySettings, load_identity_settings
from profilehouse.identity.stable_ids import assign_master_ids
from profilehouse.ingest.silver import vault_table
from profilehouse.privacy.tokens import load_token_key, token_key_frame
from profilehouse.tables import identity_metrics_table, identity_table, silver_table
from profilehouse.truth import records_dir

log = logging.getLogger(__name__)

_LEVEL = StorageLevel.MEMORY_AND_DISK


# The writes of a full run, in order (an incremental run also stages changed_records,
# rescored_pairs and dirty_records after record_identifiers; term_frequencies: full runs only).
WRITE_BOUNDARIES = (
    "pending_run",
    "records",
    "record_identifiers",
    "scored_pairs",
    "oversize_blocks",
    "master_members",
    "identifier_map",
    "match_links",
    "identifier_links",
    "noisy_identifiers",
    "golden_records",
    "master_aliases",
    "master_lineage",
    "phase1_clusters",
    "term_frequencies",
    "identity_metrics",
    "run_state",
)
_crash_after: set[str] = set()


class InjectedCrashError(RuntimeError):
    """Raised by the :func:`crash_after` test seam: the run 'died' right after a write."""


@contextmanager
def crash_after(boundary: str) -> Iterator[None]:
    """Test seam: within the block, an identity run stops with :class:`InjectedCrashError`
    right after the write ``boundary`` (one of :data:`WRITE_BOUNDARIES`) has committed, as if
    the process had died there. Real writes, real Delta: nothing is mocked."""
    if boundary not in (*WRITE_BOUNDARIES, "changed_records", "rescored_pairs", "dirty_records"):
        raise ValueError(f"unknown write boundary {boundary!r} (known: {WRITE_BOUNDARIES})")
    _crash_after.add(boundary)
    try:
        yield
    finally:
        _crash_after.discard(boundary)


def _written(boundary: str) -> None:
    """Called after each write of the stage: the :func:`crash_after` seam."""
    if boundary in _crash_after:
        raise InjectedCrashError(f"injected crash after writing {boundary}")


def appended_tables(catalog: TableCatalog) -> list[TableRef]:
    """The tables a run appends to (its rows carry its run_id)."""
    return [
        identity_table(catalog, "master_aliases"),
        identity_table(catalog, "master_lineage"),
        identity_metrics_table(catalog),
    ]


@dataclass
class IdentityResult:
    run_id: str
    figures: dict


def _union(frames: list[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _silver_ref(spark: SparkSession, catalog: TableCatalog, name: str) -> TableRef:
    ref = silver_table(catalog, name)
    if not delta_io.table_exists(spark, ref):
        raise SchemaError(
            f"identity: conf/identity.yaml names source {name!r} but silver table "
            f"{ref.qualified_name} does not exist at {ref.location}; run the silver stage first"
        )
    return ref


def input_tables(
    spark: SparkSession, catalog: TableCatalog, settings: IdentitySettings
) -> list[TableRef]:
    """The tables a run reads (each silver table of conf/identity.yaml, and the vault)."""
    silver = [_silver_ref(spark, catalog, name) for name in settings.records]
    return [*silver, vault_table(catalog)]


def _pinned(spark: SparkSession, ref: TableRef, planned: run_state.PlannedRun | None) -> DataFrame:
    version = planned.version_of(ref) if planned is not None else None
    return delta_io.read_table(spark, ref, version=version)


@dataclass
class IdentityInputs:
    records: DataFrame  # record_id, source, role, updated_at, rows
    identifiers: DataFrame  # record_id, source, kind, value
    persons: DataFrame  # person records' attributes, vault values (in memory only) and tokens
    fingerprints: DataFrame  # record_id, fingerprint
    truths: DataFrame | None  # record_id, truth_source, truth_key
    key_frame: DataFrame  # the PII token key (privacy.tokens.token_key_frame)


def load_identity_inputs(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    planned: run_state.PlannedRun | None = None,
    token_key: bytes | None = None,
) -> IdentityInputs:
    """Every source's identity records, identifiers and person attributes, from silver (and
    the vault) at the versions ``planned`` pinned (the latest when None), and the token key
    (``token_key``, default :func:`profilehouse.privacy.tokens.load_token_key`)."""
    records, identifiers, persons, attributes, truths = [], [], [], [], []
    vault = _pinned(spark, vault_table(catalog), planned)
    for name, source in settings.records.items():
        silver = _pinned(spark, _silver_ref(spark, catalog, name), planned)
        records.append(record_list(silver, name, source))
        identifiers.append(identifier_values(silver, name, source, settings))
        if source.role == "person":
            attrs = person_attributes(silver, name, source)
            attributes.append(attrs)
            persons.append(with_vault_values(attrs, vault, source))
        keys = truth_keys(silver, name, source)
        if keys is not None:
            truths.append(keys)
    all_identifiers = _union(identifiers)
    return IdentityInputs(
        _union(records),
        all_identifiers,
        _union(persons),
        record_fingerprints(all_identifiers, _union(attributes)),
        _union(truths) if truths else None,
        token_key_frame(spark, token_key or load_token_key()),
    )


def _named_pairs(keyed: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Adds ``record_id_l``/``record_id_r`` to pairs of ``uid``s of ``keyed``."""
    ids = keyed.select(linker.UID, RECORD_ID)

    def named(scored: DataFrame) -> DataFrame:
        return scored.join(
            ids.withColumnRenamed(linker.UID, "uid_l").withColumnRenamed(RECORD_ID, "record_id_l"),
            "uid_l",
        ).join(
            ids.withColumnRenamed(linker.UID, "uid_r").withColumnRenamed(RECORD_ID, "record_id_r"),
            "uid_r",
        )

    return named


def _keyed(persons: DataFrame) -> DataFrame:
    return persons.withColumn(linker.UID, node_id_expr(F.col(RECORD_ID)))


def _previous_members(spark: SparkSession, catalog: TableCatalog) -> DataFrame | None:
    """The last committed run's members (pinned: not what a crashed run overwrote)."""
    members = run_state.previous_members(spark, catalog)
    if members is None:
        return None
    return members.select(F.col(RECORD_ID).alias("record_key"), "master_id")


def _staged(spark: SparkSession, catalog: TableCatalog, name: str, df: DataFrame) -> DataFrame:
    """Write ``df`` as ``identity.<name>`` (overwrite) and read it back (lineage cut)."""
    ref = identity_table(catalog, name)
    delta_io.write_table(df, ref, overwrite_schema=True)
    _written(name)
    return delta_io.read_table(spark, ref)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class PersonLinks:
    """What linking the person records gave (see :func:`_link_persons`)."""

    scored: DataFrame  # every candidate pair, scored, with record IDs
    oversize: DataFrame  # blocks skipped
    model: linker.FellegiSunterModel
    frequencies: dict[str, DataFrame]  # term frequencies the model scores with
    candidates: int | None  # known without counting (training counted them)
    previous: PreviousClusters | None  # an incremental run's starting clusters
    figures: dict


def _link_persons(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    before: run_state.PreviousRun | None,
    records: DataFrame,
    identifiers: DataFrame,
    keyed: DataFrame,
    mode: str,
    key_frame: DataFrame,
) -> PersonLinks:
    """Train and score (full), score with the stored model (rescore), or re-score only what
    changed and find the dirty records (incremental)."""
    if before is None:
        report = linker.train(keyed, settings.linkage)
        scored, oversize = linker.score_pairs(keyed, settings.linkage, report.model)
        frequencies = linker.term_frequency_tables(
            linker.prepared_records(keyed, settings.linkage), settings.linkage
        )
        return PersonLinks(
            _named_pairs(keyed)(scored),
            oversize,
            report.model,
            frequencies,
            report.candidate_pairs,
            None,
            {"em_iterations": report.model.em_iterations},
        )
    model, frequencies = before.model, before.term_frequencies
    if mode == "rescore":
        scored, oversize = linker.score_pairs(
            keyed, settings.linkage, model, term_frequencies=frequencies
        )
        figures = {"model_trained_in": before.trained_in}
        return PersonLinks(
            _named_pairs(keyed)(scored), oversize, model, frequencies, None, None, figures
        )
    changed = _staged(spark, catalog, "changed_records", changed_records(records, before.records))
    rescoring = rescored_pairs(
        keyed,
        changed,
        LinkageState(before.scored, before.oversize, model, frequencies),
        settings.linkage,
        _named_pairs(keyed),
        key_frame,
        stage=lambda df: _staged(spark, catalog, "rescored_pairs", df),
    )
    noise = noisy_values(identifiers, settings).unionByName(
        conflicting_values(records, identifiers, rescoring.scored, settings)
    )
    flipped = flipped_noise(noise, before.noise)
    holders = (
        identifiers.unionByName(before.identifiers)
        .join(flipped, "value", "left_semi")
        .select(RECORD_ID)
    )
    dirty = _staged(
        spark,
        catalog,
        "dirty_records",
        changed.unionByName(holders).unionByName(rescoring.dirty).distinct(),
    )
    figures = {
        "model_trained_in": before.trained_in,
        "changed_records": changed.count(),
        "rescored_pairs": rescoring.new_pairs.count(),
        "dirty_records": dirty.count(),
    }
    return PersonLinks(
        rescoring.scored,
        rescoring.oversize,
        model,
        frequencies,
        None,
        PreviousClusters(before.phase1, dirty),
        figures,
    )


MODES = ("full", "rescore", "incremental", "auto")


def chosen_mode(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    mode: str,
) -> tuple[str, run_state.PreviousRun | None]:
    """The mode to run and the state it starts from. ``auto``: incremental while the last
    run's state fits the settings and its model is younger than ``retrain_after_days``."""
    if mode == "full":
        return mode, None
    if mode != "auto":
        try:
            return mode, run_state.load(spark, catalog, settings)
        except run_state.IdentityStateError as exc:
            raise run_state.IdentityStateError(
                f"identity --mode {mode}: {exc}; run `jobs/identity.py --mode full` first"
            ) from None
    try:
        before = run_state.load(spark, catalog, settings)
    except run_state.IdentityStateError as exc:
        log.info(f"  identity: a full run, as there is no state to continue from ({exc})")
        return "full", None
    age = _now() - before.trained_at
    if age > dt.timedelta(days=settings.linkage_retrain_after_days):
        log.info(
            f"  identity: full run (the model of run {before.trained_in} is {age.days} days old)"
        )
        return "full", None
    return "incremental", before


def run_identity_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None = None,
    run_id: str | None = None,
    truth_uri: str | None = None,
    mode: str = "full",
    token_key: bytes | None = None,
) -> IdentityResult:
    """Resolve every identity record to a master customer ID and write the identity tables.

    ``mode``: ``full`` trains the linkage model and scores every candidate pair; ``rescore``
    scores every pair with the model of the last full run; ``incremental`` re-scores and
    re-links only what changed since the last run (same result as ``rescore``); ``auto`` is
    incremental when it can be (see :func:`chosen_mode`), else full.

    Holds the ``identity`` lock (``env.locks``; :class:`~profilehouse.locks.LockHeldError` when
    another live run holds it). When the last run crashed before committing, this run finishes
    it as planned (its run ID and mode, its pinned inputs) and returns that run's result; run
    again for a new run over newer input.

    ``token_key``: the PII token key (default: :func:`profilehouse.privacy.tokens.load_token_key`),
    for the tokens of stored block keys and of the ground truth's PII record keys.
    """
    if mode not in MODES:
        raise ValueError(f"identity mode must be one of {', '.join(MODES)}, got {mode!r}")
    catalog = TableCatalog.for_environment(env)
    run_id = run_id or _now().strftime("%Y%m%dT%H%M%SZ")
    with locks.hold(spark, catalog, "identity", env.locks, run_id):
        return _resolve(spark, catalog, conf_dir, run_id, truth_uri, mode, token_key)


def _planned_run(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    run_id: str,
    mode: str,
) -> tuple[run_state.PlannedRun, run_state.PreviousRun | None]:
    """The interrupted run to finish, or a new run recorded with its pinned inputs; and the
    state it starts from."""
    interrupted = run_state.interrupted_run(spark, catalog, settings)
    if interrupted is not None:
        log.info(
            f"  identity: finishing run {interrupted.run_id} ({interrupted.mode}), which "
            "stopped before it committed, on the inputs it started with"
        )
        _, before = chosen_mode(spark, catalog, settings, interrupted.mode)
        return interrupted, before
    mode, before = chosen_mode(spark, catalog, settings, mode)
    inputs = input_tables(spark, catalog, settings)
    planned = run_state.plan_run(
        spark, catalog, settings, run_id, mode, inputs, appended_tables(catalog)
    )
    _written("pending_run")
    return planned, before


def _resolve(
    spark: SparkSession,
    catalog: TableCatalog,
    conf_dir: Path | None,
    run_id: str,
    truth_uri: str | None,
    mode: str,
    token_key: bytes | None = None,
) -> IdentityResult:
    """The identity stage proper (see :func:`run_identity_stage`), under the lock."""
    started = time.perf_counter()
    settings = load_identity_settings(conf_dir)
    planned, before = _planned_run(spark, catalog, settings, run_id, mode)
    run_id, mode = planned.run_id, planned.mode
    inputs = load_identity_inputs(spark, catalog, settings, planned, token_key)
    # records without any identifier (an anonymous receipt) are nobody's: not identity records
    records = inputs.records.join(inputs.fingerprints, RECORD_ID).join(
        inputs.identifiers.select(RECORD_ID).distinct(), RECORD_ID, "left_semi"
    )
    # Inputs of the graph go through Delta: the plans the clustering iterates on stay small,
    # and a crashed run restarts from clean tables.
    records = _staged(spark, catalog, "records", records)
    identifiers = _staged(spark, catalog, "record_identifiers", inputs.identifiers)
    persons = inputs.persons.persist(_LEVEL)  # holds vault values: memory only, never written
    keyed = _keyed(persons)
    link = _link_persons(
        spark, catalog, settings, before, records, identifiers, keyed, mode, inputs.key_frame
    )
    figures: dict = {"mode": mode, **link.figures}
    model = link.model
    scored = _staged(spark, catalog, "scored_pairs", link.scored)
    # blocks keep only tokens of their keys (a key is a name and a birth date)
    oversize = _staged(
        spark, catalog, "oversize_blocks", tokenised_block_keys(link.oversize, inputs.key_frame)
    )
    steps = {"inputs_and_linkage": time.perf_counter() - started}
    candidates = scored.count() if link.candidates is None else link.candidates
    matches = scored.where(F.col("match_probability") >= settings.linkage.match_threshold)
    log.info(
        f"  linkage ({mode}): {candidates:,} candidate pairs, prior "
        f"{model.prior:.4f}, {matches.count():,} matches"
    )
    mark = time.perf_counter()
    clustering = cluster_records(
        records,
        identifiers,
        matches,
        settings,
        catalog.checkpoint_dir("identity"),
        link.previous,
        conflicting_values(records, identifiers, scored, settings),
    )
    assignment = assign_master_ids(
        clustering.clusters.select(F.col(RECORD_ID).alias("record_key"), "cluster_id"),
        _previous_members(spark, catalog),
        run_id,
    )
    members = (
        assignment.members.withColumnRenamed("record_key", RECORD_ID)
        .join(clustering.clusters.select(RECORD_ID, "role", "how"), RECORD_ID)
        .join(records.select(RECORD_ID, "source", "updated_at"), RECORD_ID)
        .withColumn("run_id", F.lit(run_id))
        .persist(_LEVEL)
    )
    golden = build_golden_records(
        persons.join(members.select(RECORD_ID, "master_id"), RECORD_ID), settings.golden_record
    )
    figures |= clustering.figures
    figures |= _linkage_figures(members, persons, candidates, matches, oversize, model)
    steps["clustering"] = time.perf_counter() - mark  # the clusters are checkpointed: computed
    mark = time.perf_counter()
    _write_outputs(
        spark, catalog, members, scored, matches, clustering, assignment, golden, planned
    )
    delta_io.write_table(
        clustering.phase1, identity_table(catalog, "phase1_clusters"), overwrite_schema=True
    )
    _written("phase1_clusters")
    steps["ids_golden_and_writes"] = time.perf_counter() - mark
    mark = time.perf_counter()
    report = _quality_report(
        spark, settings, inputs, members, scored, identifiers, persons, truth_uri
    )
    figures |= report
    log.info(quality.format_report(report))
    if before is None:  # the frequencies the new model was trained with
        run_state.write_term_frequencies(spark, catalog, link.frequencies, keyed, settings)
        _written("term_frequencies")
    steps["quality_and_state"] = time.perf_counter() - mark
    figures["seconds_by_step"] = {k: round(v, 1) for k, v in steps.items()}
    figures["seconds"] = round(time.perf_counter() - started, 2)
    _commit_run(spark, catalog, settings, planned, figures, model, before)
    for df in (persons, members):
        df.unpersist()
    clustering.unpersist()
    assignment.unpersist()
    return IdentityResult(run_id, figures)


def _commit_run(
    spark: SparkSession,
    catalog: TableCatalog,
    settings: IdentitySettings,
    planned: run_state.PlannedRun,
    figures: dict,
    model: linker.FellegiSunterModel,
    before: run_state.PreviousRun | None,
) -> None:
    """Append the run's metrics, then write run_state: the commit that makes this run the one
    the next run starts from (nothing is written after it)."""
    _append_metrics(spark, catalog, planned.run_id, figures, model.to_json(), planned.seq)
    _written("identity_metrics")
    run_state.save(
        spark,
        catalog,
        settings,
        planned.run_id,
        planned.mode,
        model,
        trained_in=before.trained_in if before is not None else planned.run_id,
        trained_at=before.trained_at if before is not None else planned.started_at,
        seq=planned.seq,
    )
    _written("run_state")


def _linkage_figures(
    members: DataFrame,
    persons: DataFrame,
    candidates: int,
    matches: DataFrame,
    oversize: DataFrame,
    model: linker.FellegiSunterModel,
) -> dict:
    person_records = persons.count()
    return {
        "records": members.count(),
        "person_record_count": person_records,
        "candidate_pairs": candidates,
        "comparisons_per_person_record": round(candidates / max(person_records, 1), 2),
        "matches": matches.count(),
        "oversize_blocks": oversize.count(),
        "model_prior": model.prior,
    }


def _quality_report(
    spark: SparkSession,
    settings: IdentitySettings,
    inputs: IdentityInputs,
    members: DataFrame,
    scored: DataFrame,
    identifiers: DataFrame,
    persons: DataFrame,
    truth_uri: str | None,
) -> dict:
    """Quality against the ground truth, or figures saying there is none (a production run)."""
    if not (truth_uri and inputs.truths is not None):
        return quality.no_truth_report()
    if not fs.path_exists(spark, records_dir(truth_uri)):
        return quality.no_truth_report()
    return quality.evaluate(
        spark,
        members.select(RECORD_ID, "master_id", "role", "how"),
        inputs.truths,
        truth_uri,
        scored.select("record_id_l", "record_id_r"),
        identifiers,
        persons.select(RECORD_ID),
        [k for k, spec in settings.identifiers.items() if spec.trust == "strong"],
        truth_purposes={
            s.truth.source: s.truth.tokenised_as
            for s in settings.records.values()
            if s.truth and s.truth.tokenised_as
        },
        key_frame=inputs.key_frame,
    )


def _write_outputs(
    spark: SparkSession,
    catalog: TableCatalog,
    members: DataFrame,
    scored: DataFrame,
    matches: DataFrame,
    clustering,
    assignment,
    golden: DataFrame,
    planned: run_state.PlannedRun,
) -> None:
    """Overwrite the current-state tables; append aliases and lineage (once per planned run:
    finishing an interrupted run never appends them twice)."""

    def overwrite(name: str, df: DataFrame) -> None:
        delta_io.write_table(df, identity_table(catalog, name), overwrite_schema=True)
        _written(name)

    def append(name: str, df: DataFrame) -> None:
        options = _once_per_run(name, planned.run_id, planned.seq)
        delta_io.write_table(df, identity_table(catalog, name), mode="append", options=options)
        _written(name)

    overwrite("master_members", members)
    identifier_map = (
        clustering.evidence.join(members.select(RECORD_ID, "master_id"), RECORD_ID)
        .groupBy("kind", "value", "master_id")
        .agg(F.countDistinct(RECORD_ID).alias("records"))
    )
    overwrite("identifier_map", identifier_map)

    def as_map(prefix: str, cast: str) -> F.Column:
        entries = [
            F.struct(F.lit(c[len(prefix) :]).alias("k"), F.col(c).cast(cast).alias("v"))
            for c in scored.columns
            if c.startswith(prefix)
        ]
        return F.map_from_entries(F.array(*entries))

    links = matches.select(
        "record_id_l",
        "record_id_r",
        "match_weight",
        "match_probability",
        as_map("bf_", "double").alias("weights"),
        as_map("gamma_", "int").alias("levels"),
        "rule",
    )
    overwrite("match_links", links)
    overwrite("identifier_links", clustering.evidence)
    overwrite("noisy_identifiers", clustering.noise)
    overwrite("golden_records", golden)
    append("master_aliases", assignment.aliases)
    append("master_lineage", assignment.lineage)


def _once_per_run(table: str, run_id: str, seq: int) -> dict[str, str]:
    """Writer options appending a run's rows to ``table`` once: the retry of an interrupted
    run has its run ID and seq and is skipped. Keyed by run ID too, so that a warehouse whose
    identity tables were rebuilt (seq counting from 1 again) never skips a new run's rows."""
    return delta_io.idempotent_options(f"identity:{table}:{run_id}", seq)


_METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
        T.StructField("figures", T.StringType(), False),
        T.StructField("model", T.StringType(), False),
    ]
)


def _append_metrics(
    spark: SparkSession, catalog: TableCatalog, run_id: str, figures: dict, model: str, seq: int
) -> None:
    """One row for the run, appended once even when an interrupted run is finished."""
    row = [(run_id, _now(), json.dumps(figures, default=str), model)]
    delta_io.write_table(
        spark.createDataFrame(row, _METRICS_SCHEMA).coalesce(1),
        identity_metrics_table(catalog),
        mode="append",
        options=_once_per_run("identity_metrics", run_id, seq),
    )
