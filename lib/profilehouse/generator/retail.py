"""Retail sources: membership, POS lines, e-commerce orders, behaviour tracking, stored value.

Every value is a keyed draw from :mod:`profilehouse.generator.rand`, so the files are identical
whatever the partitioning. Sources whose export has no unique key column (POS lines, stored-value
ledger) carry an extra ``record_key`` column after the truth columns: it is the ground-truth record
key and the writer's ``spec.key``, never written to the files (the writer selects
``spec.columns``).

Planted truth, recorded in each record's ``patterns``:

- members: the person-dirt patterns visible in the export (``missing_address`` = blank city),
  ``family_mobile``, ``duplicate_record`` (a person's second master record), ``corrected_later``
  (first delivered with a formatted mobile) and ``corrected_redelivery`` (that record re-sent in a
  daily batch with the person's true values, same member_id);
- e-commerce orders: mobile/e-mail person dirt, ``missing_address`` (blank delivery city),
  ``family_mobile``, ``bad_date``, ``duplicate_event``, ``late_event``;
- POS lines: ``default_till_mobile``, ``mobile_formatted``, ``negative_quantity``, ``bad_date``,
  ``duplicate_event``, ``late_event``;
- behaviour events: on an ``ADD_TO_CART`` event ``cart_abandoned`` / ``cart_coupon`` /
  ``cart_converted``; the later recovered purchase is ``cart_recovery_purchase``;
- behaviour events also ``bad_date``, ``duplicate_event``, ``late_event``;
- stored value: ``stored_value_hoarder`` on every row of a hoarder's card (储值高但消费低) and
  ``late_event``; amounts are positive, ``type`` gives the direction (SPEND lowers the balance).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import replace

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from profilehouse.generator import dirt, ids, rand, timeline, writer
from profilehouse.generator.settings import GeneratorSettings, Persona
from profilehouse.generator.sources import TRUTH_COLUMNS, GeneratedSource
from profilehouse.generator.vocab import CATEGORIES, CITIES, PERSONAS, SKUS_PER_CATEGORY
from profilehouse.generator.writer import SourceSpec

MEMBERS = SourceSpec(
    system="retail",
    table="members",
    fmt="csv",
    columns=(
        "member_id",
        "name",
        "mobile",
        "email",
        "wechat_openid",
        "gender",
        "birthday",
        "city",
        "join_date",
        "join_channel",
        "level",
    ),
    key="member_id",
)
POS_LINES = SourceSpec(
    system="retail",
    table="pos_lines",
    fmt="csv",
    columns=(
        "receipt_id",
        "line_no",
        "store_id",
        "member_id",
        "mobile",
        "ts",
        "sku",
        "category",
        "qty",
        "unit_price",
        "discount",
        "coupon_id",
        "pay_method",
    ),
    key="record_key",
)
ECOM_ORDERS = SourceSpec(
    system="retail",
    table="ecom_orders",
    fmt="jsonl",
    columns=(
        "order_id",
        "platform",
        "platform_user_id",
        "mobile",
        "email",
        "ts",
        "items",
        "amount",
        "status",
        "delivery_city",
    ),
    key="order_id",
)
BEHAVIOR_EVENTS = SourceSpec(
    system="retail",
    table="behavior_events",
    fmt="jsonl",
    columns=("event_id", "user_key", "event_type", "sku", "category", "channel", "ts"),
    key="event_id",
)
STORED_VALUE = SourceSpec(
    system="retail",
    table="stored_value",
    fmt="parquet",
    columns=("card_no", "member_id", "ts", "type", "amount", "balance_after"),
    key="record_key",
)
RETAIL_SPECS = (MEMBERS, POS_LINES, ECOM_ORDERS, BEHAVIOR_EVENTS, STORED_VALUE)

MEMBER_YEARS_BEFORE_HISTORY = 3
JOIN_CHANNELS = ("STORE", "APP", "MINIPROGRAM", "ECOM")
JOIN_CHANNEL_WEIGHTS = (0.45, 0.2, 0.25, 0.1)
OPENID_RATE_BY_CHANNEL = {"STORE": 0.15, "APP": 0.6, "MINIPROGRAM": 0.95, "ECOM": 0.2}
LEVELS = ("BRONZE", "SILVER", "GOLD", "PLATINUM", "DIAMOND")

STORE_ID_BASE = 1001  # store i is 'S' + (1001 + i)
DEFAULT_TILL_PREFIX = "1380000"  # + the 4 digits of the store number
HOME_STORE_SHARE = 0.5
CITY_STORE_SHARE = 0.35  # the rest shop anywhere
ANONYMOUS_RECEIPT_FACTOR = 0.25  # non-members shop this much of their persona's receipts
MEMBER_ID_ON_RECEIPT = 0.6
DUPLICATE_MEMBER_ON_RECEIPT = 0.3
TYPED_MOBILE_MEMBER = 0.2
TYPED_MOBILE_ANONYMOUS = 0.1
MAX_LINES = 5
PAY_WEIGHTS_SV = {"WECHAT": 0.33, "ALIPAY": 0.27, "CARD": 0.15, "CASH": 0.1, "STORED_VALUE": 0.15}
PAY_WEIGHTS = {"WECHAT": 0.38, "ALIPAY": 0.32, "CARD": 0.18, "CASH": 0.12}

FAV1_SHARE = 0.35
FAV2_SHARE = 0.2

PLATFORMS = {"OWN_APP": 0.4, "TMALL": 0.35, "JD": 0.25}
ORDER_STATUS = {"PAID": 0.88, "CANCELLED": 0.07, "REFUNDED": 0.05}
MAX_ORDER_ITEMS = 4

BEHAVIOR_CHANNELS = {"APP": 0.45, "MINIPROGRAM": 0.35, "WEB": 0.2}
ADD_TO_CART_SHARE = 0.65  # of cart steps; the rest are FAVORITE
PURCHASE_AFTER_CHECKOUT = 0.95
REMOVE_AFTER_ABANDON = 0.25
RECOVERY_MIN_S = 2 * 3600
RECOVERY_MAX_S = 7 * 86_400 - 3600
STEP_S = 60
LOCAL_UTC_OFFSET_S = 8 * 3600  # Asia/Shanghai

TOPUPS_PER_MONTH = 0.5
TOPUPS_PER_MONTH_HOARDER = 0.8
TOPUP_AMOUNTS = {"100": 0.3, "200": 0.3, "300": 0.15, "500": 0.15, "1000": 0.1}
TOPUP_AMOUNTS_HOARDER = {"1000": 0.25, "2000": 0.3, "3000": 0.2, "5000": 0.15, "10000": 0.1}
SPEND_WINDOW_S = 45 * 86_400
REFUND_RATE = 0.03

_CATEGORY_NAMES = [c for c, _, _ in CATEGORIES]


def build_retail_sources(
    persons: DataFrame, cfg: GeneratorSettings, only: Collection[str] | None = None
) -> list[GeneratedSource]:
    """The retail sources (members, POS lines, e-commerce, behaviour, stored value).

    ``only``: names (``retail.<table>``) of the sources to build, in the usual order; all when
    omitted. An unknown name raises ValueError listing the known ones.
    """
    builders = {
        MEMBERS.name: (MEMBERS, _build_members, _expected_members),
        POS_LINES.name: (POS_LINES, _build_pos_lines, _expected_pos_lines),
        ECOM_ORDERS.name: (ECOM_ORDERS, _build_ecom_orders, _expected_ecom),
        BEHAVIOR_EVENTS.name: (BEHAVIOR_EVENTS, _build_behavior_events, _expected_behavior),
        STORED_VALUE.name: (STORED_VALUE, _build_stored_value, _expected_stored_value),
    }
    wanted = set(builders) if only is None else set(only)
    unknown = sorted(wanted - set(builders))
    if unknown:
        raise ValueError(
            f"unknown retail source(s): {', '.join(unknown)}; known: {', '.join(builders)}"
        )
    people = _build_people(persons, cfg)
    return [
        GeneratedSource(spec, build(people, cfg), expected(cfg, cfg.persons))
        for name, (spec, build, expected) in builders.items()
        if name in wanted
    ]


# ---------------------------------------------------------------------------------------------
# Shared person-level attributes


def _first_join_date(cfg: GeneratorSettings) -> dt.date:
    start = cfg.history.start
    return start.replace(year=start.year - MEMBER_YEARS_BEFORE_HISTORY)


def _join_date_expr(cfg: GeneratorSettings) -> Column:
    """Primary membership join date: uniform over [history start - 3 years, history end]."""
    first = _first_join_date(cfg)
    span = (cfg.history.end - first).days + 1
    offset = (rand.uniform(cfg.seed, "retail.members:join", "person_id") * span).cast("int")
    return F.date_add(F.lit(first), offset)


def _city_index_expr(city: Column) -> Column:
    """0-based index of ``city`` in vocab.CITIES."""
    return rand.literal_map({c[1]: i for i, c in enumerate(CITIES)}, "int")[city]


# Person columns the retail sources read (the identity ones only for members and e-commerce).
_PERSON_COLUMNS = (
    "person_id",
    "gender",
    "city",
    "mobile",
    "email",
    "wechat_openid",
    "device_id",
    "household_head_id",
    "family_mobile_shared",
    "is_retail",
    "has_ecom",
    "has_stored_value",
    "stored_value_hoarder",
    "churner",
    "activity_end",
    "fav_category_1",
    "fav_category_2",
    "p_receipts_per_month",
    "p_festival_share",
    "p_basket_value",
    "p_coupon_rate",
    "p_ecom_orders_per_month",
    "p_web_sessions_per_month",
    "p_cart_rate",
    "p_checkout_rate",
)
# What dirt.with_person_dirt reads besides the mobile.
_DIRT_INPUTS = (
    "name",
    "name_typo",
    "name_traditional",
    "surname",
    "given_name",
    "birth_date",
    "address",
    "old_address",
    "id_no",
)
_SHARED = (
    "eff_mobile",
    "uses_family_mobile",
    "join_date",
    "has_member_dup",
    "primary_member_id",
    "dup_member_id",
    "city_idx",
    "span_start",
    "months",
)


def _build_people(persons: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Persons plus the retail attributes every retail source shares (one row per person)."""
    heads = persons.select(
        F.col("person_id").alias("_head_id"), F.col("mobile").alias("_head_mobile")
    )
    df = persons.select(*_PERSON_COLUMNS, *_DIRT_INPUTS).join(
        heads, F.col("household_head_id") == F.col("_head_id"), "left"
    )
    shared = F.col("family_mobile_shared") & F.col("_head_mobile").isNotNull()
    has_dup = F.col("is_retail") & rand.bernoulli(
        cfg.dirt.duplicate_record, cfg.seed, "retail.members:dup", "person_id"
    )
    df = df.withColumns(
        {
            "eff_mobile": F.when(shared, F.col("_head_mobile")).otherwise(F.col("mobile")),
            "uses_family_mobile": shared,
            "join_date": F.when(F.col("is_retail"), _join_date_expr(cfg)),
            "has_member_dup": has_dup,
            "primary_member_id": F.when(F.col("is_retail"), ids.member_id_expr("person_id")),
            "dup_member_id": F.when(has_dup, ids.member_id_expr("person_id", 1)),
            "city_idx": _city_index_expr(F.col("city")),
        }
    ).drop("_head_id", "_head_mobile")
    start = F.lit(cfg.history.start)
    df = df.withColumn(
        "span_start",
        F.when(F.col("is_retail"), F.greatest(F.col("join_date"), start)).otherwise(start),
    )
    return df.withColumn(
        "months", timeline.months_between_expr(F.col("span_start"), F.col("activity_end"))
    )


