"""The true persons behind every source record, with their hidden persona and planted labels."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from profilehouse.columns import id_check_char_expr
from profilehouse.generator import ids, rand
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.vocab import (
    CATEGORIES,
    CITIES,
    EMAIL_DOMAINS,
    GIVEN_CHARS_FEMALE,
    GIVEN_CHARS_MALE,
    MOBILE_PREFIXES,
    OCCUPATIONS,
    PERSONAS,
    STREETS,
    SURNAMES,
)

HOUSEHOLD_SIZE = 4  # persons 4k..4k+3 form a household; sharers use the head's mobile


PERSONS_PER_PARTITION = 25_000


def person_partitions(n_persons: int) -> int:
    """Partitions for the persons range: a few per core locally, more at scale."""
    return max(2, min(400, n_persons // PERSONS_PER_PARTITION + 1))


def build_persons(spark: SparkSession, cfg: GeneratorSettings) -> DataFrame:
    """One row per true person: identity attributes, persona, memberships and planted labels."""
    seed = cfg.seed
    n = cfg.persons
    df = spark.range(0, n, 1, person_partitions(n)).withColumnRenamed("id", "person_id")
    pid = "person_id"

    def u(salt: str) -> Column:
        return rand.uniform(seed, salt, pid)

    personas = {name: cfg.personas[name].weight for name in PERSONAS}
    df = df.withColumn("persona", rand.weighted_choice(personas, seed, "persona", pid))
    df = df.withColumn("gender", F.when(u("gender") < 0.5, "M").otherwise("F"))
    df = _with_persona_params(df, cfg)

    end = cfg.history.end
    age = F.least(
        F.greatest(F.col("p_age_mean") + rand.normal(seed, "age", pid) * 9, F.lit(18.5)),
        F.lit(85.0),
    )
    df = df.withColumn("birth_date", F.date_sub(F.lit(end), (age * 365.25).cast("int")))
    df = _with_names(df, seed)
    df = _with_address(df, seed)
    df = _with_identifiers(df, seed)
    df = _with_memberships(df, cfg)
    df = _with_labels(df, cfg)
    df = df.withColumn("occupation", rand.choice(OCCUPATIONS, seed, "occupation", pid))
    cats = [c for c, _, _ in CATEGORIES]
    df = df.withColumn("fav_category_1", rand.choice(cats, seed, "fav1", pid))
    df = df.withColumn("fav_category_2", rand.choice(cats, seed, "fav2", pid))
    return df.drop("p_age_mean")


def _with_persona_params(df: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Attach every persona parameter as a ``p_<name>`` column (broadcast join, 7 rows)."""
    fields = list(type(next(iter(cfg.personas.values()))).model_fields)
    rows = [(name, *[float(getattr(cfg.personas[name], f)) for f in fields]) for name in PERSONAS]
    schema = ", ".join(["persona string", *[f"p_{f} double" for f in fields]])
    params = df.sparkSession.createDataFrame(rows, schema)
    return df.join(F.broadcast(params), "persona")


def _name_parts(chars: list[tuple[str, str, str, str]], seed: int, salt: str) -> dict[str, Column]:
    idx = F.floor(rand.uniform(seed, salt, "person_id") * len(chars)).cast("int")
    return {
        "char": rand.pick_from([c[0] for c in chars], idx),
        "py": rand.pick_from([c[1] for c in chars], idx),
        "trad": rand.pick_from([c[2] for c in chars], idx),
        "typo": rand.pick_from([c[3] for c in chars], idx),
    }


