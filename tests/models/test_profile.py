"""The wide customer profile: config (denied PII columns), the transform, the MERGE into
``gold.customer_profile`` (unchanged re-runs make no commit), and reading the table with
non-Spark Delta readers (delta-rs, polars)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deltalake
import polars as pl
import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.errors import ConfigError, SchemaError
from profilehouse.gold.feature_config import load_feature_config
from profilehouse.gold.tag_registry import load_tag_registry
from profilehouse.models.profile import (
    ProfileSettings,
    ProfileWrite,
    build_customer_profile,
    load_profile_settings,
    profile_table,
    validate_profile_settings,
    write_customer_profile,
)
from profilehouse.models.scores import BI_READABLE_PROPERTIES, bi_readability_problems

DAY = dt.date(2025, 12, 31)
DV_DEFAULT = "spark.databricks.delta.properties.defaults.enableDeletionVectors"
REASONS_DDL = "array<struct<feature:string,name:string,contribution:double>>"
DENIED = [
    "birth_date",
    "name.token",
    "mobile_display.token",
    "email_display.token",
    "id_no_display",
]
SETTINGS: dict[str, Any] = {
    "golden_columns": {
        "name_masked": "name.masked",
        "mobile_masked": "mobile_display.masked",
        "gender": "gender",
        "city": "city",
    },
    "denied_golden_columns": DENIED,
    "tags": ["age_band", "lifecycle_stage", "churn_risk"],
    "features": ["last_activity_ts", "aum"],
    "models": ["churn_90d", "deposit_to_loan"],
}
PROFILE_COLUMNS = [
    "master_id",
    "name_masked",
    "mobile_masked",
    "gender",
    "city",
    "age_band",
    "lifecycle_stage",
    "churn_risk",
    "last_activity_ts",
    "aum",
    "segment_id",
    "segment_name_zh",
    "segment_name_en",
    "churn_90d_score",
    "churn_90d_decile",
    "churn_90d_reasons",
    "deposit_to_loan_score",
    "deposit_to_loan_decile",
    "deposit_to_loan_reasons",
    "clv_12m",
    "p_alive",
    "expected_purchases",
    "snapshot_date",
    "updated_at",
]


def settings_of(overrides: dict[str, Any] | None = None) -> ProfileSettings:
    settings = ProfileSettings.model_validate(SETTINGS | (overrides or {}))
    validate_profile_settings(settings)
    return settings


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


def test_the_shipped_config_names_online_tags_and_known_features() -> None:
    settings = load_profile_settings()
    features = load_feature_config()
    registry = load_tag_registry(features.schema)
    online = {t.code for t in registry.online()}
    assert [t for t in settings.tags if t not in online] == []
    assert [f for f in settings.features if f not in features.schema] == []
    assert len(settings.tags) >= 12
    assert "birth_date" in settings.denied_golden_columns


@pytest.mark.parametrize(
    ("description", "golden_columns", "problem"),
    [
        (
            "a whole struct shows its token",
            {"full_name": "name"},
            "golden_columns.full_name: 'name' shows 'name.token', listed in denied_golden_columns "
            "(clear PII); expected a masked or display value, such as <column>.masked",
        ),
        (
            "a clear column",
            {"dob": "birth_date"},
            "golden_columns.dob: 'birth_date' shows 'birth_date', listed in denied_golden_columns "
            "(clear PII); expected a masked or display value, such as <column>.masked",
        ),
        (
            "a field inside a denied struct",
            {"id_mask": "id_no_display.masked"},
            "golden_columns.id_mask: 'id_no_display.masked' shows 'id_no_display', listed in "
            "denied_golden_columns (clear PII); expected a masked or display value, such as "
            "<column>.masked",
        ),
        (
            "a token the list forgot",
            {"email_key": "email_token"},
            "golden_columns.email_key: 'email_token' is a token (links records to the vault); "
            "expected a masked or display value, such as <column>.masked",
        ),
    ],
)
def test_a_denied_golden_column_is_refused_naming_file_and_key(
    tmp_path: Path, description: str, golden_columns: dict[str, str], problem: str
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(SETTINGS | {"golden_columns": golden_columns}))
    with pytest.raises(ConfigError) as caught:
        load_profile_settings(path)
    assert caught.value.problems == [problem], description
    assert str(path) in str(caught.value)


def test_every_config_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    bad = SETTINGS | {
        "golden_columns": {"name_masked": "name.masked", "birth": "birth_date", "city": "City"},
        "tags": ["city", "updated_at"],
        "models": ["churn_90d", "Bad-Model"],
    }
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as caught:
        load_profile_settings(path)
    assert caught.value.problems == [
        "golden_columns.birth: 'birth_date' shows 'birth_date', listed in denied_golden_columns "
        "(clear PII); expected a masked or display value, such as <column>.masked",
        "golden_columns.city: 'City' is not a column or column.field path",
        "tags.0: 'city' is also the column of golden_columns.city",
        "tags.1: 'updated_at' is a column the profile always has",
        "models.1: 'Bad-Model' is not a lower-case identifier",
    ]


def test_unknown_keys_are_rejected_with_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(SETTINGS | {"scores": ["churn_90d"]}))
    with pytest.raises(ConfigError, match=r"scores: unknown key \(allowed: clv_column, "):
        load_profile_settings(path)


# ---------------------------------------------------------------------------------------------
# the transform
# ---------------------------------------------------------------------------------------------

MASTERS = ["m1", "m2", "m3", "m4", "m5"]


def golden_frame(spark: SparkSession, masters: list[str] = MASTERS) -> DataFrame:
    rows = [
        (
            m,
            (f"tok-name-{m}", "张*"),
            "bank_customers",
            dt.date(1980, 1, int(m[1:])),
            "女",
            "上海市",
            (f"tok-mobile-{m}", f"138****800{m[1:]}"),
            None,
            (f"tok-id-{m}", "*" * 18),
            2,
        )
        for m in masters
    ]
    pair = "struct<token:string,masked:string>"
    return spark.createDataFrame(
        rows,
        f"master_id string, name {pair}, name_source string, birth_date date, gender string, "
        f"city string, mobile_display {pair}, email_display {pair}, id_no_display {pair}, "
        "record_count bigint",
    )


def tags_frame(spark: SparkSession, stage_of_m2: str = "成熟") -> DataFrame:
    rows = [
        ("m1", DAY, "26-35", "成长", False, "x"),
        ("m1", DAY - dt.timedelta(days=1), "18-25", "新客", True, "x"),  # an older snapshot
        ("m2", DAY, "36-45", stage_of_m2, True, "x"),
        ("m3", DAY, "46-55", "沉睡", None, "x"),
        ("m4", DAY, None, "流失", True, "x"),
    ]
    return spark.createDataFrame(
        rows,
        "master_id string, snapshot_date date, age_band string, lifecycle_stage string, "
        "churn_risk boolean, city_tier string",
    )


def features_frame(spark: SparkSession) -> DataFrame:
    ts = dt.datetime(2025, 12, 30, 8, 0)
    rows = [("m1", DAY, ts, 1000.0), ("m2", DAY, ts, 0.0), ("m3", DAY, None, 50.0)]
    return spark.createDataFrame(
        rows, "master_id string, snapshot_date date, last_activity_ts timestamp, aum double"
    )


def segments_frame(spark: SparkSession) -> DataFrame:
    rows = [("m1", 1, "大众客户", "mainstream", 0.5), ("m2", 2, "财富客户", "wealth", 1.5)]
    return spark.createDataFrame(
        rows,
        "master_id string, segment_id int, segment_name string, segment_name_en string, "
        "distance double",
    )


def scores_frame(spark: SparkSession) -> DataFrame:
    reason = [("aum", "资产规模", 0.2)]
    rows = [
        ("m1", "churn_90d", 1, DAY, 0.9, 1, reason),
        ("m1", "deposit_to_loan", 3, DAY, 0.2, 7, reason),
        ("m2", "churn_90d", 1, DAY, 0.1, 10, None),
        ("m3", "not_configured", 1, DAY, 0.5, 5, reason),
    ]
    return spark.createDataFrame(
        rows,
        "master_id string, model string, version int, snapshot_date date, score double, "
        f"decile int, reasons {REASONS_DDL}",
    )


def clv_frame(spark: SparkSession) -> DataFrame:
    rows = [("m1", 3, 10.0, 100, 0.8, 2.5, 40.0, 321.5)]
    return spark.createDataFrame(
        rows,
        "master_id string, frequency bigint, recency double, T bigint, p_alive double, "
        "expected_purchases double, expected_spend double, clv double",
    )


def build(
    spark: SparkSession,
    masters: list[str] = MASTERS,
    stage_of_m2: str = "成熟",
) -> DataFrame:
    return build_customer_profile(
        golden_frame(spark, masters),
        tags_frame(spark, stage_of_m2),
        # a master merged away by identity leaves the next snapshot too
        features_frame(spark).where(F.col("master_id").isin(masters)),
        segments_frame(spark),
        scores_frame(spark),
        clv_frame(spark),
        settings_of(),
        DAY,
    )


def test_a_master_known_only_by_events_gets_a_row_without_demographics(
    spark: SparkSession,
) -> None:
    """An app user or shopper without a customer record has features but no golden record:
    the profile still has their row, with null demographics."""
    without_m3 = [m for m in MASTERS if m != "m3"]
    profile = build_customer_profile(
        golden_frame(spark, without_m3),
        tags_frame(spark, "成熟"),
        features_frame(spark),
        None,
        None,
        None,
        settings_of(),
        DAY,
    )
    rows = {r["master_id"]: r for r in profile.collect()}
    assert sorted(rows) == sorted(MASTERS)
    assert rows["m3"]["name_masked"] is None
    assert rows["m3"]["aum"] == 50.0


def test_the_profile_has_one_row_per_master_and_the_configured_columns(
    spark: SparkSession,
) -> None:
    profile = build(spark)
    assert profile.columns == PROFILE_COLUMNS
    assert profile.columns == settings_of().columns()
    expected = spark.createDataFrame(
        [
            ("m1", "张*", "26-35", 1000.0, "大众客户", 0.9, 1, 0.2, 7, 321.5, DAY),
            ("m2", "张*", "36-45", 0.0, "财富客户", 0.1, 10, None, None, None, DAY),
            ("m3", "张*", "46-55", 50.0, None, None, None, None, None, None, DAY),
            ("m4", "张*", None, None, None, None, None, None, None, None, DAY),
            ("m5", "张*", None, None, None, None, None, None, None, None, DAY),
        ],
        "master_id string, name_masked string, age_band string, aum double, "
        "segment_name_zh string, churn_90d_score double, churn_90d_decile int, "
        "deposit_to_loan_score double, deposit_to_loan_decile int, clv_12m double, "
        "snapshot_date date",
    )
    assert_df_equality(
        profile.select(*expected.columns),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_no_clear_pii_or_token_reaches_the_profile(spark: SparkSession) -> None:
    profile = build(spark)
    assert not {"birth_date", "name", "mobile_display", "id_no_display"} & set(profile.columns)
    assert dict(profile.dtypes)["name_masked"] == "string"
    # no value of any column (nested ones as JSON) holds a token or a birth date
    text = profile.select(F.to_json(F.struct("*")).alias("row"))
    leaked = text.where(F.col("row").rlike("tok-|1980-01-0"))
    assert leaked.count() == 0


def test_missing_inputs_leave_typed_null_columns(spark: SparkSession) -> None:
    profile = build_customer_profile(
        golden_frame(spark, ["m1"]),
        tags_frame(spark),
        features_frame(spark),
        None,
        None,
        None,
        settings_of(),
        DAY,
    )
    types = dict(profile.dtypes)
    assert types["segment_id"] == "int"
    assert types["churn_90d_decile"] == "int"
    assert types["churn_90d_reasons"] == REASONS_DDL
    assert types["clv_12m"] == "double"
    row = profile.first()
    assert row is not None
    assert (row["segment_id"], row["churn_90d_score"], row["clv_12m"]) == (None, None, None)


def test_missing_input_columns_are_named_with_the_present_ones(spark: SparkSession) -> None:
    with pytest.raises(SchemaError) as caught:
        build_customer_profile(
            golden_frame(spark).drop("city"),
            tags_frame(spark).drop("churn_risk"),
            features_frame(spark),
            segments_frame(spark).withColumnRenamed("segment_name", "name"),
            None,
            None,
            settings_of(),
            DAY,
        )
    message = str(caught.value)
    assert message.startswith("customer profile inputs: golden records: missing column(s) city ")
    assert "; tags: missing column(s) churn_risk (present: master_id, snapshot_date, " in message
    assert (
        "; segments: missing column(s) segment_name (present: master_id, segment_id, name, "
        "segment_name_en, distance)" in message
    )


# ---------------------------------------------------------------------------------------------
# the MERGE into gold.customer_profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    write: ProfileWrite
    updated_at: dict[str, dt.datetime]


@dataclass(frozen=True)
class Scenario:
    catalog: TableCatalog
    first: Written
    rerun: Written
    changed: Written  # m2's lifecycle tag changed, m3 merged away


def _written(spark: SparkSession, catalog: TableCatalog, profile: DataFrame) -> Written:
    write = write_customer_profile(spark, catalog, profile)
    table = delta_io.read_table(spark, profile_table(catalog))
    stamps = {
        r["master_id"]: r["updated_at"] for r in table.select("master_id", "updated_at").collect()
    }
    return Written(write, stamps)


@pytest.fixture(scope="module")
def scenario(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Three writes, with new tables getting deletion vectors by default (as on a cluster that
    turns them on): the profile must come out readable all the same."""
    catalog = TableCatalog(str(tmp_path_factory.mktemp("profile")))
    saved = spark.conf.get(DV_DEFAULT, None)
    spark.conf.set(DV_DEFAULT, "true")
    try:
        first = _written(spark, catalog, build(spark))
        rerun = _written(spark, catalog, build(spark))  # rebuilt: a new build time, same content
        # m2's lifecycle stage changes; m3 is merged into another master by identity
        masters = [m for m in MASTERS if m != "m3"]
        changed = _written(spark, catalog, build(spark, masters, stage_of_m2="沉睡"))
    finally:
        if saved is None:
            spark.conf.unset(DV_DEFAULT)
        else:
            spark.conf.set(DV_DEFAULT, saved)
    return Scenario(catalog, first, rerun, changed)