def _people_for(people: DataFrame, *, identity: bool = False) -> DataFrame:
    """The shared people columns a builder needs (identity inputs only when it applies dirt)."""
    return people.select(*_PERSON_COLUMNS, *(_DIRT_INPUTS if identity else ()), *_SHARED)


def _category_expr(seed: int, salt: str, keys: list[Column | str]) -> Column:
    """A category: the person's favourites are more likely than the others."""
    u = rand.uniform(seed, f"{salt}:cat", *keys)
    anyone = rand.choice(_CATEGORY_NAMES, seed, f"{salt}:cat_any", *keys)
    return (
        F.when(u < FAV1_SHARE, F.col("fav_category_1"))
        .when(u < FAV1_SHARE + FAV2_SHARE, F.col("fav_category_2"))
        .otherwise(anyone)
    )


def _category_lookup_expr(category: Column, index: int) -> Column:
    """Field ``index`` (1 = sku prefix, 2 = typical price) of ``category`` in vocab.CATEGORIES."""
    value_type = "string" if index == 1 else "double"
    return rand.literal_map({c[0]: c[index] for c in CATEGORIES}, value_type)[category]


def _sku_expr(category: Column, sku_index: Column) -> Column:
    """SKU code: category prefix + 4 digits (index < vocab.SKUS_PER_CATEGORY)."""
    return F.concat(_category_lookup_expr(category, 1), rand.digits(sku_index, 4))