def _with_names(df: DataFrame, seed: int) -> DataFrame:
    """Surname + one or two given-name characters, with pinyin, traditional form and a typo."""
    weights = [(str(i), s[3]) for i, s in enumerate(SURNAMES)]
    sidx = rand.weighted_choice(weights, seed, "surname", "person_id").cast("int")
    df = df.withColumn("_s", sidx)
    df = df.withColumn("surname", rand.pick_from([s[0] for s in SURNAMES], F.col("_s")))
    df = df.withColumn("surname_py", rand.pick_from([s[1] for s in SURNAMES], F.col("_s")))
    df = df.withColumn("surname_trad", rand.pick_from([s[2] for s in SURNAMES], F.col("_s")))
    male = F.col("gender") == "M"
    parts = {}
    for pos in (1, 2):
        m = _name_parts(GIVEN_CHARS_MALE, seed, f"given{pos}m")
        f = _name_parts(GIVEN_CHARS_FEMALE, seed, f"given{pos}f")
        parts[pos] = {k: F.when(male, m[k]).otherwise(f[k]) for k in m}
    two = rand.uniform(seed, "given_len", "person_id") < 0.7

    def join(key: str) -> Column:
        return F.concat(parts[1][key], F.when(two, parts[2][key]).otherwise(F.lit("")))

    df = (
        df.withColumn("given_name", join("char"))
        .withColumn("given_py", join("py"))
        .withColumn("name", F.concat("surname", "given_name"))
        .withColumn("name_traditional", F.concat("surname_trad", join("trad")))
        # a homophone typo replaces the last given-name character
        .withColumn(
            "name_typo",
            F.concat(
                "surname",
                F.when(two, F.concat(parts[1]["char"], parts[2]["typo"])).otherwise(
                    parts[1]["typo"]
                ),
            ),
        )
        .withColumn("name_pinyin", F.concat_ws(" ", "surname_py", "given_py"))
        .drop("_s")
    )
    return df


def _address_expr(seed: int, salt: str) -> dict[str, Column]:
    district_idx = rand.randint(0, 3, seed, f"{salt}_district", "person_id")
    districts = rand.literal_array([d for c in CITIES for d in c[4]])  # 4 per city
    district = F.element_at(districts, (F.col("_c") * 4 + district_idx + 1).cast("int"))
    street = rand.choice(STREETS, seed, f"{salt}_street", "person_id")
    number = rand.randint(1, 999, seed, f"{salt}_no", "person_id").cast("string")
    room = rand.randint(101, 2804, seed, f"{salt}_room", "person_id").cast("string")
    province = F.col("province")
    head = F.when(province.endswith("市"), province).otherwise(
        F.concat(province, F.col("city"), F.lit("市"))
    )
    address = F.concat(head, district, street, number, F.lit("号"), room, F.lit("室"))
    return {"district": district, "address": address}


def _with_address(df: DataFrame, seed: int) -> DataFrame:
    weights = [(str(i), c[5]) for i, c in enumerate(CITIES)]
    df = df.withColumn("_c", rand.weighted_choice(weights, seed, "city", "person_id").cast("int"))
    df = (
        df.withColumn("province", rand.pick_from([c[0] for c in CITIES], F.col("_c")))
        .withColumn("city", rand.pick_from([c[1] for c in CITIES], F.col("_c")))
        .withColumn("region_code", rand.pick_from([c[2] for c in CITIES], F.col("_c")))
        .withColumn("postcode", rand.pick_from([c[3] for c in CITIES], F.col("_c")))
    )
    current = _address_expr(seed, "addr")
    old = _address_expr(seed, "old_addr")
    return (
        df.withColumn("district", current["district"])
        .withColumn("address", current["address"])
        .withColumn("old_address", old["address"])
        .drop("_c")
    )


def _hex_id(seed: int, salt: str) -> Column:
    return F.sha2(
        F.concat_ws("|", F.lit(seed), F.lit(salt), F.col("person_id").cast("string")), 256
    )


def _with_identifiers(df: DataFrame, seed: int) -> DataFrame:
    """Resident ID (valid check digit), unique mobile, e-mail, WeChat openid, app devices."""
    birth = F.date_format("birth_date", "yyyyMMdd")
    # Resident IDs are unique: persons sharing region, birth date and gender are numbered in
    # turn (odd sequence numbers for men, even for women; 500 per group fit in 3 digits).
    same_prefix = Window.partitionBy("region_code", "birth_date", "gender").orderBy(
        rand.randint(0, 99, seed, "id_seq", "person_id"), "person_id"
    )
    seq = (F.row_number().over(same_prefix) - 1) * 2 + F.when(F.col("gender") == "M", 1).otherwise(
        0
    )
    first17 = F.concat(F.col("region_code"), birth, rand.digits(seq, 3))
    df = df.withColumn("id_no", F.concat(first17, id_check_char_expr(first17)))
    mobile_suffix = rand.digits(rand.scramble("person_id", 10**8, 48_271, 12_345_678), 8)
    df = df.withColumn(
        "mobile",
        F.concat(rand.choice(MOBILE_PREFIXES, seed, "mobile_prefix", "person_id"), mobile_suffix),
    )
    local_no = rand.scramble("person_id", 10**7, 7_919, 1_234_567).cast("string")
    style = rand.uniform(seed, "email_style", "person_id")
    local = (
        F.when(
            style < 0.4,
            F.concat(F.regexp_replace("given_py", " ", ""), F.col("surname_py"), local_no),
        )
        .when(style < 0.7, F.concat(F.col("surname_py"), F.lit("."), F.col("given_py"), local_no))
        .otherwise(local_no)
    )
    df = df.withColumn(
        "email",
        F.when(
            rand.uniform(seed, "has_email", "person_id") < 0.8,
            F.concat(
                local, F.lit("@"), rand.choice(EMAIL_DOMAINS, seed, "email_domain", "person_id")
            ),
        ),
    )
    openid = F.translate(F.substring(F.base64(F.unhex(_hex_id(seed, "openid"))), 1, 27), "+/", "-_")
    df = df.withColumn("wechat_openid", F.concat(F.lit("o"), openid))
    df = df.withColumn("device_id", F.upper(ids.uuid_text_expr(_hex_id(seed, "device"))))
    df = df.withColumn(
        "device_id_2",
        F.when(
            rand.uniform(seed, "second_device", "person_id") < 0.2,
            F.upper(ids.uuid_text_expr(_hex_id(seed, "device2"))),
        ),
    )
    return df


