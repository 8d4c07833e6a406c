"""The gold stage: feature snapshot → tags → the tables business users read.

Per snapshot date T (default: the newest event date in silver):

1. the inputs are pinned: every silver and identity table's Delta version goes into
   ``gold.snapshot_runs``. ``known_at=True`` recomputes T from the versions pinned by the run
   that first made it (*as known at*: what the models saw, late records excluded); otherwise
   the current versions are read (*as of event time*: late records with event time ≤ T count);
2. ``gold.features``: the feature snapshot (:mod:`.features`), partition ``snapshot_date = T``
   replaced as a whole, so a re-run never duplicates;
3. ``gold.customer_tags`` (wide: one column per online tag) and ``gold.tag_values`` (long:
   one row per customer and tag with a value), both partitioned by ``snapshot_date``; every
   snapshot is kept, which is the tags' history (a customer's values over time);
4. ``gold.tag_catalog``: one row per tag per snapshot — registry metadata, coverage, value
   distribution, values nulled for being outside the allowed set, and the share of customers
   whose value changed since the previous snapshot.

Holds the ``gold`` lock for the whole run.
"""

from __future__ import annotations

import datetime as dt
import logging
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io, locks
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.config import EnvironmentConfig
from profilehouse.errors import ProfilehouseError
from profilehouse.gold.feature_config import FeatureConfig, load_feature_config
from profilehouse.gold.features import MASTER_ID, SNAPSHOT_DATE, feature_snapshot, source_rows
from profilehouse.gold.kpis import kpi_values, load_kpi_config, start_column
from profilehouse.gold.tag_registry import TagRegistry, check_tag_sql, load_tag_registry
from profilehouse.gold.tags import INVALID_TAGS, long_tag_values, tag_values
from profilehouse.identity.settings import load_identity_settings
from profilehouse.tables import identity_table, silver_table

log = logging.getLogger(__name__)

FEATURES = "features"
CUSTOMER_TAGS = "customer_tags"
TAG_VALUES = "tag_values"
TAG_CATALOG = "tag_catalog"
SNAPSHOT_RUNS = "snapshot_runs"
KPI_DAILY = "kpi_daily"
GOLD_TABLES = frozenset(
    {FEATURES, CUSTOMER_TAGS, TAG_VALUES, TAG_CATALOG, SNAPSHOT_RUNS, KPI_DAILY}
)

IDENTITY_INPUTS = ("master_members", "golden_records")


class SnapshotNotKnownError(ProfilehouseError):
    """An as-known-at snapshot was asked for a date no run has made."""


