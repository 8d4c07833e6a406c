"""The wide customer profile ``gold.customer_profile`` (客户画像宽表): what BI tools read.

One row per master customer (of ``identity.golden_records`` or of the feature snapshot):
masked demographics, the key tags and features of a snapshot, the segment, each configured
model's current score, decile and reasons, CLV, ``snapshot_date`` and ``updated_at``.
``conf/profile.yaml`` says which columns; loading it refuses any golden-record column that
holds clear PII or a token.

:func:`build_customer_profile` is the transform (left joins onto every master; scores
turned into columns by conditional aggregation over the configured models, not ``pivot()``).
:func:`write_customer_profile` MERGEs it into the table on ``master_id``:

- each row carries ``row_hash``, a SHA-256 of its JSON without ``updated_at`` (JSON names every
  field, so a value moving from one column to another changes it, which Spark's ``hash`` of
  the columns would miss when the other is null);
- one join of the new ``(master_id, row_hash)`` with the stored ones counts the inserts,
  updates and deletes; when all are 0 no MERGE runs and no commit is made;
- otherwise rows whose hash differs are updated (``updated_at`` = the write's time), new masters
  inserted and masters not in the profile any more (merged away by identity) deleted; rows
  unchanged keep their ``updated_at``.

``snapshot_date`` is part of a row's content: a profile of a new snapshot updates every row.
The table is created with :data:`~profilehouse.models.scores.BI_READABLE_PROPERTIES`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, PrivateAttr
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.config import StrictModel, conf_path, load_model
from profilehouse.errors import ConfigError, SchemaError
from profilehouse.models.scores import (
    DECILE,
    MODEL,
    REASONS,
    REASONS_TYPE,
    SCORE,
    create_bi_table,
    merge_replacing,
)

PROFILE = "customer_profile"
PROFILE_FILE = "profile.yaml"

MASTER_ID = "master_id"
SNAPSHOT_DATE = "snapshot_date"
UPDATED_AT = "updated_at"
ROW_HASH = "row_hash"
SEGMENT_COLUMNS = {"segment_id": "int", "segment_name_zh": "string", "segment_name_en": "string"}
# assign_segments' output column → profile column
SEGMENT_INPUTS = {
    "segment_id": "segment_id",
    "segment_name": "segment_name_zh",
    "segment_name_en": "segment_name_en",
}
CLV_INPUT = "clv"
CLV_EXTRA_COLUMNS = ("p_alive", "expected_purchases")
RESERVED_COLUMNS = frozenset(
    {MASTER_ID, SNAPSHOT_DATE, UPDATED_AT, ROW_HASH, *SEGMENT_COLUMNS, *CLV_EXTRA_COLUMNS}
)

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_COLUMN_PATH = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_TOKEN_FIELD = re.compile(r"(^|_)token$")


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


class ProfileSettings(StrictModel):
    """``conf/profile.yaml``: the profile's columns (see the file's comments)."""

    golden_columns: dict[str, str] = Field(
        min_length=1,
        description="Profile column → golden_records column or struct field (masked values).",
    )
    denied_golden_columns: list[str] = Field(
        min_length=1, description="golden_records columns or fields never shown (clear PII)."
    )
    tags: list[str] = Field(default_factory=list, description="Tag codes of customer_tags.")
    features: list[str] = Field(default_factory=list, description="Feature columns.")
    models: list[str] = Field(default_factory=list, description="Models whose scores show.")
    clv_column: str = Field(default="clv_12m", description="Name of the CLV column.")

    _source: str = PrivateAttr(default="<profile settings>")

    @property
    def source(self) -> str:
        """Where the settings came from, for error messages."""
        return self._source

    def score_columns(self) -> list[str]:
        """``<model>_score``, ``<model>_decile``, ``<model>_reasons`` per model, in order."""
        return [f"{m}_{suffix}" for m in self.models for suffix in (SCORE, DECILE, REASONS)]

    def columns(self) -> list[str]:
        """Every profile column, in table order (without ``row_hash``)."""
        return [
            MASTER_ID,
            *self.golden_columns,
            *self.tags,
            *self.features,
            *SEGMENT_COLUMNS,
            *self.score_columns(),
            self.clv_column,
            *CLV_EXTRA_COLUMNS,
            SNAPSHOT_DATE,
            UPDATED_AT,
        ]


def load_profile_settings(path: str | Path | None = None) -> ProfileSettings:
    """Load ``conf/profile.yaml`` (or ``path``). Raises ConfigError naming the file and every
    bad key at once: first the keys' own types, then denied golden columns, names that are not
    identifiers and column names used twice."""
    source = Path(path) if path is not None else conf_path(PROFILE_FILE)
    settings = load_model(source, ProfileSettings).model_copy()
    settings._source = str(source)
    validate_profile_settings(settings)
    return settings


def validate_profile_settings(settings: ProfileSettings) -> None:
    """Raise ConfigError listing every problem of ``settings``, each naming file and key."""
    problems = _golden_problems(settings) + _name_problems(settings)
    if problems:
        raise ConfigError(settings.source, problems)


def denied_by(path: str, denied: list[str]) -> str | None:
    """The denied column ``path`` would show (itself, one it lies inside, or one inside it:
    a whole struct shows its fields), ``token`` for a token field; None when allowed."""
    for entry in denied:
        if path == entry or path.startswith(entry + ".") or entry.startswith(path + "."):
            return entry
    if any(_TOKEN_FIELD.search(part) for part in path.split(".")):
        return "token"
    return None


def _golden_problems(settings: ProfileSettings) -> list[str]:
    problems = []
    for column, path in settings.golden_columns.items():
        key = f"golden_columns.{column}"
        if not _COLUMN_PATH.match(path):
            problems.append(f"{key}: {path!r} is not a column or column.field path")
            continue
        entry = denied_by(path, settings.denied_golden_columns)
        if entry == "token":
            problems.append(
                f"{key}: {path!r} is a token (links records to the vault); "
                "expected a masked or display value, such as <column>.masked"
            )
        elif entry is not None:
            problems.append(
                f"{key}: {path!r} shows {entry!r}, listed in denied_golden_columns (clear "
                "PII); expected a masked or display value, such as <column>.masked"
            )
    return problems


def _name_problems(settings: ProfileSettings) -> list[str]:
    """Names that are not identifiers, and profile columns named twice (or reserved)."""
    named: list[tuple[str, str]] = [(f"golden_columns.{c}", c) for c in settings.golden_columns]
    named += [(f"tags.{i}", t) for i, t in enumerate(settings.tags)]
    named += [(f"features.{i}", f) for i, f in enumerate(settings.features)]
    named += [(f"models.{i}", f"{m}_{SCORE}") for i, m in enumerate(settings.models)]
    named += [("clv_column", settings.clv_column)]
    problems = []
    first: dict[str, str] = {}
    for key, name in named:
        shown = name.removesuffix(f"_{SCORE}") if key.startswith("models.") else name
        if not _IDENTIFIER.match(shown):
            problems.append(f"{key}: {shown!r} is not a lower-case identifier")
        elif name in RESERVED_COLUMNS:
            problems.append(f"{key}: {name!r} is a column the profile always has")
        elif name in first:
            problems.append(f"{key}: {name!r} is also the column of {first[name]}")
        first.setdefault(name, key)
    return problems


# ---------------------------------------------------------------------------------------------
# the transform
# ---------------------------------------------------------------------------------------------


def build_customer_profile(
    golden: DataFrame,
    tags: DataFrame,
    features: DataFrame,
    segments: DataFrame | None,
    scores: DataFrame | None,
    clv: DataFrame | None,
    settings: ProfileSettings,
    snapshot_date: dt.date,
) -> DataFrame:
    """One row per master customer of ``golden`` or of the snapshot of ``features``, columns
    :meth:`ProfileSettings.columns`.

    ``tags`` / ``features``: ``gold.customer_tags`` / ``gold.features``, filtered to
    ``snapshot_date`` when they have that column (one row per master). ``segments``: as
    :func:`~profilehouse.models.segments.assign_segments` returns; ``scores``: the current
    ``gold.model_scores``; ``clv``: as :func:`~profilehouse.models.clv.build_clv_predictions`
    returns. A None input leaves its columns null. Raises SchemaError naming every missing
    input column.
    """
    _require_inputs(golden, tags, features, segments, scores, clv, settings)
    parts = [
        _snapshot_of(tags, snapshot_date).select(MASTER_ID, *settings.tags),
        _snapshot_of(features, snapshot_date).select(MASTER_ID, *settings.features),
    ]
    if segments is not None:
        parts.append(segments.select(MASTER_ID, *_renamed(SEGMENT_INPUTS)))
    if scores is not None and settings.models:
        parts.append(build_score_columns(scores, settings.models))
    if clv is not None:
        parts.append(
            clv.select(MASTER_ID, F.col(CLV_INPUT).alias(settings.clv_column), *CLV_EXTRA_COLUMNS)
        )
    # every master customer: those with golden records and those known only by events
    # (e.g. app users without a customer record), who have features and tags but no golden row
    masters = (
        golden.select(MASTER_ID)
        .unionByName(_snapshot_of(features, snapshot_date).select(MASTER_ID))
        .distinct()
    )
    profile = masters.join(
        golden.select(
            MASTER_ID, *[F.col(path).alias(c) for c, path in settings.golden_columns.items()]
        ),
        MASTER_ID,
        "left",
    )
    for part in parts:
        profile = profile.join(part, MASTER_ID, "left")
    absent = _null_columns(settings, segments is None, scores is None, clv is None)
    return profile.withColumns(
        absent | {SNAPSHOT_DATE: F.lit(snapshot_date), UPDATED_AT: F.current_timestamp()}
    ).select(*settings.columns())


def build_score_columns(scores: DataFrame, models: list[str]) -> DataFrame:
    """``master_id`` and ``<model>_score``, ``_decile``, ``_reasons`` per model of ``models``
    from long rows (one per master and model): one aggregate of conditional values, so the
    columns are the configured ones whatever models the rows hold."""
    model = F.col(MODEL)
    values = []
    for m in models:
        this = model == F.lit(m)
        values += [
            F.max(F.when(this, F.col(SCORE))).alias(f"{m}_{SCORE}"),
            F.max(F.when(this, F.col(DECILE))).alias(f"{m}_{DECILE}"),
            F.first(F.when(this, F.col(REASONS)), ignorenulls=True).alias(f"{m}_{REASONS}"),
        ]
    return scores.where(model.isin(models)).groupBy(MASTER_ID).agg(*values)


def _snapshot_of(df: DataFrame, snapshot_date: dt.date) -> DataFrame:
    if SNAPSHOT_DATE not in df.columns:
        return df
    return df.where(F.col(SNAPSHOT_DATE) == F.lit(snapshot_date))


def _renamed(mapping: dict[str, str]) -> list[Column]:
    return [F.col(source).alias(target) for source, target in mapping.items()]


def _null_columns(
    settings: ProfileSettings, no_segments: bool, no_scores: bool, no_clv: bool
) -> dict[str, Column]:
    """Typed null columns for the inputs that were not given."""
    types: dict[str, str | T.DataType] = {}
    if no_segments:
        types |= SEGMENT_COLUMNS
    if no_scores:
        for m in settings.models:
            types |= {
                f"{m}_{SCORE}": "double",
                f"{m}_{DECILE}": "int",
                f"{m}_{REASONS}": REASONS_TYPE,
            }
    if no_clv:
        types |= dict.fromkeys((settings.clv_column, *CLV_EXTRA_COLUMNS), "double")
    return {name: F.lit(None).cast(kind) for name, kind in types.items()}


def _require_inputs(
    golden: DataFrame,
    tags: DataFrame,
    features: DataFrame,
    segments: DataFrame | None,
    scores: DataFrame | None,
    clv: DataFrame | None,
    settings: ProfileSettings,
) -> None:
    """SchemaError naming, per input, the columns it lacks and the ones it has."""
    golden_roots = [path.split(".")[0] for path in settings.golden_columns.values()]
    needs: list[tuple[str, DataFrame | None, list[str]]] = [
        ("golden records", golden, [MASTER_ID, *golden_roots]),
        ("tags", tags, [MASTER_ID, *settings.tags]),
        ("features", features, [MASTER_ID, *settings.features]),
        ("segments", segments, [MASTER_ID, *SEGMENT_INPUTS]),
        ("scores", scores, [MASTER_ID, MODEL, SCORE, DECILE, REASONS]),
        ("clv", clv, [MASTER_ID, CLV_INPUT, *CLV_EXTRA_COLUMNS]),
    ]
    problems = []
    for label, df, wanted in needs:
        if df is None:
            continue
        missing = [c for c in dict.fromkeys(wanted) if c not in df.columns]
        if missing:
            problems.append(
                f"{label}: missing column(s) {', '.join(missing)} "
                f"(present: {', '.join(df.columns)})"
            )
    if problems:
        raise SchemaError("customer profile inputs: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileWrite:
    """What :func:`write_customer_profile` did; ``skipped``: nothing changed, no commit."""

    customers: int
    inserted: int
    updated: int
    deleted: int
    skipped: bool
    version: int


def profile_table(catalog: TableCatalog) -> TableRef:
    """``gold.customer_profile``: one row per master customer."""
    return catalog.table(Layer.GOLD, PROFILE)


def row_hash_expr(columns: list[str]) -> Column:
    """SHA-256 (hex) of the JSON of ``columns``: equal exactly when every value is."""
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def write_customer_profile(
    spark: SparkSession, catalog: TableCatalog, profile: DataFrame
) -> ProfileWrite:
    """MERGE ``profile`` (one row per master) into ``gold.customer_profile``; see the module
    docstring. Raises SchemaError when a master_id is null or appears twice."""
    ref = profile_table(catalog)
    content = [c for c in profile.columns if c not in (UPDATED_AT, ROW_HASH)]
    written_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = profile.select(
        *content,
        F.lit(written_at).cast("timestamp").alias(UPDATED_AT),
        row_hash_expr(content).alias(ROW_HASH),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        create_bi_table(spark, ref, rows)
        customers, inserted, updated, deleted = _changes(spark, ref, rows)
        if inserted or updated or deleted:
            merge_replacing(
                spark,
                ref,
                rows,
                on=f"t.{MASTER_ID} = s.{MASTER_ID}",
                update_when=f"NOT (t.{ROW_HASH} <=> s.{ROW_HASH})",
                delete_when=None,
                evolve_schema=True,  # a column added to conf/profile.yaml joins the table
            )
    finally:
        rows.unpersist()
    skipped = not (inserted or updated or deleted)
    version = delta_io.table_version(spark, ref)
    return ProfileWrite(customers, inserted, updated, deleted, skipped, version)


def _changes(spark: SparkSession, ref: TableRef, rows: DataFrame) -> tuple[int, int, int, int]:
    """``(customers, inserted, updated, deleted)`` the MERGE of ``rows`` would make, from one
    join of the new and stored ``(master_id, row_hash)``; SchemaError on null or repeated
    master IDs."""
    new = rows.select(MASTER_ID, F.col(ROW_HASH).alias("_new"), F.lit(True).alias("_in_new"))
    stored = delta_io.read_table(spark, ref).select(
        MASTER_ID, F.col(ROW_HASH).alias("_old"), F.lit(True).alias("_in_old")
    )
    in_new, in_old = F.col("_in_new").isNotNull(), F.col("_in_old").isNotNull()
    row = (
        new.join(stored, MASTER_ID, "full_outer")
        .agg(
            F.count_if(in_new).alias("customers"),
            F.count_distinct(F.when(in_new, F.col(MASTER_ID))).alias("ids"),
            F.count_if(in_new & F.col(MASTER_ID).isNull()).alias("null_ids"),
            F.count_if(in_new & ~in_old).alias("inserted"),
            F.count_if(in_new & in_old & ~F.col("_new").eqNullSafe(F.col("_old"))).alias("updated"),
            F.count_if(in_old & ~in_new).alias("deleted"),
        )
        .first()
    )
    assert row is not None  # a global aggregate has one row
    repeated = row["customers"] - row["null_ids"] - row["ids"]
    if row["null_ids"] or repeated:
        raise SchemaError(
            f"customer profile: {row['null_ids']} row(s) without a master_id, "
            f"{repeated} extra row(s) for master_ids that appear more than once "
            "(expected one row per master customer)"
        )
    return row["customers"], row["inserted"], row["updated"], row["deleted"]