def _sku_index_expr(seed: int, salt: str, keys: list[Column | str]) -> Column:
    return rand.randint(0, SKUS_PER_CATEGORY - 1, seed, f"{salt}:sku", *keys)


def _sku_price_expr(seed: int, category: Column, sku: Column) -> Column:
    """Shelf price of ``sku`` (stable per SKU): 0.6–1.4 × the category price, ending in .9."""
    base = _category_lookup_expr(category, 2).cast("double")
    factor = F.lit(0.6) + rand.uniform(seed, "retail:sku_price", sku) * 0.8
    return F.floor(base * factor) + F.lit(0.9)


def _money_expr(value: Column) -> Column:
    """A CNY amount as a string with two decimals."""
    return F.round(value, 2).cast("decimal(12,2)").cast("string")


def _local_end_ts(cfg: GeneratorSettings) -> Column:
    """Last second of the history (local wall-clock)."""
    return F.lit(f"{cfg.history.end.isoformat()} 23:59:59").cast("timestamp")


def _finish(
    df: DataFrame, spec: SourceSpec, cfg: GeneratorSettings, flags: dict[str, Column | str]
) -> DataFrame:
    """Spec columns, then the truth columns, then ``spec.key`` when it is not a spec column."""
    df = writer.with_malformed(df, cfg.dirt.malformed_row, cfg.seed, spec)
    # The re-delivered copy of a duplicate is never the malformed one (its twin carries the data).
    malformed = F.col("malformed") & ~F.col("f_duplicate_event")
    extra = () if spec.key in spec.columns else (spec.key,)
    return df.select(
        *spec.columns,
        "person_id",
        "batch",
        malformed.alias("malformed"),
        F.when(malformed, F.col("malformed_kind")).alias("malformed_kind"),
        dirt.patterns_expr(flags).alias("patterns"),
        *extra,
    )


def _explode_count(df: DataFrame, count: Column, name: str) -> DataFrame:
    """One row per 1..``count`` (rows with a count of 0 disappear)."""
    return (
        df.withColumn("_n", count)
        .filter(F.col("_n") > 0)
        .withColumn(name, F.explode(F.sequence(F.lit(1), F.col("_n"))))
        .drop("_n")
    )


# ---------------------------------------------------------------------------------------------
# members


def _level_expr(seed: int, as_of: dt.date) -> Column:
    """Membership level from monthly spend and tenure, with noise."""
    spend = F.col("p_basket_value") * F.greatest(F.col("p_receipts_per_month"), F.lit(0.05))
    tenure_years = F.datediff(F.lit(as_of), F.col("join_date")) / 365.25
    score = (
        F.log(spend + 1.0)
        + F.least(tenure_years, F.lit(5.0)) * 0.25
        + rand.normal(seed, "retail.members:level", "member_id") * 0.6
    )
    return (
        F.when(score < 4.6, LEVELS[0])
        .when(score < 5.2, LEVELS[1])
        .when(score < 5.8, LEVELS[2])
        .when(score < 6.4, LEVELS[3])
        .otherwise(LEVELS[4])
    )


def _gender_expr(seed: int) -> Column:
    u = rand.uniform(seed, "retail.members:gender_style", "member_id")
    male = F.col("gender") == "M"
    return (
        F.when(u < 0.85, F.when(male, "男").otherwise("女"))
        .when(u < 0.95, F.col("gender"))
        .otherwise(F.lit(None).cast("string"))
    )


def _join_channel_expr(seed: int) -> Column:
    """Primary record: weighted channel; duplicate record: always a different channel."""
    weights = [(str(i), w) for i, w in enumerate(JOIN_CHANNEL_WEIGHTS)]
    first = rand.weighted_choice(weights, seed, "retail.members:channel", "person_id").cast("int")
    shift = rand.randint(1, len(JOIN_CHANNELS) - 1, seed, "retail.members:channel2", "member_id")
    idx = F.when(F.col("copy") == 0, first).otherwise(first + shift)
    return rand.pick_from(list(JOIN_CHANNELS), idx)


def _openid_expr(seed: int) -> Column:
    rates = rand.literal_map(OPENID_RATE_BY_CHANNEL)
    has = rand.uniform(seed, "retail.members:openid", "member_id") < rates[F.col("join_channel")]
    return F.when(has, F.col("wechat_openid"))