def test_the_first_write_inserts_every_master(scenario: Scenario) -> None:
    first = scenario.first.write
    assert (first.customers, first.inserted, first.updated, first.deleted) == (5, 5, 0, 0)
    assert first.skipped is False
    assert sorted(scenario.first.updated_at) == MASTERS


def test_an_unchanged_rerun_makes_no_commit_and_keeps_updated_at(scenario: Scenario) -> None:
    assert scenario.rerun.write == ProfileWrite(
        customers=5,
        inserted=0,
        updated=0,
        deleted=0,
        skipped=True,
        version=scenario.first.write.version,
    )
    assert scenario.rerun.updated_at == scenario.first.updated_at


def test_a_changed_tag_updates_that_row_only(scenario: Scenario) -> None:
    write = scenario.changed.write
    assert (write.inserted, write.updated, write.skipped) == (0, 1, False)
    assert write.version == scenario.first.write.version + 1
    before, after = scenario.rerun.updated_at, scenario.changed.updated_at
    assert [m for m in after if after[m] != before[m]] == ["m2"]
    assert after["m2"] > before["m2"]


def test_a_merged_away_master_is_deleted(scenario: Scenario) -> None:
    assert scenario.changed.write.deleted == 1
    assert scenario.changed.write.customers == 4
    assert sorted(scenario.changed.updated_at) == ["m1", "m2", "m4", "m5"]  # the stored rows


