"""Retail sources: shape, planted dirt at its configured rates, planted signal, determinism.

One build at SF 0.01 (1,000 persons) serves the module; each source is cached once and most
tests check several properties in one aggregation.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from functools import reduce

import pytest
from chispa import assert_df_equality
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from profilehouse.generator import ids
from profilehouse.generator.persons import build_persons
from profilehouse.generator.retail import RETAIL_SPECS, build_retail_sources
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.sources import TRUTH_COLUMNS, GeneratedSource
from profilehouse.generator.vocab import SKUS_PER_CATEGORY

POS_TS = "yyyyMMddHHmmss"


def _has(pattern: str) -> Column:
    return F.array_contains("patterns", pattern)


def _count(df: DataFrame, **conditions: Column) -> dict[str, int]:
    """Rows where each named condition is true (null counts as false), in one aggregation."""
    row = df.agg(
        *[F.sum(F.coalesce(c, F.lit(False)).cast("int")).alias(k) for k, c in conditions.items()]
    ).first()
    return {k: int(row[k] or 0) for k in conditions}


def _within(rate: float, configured: float, n: int, sigmas: float = 4.0) -> bool:
    """``rate`` measured over ``n`` records is consistent with ``configured`` (binomial)."""
    return abs(rate - configured) <= sigmas * math.sqrt(configured * (1 - configured) / n) + 1e-9


@pytest.fixture(scope="module")
def persons(spark: SparkSession, gen_cfg: GeneratorSettings) -> Iterator[DataFrame]:
    df = build_persons(spark, gen_cfg).cache()
    df.count()
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def generated(persons: DataFrame, gen_cfg: GeneratorSettings) -> list[GeneratedSource]:
    return build_retail_sources(persons, gen_cfg)


@pytest.fixture(scope="module")
def sources(generated: list[GeneratedSource]) -> Iterator[dict[str, DataFrame]]:
    dfs = {s.spec.name: s.df.cache() for s in generated}
    yield dfs
    for df in dfs.values():
        df.unpersist()


# --- every source ---------------------------------------------------------------------------------


def test_every_source_has_its_spec_columns_and_the_truth_columns(
    generated: list[GeneratedSource],
) -> None:
    assert [g.spec.name for g in generated] == [s.name for s in RETAIL_SPECS]
    for g in generated:
        extra = [] if g.spec.key in g.spec.columns else [g.spec.key]
        assert g.df.columns == [*g.spec.columns, *TRUTH_COLUMNS, *extra], g.spec.name
        types = dict(g.df.dtypes)
        assert types["patterns"] == "array<string>"
        assert types["batch"] == "string"
        assert types["person_id"] == "bigint"
        if g.spec.fmt != "parquet":
            non_string = {c for c in g.spec.columns if types[c] != "string"}
            assert non_string <= {"items"}, (g.spec.name, non_string)
    items = dict(generated[2].df.dtypes)["items"]
    assert items == "array<struct<sku:string,category:string,qty:int,price:string>>"


def test_batches_and_sizes(
    generated: list[GeneratedSource], sources: dict[str, DataFrame], gen_cfg: GeneratorSettings
) -> None:
    h = gen_cfg.history
    allowed = {
        (h.initial_batch + dt.timedelta(days=i)).isoformat() for i in range(h.daily_batches + 1)
    }
    per_batch = reduce(
        DataFrame.unionByName,
        [df.groupBy("batch").count().withColumn("source", F.lit(n)) for n, df in sources.items()],
    ).collect()
    for g in generated:
        batches = {r.batch: r["count"] for r in per_batch if r.source == g.spec.name}
        assert set(batches) <= allowed, g.spec.name
        assert h.initial_batch.isoformat() in batches, g.spec.name
        rows = sum(batches.values())
        assert g.expected_rows / 3 < rows < g.expected_rows * 3, (g.spec.name, rows)
    for name in ("retail.pos_lines", "retail.behavior_events"):
        assert {r.batch for r in per_batch if r.source == name} == allowed, name


# --- members --------------------------------------------------------------------------------------


def test_member_records_ids_duplicates_and_batches(
    sources: dict[str, DataFrame], gen_cfg: GeneratorSettings
) -> None:
    members = sources["retail.members"].filter(~_has("corrected_redelivery"))
    initial = gen_cfg.history.initial_batch.isoformat()
    copy = F.when(_has("duplicate_record"), 1).otherwise(0)
    join_day = F.date_format(F.to_date("join_date", "yyyy/MM/dd"), "yyyy-MM-dd")
    row = members.agg(
        F.count("*").alias("rows"),
        F.countDistinct("member_id").alias("ids"),
        F.sum(_has("duplicate_record").cast("int")).alias("dups"),
        F.sum((F.col("member_id") != ids.member_id_expr("person_id", copy)).cast("int")).alias(
            "foreign_ids"
        ),
        F.sum(
            (F.col("batch") != F.when(join_day <= initial, initial).otherwise(join_day)).cast("int")
        ).alias("wrong_batch"),
        F.sum((F.col("batch") != initial).cast("int")).alias("joined_late"),
        F.collect_set("gender").alias("genders"),
        F.collect_set("join_channel").alias("channels"),
        F.collect_set("level").alias("levels"),
    ).first()
    assert row.ids == row.rows
    assert row.foreign_ids == 0
    assert row.wrong_batch == 0
    assert row.joined_late > 0
    primaries = row.rows - row.dups
    assert _within(row.dups / primaries, gen_cfg.dirt.duplicate_record, primaries)
    assert {"男", "女"} <= set(row.genders) <= {"男", "女", "M", "F"}
    assert set(row.channels) == {"STORE", "APP", "MINIPROGRAM", "ECOM"}
    assert set(row.levels) == {"BRONZE", "SILVER", "GOLD", "PLATINUM", "DIAMOND"}
    # a person's duplicate is another member ID with another join channel
    per_person = members.groupBy("person_id").agg(
        F.count("*").alias("n"), F.countDistinct("join_channel").alias("channels")
    )
    shape = per_person.agg(
        F.max("n").alias("max_n"),
        F.sum(((F.col("n") == 2) & (F.col("channels") != 2)).cast("int")).alias("same_channel"),
    ).first()
    assert shape.max_n == 2
    assert shape.same_channel == 0


def test_corrected_redelivery_resends_the_true_values_in_a_daily_batch(
    sources: dict[str, DataFrame], persons: DataFrame, gen_cfg: GeneratorSettings
) -> None:
    members = sources["retail.members"]
    initial = gen_cfg.history.initial_batch.isoformat()
    fixed = members.filter(_has("corrected_redelivery"))
    first = members.filter(~_has("corrected_redelivery")).select(
        "member_id",
        F.col("batch").alias("first_batch"),
        F.col("person_id").alias("first_pid"),
        F.col("mobile").alias("first_mobile"),
        F.col("patterns").alias("first_patterns"),
    )
    truth = persons.select(
        "person_id",
        F.col("mobile").alias("true_mobile"),
        F.col("name").alias("true_name"),
        F.col("city").alias("true_city"),
    )
    joined = fixed.join(first, "member_id", "left").join(truth, "person_id", "left")
    c = _count(
        joined,
        rows=F.lit(True),
        not_daily=F.col("batch") <= initial,
        no_original=F.col("first_pid").isNull(),
        original_not_initial=F.col("first_batch") != initial,
        other_person=F.col("first_pid") != F.col("person_id"),
        original_unflagged=~F.array_contains("first_patterns", "corrected_later"),
        original_plain=F.col("first_mobile").rlike(r"^1[0-9]{10}$"),
        not_true=~(
            (F.col("mobile") == F.col("true_mobile"))
            & (F.col("name") == F.col("true_name"))
            & (F.col("city") == F.col("true_city"))
        ),
        extra_patterns=F.size("patterns") != 1,
    )
    fixed_rows = c.pop("rows")
    assert fixed_rows > 0
    assert c == dict.fromkeys(c, 0)
    # exactly the records flagged "corrected_later" are re-delivered
    assert _count(members, flagged=_has("corrected_later"))["flagged"] == fixed_rows


def test_family_mobile_members_carry_the_household_heads_mobile(
    sources: dict[str, DataFrame], persons: DataFrame
) -> None:
    family = sources["retail.members"].filter(_has("family_mobile"))
    digits = F.regexp_replace("mobile", r"[^0-9]", "")
    heads = persons.select(F.col("person_id").alias("head_id"), F.col("mobile").alias("head"))
    checked = (
        family.withColumn("norm", F.substring(digits, -11, 11))
        .join(
            persons.select("person_id", "household_head_id", F.col("mobile").alias("own")),
            "person_id",
        )
        .join(heads, F.col("household_head_id") == F.col("head_id"), "left")
    )
    c = _count(
        checked,
        rows=F.lit(True),
        not_head=~F.col("norm").eqNullSafe(F.col("head")),
        own=F.col("norm") == F.col("own"),
    )
    assert c["rows"] > 0
    assert c["not_head"] == c["own"] == 0


# --- POS lines ------------------------------------------------------------------------------------


def test_default_till_mobile_is_one_fixed_mobile_per_store_at_the_configured_rate(
    sources: dict[str, DataFrame], gen_cfg: GeneratorSettings
) -> None:
    pos = sources["retail.pos_lines"].filter(~_has("duplicate_event"))
    till = _has("default_till_mobile")
    stores = (
        pos.groupBy("store_id")
        .agg(
            F.countDistinct("receipt_id").alias("receipts"),
            F.countDistinct(F.when(till, F.col("receipt_id"))).alias("till_receipts"),
            F.countDistinct(F.when(till, F.col("mobile"))).alias("till_mobiles"),
            F.countDistinct(F.when(till, F.col("person_id"))).alias("till_persons"),
            F.sum(
                (
                    till
                    & (F.col("mobile") != F.concat(F.lit("1380000"), F.substring("store_id", 2, 4)))
                ).cast("int")
            ).alias("wrong"),
            F.sum((till & F.col("member_id").isNotNull()).cast("int")).alias("with_member"),
            F.sum((~till & F.col("mobile").startswith("1380000")).cast("int")).alias("lookalike"),
        )
        .collect()
    )
    receipts = sum(s.receipts for s in stores)
    rate = sum(s.till_receipts for s in stores) / receipts
    assert _within(rate, gen_cfg.dirt.default_till_mobile, receipts), rate
    assert len(stores) <= gen_cfg.stores
    assert {s.till_mobiles for s in stores} <= {0, 1}
    assert sum(s.wrong + s.with_member + s.lookalike for s in stores) == 0
    # one store's default mobile is shared by several true persons
    assert max(s.till_persons for s in stores) >= 3


def test_pos_lines_values_and_line_level_dirt(
    sources: dict[str, DataFrame], persons: DataFrame, gen_cfg: GeneratorSettings
) -> None:
    pos = sources["retail.pos_lines"]
    negative = F.col("qty").cast("int") < 0
    parsed = F.try_to_timestamp("ts", F.lit(POS_TS))
    c = _count(
        pos,
        rows=F.lit(True),
        negative=negative,
        negative_unflagged=negative != _has("negative_quantity"),
        bad_ts_mismatch=parsed.isNull() != _has("bad_date"),
        bad_dates=_has("bad_date"),
        bad_sku=~F.col("sku").rlike(r"^[A-Z]{2}[0-9]{4}$")
        | (F.substring("sku", 3, 4).cast("int") >= SKUS_PER_CATEGORY),
        bad_store=~F.col("store_id").rlike(r"^S[0-9]{4}$"),
        bad_line=~F.col("line_no").cast("int").between(1, 5),
        bad_price=~F.col("unit_price").rlike(r"^[0-9]+\.[0-9]{2}$"),
        too_much_discount=F.col("discount").cast("double")
        > F.col("unit_price").cast("double") * F.abs(F.col("qty").cast("int")),
        bad_pay=~F.col("pay_method").isin("CASH", "CARD", "WECHAT", "ALIPAY", "STORED_VALUE"),
        coupons=F.col("coupon_id").isNotNull(),
        members=F.col("member_id").isNotNull(),
    )
    n = c["rows"]
    assert _within(c["negative"] / n, gen_cfg.dirt.negative_quantity, n), c["negative"]
    assert _within(c["bad_dates"] / n, gen_cfg.dirt.bad_date, n), c["bad_dates"]
    bad = ("negative_unflagged", "bad_ts_mismatch", "bad_sku", "bad_store", "bad_line")
    bad += ("bad_price", "too_much_discount", "bad_pay")
    assert {k: c[k] for k in bad} == dict.fromkeys(bad, 0)
    assert 0 < c["coupons"] < n and 0 < c["members"] < n
    # an SKU has one shelf price; anonymous shoppers never show a member ID
    prices = pos.groupBy("sku").agg(F.countDistinct("unit_price").alias("n"))
    assert prices.filter(F.col("n") > 1).count() == 0
    anonymous = pos.join(persons.filter(~F.col("is_retail")), "person_id", "left_semi")
    a = _count(anonymous, rows=F.lit(True), member=F.col("member_id").isNotNull())
    assert a["rows"] > 0 and a["member"] == 0


def test_duplicate_events_are_exact_copies(sources: dict[str, DataFrame]) -> None:
    for name, key in (("retail.pos_lines", "record_key"), ("retail.behavior_events", "event_id")):
        df = sources[name]
        data = [c for c in df.columns if c not in ("patterns", "malformed", "malformed_kind")]
        per_key = df.groupBy(key).agg(
            F.count("*").alias("n"),
            F.sum(_has("duplicate_event").cast("int")).alias("dup"),
            F.countDistinct(F.to_json(F.struct(*data))).alias("variants"),
            F.sum((_has("duplicate_event") & F.col("malformed")).cast("int")).alias("bad_copy"),
        )
        c = _count(
            per_key,
            dups=F.col("dup") == 1,
            mismatch=(F.col("n") == 2) != (F.col("dup") == 1),
            not_exact=(F.col("n") > 2) | (F.col("variants") != 1) | (F.col("bad_copy") > 0),
        )
        assert c["dups"] > 0 and c["mismatch"] == c["not_exact"] == 0, (name, c)


def test_late_events_arrive_one_batch_after_their_day(
    sources: dict[str, DataFrame], gen_cfg: GeneratorSettings
) -> None:
    pos = sources["retail.pos_lines"].filter(~_has("bad_date"))
    day = F.to_date(F.try_to_timestamp("ts", F.lit(POS_TS)))
    initial = F.lit(gen_cfg.history.initial_batch)
    late = _has("late_event")
    c = _count(
        pos,
        late=late,
        late_wrong_batch=late & (F.col("batch") != F.date_format(F.date_add(day, 1), "yyyy-MM-dd")),
        late_from_history=late & (day <= initial),
        on_time_wrong=~late
        & (day > initial)
        & (F.col("batch") != F.date_format(day, "yyyy-MM-dd")),
    )
    assert c.pop("late") > 0
    assert c == dict.fromkeys(c, 0)


# --- e-commerce -----------------------------------------------------------------------------------


def test_ecom_orders_accounts_items_and_amounts(
    sources: dict[str, DataFrame], persons: DataFrame
) -> None:
    orders = sources["retail.ecom_orders"].join(
        persons.select("person_id", "has_ecom"), "person_id"
    )
    platform = F.col("platform")
    user = F.col("platform_user_id")
    total = F.aggregate(
        "items", F.lit(0.0), lambda acc, x: acc + x["qty"] * x["price"].cast("double")
    )
    iso = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$"
    c = _count(
        orders,
        not_ecom=~F.col("has_ecom"),
        own_not_member=(platform == "OWN_APP") & (user != ids.member_id_expr("person_id")),
        bad_prefix=((platform == "TMALL") & ~user.startswith("tb_"))
        | ((platform == "JD") & ~user.startswith("jd_")),
        bad_amount=F.abs(F.col("amount").cast("double") - total) > 0.005,
        bad_items=(F.size("items") < 1) | (F.size("items") > 4),
        bad_ts=F.col("ts").rlike(iso) == _has("bad_date"),
        bad_status=~F.col("status").isin("PAID", "CANCELLED", "REFUNDED"),
    )
    assert c == dict.fromkeys(c, 0)
    accounts = orders.groupBy("person_id", "platform").agg(F.countDistinct(user).alias("n"))
    assert accounts.filter(F.col("n") != 1).count() == 0


# --- behaviour events -----------------------------------------------------------------------------


def test_abandoned_carts_convert_at_the_coupon_and_base_rates(
    sources: dict[str, DataFrame], gen_cfg: GeneratorSettings
) -> None:
    sig = gen_cfg.signal
    events = sources["retail.behavior_events"].filter(~_has("duplicate_event"))
    carts = events.filter(_has("cart_abandoned"))
    stats = carts.groupBy(_has("cart_coupon").alias("coupon")).agg(
        F.count("*").alias("n"),
        F.avg(_has("cart_converted").cast("int")).alias("rate"),
        F.sum((F.col("event_type") != "ADD_TO_CART").cast("int")).alias("not_cart"),
    )
    by_coupon = {r.coupon: r for r in stats.collect()}
    coupon, base = by_coupon[True], by_coupon[False]
    assert coupon.not_cart == base.not_cart == 0
    n = coupon.n + base.n
    assert _within(coupon.n / n, sig.cart_coupon_share, n)
    assert _within(coupon.rate, sig.cart_conversion_coupon, coupon.n), coupon.rate
    assert _within(base.rate, sig.cart_conversion_base, base.n), base.rate
    assert coupon.rate - base.rate > 0.15


def test_converted_carts_have_a_later_purchase_of_the_same_sku_within_seven_days(
    sources: dict[str, DataFrame],
) -> None:
    events = sources["retail.behavior_events"].filter(~_has("duplicate_event") & ~_has("bad_date"))
    converted = events.filter(_has("cart_converted")).select(
        "event_id", "user_key", "sku", "channel", F.col("ts").try_cast("long").alias("cart_s")
    )
    purchases = events.filter(_has("cart_recovery_purchase")).select(
        "user_key", "sku", "channel", "event_type", F.col("ts").try_cast("long").alias("buy_s")
    )
    lag = F.col("buy_s") - F.col("cart_s")
    matched = (
        converted.join(purchases, ["user_key", "sku", "channel"], "left")
        .groupBy("event_id")
        .agg(
            F.max(((lag > 0) & (lag <= 7 * 86_400)).cast("int")).alias("ok"),
            F.max((F.col("event_type") != "PURCHASE").cast("int")).alias("not_purchase"),
        )
    )
    c = _count(matched, rows=F.lit(True), ok=F.col("ok") == 1, bad=F.col("not_purchase") == 1)
    assert c["rows"] > 50
    # a recovery purchase may itself carry a bad timestamp (then it cannot be matched)
    assert c["ok"] >= 0.97 * c["rows"] and c["bad"] == 0


def test_behavior_event_values(sources: dict[str, DataFrame]) -> None:
    events = sources["retail.behavior_events"]
    row = events.agg(
        F.collect_set("event_type").alias("types"),
        F.collect_set("channel").alias("channels"),
        F.sum((F.col("ts").rlike(r"^[0-9]{10}$") == _has("bad_date")).cast("int")).alias("bad_ts"),
        F.sum(F.col("user_key").isNull().cast("int")).alias("no_user"),
    ).first()
    assert set(row.types) == {
        "VIEW",
        "FAVORITE",
        "ADD_TO_CART",
        "REMOVE_FROM_CART",
        "CHECKOUT",
        "PURCHASE",
    }
    assert set(row.channels) == {"APP", "MINIPROGRAM", "WEB"}
    assert row.bad_ts == row.no_user == 0


# --- stored value ---------------------------------------------------------------------------------


def test_stored_value_balances_are_running_sums_and_never_negative(
    sources: dict[str, DataFrame],
) -> None:
    sv = sources["retail.stored_value"]
    types = dict(sv.dtypes)
    assert types["ts"] == "timestamp"
    assert types["amount"] == types["balance_after"] == "decimal(12,2)"
    signed = F.when(F.col("type") == "SPEND", -F.col("amount")).otherwise(F.col("amount"))
    w = Window.partitionBy("card_no").orderBy("ts", "record_key")
    checked = sv.withColumns({"running": F.sum(signed).over(w), "rn": F.row_number().over(w)})
    c = _count(
        checked,
        rows=F.lit(True),
        negative=F.col("balance_after") < 0,
        not_positive=F.col("amount") <= 0,
        not_running=F.col("running") != F.col("balance_after"),
        first_not_topup=(F.col("rn") == 1) & (F.col("type") != "TOPUP"),
        bad_type=~F.col("type").isin("TOPUP", "SPEND", "REFUND", "BONUS"),
    )
    assert c.pop("rows") > 0
    assert c == dict.fromkeys(c, 0)


def test_hoarders_top_up_much_more_than_they_spend(sources: dict[str, DataFrame]) -> None:
    sv = sources["retail.stored_value"]
    amount = F.col("amount")
    rows = (
        sv.groupBy(_has("stored_value_hoarder").alias("hoarder"))
        .agg(
            (
                F.sum(F.when(F.col("type") == "SPEND", amount))
                / F.sum(F.when(F.col("type") == "TOPUP", amount))
            ).alias("ratio"),
            F.countDistinct("card_no").alias("cards"),
        )
        .collect()
    )
    by = {r.hoarder: r for r in rows}
    assert by[True].cards > 5 and by[False].cards > 20
    assert float(by[True].ratio) < 0.25, by
    assert float(by[False].ratio) > 0.6, by


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_rows_whatever_the_partitioning(
    persons: DataFrame, gen_cfg: GeneratorSettings, sources: dict[str, DataFrame]
) -> None:
    names = ("retail.members", "retail.stored_value")
    again = {
        s.spec.name: s.df for s in build_retail_sources(persons.repartition(3), gen_cfg, only=names)
    }
    assert list(again) == list(names)
    assert_df_equality(sources["retail.members"], again["retail.members"], ignore_row_order=True)
    first, second = sources["retail.stored_value"], again["retail.stored_value"]
    assert first.exceptAll(second).unionByName(second.exceptAll(first)).count() == 0


def test_unknown_source_names_are_rejected(persons: DataFrame, gen_cfg: GeneratorSettings) -> None:
    with pytest.raises(ValueError, match=r"unknown retail source\(s\): retail.nope; known: "):
        build_retail_sources(persons, gen_cfg, only=["retail.members", "retail.nope"])
