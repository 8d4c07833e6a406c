"""Marketing sources: campaign definitions and the contact history with treatment/control arms.

Contacts are a cross join of every person with the (few, broadcast) campaigns: a person is
eligible by audience (bank or retail), selected at the campaign's target rate (win-back campaigns
prefer churners and dormant customers), and put in the CONTROL arm at the control share. Only
treated persons are sent anything; conversion is drawn with the campaign's base rate, plus its
uplift in the treatment arm, so the measured lift (treatment − control) is the planted truth.
Some who open a message and do not convert opt out of marketing (``unsubscribed_ts``).
Patterns: ``treatment`` / ``control``, ``converted``, ``unsubscribed`` and ``mobile_formatted``.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse.generator import dirt, ids, rand, writer
from profilehouse.generator.settings import Campaign, GeneratorSettings
from profilehouse.generator.sources import TRUTH_COLUMNS, GeneratedSource
from profilehouse.generator.vocab import PERSONAS
from profilehouse.generator.writer import SourceSpec

CAMPAIGNS = SourceSpec(
    system="marketing",
    table="campaigns",
    fmt="csv",
    columns=("campaign_id", "name", "objective", "start_date", "end_date", "channel"),
    key="campaign_id",
)
CONTACTS = SourceSpec(
    system="marketing",
    table="contacts",
    fmt="csv",
    columns=(
        "campaign_id",
        "target_type",
        "target_key",
        "arm",
        "sent_ts",
        "channel",
        "opened",
        "clicked",
        "converted_ts",
        "unsubscribed_ts",
    ),
    key="record_key",
)
MARKETING_SPECS = (CAMPAIGNS, CONTACTS)

WINBACK_BOOST = 3.0  # churners and dormant customers are this much more likely to be targeted
CONVERSION_WINDOW_S = 30 * 86_400
SEND_HOURS = (9, 20)  # messages go out between 09:00 and 20:00 local time
OPEN_RATE = {"SMS": 0.6, "APP_PUSH": 0.35, "WECHAT": 0.5, "EMAIL": 0.25, "CALL": 0.7}
CLICK_RATE = 0.3  # of opened messages
OPEN_RATE_CONVERTED = 0.9
# 回复TD退订: a share of those who open a message and do not convert opt out, within 3 days
UNSUBSCRIBE_RATE = 0.08
UNSUBSCRIBE_WITHIN_S = 3 * 86_400
CLICK_RATE_CONVERTED = 0.7
TARGET_TYPES = {"cust_no": "CUST_NO", "member_id": "MEMBER_ID", "mobile": "MOBILE"}

_CAMPAIGN_SCHEMA = T.StructType(
    [
        T.StructField("campaign_id", T.StringType(), False),
        T.StructField("name", T.StringType(), False),
        T.StructField("objective", T.StringType(), False),
        T.StructField("start_date", T.DateType(), False),
        T.StructField("end_date", T.DateType(), False),
        T.StructField("channel", T.StringType(), False),
        T.StructField("audience", T.StringType(), False),
        T.StructField("target_key_kind", T.StringType(), False),
        T.StructField("target_rate", T.DoubleType(), False),
        T.StructField("control_share", T.DoubleType(), False),
        T.StructField("base_conversion", T.DoubleType(), False),
        T.StructField("uplift", T.DoubleType(), False),
    ]
)


def build_marketing_sources(persons: DataFrame, cfg: GeneratorSettings) -> list[GeneratedSource]:
    """Campaign definitions and contact history (with treatment and control arms)."""
    campaigns = _build_campaign_params(persons.sparkSession, cfg.campaigns)
    return [
        GeneratedSource(CAMPAIGNS, _build_campaigns(campaigns, cfg), max(1, len(cfg.campaigns))),
        GeneratedSource(
            CONTACTS, _build_contacts(persons, campaigns, cfg), _expected_contacts(cfg)
        ),
    ]


def _build_campaign_params(spark: SparkSession, campaigns: list[Campaign]) -> DataFrame:
    """One row per configured campaign with its targeting parameters (a small literal table)."""
    rows = [
        (
            c.campaign_id,
            c.name,
            c.objective,
            c.start_date,
            c.end_date,
            c.channel,
            c.audience,
            c.target_key,
            float(c.target_rate),
            float(c.control_share),
            float(c.base_conversion),
            float(c.uplift),
        )
        for c in campaigns
    ]
    return spark.createDataFrame(rows, _CAMPAIGN_SCHEMA)


def _build_campaigns(campaigns: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """The campaign master: one record per campaign, delivered with its start date's batch."""
    initial = cfg.history.initial_batch.isoformat()
    df = campaigns.select(
        "campaign_id",
        "name",
        "objective",
        F.date_format("start_date", "yyyy-MM-dd").alias("start_date"),
        F.date_format("end_date", "yyyy-MM-dd").alias("end_date"),
        "channel",
        F.lit(None).cast("long").alias("person_id"),
        writer.batch_of_expr(F.col("start_date"), initial).alias("batch"),
    )
    df = writer.with_malformed(df, cfg.dirt.malformed_row, cfg.seed, CAMPAIGNS)
    df = df.withColumn("patterns", F.array().cast("array<string>"))
    return df.select(*CAMPAIGNS.columns, *TRUTH_COLUMNS)