def _build_members(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Membership master records, in-system duplicates and corrected re-deliveries."""
    seed, end, initial = cfg.seed, cfg.history.end, cfg.history.initial_batch
    copies = F.when(F.col("has_member_dup"), F.array(F.lit(0), F.lit(1))).otherwise(
        F.array(F.lit(0))
    )
    df = (
        _people_for(people, identity=True)
        .filter("is_retail")
        .withColumn("copy", F.explode(copies))
        .withColumn("member_id", ids.member_id_expr("person_id", F.col("copy")))
    )
    later = F.date_add(
        F.col("join_date"),
        (
            rand.uniform(seed, "retail.members:join2", "member_id")
            * (F.datediff(F.lit(end), F.col("join_date")) + 1)
        ).cast("int"),
    )
    df = df.withColumns(
        {
            "join_date": F.when(F.col("copy") == 0, F.col("join_date")).otherwise(later),
            "join_channel": _join_channel_expr(seed),
            "src_gender": _gender_expr(seed),
        }
    )
    batch = writer.batch_of_expr(F.col("join_date"), initial.isoformat())
    corrected = (
        F.lit(cfg.history.daily_batches > 0)
        & (F.col("copy") == 0)
        & (batch == initial.isoformat())
        & rand.bernoulli(
            cfg.dirt.corrected_redelivery, seed, "retail.members:corrected", "member_id"
        )
    )
    df = df.withColumns(
        {
            "src_openid": _openid_expr(seed),
            "level": _level_expr(seed, end),
            "batch": batch,
            "_corrected": corrected,
        }
    )
    df = dirt.with_person_dirt(
        df, cfg.dirt, seed, MEMBERS.name, "member_id", "yyyy/MM/dd", mobile_col="eff_mobile"
    )
    df = _with_correctable_mobile(df, seed).withColumn(
        "src_city", F.when(~F.col("f_missing_address"), F.col("city"))
    )
    flags = {
        **{f: f"f_{f}" for f in _MEMBER_DIRT},
        "missing_address": "f_missing_address",
        "family_mobile": F.col("uses_family_mobile") & ~F.col("f_missing_mobile"),
        "duplicate_record": F.col("copy") == 1,
        "corrected_later": "_corrected",
    }
    delivered = df.select(
        *_member_columns(src=True),
        F.col("member_id").alias("_mkey"),
        "person_id",
        "batch",
        dirt.patterns_expr(flags).alias("patterns"),
    )
    out = writer.with_malformed(
        delivered.unionByName(_corrected_members(df, cfg)),
        cfg.dirt.malformed_row,
        seed,
        replace(MEMBERS, key="_mkey"),
    )
    return out.select(*MEMBERS.columns, *TRUTH_COLUMNS)


_MEMBER_DIRT = (
    "name_typo",
    "name_traditional",
    "name_spacing",
    "mobile_formatted",
    "missing_mobile",
    "email_upper",
    "missing_email",
    "birth_swapped",
    "bad_date",
)


def _with_correctable_mobile(df: DataFrame, seed: int) -> DataFrame:
    """A record corrected later was first delivered with its mobile typed in a format."""
    style = rand.randint(
        0, len(dirt.MOBILE_FORMATS) - 1, seed, "retail.members:fix_style", "member_id"
    )
    force = F.col("_corrected") & ~F.col("f_missing_mobile") & ~F.col("f_mobile_formatted")
    return df.withColumns(
        {
            "src_mobile": F.when(
                force, dirt.formatted_mobile_expr(F.col("eff_mobile"), style.cast("int"))
            ).otherwise(F.col("src_mobile")),
            "f_mobile_formatted": F.col("f_mobile_formatted") | force,
        }
    )


def _member_columns(src: bool) -> list[Column]:
    """Export columns of a member record: as the system holds it (src) or corrected (clean)."""
    if src:
        values = {
            "name": "src_name",
            "mobile": "src_mobile",
            "email": "src_email",
            "birthday": "src_birth_date",
            "city": "src_city",
        }
        cols = {k: F.col(v) for k, v in values.items()}
    else:
        cols = {
            "name": F.col("name"),
            "mobile": F.col("mobile"),
            "email": F.lower("email"),
            "birthday": F.date_format("birth_date", "yyyy/MM/dd"),
            "city": F.col("city"),
        }
    return [
        F.col("member_id"),
        cols["name"].alias("name"),
        cols["mobile"].alias("mobile"),
        cols["email"].alias("email"),
        F.col("src_openid").alias("wechat_openid"),
        F.col("src_gender").alias("gender"),
        cols["birthday"].alias("birthday"),
        cols["city"].alias("city"),
        F.date_format("join_date", "yyyy/MM/dd").alias("join_date"),
        F.col("join_channel"),
        F.col("level"),
    ]


def _corrected_members(df: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Records flagged ``_corrected`` re-sent in a daily batch with the person's true values."""
    seed, daily = cfg.seed, max(cfg.history.daily_batches, 1)
    initial = cfg.history.initial_batch
    day = rand.randint(1, daily, seed, "retail.members:corrected_day", "member_id")
    return df.filter("_corrected").select(
        *_member_columns(src=False),
        F.concat(F.col("member_id"), F.lit("#corrected")).alias("_mkey"),
        "person_id",
        F.date_format(F.date_add(F.lit(initial), day.cast("int")), "yyyy-MM-dd").alias("batch"),
        F.array(F.lit("corrected_redelivery")).alias("patterns"),
    )


def _expected_members(cfg: GeneratorSettings, n: int) -> int:
    retail = _mean_over_personas(cfg, lambda p: p.retail_rate)
    return max(1, round(n * retail * (1 + cfg.dirt.duplicate_record)))


# ---------------------------------------------------------------------------------------------
# POS lines


def _store_index_expr(cfg: GeneratorSettings, keys: list[Column | str]) -> Column:
    """Store of a receipt: mostly the home store or another store of the person's city.

    Store ``i`` is in city ``i mod len(CITIES)``, so a city's stores are computable without a join.
    """
    seed, n_stores, n_cities = cfg.seed, cfg.stores, len(CITIES)
    c = F.col("city_idx")
    in_city = F.when(c < n_stores, F.floor((F.lit(n_stores - 1) - c) / n_cities) + 1).otherwise(0)

    def city_store(salt: str, *k: Column | str) -> Column:
        pick = F.floor(rand.uniform(seed, salt, *k) * in_city).cast("long")
        return c + pick * n_cities

    anywhere = rand.randint(0, n_stores - 1, seed, "retail.pos_lines:store_any", *keys)
    u = rand.uniform(seed, "retail.pos_lines:store_kind", *keys)
    return (
        F.when(in_city == 0, anywhere)
        .when(u < HOME_STORE_SHARE, city_store("retail.pos_lines:home_store", "person_id"))
        .when(
            u < HOME_STORE_SHARE + CITY_STORE_SHARE,
            city_store("retail.pos_lines:city_store", *keys),
        )
        .otherwise(anywhere)
    )


def default_till_mobile_expr(store_id: Column) -> Column:
    """The store's default till mobile ('1380000' + the 4 digits of the store number)."""
    return F.concat(F.lit(DEFAULT_TILL_PREFIX), F.substring(store_id, 2, 4))


def _receipt_id_expr(seed: int, src: str, keys: list[Column | str]) -> Column:
    """Store + yyMMdd + 10 hex digits (unique per receipt)."""
    digest = F.sha2(F.concat_ws("|", F.lit(seed), F.lit(src), *keys), 256)
    return F.concat(
        F.col("store_id"), F.date_format("ts_true", "yyMMdd"), F.upper(F.substring(digest, 1, 10))
    )


def _build_receipts(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """One row per receipt: store, time, customer identification, payment."""
    seed, src, d = cfg.seed, POS_LINES.name, cfg.dirt
    rate = F.when(F.col("is_retail"), F.col("p_receipts_per_month")).otherwise(
        F.col("p_receipts_per_month") * ANONYMOUS_RECEIPT_FACTOR
    )
    count = rand.count_draw(rate * F.col("months"), seed, f"{src}:receipts", "person_id")
    df = _explode_count(_people_for(people), count, "receipt_no")
    keys: list[Column | str] = [F.col("person_id"), F.col("receipt_no")]

    def u(salt: str) -> Column:
        return rand.uniform(seed, f"{src}:{salt}", *keys)

    ts = timeline.event_ts_expr(
        cfg,
        src,
        keys,
        F.col("span_start"),
        F.col("activity_end"),
        F.col("churner"),
        F.col("p_festival_share"),
    )
    store_no = _store_index_expr(cfg, keys) + STORE_ID_BASE
    default_till = u("default_till") < d.default_till_mobile
    member = F.when(
        F.col("has_member_dup") & (u("dup_member") < DUPLICATE_MEMBER_ON_RECEIPT),
        F.col("dup_member_id"),
    ).otherwise(F.col("primary_member_id"))
    shows_member = ~default_till & F.col("is_retail") & (u("member") < MEMBER_ID_ON_RECEIPT)
    typed_rate = F.when(F.col("is_retail"), TYPED_MOBILE_MEMBER).otherwise(TYPED_MOBILE_ANONYMOUS)
    typed = ~shows_member & ~default_till & (u("typed") < typed_rate)
    formatted = typed & (u("mobile_fmt") < d.mobile_formatted)
    style = F.floor(u("mobile_style") * len(dirt.MOBILE_FORMATS)).cast("int")
    pay = F.when(
        F.col("has_stored_value"), rand.weighted_choice(PAY_WEIGHTS_SV, seed, f"{src}:pay", *keys)
    ).otherwise(rand.weighted_choice(PAY_WEIGHTS, seed, f"{src}:pay", *keys))
    df = df.withColumns(
        {
            "ts_true": ts,
            "store_id": F.concat(F.lit("S"), rand.digits(store_no, 4)),
            "f_default_till": default_till,
            "member_id": F.when(shows_member, member),
            "f_mobile_formatted": formatted,
            "typed_mobile": F.when(
                formatted, dirt.formatted_mobile_expr(F.col("eff_mobile"), style)
            ).when(typed, F.col("eff_mobile")),
            "pay_method": pay,
            "n_lines": rand.randint(1, MAX_LINES, seed, f"{src}:lines", *keys),
        }
    )
    return df.withColumns(
        {
            "receipt_id": _receipt_id_expr(seed, src, keys),
            "mobile": F.when(
                F.col("f_default_till"), default_till_mobile_expr(F.col("store_id"))
            ).otherwise(F.col("typed_mobile")),
        }
    )


def _pos_qty_expr(seed: int, src: str, keys: list[Column | str]) -> Column:
    """Quantity of a line: cheap items are bought several at a time, towards the basket value."""
    target = F.col("p_basket_value") / (F.col("price") * 3.0)
    drawn = F.round(rand.lognormal(target, 0.5, seed, f"{src}:qty", *keys))
    return F.greatest(F.lit(1), F.least(F.lit(6), drawn)).cast("int")


def _build_pos_lines(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """POS receipt lines of members and anonymous shoppers, with till and export dirt."""
    seed, src, d = cfg.seed, POS_LINES.name, cfg.dirt
    df = _build_receipts(people, cfg)
    df = df.withColumn("line_no", F.explode(F.sequence(F.lit(1), F.col("n_lines"))))
    keys: list[Column | str] = [F.col("person_id"), F.col("receipt_no"), F.col("line_no")]

    def u(salt: str) -> Column:
        return rand.uniform(seed, f"{src}:{salt}", *keys)

    category = _category_expr(seed, src, keys)
    df = df.withColumns(
        {
            "category": category,
            "sku": _sku_expr(category, _sku_index_expr(seed, src, keys)),
            "record_key": F.concat(F.col("receipt_id"), F.lit("#"), F.col("line_no")),
        }
    )
    df = df.withColumn("price", _sku_price_expr(seed, F.col("category"), F.col("sku")))
    coupon = u("coupon") < F.col("p_coupon_rate") * 0.5
    df = df.withColumns(
        {
            "qty_true": _pos_qty_expr(seed, src, keys),
            "_coupon": coupon,
            "f_negative_quantity": u("neg_qty") < d.negative_quantity,
        }
    )
    gross = F.col("price") * F.col("qty_true")
    discount = (
        F.when(F.col("_coupon"), gross * (F.lit(0.05) + u("coupon_off") * 0.25))
        .when(u("promo") < 0.1, gross * 0.1)
        .otherwise(0.0)
    )
    coupon_id = F.concat(
        F.lit("CPN"),
        F.date_format("ts_true", "yyMM"),
        rand.digits(rand.randint(1, 40, seed, f"{src}:coupon_no", *keys), 3),
    )
    ts_text, bad_ts = dirt.bad_value_expr(
        F.date_format("ts_true", "yyyyMMddHHmmss"),
        d.bad_date,
        dirt.BAD_DATES,
        seed,
        f"{src}:ts",
        "record_key",
    )
    qty = F.when(F.col("f_negative_quantity"), -F.col("qty_true")).otherwise(F.col("qty_true"))
    df = df.withColumns(
        {
            "discount": _money_expr(discount),
            "coupon_id": F.when(F.col("_coupon"), coupon_id),
            "qty": qty.cast("string"),
            "unit_price": _money_expr(F.col("price")),
            "line_no": F.col("line_no").cast("string"),
            "ts": ts_text,
            "f_bad_date": bad_ts,
        }
    )
    df = dirt.with_delivery(df, cfg, src, F.to_date("ts_true"), "record_key")
    flags: dict[str, Column | str] = {
        "default_till_mobile": "f_default_till",
        "mobile_formatted": "f_mobile_formatted",
        "negative_quantity": "f_negative_quantity",
        "bad_date": "f_bad_date",
        "duplicate_event": "f_duplicate_event",
        "late_event": "f_late_event",
    }
    return _finish(df, POS_LINES, cfg, flags)


def _expected_pos_lines(cfg: GeneratorSettings, n: int) -> int:
    months = cfg.history.days / 30.44 * 0.8
    per_person = _mean_over_personas(
        cfg,
        lambda p: (
            p.receipts_per_month * (p.retail_rate + (1 - p.retail_rate) * ANONYMOUS_RECEIPT_FACTOR)
        ),
    )
    return max(1, round(n * per_person * months * (MAX_LINES + 1) / 2))


# ---------------------------------------------------------------------------------------------
# e-commerce orders


def _platform_user_id_expr(seed: int) -> Column:
    """OWN_APP: the member ID; TMALL/JD: a stable hashed account per person and platform."""
    digest = F.sha2(
        F.concat_ws("|", F.lit(seed), F.col("platform"), F.col("person_id").cast("string")), 256
    )
    return (
        F.when(F.col("platform") == "OWN_APP", F.col("primary_member_id"))
        .when(F.col("platform") == "TMALL", F.concat(F.lit("tb_"), F.substring(digest, 1, 12)))
        .otherwise(F.concat(F.lit("jd_"), F.substring(digest, 1, 12)))
    )


def _order_items_expr(seed: int, src: str) -> Column:
    """array<struct<sku, category, qty:int, price:string>> of 1–4 items."""
    n_items = rand.randint(1, MAX_ORDER_ITEMS, seed, f"{src}:items", "order_id")

    def item(i: Column) -> Column:
        keys: list[Column | str] = [F.col("order_id"), i]
        category = _category_expr(seed, src, keys)
        sku = _sku_expr(category, _sku_index_expr(seed, src, keys))
        qty = F.when(rand.uniform(seed, f"{src}:qty", *keys) < 0.8, 1).otherwise(
            rand.randint(2, 3, seed, f"{src}:qty_n", *keys)
        )
        return F.struct(
            sku.alias("sku"),
            category.alias("category"),
            qty.cast("int").alias("qty"),
            _money_expr(_sku_price_expr(seed, category, sku)).alias("price"),
        )

    return F.transform(F.sequence(F.lit(1), n_items.cast("int")), item)


def _order_id_expr(seed: int, src: str, keys: list[Column | str]) -> Column:
    """'O' + 20 upper-case hex digits, unique per order."""
    return F.concat(
        F.lit("O"),
        F.upper(F.regexp_replace(ids.event_id_expr(seed, src, *keys), "-", "")).substr(1, 20),
    )


def _build_ecom_orders(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Orders on the own app and marketplaces, with person dirt on mobile and e-mail."""
    seed, src, d = cfg.seed, ECOM_ORDERS.name, cfg.dirt
    count = rand.count_draw(
        F.col("p_ecom_orders_per_month") * F.col("months"), seed, f"{src}:orders", "person_id"
    )
    df = _explode_count(_people_for(people, identity=True).filter("has_ecom"), count, "order_no")
    keys: list[Column | str] = [F.col("person_id"), F.col("order_no")]
    ts = timeline.event_ts_expr(
        cfg,
        src,
        keys,
        F.col("span_start"),
        F.col("activity_end"),
        F.col("churner"),
        F.col("p_festival_share"),
    )
    platform = rand.weighted_choice(PLATFORMS, seed, f"{src}:platform", *keys)
    df = df.withColumns(
        {
            "order_id": _order_id_expr(seed, src, keys),
            "ts_true": ts,
            "platform": platform,
            "order_mobile": F.when(platform == "OWN_APP", F.col("eff_mobile")).otherwise(
                F.col("mobile")
            ),
        }
    )
    df = dirt.with_person_dirt(
        df, d, seed, src, "order_id", "yyyy-MM-dd", mobile_col="order_mobile"
    )
    items = _order_items_expr(seed, src)
    amount = F.aggregate(
        F.col("items"),
        F.lit(0.0),
        lambda acc, x: acc + x["qty"] * x["price"].cast("double"),
    )
    iso = F.concat(F.date_format("ts_true", "yyyy-MM-dd'T'HH:mm:ss"), F.lit("+08:00"))
    ts_text, bad_ts = dirt.bad_value_expr(
        iso, d.bad_date, dirt.BAD_DATES, seed, f"{src}:ts", "order_id"
    )
    df = df.withColumns(
        {
            "platform_user_id": _platform_user_id_expr(seed),
            "items": items,
            "status": rand.weighted_choice(ORDER_STATUS, seed, f"{src}:status", *keys),
            "delivery_city": F.when(~F.col("f_missing_address"), F.col("city")),
            "mobile": F.col("src_mobile"),
            "email": F.col("src_email"),
            "ts": ts_text,
            "f_bad_ts": bad_ts,
        }
    ).withColumn("amount", _money_expr(amount))
    df = dirt.with_delivery(df, cfg, src, F.to_date("ts_true"), "order_id")
    flags: dict[str, Column | str] = {
        "mobile_formatted": "f_mobile_formatted",
        "missing_mobile": "f_missing_mobile",
        "email_upper": "f_email_upper",
        "missing_email": "f_missing_email",
        "missing_address": "f_missing_address",
        "family_mobile": (F.col("platform") == "OWN_APP")
        & F.col("uses_family_mobile")
        & ~F.col("f_missing_mobile"),
        "bad_date": "f_bad_ts",
        "duplicate_event": "f_duplicate_event",
        "late_event": "f_late_event",
    }
    return _finish(df, ECOM_ORDERS, cfg, flags)


def _expected_ecom(cfg: GeneratorSettings, n: int) -> int:
    months = cfg.history.days / 30.44 * 0.8
    per_person = _mean_over_personas(
        cfg, lambda p: p.retail_rate * p.ecom_rate * p.ecom_orders_per_month
    )
    return max(1, round(n * per_person * months))


# ---------------------------------------------------------------------------------------------
# behaviour events


def _user_key_expr(seed: int, src: str, keys: list[Column | str], channel: Column) -> Column:
    """Who the tracker saw: the openid in the mini-program, else the member ID or the device."""
    u = rand.uniform(seed, f"{src}:logged_in", *keys)
    return (
        F.when(channel == "MINIPROGRAM", F.col("wechat_openid"))
        .when((channel == "APP") & (u < 0.6), F.col("primary_member_id"))
        .when((channel == "WEB") & (u < 0.5), F.col("primary_member_id"))
        .otherwise(F.col("device_id"))
    )


def _build_sessions(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """One row per browsing session with its funnel outcome and planted cart recovery."""
    seed, src, sig = cfg.seed, BEHAVIOR_EVENTS.name, cfg.signal
    count = rand.count_draw(
        F.col("p_web_sessions_per_month") * F.col("months"), seed, f"{src}:sessions", "person_id"
    )
    df = _explode_count(_people_for(people).filter("is_retail"), count, "session_no")
    keys: list[Column | str] = [F.col("person_id"), F.col("session_no")]

    def u(salt: str) -> Column:
        return rand.uniform(seed, f"{src}:{salt}", *keys)

    ts = timeline.event_ts_expr(
        cfg,
        src,
        keys,
        F.col("span_start"),
        F.col("activity_end"),
        F.col("churner"),
        F.col("p_festival_share"),
    )
    category = _category_expr(seed, src, keys)
    carted = u("cart") < F.col("p_cart_rate")
    cart_type = F.when(u("cart_type") < ADD_TO_CART_SHARE, "ADD_TO_CART").otherwise("FAVORITE")
    checked_out = carted & (u("checkout") < F.col("p_checkout_rate"))
    abandoned = carted & (cart_type == "ADD_TO_CART") & ~checked_out
    coupon = abandoned & (u("coupon") < sig.cart_coupon_share)
    conversion = F.when(coupon, sig.cart_conversion_coupon).otherwise(sig.cart_conversion_base)
    channel = rand.weighted_choice(BEHAVIOR_CHANNELS, seed, f"{src}:ch", *keys)
    return df.withColumns(
        {
            "session_ts": ts,
            "channel": channel,
            "user_key": _user_key_expr(seed, src, keys, channel),
            "category": category,
            "target_sku": _sku_expr(category, _sku_index_expr(seed, src, keys)),
            "n_views": rand.randint(1, 4, seed, f"{src}:views", *keys).cast("int"),
            "carted": carted,
            "cart_type": cart_type,
            "checked_out": checked_out,
            "purchased": checked_out & (u("purchase") < PURCHASE_AFTER_CHECKOUT),
            "cart_abandoned": abandoned,
            "cart_coupon": coupon,
            "cart_converted": abandoned & (u("converted") < conversion),
            "removed": abandoned & (u("removed") < REMOVE_AFTER_ABANDON),
        }
    )


def _session_steps_expr() -> Column:
    """array<string> of the session's event steps in order (RECOVERY = the later purchase)."""

    def step(cond: str, name: Column | str) -> Column:
        value = F.lit(name) if isinstance(name, str) else name
        return F.when(F.col(cond), F.array(value)).otherwise(F.array().cast("array<string>"))

    return F.concat(
        F.array_repeat(F.lit("VIEW"), F.col("n_views")),
        step("carted", F.col("cart_type")),
        step("removed", "REMOVE_FROM_CART"),
        step("checked_out", "CHECKOUT"),
        step("purchased", "PURCHASE"),
        step("cart_converted", "RECOVERY"),
    )


def _build_behavior_events(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Tracking events of browsing funnels; abandoned carts are recovered by coupons."""
    seed, src, d = cfg.seed, BEHAVIOR_EVENTS.name, cfg.dirt
    df = _build_sessions(people, cfg)
    df = df.select("*", F.posexplode(_session_steps_expr()).alias("step", "step_type"))
    keys: list[Column | str] = [F.col("person_id"), F.col("session_no"), F.col("step")]
    recovery = F.col("step_type") == "RECOVERY"
    jitter = rand.randint(0, STEP_S - 10, seed, f"{src}:jitter", *keys)
    delay = rand.randint(RECOVERY_MIN_S, RECOVERY_MAX_S, seed, f"{src}:recovery", *keys)
    cart_s = F.unix_timestamp("session_ts") + F.col("n_views") * STEP_S
    seconds = F.when(recovery, cart_s + delay).otherwise(
        F.unix_timestamp("session_ts") + F.col("step") * STEP_S + jitter
    )
    end_s = F.unix_timestamp(_local_end_ts(cfg))
    other_sku = _sku_expr(F.col("category"), _sku_index_expr(seed, f"{src}:view", keys))
    is_cart_event = F.col("step_type") == "ADD_TO_CART"
    ts_true = F.timestamp_seconds(F.least(seconds, end_s))
    event_id = ids.event_id_expr(seed, src, *keys)
    df = df.withColumns(
        {
            "ts_true": ts_true,
            "event_id": event_id,
            "event_type": F.when(recovery, "PURCHASE").otherwise(F.col("step_type")),
            "sku": F.when(
                (F.col("step_type") == "VIEW") & (F.col("step") < F.col("n_views") - 1), other_sku
            ).otherwise(F.col("target_sku")),
            "f_cart_abandoned": is_cart_event & F.col("cart_abandoned"),
            "f_cart_coupon": is_cart_event & F.col("cart_coupon"),
            "f_cart_converted": is_cart_event & F.col("cart_converted"),
            "f_recovery": recovery,
        }
    )
    epoch = (F.unix_timestamp("ts_true") - LOCAL_UTC_OFFSET_S).cast("string")
    ts_text, bad_ts = dirt.bad_value_expr(
        epoch, d.bad_date, dirt.BAD_DATES, seed, f"{src}:ts", "event_id"
    )
    df = df.withColumns({"ts": ts_text, "f_bad_date": bad_ts})
    df = dirt.with_delivery(df, cfg, src, F.to_date("ts_true"), "event_id")
    flags: dict[str, Column | str] = {
        "cart_abandoned": "f_cart_abandoned",
        "cart_coupon": "f_cart_coupon",
        "cart_converted": "f_cart_converted",
        "cart_recovery_purchase": "f_recovery",
        "bad_date": "f_bad_date",
        "duplicate_event": "f_duplicate_event",
        "late_event": "f_late_event",
    }
    return _finish(df, BEHAVIOR_EVENTS, cfg, flags)


def _expected_behavior(cfg: GeneratorSettings, n: int) -> int:
    months = cfg.history.days / 30.44 * 0.8
    per_session = 2.5 + 1.5 * 0.3
    per_person = _mean_over_personas(cfg, lambda p: p.retail_rate * p.web_sessions_per_month)
    return max(1, round(n * per_person * months * per_session))


# ---------------------------------------------------------------------------------------------
# stored value


def _stored_value_events_expr(seed: int, src: str) -> Column:
    """array<struct<type, j>>: TOPUP, optional BONUS, SPEND 1..n and a few REFUNDs of spends."""
    empty = F.array().cast("array<struct<type:string,j:int>>")
    n_spends = F.col("n_spends")
    spends = F.transform(
        F.sequence(F.lit(1), F.greatest(n_spends, F.lit(1))),
        lambda j: F.struct(F.lit("SPEND").alias("type"), j.cast("int").alias("j")),
    )
    refunds = F.filter(
        F.transform(spends, lambda s: F.struct(F.lit("REFUND").alias("type"), s["j"].alias("j"))),
        lambda r: rand.uniform(seed, f"{src}:refund", "record_base", r["j"]) < REFUND_RATE,
    )
    topup = F.array(F.struct(F.lit("TOPUP").alias("type"), F.lit(0).alias("j")))
    bonus = F.array(F.struct(F.lit("BONUS").alias("type"), F.lit(0).alias("j")))
    return F.concat(
        topup,
        F.when(F.col("bonus") > 0, bonus).otherwise(empty),
        F.when(n_spends > 0, spends).otherwise(empty),
        F.when(n_spends > 0, refunds).otherwise(empty),
    )


def _build_topups(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """One row per top-up cycle of a stored-value card (hoarders top up more, and more)."""
    seed, src = cfg.seed, STORED_VALUE.name
    hoarder = F.col("stored_value_hoarder")
    rate = F.when(hoarder, TOPUPS_PER_MONTH_HOARDER).otherwise(TOPUPS_PER_MONTH)
    count = rand.count_draw(rate * F.col("months"), seed, f"{src}:topups", "person_id")
    df = _explode_count(_people_for(people).filter("has_stored_value"), count, "cycle")
    keys: list[Column | str] = [F.col("person_id"), F.col("cycle")]

    def u(salt: str) -> Column:
        return rand.uniform(seed, f"{src}:{salt}", *keys)

    amount = F.when(
        hoarder, rand.weighted_choice(TOPUP_AMOUNTS_HOARDER, seed, f"{src}:amount", *keys)
    ).otherwise(rand.weighted_choice(TOPUP_AMOUNTS, seed, f"{src}:amount", *keys))
    ts = timeline.event_ts_expr(
        cfg, src, keys, F.col("span_start"), F.col("activity_end"), F.col("churner")
    )
    topup = amount.cast("double")
    bonus = F.when(
        (topup >= 500) & (u("bonus") < 0.5),
        topup * F.when(u("bonus_pct") < 0.5, 0.05).otherwise(0.1),
    ).otherwise(0.0)
    spend_share = F.when(hoarder, F.lit(0.03) + u("share") * 0.15).otherwise(
        F.lit(0.85) + u("share") * 0.15
    )
    n_spends = F.when(hoarder, rand.randint(0, 2, seed, f"{src}:spends", *keys)).otherwise(
        rand.randint(1, 6, seed, f"{src}:spends", *keys)
    )
    card_no = ids.card_no_expr("person_id")
    return df.withColumns(
        {
            "card_no": card_no,
            "record_base": F.concat_ws("#", card_no, F.col("cycle")),
            "topup": topup,
            "topup_ts": ts,
            "bonus": bonus,
            "spend_budget": topup * spend_share,
            "n_spends": n_spends.cast("int"),
        }
    )


def _build_stored_value(people: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Stored-value ledger: every spend is covered by its own cycle's top-up, so balance >= 0."""
    seed, src = cfg.seed, STORED_VALUE.name
    df = _build_topups(people, cfg)
    df = df.select("*", F.inline(_stored_value_events_expr(seed, src)))
    spend_keys: list[Column | str] = [F.col("record_base"), F.col("j")]
    share = F.lit(0.8) + rand.uniform(seed, f"{src}:split", *spend_keys) * 0.2
    spend = F.floor(F.col("spend_budget") * share / F.col("n_spends") * 100) / 100
    spend_s = F.unix_timestamp("topup_ts") + rand.randint(
        3600, SPEND_WINDOW_S, seed, f"{src}:spend_ts", *spend_keys
    )
    refund_s = spend_s + rand.randint(86_400, 3 * 86_400, seed, f"{src}:refund_ts", *spend_keys)
    refund = (
        F.floor(
            spend * (F.lit(0.3) + rand.uniform(seed, f"{src}:refund_amt", *spend_keys) * 0.7) * 100
        )
        / 100
    )
    topup_s = F.unix_timestamp("topup_ts")
    kind = F.col("type")
    amount = (
        F.when(kind == "TOPUP", F.col("topup"))
        .when(kind == "BONUS", F.col("bonus"))
        .when(kind == "SPEND", spend)
        .otherwise(refund)
    )
    seconds = (
        F.when(kind == "TOPUP", topup_s)
        .when(kind == "BONUS", topup_s + 1)
        .when(kind == "SPEND", spend_s)
        .otherwise(refund_s)
    )
    df = df.withColumns(
        {
            "ts_s": seconds,
            "amount": amount.cast("decimal(12,2)"),
            "record_key": F.concat_ws("#", "record_base", "type", "j"),
            "member_id": F.col("primary_member_id"),
        }
    ).filter(F.col("ts_s") <= F.unix_timestamp(_local_end_ts(cfg)))
    df = df.withColumn("ts", F.timestamp_seconds("ts_s"))
    signed = F.when(kind == "SPEND", -F.col("amount")).otherwise(F.col("amount"))
    running = (
        Window.partitionBy("card_no")
        .orderBy("ts", "record_key")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    df = df.withColumn("balance_after", F.sum(signed).over(running).cast("decimal(12,2)"))
    df = dirt.with_delivery(df, cfg, src, F.to_date("ts"), "record_key", duplicates=False)
    flags: dict[str, Column | str] = {
        "stored_value_hoarder": "stored_value_hoarder",
        "late_event": "f_late_event",
    }
    return _finish(df, STORED_VALUE, cfg, flags)


def _expected_stored_value(cfg: GeneratorSettings, n: int) -> int:
    months = cfg.history.days / 30.44 * 0.8
    per_person = _mean_over_personas(cfg, lambda p: p.retail_rate * p.stored_value_rate)
    return max(1, round(n * per_person * months * TOPUPS_PER_MONTH * 5))


def _mean_over_personas(cfg: GeneratorSettings, value: Callable[[Persona], float]) -> float:
    """Persona-weighted mean of ``value(persona)`` (for size estimates)."""
    total = sum(cfg.personas[p].weight for p in PERSONAS)
    return sum(cfg.personas[p].weight * value(cfg.personas[p]) for p in PERSONAS) / total
