"""End to end: the generator's files, their ground truth, dirty patterns and planted signal.

One generation at SF 0.01 (1,000 persons) into a temp folder serves the whole module. Checks read
the files as a user would (Spark CSV/JSON/Parquet readers) and compare them with the truth.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse.generator import generate, read_truth_persons, read_truth_records
from profilehouse.generator.bank import build_bank_sources, build_customers, customer_records
from profilehouse.generator.persons import build_persons
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.writer import write_source
from tests.conftest import Generated, logged_messages

CSV_SOURCES = (
    "bank.customers",
    "bank.accounts",
    "bank.transactions",
    "bank.loans",
    "retail.members",
    "retail.pos_lines",
    "marketing.campaigns",
    "marketing.contacts",
)
JSON_SOURCES = ("bank.app_events", "retail.ecom_orders", "retail.behavior_events")
PARQUET_SOURCES = ("bank.balances", "bank.credit_bureau", "retail.stored_value")


@pytest.fixture(scope="module")
def truth_records(spark: SparkSession, generated: Generated) -> DataFrame:
    return read_truth_records(spark, generated.truth).cache()


@pytest.fixture(scope="module")
def persons(spark: SparkSession, generated: Generated) -> DataFrame:
    return read_truth_persons(spark, generated.truth).cache()


def source_path(generated: Generated, source: str) -> str:
    system, table = source.split(".")
    return f"{generated.landing}/{system}/{table}"


def read_csv(spark: SparkSession, generated: Generated, source: str) -> DataFrame:
    return (
        spark.read.option("header", "true")
        .option("escape", '"')
        .csv(source_path(generated, source))
    )


def within(observed: int, n: int, rate: float, sigmas: float = 4.0) -> bool:
    """``observed`` successes out of ``n`` are consistent with ``rate`` (binomial, ± sigmas)."""
    sd = math.sqrt(max(n * rate * (1 - rate), 1.0))
    return abs(observed - n * rate) <= sigmas * sd + 1


# ---------------------------------------------------------------------------------------------
# files, batches and ground truth
# ---------------------------------------------------------------------------------------------


def test_every_source_is_written(generated: Generated) -> None:
    names = {s.name for s in generated.report.sources}
    assert names == set(CSV_SOURCES) | set(JSON_SOURCES) | set(PARQUET_SOURCES)
    for s in generated.report.sources:
        assert s.rows > 0 and s.files >= 1 and s.bytes > 0, s.name


@pytest.mark.parametrize(
    "source", ["bank.transactions", "bank.app_events", "retail.pos_lines", "retail.behavior_events"]
)
def test_event_sources_have_initial_and_daily_batches(generated: Generated, source: str) -> None:
    cfg = generated.cfg
    first = cfg.history.initial_batch
    expected = {
        (first + dt.timedelta(days=i)).isoformat() for i in range(cfg.history.daily_batches + 1)
    }
    report = next(s for s in generated.report.sources if s.name == source)
    assert set(report.batches) == expected
    # a daily batch is a small fraction of the full history
    assert (
        max(n for b, n in report.batches.items() if b != first.isoformat())
        < 0.05 * report.batches[first.isoformat()]
    )
    for batch in expected:
        assert any(Path(source_path(generated, source), f"batch={batch}").iterdir())


@pytest.mark.parametrize("source", CSV_SOURCES + JSON_SOURCES)
def test_lines_in_files_match_truth(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, source: str
) -> None:
    lines = spark.read.text(source_path(generated, source))
    headers = 0
    if source in CSV_SOURCES:
        header = lines.first().value
        headers = lines.filter(F.col("value") == header).count()
        assert headers == next(s.files for s in generated.report.sources if s.name == source)
    truth = truth_records.filter(F.col("source") == source)
    assert lines.count() - headers == truth.count()


@pytest.mark.parametrize("source", PARQUET_SOURCES)
def test_parquet_rows_match_truth(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, source: str
) -> None:
    rows = spark.read.parquet(source_path(generated, source)).count()
    assert rows == truth_records.filter(F.col("source") == source).count()


def test_every_record_maps_to_a_known_person(truth_records: DataFrame, persons: DataFrame) -> None:
    person_records = truth_records.filter(F.col("source") != "marketing.campaigns")
    assert person_records.filter(F.col("person_id").isNull()).count() == 0
    orphans = person_records.join(persons, "person_id", "left_anti")
    assert orphans.count() == 0
    assert truth_records.filter(F.col("record_key").isNull()).count() == 0


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("bank.customers", "cust_no"),
        ("bank.accounts", "account_no"),
        ("bank.transactions", "txn_id"),
        ("retail.members", "member_id"),
    ],
)
def test_record_keys_in_files_are_in_truth(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, source: str, key: str
) -> None:
    keys = (
        read_csv(spark, generated, source)
        .select(F.col(key).alias("record_key"))
        .filter(F.col("record_key").rlike(r"^[A-Z0-9]+$"))
    )
    # a garbage line carries no key; every other delivered record's key is readable
    truth = truth_records.filter(
        (F.col("source") == source)
        & ~F.coalesce(F.col("malformed_kind") == "garbage", F.lit(False))
    ).select("record_key")
    assert keys.join(truth, "record_key", "left_anti").count() == 0
    assert (
        keys.distinct().count()
        == truth.filter(truth.record_key.rlike(r"^[A-Z0-9]+$")).distinct().count()
    )


@pytest.mark.parametrize("source", [s for s in CSV_SOURCES if s != "marketing.campaigns"])
def test_malformed_lines_in_files_match_truth(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, source: str
) -> None:
    lines = spark.read.text(source_path(generated, source))
    header = lines.first().value
    n_fields = len(header.split(","))
    unquoted = F.regexp_replace("value", r'"([^"]|"")*"', "")
    commas = F.length(unquoted) - F.length(F.regexp_replace(unquoted, ",", ""))
    broken = lines.filter((F.col("value") != header) & (commas != n_fields - 1)).count()
    truth = truth_records.filter((F.col("source") == source) & F.col("malformed"))
    assert broken == truth.count()
    n = truth_records.filter(F.col("source") == source).count()
    assert within(broken, n, generated.cfg.dirt.malformed_row)


# ---------------------------------------------------------------------------------------------
# dirty-data patterns: present at their configured rates, and really visible in the files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def customers_vs_truth(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, persons: DataFrame
) -> DataFrame:
    """bank.customers rows as read from the files, next to their truth (first deliveries only)."""
    rows = read_csv(spark, generated, "bank.customers")
    truth = truth_records.filter(
        (F.col("source") == "bank.customers")
        & ~F.col("malformed")
        & ~F.array_contains("patterns", "corrected_redelivery")
        # corrected records appear twice in the files; test_corrected_redelivery covers them
        & ~F.array_contains("patterns", "corrected_later")
    ).select(F.col("record_key").alias("cust_no"), "person_id", "patterns")
    true_cols = [
        "person_id",
        "name",
        "name_typo",
        "name_traditional",
        "mobile",
        "email",
        "id_no",
        "birth_date",
        "address",
        "old_address",
    ]
    p = persons.select(
        *[F.col(c).alias(f"t_{c}") if c != "person_id" else F.col(c) for c in true_cols]
    )
    return rows.join(truth, "cust_no").join(p, "person_id").cache()


def _parse_date(column: str):
    """The date in ``column`` (yyyy-MM-dd), null when unparseable (ANSI mode would raise)."""
    return F.to_date(F.try_to_timestamp(F.col(column), F.lit("yyyy-MM-dd")))


def _parse_date_text(text):
    return F.to_date(F.try_to_timestamp(text, F.lit("yyyy-MM-dd")))


def _has(pattern: str):
    return F.array_contains("patterns", pattern)


@pytest.mark.parametrize(
    ("pattern", "rate_key", "eligible"),
    [
        ("name_typo", "name_typo", None),
        ("missing_mobile", "missing_field", None),
        ("missing_address", "missing_field", None),
        ("invalid_id_check", "invalid_id_check", None),
        ("bad_date", "bad_date", None),
        ("mobile_formatted", "mobile_formatted", "missing_mobile"),
        ("email_upper", "email_upper", "missing_email"),
    ],
)
def test_person_patterns_at_configured_rate(
    truth_records: DataFrame, generated: Generated, pattern: str, rate_key: str, eligible
) -> None:
    person_sources = ["bank.customers", "retail.members"]
    records = truth_records.filter(
        F.col("source").isin(person_sources) & ~_has("corrected_redelivery")
    )
    if pattern == "invalid_id_check":
        records = records.filter(F.col("source") == "bank.customers")
    if eligible is not None:  # the pattern applies only where this other pattern did not
        records = records.filter(~_has(eligible))
    n = records.count()
    observed = records.filter(_has(pattern)).count()
    rate = getattr(generated.cfg.dirt, rate_key)
    assert within(observed, n, rate), f"{pattern}: {observed}/{n} vs rate {rate}"


def test_duplicate_records_at_configured_rate(
    truth_records: DataFrame, generated: Generated
) -> None:
    customers = truth_records.filter(
        (F.col("source") == "bank.customers") & ~_has("corrected_redelivery")
    )
    persons_n = customers.select("person_id").distinct().count()
    dup_persons = customers.filter(_has("duplicate_record")).select("person_id").distinct().count()
    assert dup_persons > 0
    assert within(dup_persons, persons_n, generated.cfg.dirt.duplicate_record)
    # the duplicate is a separate record key for the same person
    per_person = customers.groupBy("person_id").agg(F.countDistinct("record_key").alias("keys"))
    assert per_person.filter("keys = 2").count() == dup_persons


def test_patterns_are_visible_in_the_files(customers_vs_truth: DataFrame) -> None:
    df = customers_vs_truth
    digits = F.regexp_replace("mobile", "[^0-9]", "")
    checks = {
        "name_typo": (F.col("name") != F.col("t_name")) & (F.col("name") == F.col("t_name_typo")),
        "name_traditional": F.col("name") == F.col("t_name_traditional"),
        "name_spacing": (F.col("name") != F.col("t_name"))
        & (F.regexp_replace("name", r"[\s\u3000]", "") == F.col("t_name")),
        "email_upper": (F.col("email") == F.upper("t_email"))
        & (F.col("email") != F.col("t_email")),
        "mobile_formatted": ~F.col("mobile").rlike(r"^1[0-9]{10}$")
        & digits.endswith(F.col("t_mobile")),
        "missing_mobile": F.col("mobile").isNull(),
        "invalid_id_check": (F.substring("id_no", 1, 17) == F.substring("t_id_no", 1, 17))
        & (F.col("id_no") != F.col("t_id_no")),
        "birth_swapped": _parse_date("birth_date")
        == F.make_date(
            F.year("t_birth_date"), F.dayofmonth("t_birth_date"), F.month("t_birth_date")
        ),
        "bad_date": _parse_date("birth_date").isNull(),
        "stale_address": F.col("address") == F.col("t_old_address"),
    }
    for pattern, ok in checks.items():
        flagged = df.filter(_has(pattern))
        assert flagged.count() > 0, f"no {pattern} rows at this scale"
        assert flagged.filter(~ok).count() == 0, f"{pattern} rows do not look like {pattern}"
    clean = df.filter(F.size("patterns") == 0)
    assert clean.count() > 0
    same = (
        (F.col("name") == F.col("t_name"))
        & (F.col("mobile") == F.col("t_mobile"))
        & F.col("email").eqNullSafe(F.col("t_email"))
        & (F.col("id_no") == F.col("t_id_no"))
        & (F.col("address") == F.col("t_address"))
    )
    assert clean.filter(~same).count() == 0


def test_corrected_redelivery_shares_key_and_fixes_address(
    spark: SparkSession, generated: Generated, truth_records: DataFrame
) -> None:
    redelivered = truth_records.filter(
        (F.col("source") == "bank.customers") & _has("corrected_redelivery")
    )
    assert redelivered.count() > 0
    assert (
        redelivered.filter(
            F.col("batch") <= generated.cfg.history.initial_batch.isoformat()
        ).count()
        == 0
    )
    rows = read_csv(spark, generated, "bank.customers")
    versions = rows.groupBy("cust_no").agg(
        F.count("*").alias("n"), F.countDistinct("address").alias("addresses")
    )
    keys = redelivered.select(F.col("record_key").alias("cust_no"))
    assert versions.join(keys, "cust_no").filter("n = 2 AND addresses = 2").count() == keys.count()


def test_shared_identifiers_exist(truth_records: DataFrame, persons: DataFrame) -> None:
    families = persons.filter("family_mobile_shared")
    assert families.count() > 0
    till = truth_records.filter(
        (F.col("source") == "retail.pos_lines") & _has("default_till_mobile")
    )
    assert till.count() > 0


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


def _source(sources, name: str) -> DataFrame:
    return next(s.df for s in sources if s.spec.name == name)


def test_same_seed_same_data_other_seed_other_data(
    spark: SparkSession, gen_cfg: GeneratorSettings
) -> None:
    small = gen_cfg.with_overrides(scale_factor=0.003)

    def customers(cfg: GeneratorSettings) -> DataFrame:
        records = customer_records(build_persons(spark, cfg).filter("is_bank"), cfg)
        return build_customers(records, cfg).df

    first, again = customers(small), customers(small)
    assert_df_equality(first, again, ignore_row_order=True)
    other = customers(small.with_overrides(seed=small.seed + 1))
    cols = ["cust_no", "name", "mobile"]
    assert first.select(cols).exceptAll(other.select(cols)).count() > 0


def test_written_files_are_identical_across_runs(
    spark: SparkSession, generated: Generated, tmp_path: Path
) -> None:
    """Rebuilding and rewriting a source with the same seed gives the same lines."""
    cfg = generated.cfg
    sources = build_bank_sources(build_persons(spark, cfg), cfg)
    for source in sources:
        if source.spec.name not in ("bank.transactions", "bank.app_events"):
            continue
        write_source(
            source.df,
            source.spec,
            str(tmp_path),
            cfg.history.initial_batch.isoformat(),
            source.expected_rows,
        )
        a = spark.read.text(source_path(generated, source.spec.name))
        b = spark.read.text(source.spec.path(str(tmp_path)))
        assert a.count() == b.count()
        assert a.exceptAll(b).count() == 0, source.spec.name


def test_rerun_with_same_settings_reuses_data(spark: SparkSession, generated: Generated) -> None:
    with logged_messages() as messages:
        again = generate(spark, generated.cfg, generated.landing, generated.truth)
    assert again.reused
    assert again.rows == generated.report.rows
    assert messages and "present" in messages[0]


# ---------------------------------------------------------------------------------------------
# planted signal
# ---------------------------------------------------------------------------------------------


def test_loan_applications_are_preceded_by_calculator_views(
    spark: SparkSession, generated: Generated, persons: DataFrame
) -> None:
    events = spark.read.json(source_path(generated, "bank.app_events"))
    if "_corrupt_record" in events.columns:
        events = events.filter(F.col("_corrupt_record").isNull())
    calc = events.filter(F.col("event_type") == "LOAN_CALCULATOR").filter(
        F.col("cust_no").isNotNull()
    )
    calc = calc.withColumn("day", F.to_date(F.timestamp_millis("ts")))
    cust = persons.filter("has_app").select(
        "person_id",
        "loan_taker",
        "loan_apply_date",
        F.expr("date_sub(loan_apply_date, 90)").alias("lead_start"),
    )
    from profilehouse.generator.ids import cust_no_expr

    cust = cust.withColumn("cust_no", cust_no_expr("person_id", 0))
    # Per person: calculator views in the 90 days before applying (takers) versus in an equally
    # long window for everyone else.
    window_end = F.coalesce("loan_apply_date", F.lit("2025-09-30").cast("date"))
    joined = cust.join(calc, "cust_no", "left").withColumn(
        "in_window",
        (F.col("day") >= F.date_sub(window_end, 90)) & (F.col("day") < window_end),
    )
    rates = (
        joined.groupBy("person_id", "loan_taker")
        .agg(F.sum(F.coalesce(F.col("in_window").cast("int"), F.lit(0))).alias("views"))
        .groupBy("loan_taker")
        .agg(F.avg("views").alias("mean"))
        .collect()
    )
    mean = {r.loan_taker: r.mean for r in rates}
    assert mean[True] > 2.0
    assert mean[True] > 10 * mean[False]


def test_salary_rises_before_loan_application(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, persons: DataFrame
) -> None:
    txns = read_csv(spark, generated, "bank.transactions").filter(F.col("txn_type") == "SALARY")
    truth = truth_records.filter(F.col("source") == "bank.transactions").select(
        F.col("record_key").alias("txn_id"), "person_id"
    )
    takers = persons.filter("loan_taker").select("person_id", "loan_apply_date")
    s = (
        txns.join(truth, "txn_id")
        .join(takers, "person_id")
        .withColumn("day", _parse_date_text(F.substring("txn_ts", 1, 10)))
    )
    s = s.withColumn(
        "phase",
        F.when(F.col("day") >= F.date_sub("loan_apply_date", 90), "lead").otherwise("before"),
    )
    per_person = (
        s.groupBy("person_id")
        .pivot("phase", ["before", "lead"])
        .agg(F.avg(F.col("amount").cast("double")))
    )
    ratio = per_person.dropna().select(F.expr("percentile_approx(lead / before, 0.5)")).first()[0]
    assert ratio == pytest.approx(generated.cfg.signal.salary_rise, rel=0.05)


def test_churners_fade_out_and_stop(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, persons: DataFrame
) -> None:
    txns = read_csv(spark, generated, "bank.transactions").filter(F.col("txn_type") != "REPAYMENT")
    truth = truth_records.filter(F.col("source") == "bank.transactions").select(
        F.col("record_key").alias("txn_id"), "person_id"
    )
    churners = persons.filter("churner").select("person_id", "churn_date")
    t = (
        txns.join(truth, "txn_id")
        .join(churners, "person_id")
        .withColumn("day", _parse_date_text(F.substring("txn_ts", 1, 10)))
        .filter(F.col("day").isNotNull())
    )
    assert t.filter(F.col("day") > F.col("churn_date")).count() == 0
    early = t.filter(F.col("day") < F.date_sub("churn_date", 180)).filter(
        F.col("day") >= F.date_sub("churn_date", 270)
    )
    late = t.filter(F.col("day") >= F.date_sub("churn_date", 90))
    assert late.count() < early.count()


def test_personas_behave_differently(
    spark: SparkSession, generated: Generated, truth_records: DataFrame, persons: DataFrame
) -> None:
    txns = read_csv(spark, generated, "bank.transactions").filter(F.col("txn_type") == "PURCHASE")
    truth = truth_records.filter(F.col("source") == "bank.transactions").select(
        F.col("record_key").alias("txn_id"), "person_id"
    )
    t = txns.join(truth, "txn_id").join(persons.select("person_id", "persona"), "person_id")
    mobile_share = {
        r.persona: r.share
        for r in t.groupBy("persona")
        .agg(F.avg((F.col("channel") == "MOBILE").cast("double")).alias("share"))
        .collect()
    }
    assert mobile_share["DIGITAL_ACTIVE"] > 2 * mobile_share["HIGH_ASSET_CONSERVATIVE"]
    lines = truth_records.filter(F.col("source") == "retail.pos_lines").join(
        persons.filter("is_retail").select("person_id", "persona"), "person_id"
    )
    per_person = lines.groupBy("persona").agg(
        (F.count("*") / F.countDistinct("person_id")).alias("lines_per_person")
    )
    lpp = {r.persona: r.lines_per_person for r in per_person.collect()}
    assert lpp["HIGH_FREQ_SMALL"] > 2 * lpp["HIGH_ASSET_CONSERVATIVE"]
    assert lpp["HIGH_FREQ_SMALL"] > 5 * lpp["DORMANT"]


def test_resident_ids_are_unique_per_person(
    spark: SparkSession, gen_cfg: GeneratorSettings
) -> None:
    # at 20x the test scale so that persons share region, birth date and gender
    persons = build_persons(spark, gen_cfg.with_overrides(scale_factor=0.2))
    counts = persons.groupBy("id_no").count()
    assert counts.where("count > 1").count() == 0
    assert counts.count() == persons.count()