def _selection_rate_expr() -> Column:
    """Probability that an eligible person is targeted by the campaign."""
    prefers = (F.col("objective") == "WINBACK") & (
        F.col("churner") | (F.col("persona") == "DORMANT")
    )
    boost = F.when(prefers, WINBACK_BOOST).otherwise(1.0)
    return F.least(F.col("target_rate") * boost, F.lit(1.0))


def _raw_target_key_expr() -> Column:
    """The person's key of the campaign's kind, clean (also the record key's second half)."""
    kind = F.col("target_key_kind")
    return (
        F.when(kind == "cust_no", ids.cust_no_expr("person_id"))
        .when(kind == "member_id", ids.member_id_expr("person_id"))
        .otherwise(F.col("mobile"))
    )


def _sent_ts_expr(seed: int, keys: list[Column | str]) -> Column:
    """A send time on a day inside the campaign window, during sending hours."""
    days = F.datediff("end_date", "start_date") + 1
    day = F.floor(rand.uniform(seed, "marketing.contacts:sent_day", *keys) * days).cast("int")
    lo, hi = SEND_HOURS
    second = (
        F.lit(lo * 3600) + rand.uniform(seed, "marketing.contacts:sent_s", *keys) * (hi - lo) * 3600
    ).cast("long")
    return F.timestamp_seconds(
        F.unix_timestamp(F.date_add("start_date", day).cast("timestamp")) + second
    )


def _converted_ts_expr(seed: int, keys: list[Column | str], ref: Column, end: dt.date) -> Column:
    """A time within 30 days after ``ref`` (clipped to the end of the history)."""
    end_s = F.unix_timestamp(F.lit(f"{end.isoformat()} 23:59:59").cast("timestamp"))
    ref_s = F.unix_timestamp(ref)
    window = F.greatest(F.least(F.lit(CONVERSION_WINDOW_S), end_s - ref_s), F.lit(0))
    offset = (rand.uniform(seed, "marketing.contacts:conv_s", *keys) * window).cast("long")
    return F.timestamp_seconds(ref_s + offset)


def _unsubscribed_ts_expr(seed: int, keys: list[Column | str], sent: Column) -> Column:
    """A time within 3 days after the message was sent."""
    offset = rand.uniform(seed, "marketing.contacts:unsub_s", *keys) * UNSUBSCRIBE_WITHIN_S
    return F.timestamp_seconds(F.unix_timestamp(sent) + offset.cast("long"))


def _open_rate_expr() -> Column:
    return F.coalesce(rand.literal_map(OPEN_RATE)[F.col("channel")], F.lit(0.3))


