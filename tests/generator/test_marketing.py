"""Marketing sources: campaigns as configured, contacts with a measurable planted uplift."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.generator import ids
from profilehouse.generator.marketing import MARKETING_SPECS, build_marketing_sources
from profilehouse.generator.persons import build_persons
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.sources import TRUTH_COLUMNS, GeneratedSource

# Uplift needs a few thousand contacts per campaign to be measurable: 20,000 persons.
UPLIFT_SCALE_FACTOR = 0.2


def _has(pattern: str) -> F.Column:
    return F.array_contains("patterns", pattern)


@pytest.fixture(scope="module")
def cfg(gen_cfg: GeneratorSettings) -> GeneratorSettings:
    return gen_cfg.with_overrides(scale_factor=UPLIFT_SCALE_FACTOR)


@pytest.fixture(scope="module")
def persons(spark: SparkSession, cfg: GeneratorSettings) -> Iterator[DataFrame]:
    df = build_persons(spark, cfg).cache()
    df.count()
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def generated(persons: DataFrame, cfg: GeneratorSettings) -> list[GeneratedSource]:
    return build_marketing_sources(persons, cfg)


@pytest.fixture(scope="module")
def campaigns(generated: list[GeneratedSource]) -> DataFrame:
    return generated[0].df


@pytest.fixture(scope="module")
def contacts(generated: list[GeneratedSource]) -> Iterator[DataFrame]:
    df = generated[1].df.cache()
    df.count()
    yield df
    df.unpersist()


def test_sources_have_their_spec_columns_and_the_truth_columns(
    generated: list[GeneratedSource],
) -> None:
    assert [g.spec for g in generated] == list(MARKETING_SPECS)
    for g in generated:
        extra = [] if g.spec.key in g.spec.columns else [g.spec.key]
        assert g.df.columns == [*g.spec.columns, *TRUTH_COLUMNS, *extra]
        types = dict(g.df.dtypes)
        assert {types[c] for c in g.spec.columns} == {"string"}
        assert types["patterns"] == "array<string>"
        assert g.expected_rows > 0


def test_campaigns_are_the_configured_ones(
    spark: SparkSession, campaigns: DataFrame, cfg: GeneratorSettings
) -> None:
    initial = cfg.history.initial_batch.isoformat()
    expected = spark.createDataFrame(
        [
            (
                c.campaign_id,
                c.name,
                c.objective,
                c.start_date.isoformat(),
                c.end_date.isoformat(),
                c.channel,
                initial,
            )
            for c in cfg.campaigns
        ],
        "campaign_id string, name string, objective string, start_date string, "
        "end_date string, channel string, batch string",
    )
    actual = campaigns.select(*expected.columns)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert campaigns.filter(F.col("person_id").isNotNull()).count() == 0


def test_measured_uplift_matches_the_configured_uplift(
    contacts: DataFrame, cfg: GeneratorSettings
) -> None:
    converted = F.col("converted_ts").isNotNull().cast("int")
    treatment = F.col("arm") == "TREATMENT"
    stats = {
        r.campaign_id: r
        for r in contacts.groupBy("campaign_id")
        .agg(
            F.sum(treatment.cast("int")).alias("n_t"),
            F.sum((~treatment).cast("int")).alias("n_c"),
            F.avg(F.when(treatment, converted)).alias("p_t"),
            F.avg(F.when(~treatment, converted)).alias("p_c"),
        )
        .collect()
    }
    assert set(stats) == {c.campaign_id for c in cfg.campaigns}
    for c in cfg.campaigns:
        r = stats[c.campaign_id]
        se = math.sqrt(r.p_t * (1 - r.p_t) / r.n_t + r.p_c * (1 - r.p_c) / r.n_c)
        measured = r.p_t - r.p_c
        assert abs(measured - c.uplift) < 4 * se + 1e-9, (c.campaign_id, measured, se)
        assert abs(r.p_c - c.base_conversion) < 4 * math.sqrt(
            c.base_conversion * (1 - c.base_conversion) / r.n_c
        ), (c.campaign_id, r.p_c)
        control_share = r.n_c / (r.n_t + r.n_c)
        tolerance = 4 * math.sqrt(c.control_share * (1 - c.control_share) / (r.n_t + r.n_c))
        assert abs(control_share - c.control_share) < tolerance, (c.campaign_id, control_share)
    # pooled over campaigns the planted effect is clearly positive
    pooled = sum(stats[c.campaign_id].p_t - stats[c.campaign_id].p_c for c in cfg.campaigns)
    configured = sum(c.uplift for c in cfg.campaigns)
    assert abs(pooled - configured) < 0.5 * configured


def test_patterns_name_the_arm_and_the_conversion(contacts: DataFrame) -> None:
    treatment = F.col("arm") == "TREATMENT"
    wrong = contacts.filter(
        (_has("treatment") != treatment)
        | (_has("control") == treatment)
        | (_has("converted") != F.col("converted_ts").isNotNull())
    )
    assert wrong.count() == 0


def test_only_treated_contacts_are_sent_and_conversions_follow_within_30_days(
    contacts: DataFrame, campaigns: DataFrame
) -> None:
    windows = campaigns.select(
        "campaign_id", F.col("start_date").alias("start"), F.col("end_date").alias("end")
    )
    df = contacts.join(F.broadcast(windows), "campaign_id")
    control = df.filter(F.col("arm") == "CONTROL")
    assert (
        control.filter(
            F.col("sent_ts").isNotNull()
            | F.col("opened").isNotNull()
            | F.col("clicked").isNotNull()
        ).count()
        == 0
    )
    treated = df.filter(F.col("arm") == "TREATMENT")
    sent = F.to_timestamp("sent_ts", "yyyy-MM-dd HH:mm:ss")
    bad = treated.filter(
        sent.isNull()
        | (F.to_date(sent) < F.to_date("start"))
        | (F.to_date(sent) > F.to_date("end"))
        | ~F.col("opened").isin("Y", "N")
        | ~F.col("clicked").isin("Y", "N")
        | ((F.col("clicked") == "Y") & (F.col("opened") == "N"))
    )
    assert bad.count() == 0
    ref = F.coalesce(sent, F.to_timestamp("start"))
    conv = F.to_timestamp("converted_ts", "yyyy-MM-dd HH:mm:ss")
    lag = F.unix_timestamp(conv) - F.unix_timestamp(ref)
    # control conversions count from the start day's 09:00
    limit = F.lit(30 * 86_400) + F.when(sent.isNull(), 86_400).otherwise(0)
    late = df.filter(conv.isNotNull() & ((lag < 0) | (lag > limit)))
    assert late.count() == 0
    # converted contacts open and click far more often than the others
    rates = {
        r.conv: r.click
        for r in treated.groupBy(F.col("converted_ts").isNotNull().alias("conv"))
        .agg(F.avg((F.col("clicked") == "Y").cast("int")).alias("click"))
        .collect()
    }
    assert rates[True] > rates[False] + 0.2


def test_only_opened_unconverted_messages_are_opted_out_of_within_3_days(
    contacts: DataFrame,
) -> None:
    sent = F.to_timestamp("sent_ts", "yyyy-MM-dd HH:mm:ss")
    out = F.to_timestamp("unsubscribed_ts", "yyyy-MM-dd HH:mm:ss")
    opted = contacts.filter(F.col("unsubscribed_ts").isNotNull())
    lag = F.unix_timestamp(out) - F.unix_timestamp(sent)
    wrong = opted.filter(
        (F.col("opened") != "Y")
        | F.col("converted_ts").isNotNull()
        | out.isNull()
        | (lag < 0)
        | (lag > 3 * 86_400)
    )
    assert wrong.count() == 0
    assert (
        contacts.filter(_has("unsubscribed") != F.col("unsubscribed_ts").isNotNull()).count() == 0
    )
    opened = contacts.filter((F.col("opened") == "Y") & F.col("converted_ts").isNull()).count()
    assert 0.04 < opted.count() / opened < 0.12  # the configured 8 %


def test_target_keys_name_the_true_person(contacts: DataFrame, persons: DataFrame) -> None:
    df = contacts.join(
        persons.select("person_id", F.col("mobile").alias("true_mobile"), "is_bank", "is_retail"),
        "person_id",
    )
    digits = F.regexp_replace("target_key", r"[^0-9]", "")
    mobile = F.substring(digits, -11, 11)
    kind = F.col("target_type")
    wrong = df.filter(
        ((kind == "CUST_NO") & (F.col("target_key") != ids.cust_no_expr("person_id")))
        | ((kind == "MEMBER_ID") & (F.col("target_key") != ids.member_id_expr("person_id")))
        | ((kind == "MOBILE") & (mobile != F.col("true_mobile")))
    )
    assert wrong.count() == 0
    formatted = df.filter((kind == "MOBILE") & (F.col("target_key") != F.col("true_mobile")))
    assert formatted.count() > 0
    assert formatted.filter(~_has("mobile_formatted")).count() == 0
    audience = df.filter(
        ((kind == "CUST_NO") & ~F.col("is_bank")) | ((kind == "MEMBER_ID") & ~F.col("is_retail"))
    )
    assert audience.count() == 0
    assert df.groupBy("campaign_id", "target_key").count().filter("count > 1").count() == 0


def test_winback_prefers_churners_and_dormant_customers(
    contacts: DataFrame, persons: DataFrame
) -> None:
    eligible = persons.filter("is_retail").select(
        "person_id", (F.col("churner") | (F.col("persona") == "DORMANT")).alias("lapsed")
    )
    targeted = contacts.filter(F.col("campaign_id") == "CMP_WINBACK_2025").select(
        "person_id", F.lit(1).alias("hit")
    )
    rates = {
        r.lapsed: r.rate
        for r in eligible.join(targeted, "person_id", "left")
        .groupBy("lapsed")
        .agg(F.avg(F.coalesce("hit", F.lit(0))).alias("rate"))
        .collect()
    }
    assert rates[True] > 2.0 * rates[False]


def test_contacts_are_deterministic_whatever_the_partitioning(
    persons: DataFrame, contacts: DataFrame, cfg: GeneratorSettings
) -> None:
    again = build_marketing_sources(persons.repartition(5), cfg)[1].df
    pick = F.col("campaign_id") == "CMP_WINBACK_2025"
    assert_df_equality(contacts.filter(pick), again.filter(pick), ignore_row_order=True)
    assert again.exceptAll(contacts).count() == 0