def _with_memberships(df: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Which systems know the person; family-mobile sharing inside a household."""
    seed = cfg.seed
    u = lambda salt: rand.uniform(seed, salt, "person_id")  # noqa: E731
    df = (
        df.withColumn("is_bank", u("bank") < F.col("p_bank_rate"))
        .withColumn("is_retail", u("retail") < F.col("p_retail_rate"))
        .withColumn("has_app", F.col("is_bank") & (u("app") < F.col("p_app_rate")))
        .withColumn("has_ecom", F.col("is_retail") & (u("ecom") < F.col("p_ecom_rate")))
        .withColumn(
            "has_stored_value", F.col("is_retail") & (u("sv") < F.col("p_stored_value_rate"))
        )
    )
    # Persons known to no system still shop anonymously at the tills.
    head = F.col("person_id") - F.pmod(F.col("person_id"), F.lit(HOUSEHOLD_SIZE))
    shares = (u("family_mobile") < cfg.dirt.family_mobile) & (F.col("person_id") != head)
    return df.withColumn("household_head_id", F.when(shares, head)).withColumn(
        "family_mobile_shared", shares
    )


def _window_date(cfg: GeneratorSettings, frac: Column) -> Column:
    start = cfg.history.start
    return F.date_add(F.lit(start), (frac * (cfg.history.days - 1)).cast("int"))


def _with_labels(df: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Planted truth: churn cohort, loan take-up (with lead-up signals), stored-value hoarders."""
    seed = cfg.seed
    sig = cfg.signal
    u = lambda salt: rand.uniform(seed, salt, "person_id")  # noqa: E731
    days = cfg.history.days
    churner = (F.col("persona") != "DORMANT") & (u("churn") < sig.churn_rate)
    churn_frac = F.lit(0.35) + u("churn_date") * 0.5
    lead = sig.loan_lead_days + 30
    lo = min(0.95, lead / days)
    hi = 1.0 - cfg.history.daily_batches / days - 10 / days
    loan_frac = F.lit(lo) + u("loan_date") * max(hi - lo, 0.01)
    loan_taker = F.col("is_bank") & (u("loan") < F.col("p_loan_rate"))
    df = (
        df.withColumn("churner", churner)
        .withColumn("churn_date", F.when(churner, _window_date(cfg, churn_frac)))
        .withColumn("loan_taker", loan_taker)
        .withColumn("loan_apply_date", F.when(loan_taker, _window_date(cfg, loan_frac)))
        .withColumn(
            "stored_value_hoarder",
            F.col("has_stored_value") & (u("hoarder") < sig.stored_value_hoarder_rate),
        )
    )
    # A loan taker who churned before applying would be contradictory: apply before churn.
    return df.withColumn(
        "churn_date",
        F.when(
            F.col("loan_taker") & F.col("churner"),
            F.least(
                F.greatest("churn_date", F.date_add("loan_apply_date", 30)), F.lit(cfg.history.end)
            ),
        ).otherwise(F.col("churn_date")),
    ).withColumn(
        "activity_end",
        F.coalesce(F.col("churn_date"), F.lit(cfg.history.end)),
    )