def _build_contacts(persons: DataFrame, campaigns: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Targeted persons per campaign: arm, send, open/click and conversion."""
    seed, d, src = cfg.seed, cfg.dirt, CONTACTS.name
    people = persons.select("person_id", "is_bank", "is_retail", "churner", "persona", "mobile")
    df = people.crossJoin(F.broadcast(campaigns))
    keys: list[Column | str] = ["campaign_id", "person_id"]

    def u(salt: str) -> Column:
        return rand.uniform(seed, f"{src}:{salt}", *keys)

    eligible = F.when(F.col("audience") == "bank", F.col("is_bank")).otherwise(F.col("is_retail"))
    df = df.filter(eligible & (u("select") < _selection_rate_expr()))
    treated = u("arm") >= F.col("control_share")
    conversion = F.col("base_conversion") + F.when(treated, F.col("uplift")).otherwise(0.0)
    df = (
        df.withColumn("is_treatment", treated)
        .withColumn(
            "is_converted", u("converted") < F.least(F.greatest(conversion, F.lit(0.0)), F.lit(1.0))
        )
        .withColumn("sent", F.when(F.col("is_treatment"), _sent_ts_expr(seed, keys)))
        .withColumn("raw_key", _raw_target_key_expr())
    )
    opened = F.col("is_treatment") & (
        u("opened")
        < F.when(F.col("is_converted"), OPEN_RATE_CONVERTED).otherwise(_open_rate_expr())
    )
    clicked = F.col("opened_b") & (
        u("clicked") < F.when(F.col("is_converted"), CLICK_RATE_CONVERTED).otherwise(CLICK_RATE)
    )
    ref = F.coalesce(
        F.col("sent"), (F.col("start_date").cast("timestamp") + F.expr("INTERVAL 9 HOURS"))
    )
    is_mobile = F.col("target_key_kind") == "mobile"
    formatted = is_mobile & (u("mobile_fmt") < d.mobile_formatted)
    style = F.floor(u("mobile_style") * len(dirt.MOBILE_FORMATS)).cast("int")
    unsubscribed = (
        F.col("opened_b") & ~F.col("is_converted") & (u("unsubscribed") < UNSUBSCRIBE_RATE)
    )
    df = (
        df.withColumn("opened_b", opened)
        .withColumn("clicked_b", clicked)
        .withColumn("unsubscribed_b", unsubscribed)
        .withColumn("f_mobile_formatted", formatted)
        .withColumn(
            "target_key",
            F.when(formatted, dirt.formatted_mobile_expr(F.col("raw_key"), style)).otherwise(
                F.col("raw_key")
            ),
        )
        .withColumn("target_type", _target_type_expr())
        .withColumn("arm", F.when(F.col("is_treatment"), "TREATMENT").otherwise("CONTROL"))
        .withColumn("sent_ts", F.date_format("sent", "yyyy-MM-dd HH:mm:ss"))
        .withColumn("opened", _yes_no_expr("opened_b"))
        .withColumn("clicked", _yes_no_expr("clicked_b"))
        .withColumn(
            "converted_ts",
            F.when(
                F.col("is_converted"),
                F.date_format(
                    _converted_ts_expr(seed, keys, ref, cfg.history.end), "yyyy-MM-dd HH:mm:ss"
                ),
            ),
        )
        .withColumn(
            "unsubscribed_ts",
            F.when(
                F.col("unsubscribed_b"),
                F.date_format(_unsubscribed_ts_expr(seed, keys, ref), "yyyy-MM-dd HH:mm:ss"),
            ),
        )
        .withColumn("record_key", F.concat_ws("#", "campaign_id", "raw_key"))
        .withColumn(
            "batch",
            writer.batch_of_expr(F.to_date(ref), cfg.history.initial_batch.isoformat()),
        )
    )
    df = writer.with_malformed(df, d.malformed_row, seed, CONTACTS)
    flags: dict[str, Column | str] = {
        "treatment": "is_treatment",
        "control": ~F.col("is_treatment"),
        "converted": "is_converted",
        "unsubscribed": "unsubscribed_b",
        "mobile_formatted": "f_mobile_formatted",
    }
    df = df.withColumn("patterns", dirt.patterns_expr(flags))
    return df.select(*CONTACTS.columns, *TRUTH_COLUMNS, CONTACTS.key)


def _target_type_expr() -> Column:
    """CUST_NO / MEMBER_ID / MOBILE for the campaign's target key kind."""
    return rand.literal_map(TARGET_TYPES, "string")[F.col("target_key_kind")]


def _yes_no_expr(flag: str) -> Column:
    """'Y' / 'N' for treated contacts, blank for the control arm (nothing was sent)."""
    return F.when(F.col("is_treatment"), F.when(F.col(flag), "Y").otherwise("N"))


def _expected_contacts(cfg: GeneratorSettings) -> int:
    total_weight = sum(cfg.personas[p].weight for p in PERSONAS)

    def share(audience: str) -> float:
        rate = "bank_rate" if audience == "bank" else "retail_rate"
        return (
            sum(cfg.personas[p].weight * getattr(cfg.personas[p], rate) for p in PERSONAS)
            / total_weight
        )

    rows = sum(cfg.persons * share(c.audience) * c.target_rate for c in cfg.campaigns)
    return max(1, round(rows))