@dataclass(frozen=True)
class GoldResult:
    snapshot_date: dt.date
    customers: int
    tags: int
    features: int
    known_at: bool
    coverage: Mapping[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def figures(self) -> dict[str, Any]:
        return {
            "snapshot_date": self.snapshot_date.isoformat(),
            "customers": self.customers,
            "tags": self.tags,
            "features": self.features,
            "known_at": self.known_at,
            "mean_tag_coverage": round(sum(self.coverage.values()) / max(len(self.coverage), 1), 4),
        }


def gold_table(catalog: TableCatalog, name: str) -> TableRef:
    """``gold.<name>``, one of :data:`GOLD_TABLES`."""
    if name not in GOLD_TABLES:
        raise ValueError(f"unknown gold table {name!r} (known: {', '.join(sorted(GOLD_TABLES))})")
    return catalog.table(Layer.GOLD, name)


def run_gold_stage(
    spark: SparkSession,
    env: EnvironmentConfig,
    conf_dir: Path | None = None,
    run_id: str | None = None,
    snapshot_date: dt.date | None = None,
    known_at: bool = False,
) -> GoldResult:
    """Make (or remake) the snapshot at ``snapshot_date``; see the module docstring."""
    catalog = TableCatalog.for_environment(env)
    run_id = run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    with locks.hold(spark, catalog, "gold", env.locks, run_id):
        return _run(spark, catalog, conf_dir, run_id, snapshot_date, known_at)


def _run(
    spark: SparkSession,
    catalog: TableCatalog,
    conf_dir: Path | None,
    run_id: str,
    snapshot_date: dt.date | None,
    known_at: bool,
) -> GoldResult:
    started = time.perf_counter()
    config = load_feature_config(conf_dir)
    registry = load_tag_registry(config.schema, conf_dir)
    check_tag_sql(spark, registry)
    record_keys = {n: s.key for n, s in load_identity_settings(conf_dir).records.items()}
    names = input_table_names(config)
    if known_at:
        if snapshot_date is None:
            raise ValueError("an as-known-at snapshot needs its snapshot date")
        versions = pinned_versions(spark, catalog, snapshot_date)
    else:
        versions = current_versions(spark, catalog, names)
    tables = {name: _read(spark, catalog, name, versions[name]) for name in names}
    if snapshot_date is None:
        snapshot_date = newest_event_date(spark, config, tables)
    log.info(
        f"  gold: snapshot {snapshot_date} ({'as known at' if known_at else 'as of event time'})"
    )
    wide = _make_snapshot(spark, catalog, config, registry, tables, record_keys, snapshot_date)
    catalog_rows, coverage, customers = tag_catalog(spark, catalog, registry, wide, snapshot_date)
    _replace_snapshot(catalog_rows, gold_table(catalog, TAG_CATALOG), snapshot_date)
    kpis = load_kpi_config(conf_dir)
    starts = {}
    for window in kpis.windows():
        start_date = snapshot_date - dt.timedelta(days=window)
        if not _snapshot_exists(spark, catalog, start_date):
            log.info(f"  gold: making the {start_date} snapshot ({window}-day KPIs start there)")
            _make_snapshot(spark, catalog, config, registry, tables, record_keys, start_date)
            if not known_at:
                _record_run(spark, catalog, run_id, start_date, versions)
        starts[window] = _customers(spark, catalog, start_date)
    kpi_rows = kpi_values(
        _with_starts(_customers(spark, catalog, snapshot_date), starts), kpis, snapshot_date
    )
    _replace_snapshot(kpi_rows, gold_table(catalog, KPI_DAILY), snapshot_date)
    if not known_at:
        _record_run(spark, catalog, run_id, snapshot_date, versions)
    seconds = time.perf_counter() - started
    log.info(
        f"  gold: {customers:,} customers × {len(registry.online())} tags, "
        f"{len(config.schema)} features, {seconds:.1f} s"
    )
    return GoldResult(
        snapshot_date=snapshot_date,
        customers=customers,
        tags=len(registry.online()),
        features=len(config.schema),
        known_at=known_at,
        coverage=coverage,
        seconds=seconds,
    )


def _make_snapshot(
    spark: SparkSession,
    catalog: TableCatalog,
    config: FeatureConfig,
    registry: TagRegistry,
    tables: Mapping[str, DataFrame],
    record_keys: Mapping[str, list[str]],
    snapshot_date: dt.date,
) -> DataFrame:
    """Write the features, wide and long tags of ``snapshot_date``; return the stored wide tags."""
    features = feature_snapshot(
        spark, config, tables, tables["master_members"], record_keys, snapshot_date
    )
    features_ref = gold_table(catalog, FEATURES)
    _replace_snapshot(features, features_ref, snapshot_date)
    stored = _stored(spark, catalog, FEATURES, snapshot_date)
    wide_ref = gold_table(catalog, CUSTOMER_TAGS)
    _replace_snapshot(tag_values(stored, registry), wide_ref, snapshot_date)
    wide = _stored(spark, catalog, CUSTOMER_TAGS, snapshot_date)
    _replace_snapshot(
        long_tag_values(wide, registry), gold_table(catalog, TAG_VALUES), snapshot_date
    )
    return wide


def _stored(spark: SparkSession, catalog: TableCatalog, name: str, day: dt.date) -> DataFrame:
    return delta_io.read_table(spark, gold_table(catalog, name)).where(
        F.col(SNAPSHOT_DATE) == F.lit(day)
    )


def _snapshot_exists(spark: SparkSession, catalog: TableCatalog, day: dt.date) -> bool:
    ref = gold_table(catalog, CUSTOMER_TAGS)
    return delta_io.table_exists(spark, ref) and bool(
        _stored(spark, catalog, CUSTOMER_TAGS, day).limit(1).count()
    )


def _customers(spark: SparkSession, catalog: TableCatalog, day: dt.date) -> DataFrame:
    """One row per customer: the snapshot's features and tags side by side."""
    tags = _stored(spark, catalog, CUSTOMER_TAGS, day).drop(SNAPSHOT_DATE, INVALID_TAGS)
    return _stored(spark, catalog, FEATURES, day).join(tags, MASTER_ID, "left")


def _with_starts(customers: DataFrame, starts: Mapping[int, DataFrame]) -> DataFrame:
    """``customers`` with, per window, a struct ``start_<w>d`` of the same customer's row at
    the window's start (null when the customer was not there yet)."""
    for window, start in starts.items():
        packed = start.select(MASTER_ID, F.struct(*start.columns).alias(start_column(window)))
        customers = customers.join(packed, MASTER_ID, "left")
    return customers


def input_table_names(config: FeatureConfig) -> list[str]:
    """Silver tables the feature sources read (by name), then the identity tables."""
    named: set[str] = set()
    for name, source in config.sources.items():
        if source.query is None:
            named.add(name)
        else:
            named |= set(_placeholders(source.query))
    silver = sorted(named - set(IDENTITY_INPUTS))
    return silver + list(IDENTITY_INPUTS)


def _placeholders(query: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(query) if field]


def _ref(catalog: TableCatalog, name: str) -> TableRef:
    return identity_table(catalog, name) if name in IDENTITY_INPUTS else silver_table(catalog, name)


def _read(spark: SparkSession, catalog: TableCatalog, name: str, version: int) -> DataFrame:
    return delta_io.read_table(spark, _ref(catalog, name), version=version)


def current_versions(
    spark: SparkSession, catalog: TableCatalog, names: list[str]
) -> dict[str, int]:
    """The latest Delta version of every input table (what this run reads)."""
    return {name: delta_io.table_version(spark, _ref(catalog, name)) for name in names}


def pinned_versions(
    spark: SparkSession, catalog: TableCatalog, snapshot_date: dt.date
) -> dict[str, int]:
    """The input versions the first run that made ``snapshot_date`` read."""
    ref = gold_table(catalog, SNAPSHOT_RUNS)
    row = None
    if delta_io.table_exists(spark, ref):
        row = (
            delta_io.read_table(spark, ref)
            .where(F.col(SNAPSHOT_DATE) == F.lit(snapshot_date))
            .orderBy("made_at")
            .select("versions")
            .first()
        )
    if row is None:
        raise SnapshotNotKnownError(
            f"no run has made the snapshot of {snapshot_date} (gold.snapshot_runs): an as-known-at "
            "snapshot can only be remade, run it as of event time first"
        )
    return dict(row["versions"])


def _record_run(
    spark: SparkSession,
    catalog: TableCatalog,
    run_id: str,
    snapshot_date: dt.date,
    versions: Mapping[str, int],
) -> None:
    """Append this run's pinned inputs for ``snapshot_date`` (once per run ID)."""
    ref = gold_table(catalog, SNAPSHOT_RUNS)
    if delta_io.table_exists(spark, ref):
        seen = (
            delta_io.read_table(spark, ref)
            .where((F.col("run_id") == run_id) & (F.col(SNAPSHOT_DATE) == F.lit(snapshot_date)))
            .limit(1)
            .count()
        )
        if seen:
            return
    row = spark.createDataFrame(
        [(run_id, snapshot_date, dt.datetime.now(dt.UTC).replace(tzinfo=None), dict(versions))],
        "run_id string, snapshot_date date, made_at timestamp, versions map<string, bigint>",
    )
    delta_io.write_table(row, ref, mode="append")


def newest_event_date(
    spark: SparkSession, config: FeatureConfig, tables: Mapping[str, DataFrame]
) -> dt.date:
    """The newest event date over the sources with an event time (one small aggregate each)."""
    newest = []
    for name, source in config.sources.items():
        if source.time is None or source.query is not None:
            continue
        newest.append(
            source_rows(spark, name, source, tables).agg(
                F.max(F.to_date(F.expr(source.time))).alias("d")
            )
        )
    if not newest:
        raise ProfilehouseError("no feature source has an event time to date a snapshot by")
    union = newest[0]
    for frame in newest[1:]:
        union = union.unionByName(frame)
    row = union.agg(F.max("d").alias("d")).first()
    if row is None or row["d"] is None:
        raise ProfilehouseError("the silver tables hold no events to date a snapshot by")
    return row["d"]


def _replace_snapshot(df: DataFrame, ref: TableRef, snapshot_date: dt.date) -> None:
    """Write ``df`` as the ``snapshot_date`` partition of ``ref``, replacing it whole. New
    columns (a feature or tag added to the config) join the table; earlier snapshots keep
    theirs and read null for them."""
    options = {
        "replaceWhere": f"{SNAPSHOT_DATE} = DATE'{snapshot_date.isoformat()}'",
        "mergeSchema": "true",
    }
    spark = df.sparkSession
    if not delta_io.table_exists(spark, ref):
        delta_io.write_table(df, ref, partition_by=[SNAPSHOT_DATE])
        return
    delta_io.write_table(df, ref, mode="overwrite", options=options)


def tag_catalog(
    spark: SparkSession,
    catalog: TableCatalog,
    registry: TagRegistry,
    wide: DataFrame,
    snapshot_date: dt.date,
) -> tuple[DataFrame, dict[str, float], int]:
    """One row per online tag: metadata, coverage, distribution, invalid values, change.

    Two aggregates over the snapshot: value counts per tag (from the long table's shape) and
    the invalid counts; the change since the previous snapshot joins the previous long rows.
    """
    online = registry.online()
    customers = wide.count()
    counts = (
        long_tag_values(wide, registry).groupBy("tag_code", "value").agg(F.count("*").alias("n"))
    )
    per_tag = counts.groupBy("tag_code").agg(
        F.sum("n").alias("with_value"),
        F.count("*").alias("distinct_values"),
        F.slice(
            F.sort_array(F.collect_list(F.struct(-F.col("n"), "value", "n")), True), 1, 20
        ).alias("top"),
    )
    invalid = (
        wide.select(F.explode(INVALID_TAGS).alias("tag_code"))
        .groupBy("tag_code")
        .agg(F.count("*").alias("invalid_values"))
    )
    changed = _changed_since_previous(spark, catalog, registry, wide, snapshot_date)
    quantiles = _numeric_quantiles(spark, registry, wide)
    meta = spark.createDataFrame(
        [
            (
                t.code,
                t.definition.name.zh,
                t.definition.name.en,
                t.definition.path,
                t.family,
                t.definition.kind,
                t.definition.value_type,
                t.definition.values,
                t.definition.refresh,
                t.owner,
                t.definition.version,
                t.definition.status,
                t.definition.description,
                t.file,
            )
            for t in online
        ],
        "tag_code string, name_zh string, name_en string, path string, family string, "
        "kind string, value_type string, allowed_values array<string>, refresh string, "
        "owner string, version int, status string, description string, defined_in string",
    )
    rows = (
        meta.join(per_tag, "tag_code", "left")
        .join(invalid, "tag_code", "left")
        .join(changed, "tag_code", "left")
        .select(
            F.lit(snapshot_date).alias(SNAPSHOT_DATE),
            "*",
            F.lit(customers).alias("customers"),
        )
        .withColumn("with_value", F.coalesce("with_value", F.lit(0)))
        .withColumn("invalid_values", F.coalesce("invalid_values", F.lit(0)))
        .withColumn("coverage", F.col("with_value") / F.greatest(F.lit(customers), F.lit(1)))
        .withColumn(
            "distribution",
            F.when(
                F.col("value_type") != "number",
                F.map_from_entries(F.transform("top", lambda e: F.struct(e["value"], e["n"]))),
            ),
        )
        .drop("top")
        .join(quantiles, "tag_code", "left")
    )
    stored = rows.localCheckpoint()
    coverage = {
        r["tag_code"]: float(r["coverage"]) for r in stored.select("tag_code", "coverage").collect()
    }
    return stored, coverage, customers


QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _numeric_quantiles(spark: SparkSession, registry: TagRegistry, wide: DataFrame) -> DataFrame:
    """``(tag_code, quantiles)``: min, quartiles and max of every numeric tag, in one aggregate
    (the distribution of exact values says little for amounts)."""
    numeric = [
        t.code for t in registry.online() if t.definition.value_type in ("integer", "number")
    ]
    empty = spark.createDataFrame([], "tag_code string, quantiles array<double>")
    if not numeric:
        return empty
    row = wide.agg(
        *[
            F.percentile_approx(F.col(c).cast("double"), list(QUANTILES), 10_000).alias(c)
            for c in numeric
        ]
    ).first()
    if row is None:
        return empty
    return spark.createDataFrame(
        [(c, [float(v) for v in row[c]] if row[c] else None) for c in numeric],
        "tag_code string, quantiles array<double>",
    )


def _changed_since_previous(
    spark: SparkSession,
    catalog: TableCatalog,
    registry: TagRegistry,
    wide: DataFrame,
    snapshot_date: dt.date,
) -> DataFrame:
    """``(tag_code, previous_snapshot, changed_share)``: customers whose value differs from the
    latest earlier snapshot's (null-safe), among customers present in both."""
    ref = gold_table(catalog, TAG_VALUES)
    empty = spark.createDataFrame(
        [], "tag_code string, previous_snapshot date, changed_share double"
    )
    if not delta_io.table_exists(spark, ref):
        return empty
    history = delta_io.read_table(spark, ref)
    previous = (
        history.where(F.col(SNAPSHOT_DATE) < F.lit(snapshot_date))
        .agg(F.max(SNAPSHOT_DATE).alias("d"))
        .first()
    )
    if previous is None or previous["d"] is None:
        return empty
    before_date = previous["d"]
    before_wide = delta_io.read_table(spark, gold_table(catalog, CUSTOMER_TAGS)).where(
        F.col(SNAPSHOT_DATE) == F.lit(before_date)
    )
    codes = [t.code for t in registry.online() if t.code in before_wide.columns]
    if not codes:
        return empty
    joined = wide.alias("a").join(before_wide.alias("b"), MASTER_ID)
    shares = joined.agg(
        *[
            F.avg((~F.col(f"a.{c}").eqNullSafe(F.col(f"b.{c}"))).cast("double")).alias(c)
            for c in codes
        ]
    )
    stacked = F.explode(
        F.array(*[F.struct(F.lit(c).alias("tag_code"), F.col(c).alias("share")) for c in codes])
    )
    return shares.select(stacked.alias("s")).select(
        "s.tag_code",
        F.lit(before_date).alias("previous_snapshot"),
        F.col("s.share").alias("changed_share"),
    )