# ---------------------------------------------------------------------------------------------
# readable by non-Spark Delta readers
# ---------------------------------------------------------------------------------------------


def test_the_profile_has_no_feature_delta_rs_lacks(spark: SparkSession, scenario: Scenario) -> None:
    ref = profile_table(scenario.catalog)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{ref.location}`").first()
    assert detail is not None
    assert detail["minReaderVersion"] == 1
    assert not {"deletionVectors", "columnMapping"} & set(detail["tableFeatures"])
    properties = detail["properties"]
    assert {k: properties.get(k) for k in BI_READABLE_PROPERTIES} == BI_READABLE_PROPERTIES
    assert bi_readability_problems(spark, ref) == []
    protocol = deltalake.DeltaTable(ref.location).protocol()
    assert (protocol.min_reader_version, protocol.reader_features) == (1, None)


def test_the_merged_profile_reads_the_same_with_deltalake_and_polars(
    spark: SparkSession, scenario: Scenario
) -> None:
    ref = profile_table(scenario.catalog)
    columns = ["master_id", "lifecycle_stage", "churn_90d_score", "deposit_to_loan_decile", "aum"]
    spark_rows = sorted(
        tuple(r) for r in delta_io.read_table(spark, ref).select(*columns).collect()
    )
    arrow = deltalake.DeltaTable(ref.location).to_pyarrow_table(columns=columns)
    arrow_rows = sorted(zip(*(arrow.column(c).to_pylist() for c in columns), strict=True))
    polars_rows = sorted(pl.read_delta(ref.location).select(columns).iter_rows())
    assert [r[0] for r in spark_rows] == ["m1", "m2", "m4", "m5"]
    assert arrow_rows == spark_rows
    assert polars_rows == spark_rows
