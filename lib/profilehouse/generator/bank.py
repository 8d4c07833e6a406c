"""Bank source systems: core banking, cards, loans, credit bureau and the mobile app.

Planted signal: a loan application is preceded (``signal.loan_lead_days``) by a salary rise,
rising balances and loan-calculator views in the app; churners' activity fades out.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.generator import dirt, ids, rand, timeline
from profilehouse.generator.settings import GeneratorSettings
from profilehouse.generator.sources import GeneratedSource
from profilehouse.generator.vocab import BANK_PRODUCTS, MCCS
from profilehouse.generator.writer import SourceSpec, batch_of_expr, with_malformed

CUSTOMERS = SourceSpec(
    "bank",
    "customers",
    "csv",
    (
        "cust_no",
        "name",
        "gender",
        "birth_date",
        "id_type",
        "id_no",
        "mobile",
        "email",
        "address",
        "city",
        "branch_id",
        "occupation",
        "annual_income",
        "open_date",
        "risk_appetite",
    ),
    "cust_no",
)
ACCOUNTS = SourceSpec(
    "bank",
    "accounts",
    "csv",
    ("account_no", "cust_no", "product_type", "product_code", "open_date", "close_date", "status"),
    "account_no",
)
BALANCES = SourceSpec(
    "bank", "balances", "parquet", ("account_no", "as_of_date", "balance"), "balance_key"
)
TRANSACTIONS = SourceSpec(
    "bank",
    "transactions",
    "csv",
    (
        "txn_id",
        "account_no",
        "txn_ts",
        "amount",
        "direction",
        "channel",
        "txn_type",
        "counterparty",
        "mcc",
    ),
    "txn_id",
)
LOANS = SourceSpec(
    "bank",
    "loans",
    "csv",
    (
        "loan_id",
        "cust_no",
        "product",
        "apply_date",
        "decision_date",
        "principal",
        "rate",
        "term_months",
        "status",
        "max_overdue_days",
    ),
    "loan_id",
)
CREDIT_BUREAU = SourceSpec(
    "bank",
    "credit_bureau",
    "parquet",
    ("id_no", "report_date", "score", "overdue_count_24m", "total_debt"),
    "report_key",
)
APP_EVENTS = SourceSpec(
    "bank",
    "app_events",
    "jsonl",
    ("event_id", "device_id", "cust_no", "event_type", "product_code", "ts"),
    "event_id",
)

SLOT_TYPES = {0: "CURRENT", 1: "TIME_DEPOSIT", 2: "WEALTH", 3: "CREDIT_CARD", 4: "LOAN", 5: "LOAN"}
EMPLOYERS = [
    "华信科技有限公司",
    "东方制造股份公司",
    "市第一人民医院",
    "新世纪教育集团",
    "长江物流有限公司",
    "恒通贸易有限公司",
    "市财政局",
    "星辰互联网科技",
]
RISK_BASE = {
    "DIGITAL_ACTIVE": 3,
    "HIGH_ASSET_CONSERVATIVE": 2,
    "EMERGING_WEALTH": 4,
    "HIGH_FREQ_SMALL": 2,
    "HOLIDAY_SHOPPER": 3,
    "PROMO_SENSITIVE": 3,
    "DORMANT": 1,
}
SCORE_OFFSET = {
    "DIGITAL_ACTIVE": 0,
    "HIGH_ASSET_CONSERVATIVE": 90,
    "EMERGING_WEALTH": 40,
    "HIGH_FREQ_SMALL": -20,
    "HOLIDAY_SHOPPER": 0,
    "PROMO_SENSITIVE": -40,
    "DORMANT": -10,
}
LOAN_PRODUCTS = {
    "MORTGAGE": (800_000.0, 0.041, 360),
    "CONSUMER": (50_000.0, 0.068, 24),
    "AUTO": (150_000.0, 0.052, 60),
    "BUSINESS": (300_000.0, 0.058, 36),
}


def _persona_lookup(mapping: dict[str, float | int]) -> Column:
    pairs = [x for k, v in mapping.items() for x in (F.lit(k), F.lit(v))]
    return F.create_map(*pairs)[F.col("persona")]


def _initial(cfg: GeneratorSettings) -> str:
    return cfg.history.initial_batch.isoformat()


def _daily_batches(cfg: GeneratorSettings) -> list[str]:
    first = cfg.history.initial_batch
    return [
        (first + dt.timedelta(days=i)).isoformat() for i in range(1, cfg.history.daily_batches + 1)
    ]


def _event_patterns_and_batch(
    df: DataFrame,
    cfg: GeneratorSettings,
    spec: SourceSpec,
    event_date: Column,
    extra_patterns: dict[str, Column] | None = None,
) -> DataFrame:
    """Batch assignment with late deliveries, duplicate events, malformed rows and patterns."""
    df = dirt.with_delivery(df, cfg, spec.name, event_date, spec.key)
    df = with_malformed(df, cfg.dirt.malformed_row, cfg.seed, spec)
    # The re-delivered copy of a duplicate is never the malformed one (its twin carries the data).
    malformed = F.col("malformed") & ~F.col("f_duplicate_event")
    flags = {"late_event": F.col("f_late_event"), "duplicate_event": F.col("f_duplicate_event")}
    flags.update(extra_patterns or {})
    return df.withColumns(
        {
            "malformed": malformed,
            "malformed_kind": F.when(malformed, F.col("malformed_kind")),
            "patterns": dirt.patterns_expr(flags),
        }
    ).drop("f_late_event", "f_duplicate_event")


def _finish(df: DataFrame, spec: SourceSpec, expected_rows: int) -> GeneratedSource:
    cols = [*spec.columns, "person_id", "batch", "malformed", "malformed_kind", "patterns"]
    if spec.key not in spec.columns:
        cols.append(spec.key)
    return GeneratedSource(spec, df.select(*cols), expected_rows)


# ---------------------------------------------------------------------------------------------
# customers
# ---------------------------------------------------------------------------------------------


def customer_records(bank_persons: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """One row per customer record (main + in-system duplicates) with open date, untouched."""
    seed = cfg.seed
    dup = rand.uniform(seed, "bank:dup_customer", "person_id") < cfg.dirt.duplicate_record
    df = bank_persons.withColumn(
        "copy", F.explode(F.when(dup, F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0))))
    )
    df = df.withColumn("cust_no", ids.cust_no_expr("person_id", F.col("copy")))
    span = cfg.history.days + 2000
    first_open = F.date_add(
        F.lit(cfg.history.start - dt.timedelta(days=2000)),
        (rand.uniform(seed, "bank:open", "person_id") * span).cast("int"),
    )
    # A duplicate record was opened later, at another branch.
    dup_open = F.date_add(
        first_open,
        (
            rand.uniform(seed, "bank:dup_open", "person_id")
            * F.datediff(F.lit(cfg.history.end), first_open)
        ).cast("int"),
    )
    # Loan takers must be customers before their application.
    first_open = F.when(
        F.col("loan_taker"),
        F.least(first_open, F.date_sub("loan_apply_date", cfg.signal.loan_lead_days + 30)),
    ).otherwise(first_open)
    return df.withColumn("first_open_date", first_open).withColumn(
        "open_date", F.when(F.col("copy") == 0, first_open).otherwise(dup_open)
    )


def build_customers(records: DataFrame, cfg: GeneratorSettings) -> GeneratedSource:
    """bank.customers: core banking customer master, dirty, with corrected re-deliveries."""
    seed, d = cfg.seed, cfg.dirt
    spec = CUSTOMERS
    df = dirt.with_person_dirt(records, d, seed, spec.name, "cust_no", "yyyy-MM-dd")
    df = df.withColumn("batch", batch_of_expr(F.col("open_date"), _initial(cfg)))
    daily = _daily_batches(cfg)
    corrected = (
        (F.col("copy") == 0)
        & (F.col("batch") == _initial(cfg))
        & F.lit(bool(daily))
        & (rand.uniform(seed, "bank:corrected", "cust_no") < d.corrected_redelivery)
    )
    df = df.withColumn("_corrected", corrected)
    # The first delivery of a corrected record has the stale address; the re-delivery fixes it.
    df = df.withColumn(
        "src_address",
        F.when(F.col("_corrected"), F.col("old_address")).otherwise(F.col("src_address")),
    ).withColumn("f_stale_address", F.col("f_stale_address") | F.col("_corrected"))
    df = df.withColumn("patterns", dirt.person_patterns_expr())
    df = df.withColumn(
        "patterns",
        F.concat(
            "patterns",
            dirt.patterns_expr(
                {"duplicate_record": F.col("copy") == 1, "corrected_later": F.col("_corrected")}
            ),
        ),
    )
    redelivered = (
        df.filter("_corrected")
        .withColumn("src_address", F.col("address"))
        .withColumn(
            "batch",
            rand.choice(daily, seed, "bank:corr_batch", "cust_no") if daily else F.lit(None),
        )
        .withColumn("patterns", F.array(F.lit("corrected_redelivery")))
    )
    df = df.unionByName(redelivered)
    gender = F.when(
        rand.uniform(seed, "bank:gender_missing", "cust_no") < d.missing_field, F.lit(None)
    ).otherwise(F.col("gender"))
    income = F.round(
        F.greatest(F.col("p_salary"), F.lit(2500.0))
        * 12
        * rand.lognormal(1.0, 0.2, seed, "bank:income", "person_id"),
        -2,
    )
    risk = F.least(
        F.greatest(
            _persona_lookup(RISK_BASE) + rand.randint(-1, 1, seed, "bank:risk", "person_id"),
            F.lit(1),
        ),
        F.lit(5),
    )
    out = df.select(
        "cust_no",
        F.col("src_name").alias("name"),
        gender.alias("gender"),
        F.col("src_birth_date").alias("birth_date"),
        F.lit("ID_CARD").alias("id_type"),
        F.col("src_id_no").alias("id_no"),
        F.col("src_mobile").alias("mobile"),
        F.col("src_email").alias("email"),
        F.col("src_address").alias("address"),
        "city",
        F.concat(
            F.lit("BR"),
            F.substring("region_code", 1, 4),
            rand.digits(rand.randint(1, 12, seed, "bank:branch", "cust_no"), 2),
        ).alias("branch_id"),
        "occupation",
        F.format_number(income, 2).alias("annual_income"),
        F.date_format("open_date", "yyyy-MM-dd").alias("open_date"),
        F.concat(F.lit("C"), risk.cast("string")).alias("risk_appetite"),
        "person_id",
        "batch",
        "patterns",
    )
    out = with_malformed(out, d.malformed_row, seed, spec)
    out = out.withColumn("annual_income", F.regexp_replace("annual_income", ",", ""))
    return _finish(out, spec, int(cfg.persons * 0.8))


# ---------------------------------------------------------------------------------------------
# loans (needed by accounts and transactions)
# ---------------------------------------------------------------------------------------------


def loan_records(bank_persons: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Typed loan rows: take-up loans (planted label) and older historical loans."""
    seed = cfg.seed
    start, end = cfg.history.start, cfg.history.end
    historical = rand.uniform(seed, "loan:hist", "person_id") < 0.06
    kinds = F.array_compact(
        F.array(F.when(F.col("loan_taker"), F.lit(4)), F.when(historical, F.lit(5)))
    )
    df = bank_persons.withColumn("slot", F.explode(kinds))
    key = F.concat_ws("-", F.col("person_id").cast("string"), F.col("slot").cast("string"))
    df = df.withColumn("_lk", key)
    hist_apply = F.date_sub(
        F.lit(start), rand.randint(30, 900, seed, "loan:hist_apply", "_lk").cast("int")
    )
    apply_date = F.when(F.col("slot") == 4, F.col("loan_apply_date")).otherwise(hist_apply)
    product_weights = {
        "HIGH_ASSET_CONSERVATIVE": "MORTGAGE",
        "EMERGING_WEALTH": "MORTGAGE",
        "DIGITAL_ACTIVE": "CONSUMER",
    }
    pref = F.create_map(*[x for k, v in product_weights.items() for x in (F.lit(k), F.lit(v))])[
        F.col("persona")
    ]
    other = rand.weighted_choice(
        {"CONSUMER": 0.5, "AUTO": 0.25, "BUSINESS": 0.1, "MORTGAGE": 0.15}, seed, "loan:prod", "_lk"
    )
    product = F.when(
        pref.isNotNull() & (rand.uniform(seed, "loan:pref", "_lk") < 0.6), pref
    ).otherwise(other)
    df = df.withColumn("apply_date", apply_date).withColumn("product", product)
    base = F.create_map(*[x for k, v in LOAN_PRODUCTS.items() for x in (F.lit(k), F.lit(v[0]))])[
        F.col("product")
    ]
    rate = F.create_map(*[x for k, v in LOAN_PRODUCTS.items() for x in (F.lit(k), F.lit(v[1]))])[
        F.col("product")
    ]
    term = F.create_map(*[x for k, v in LOAN_PRODUCTS.items() for x in (F.lit(k), F.lit(v[2]))])[
        F.col("product")
    ]
    decision = F.date_add(
        "apply_date", rand.randint(1, 10, seed, "loan:decision", "_lk").cast("int")
    )
    u = rand.uniform(seed, "loan:status", "_lk")
    df = (
        df.withColumn(
            "principal", F.round(rand.lognormal(base, 0.4, seed, "loan:principal", "_lk"), -3)
        )
        .withColumn("rate", F.round(rate + rand.normal(seed, "loan:rate", "_lk") * 0.005, 4))
        .withColumn("term_months", term.cast("int"))
        .withColumn("decision_date", F.when(decision <= F.lit(end), decision))
        .withColumn(
            "status",
            F.when(F.col("decision_date").isNull(), "APPLIED")
            .when(u < 0.18, "REJECTED")
            .when(u < 0.22, "DEFAULTED")
            .when((F.col("slot") == 5) & (u < 0.6), "CLOSED")
            .otherwise("ACTIVE"),
        )
    )
    overdue = (
        F.when(F.col("status") == "DEFAULTED", rand.randint(90, 400, seed, "loan:od", "_lk"))
        .when(
            F.col("status").isin("ACTIVE", "CLOSED")
            & (rand.uniform(seed, "loan:od_any", "_lk") < 0.1),
            rand.randint(1, 30, seed, "loan:od2", "_lk"),
        )
        .otherwise(F.lit(0))
    )
    return (
        df.withColumn("max_overdue_days", overdue.cast("int"))
        .withColumn(
            "loan_id",
            F.concat(
                F.lit("L"),
                rand.digits(
                    rand.scramble(
                        F.col("person_id") * 8 + F.col("slot"), 10**10, 1_234_577, 99_991
                    ),
                    10,
                ),
            ),
        )
        .drop("_lk")
    )


def build_loans(loans: DataFrame, cfg: GeneratorSettings) -> GeneratedSource:
    """bank.loans: loan applications and their outcome."""
    spec = LOANS
    df = loans.withColumn("cust_no", ids.cust_no_expr("person_id", 0))
    event_date = F.coalesce(F.col("decision_date"), F.col("apply_date"))
    df = df.withColumn("loan_taken_up", F.col("slot") == 4)
    df = _event_patterns_and_batch(
        df, cfg, spec, event_date, {"loan_take_up": F.col("loan_taken_up")}
    )
    out = df.select(
        "loan_id",
        "cust_no",
        "product",
        F.date_format("apply_date", "yyyy-MM-dd").alias("apply_date"),
        F.date_format("decision_date", "yyyy-MM-dd").alias("decision_date"),
        F.format_string("%.2f", "principal").alias("principal"),
        F.format_string("%.4f", "rate").alias("rate"),
        F.col("term_months").cast("string").alias("term_months"),
        "status",
        F.col("max_overdue_days").cast("string").alias("max_overdue_days"),
        "person_id",
        "batch",
        "malformed",
        "malformed_kind",
        "patterns",
    )
    return _finish(out, spec, int(cfg.persons * 0.1))


# ---------------------------------------------------------------------------------------------
# accounts and balances
# ---------------------------------------------------------------------------------------------


def account_records(records: DataFrame, loans: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    """Typed account rows per customer record (deposit, wealth, card, loan accounts)."""
    seed, end = cfg.seed, cfg.history.end
    u = lambda salt: rand.uniform(seed, salt, "person_id")  # noqa: E731
    main = F.col("copy") == 0
    slots = F.array_compact(
        F.array(
            F.lit(0),
            F.when(main & (u("acct:td") < F.col("p_time_deposit_rate")), F.lit(1)),
            F.when(main & (u("acct:wm") < F.col("p_wealth_rate")), F.lit(2)),
            F.when(main & (u("acct:cc") < F.col("p_credit_card_rate")), F.lit(3)),
        )
    )
    df = records.withColumn("slot", F.explode(slots))
    approved = loans.filter(F.col("status").isin("ACTIVE", "CLOSED", "DEFAULTED")).select(
        "person_id", "slot", "decision_date", "term_months", "principal", "status"
    )
    loan_accts = (
        records.filter(main)
        .join(approved.withColumnRenamed("status", "loan_status"), "person_id")
        .withColumn("open_date_acct", F.col("decision_date"))
    )
    df = df.withColumn("account_no", ids.account_no_expr("person_id", F.col("copy"), F.col("slot")))
    span = F.greatest(F.datediff(F.lit(end), "open_date"), F.lit(1))
    acct_open = F.when(
        F.col("slot") == 0,
        F.date_add("open_date", rand.randint(0, 10, seed, "acct:o0", "account_no").cast("int")),
    ).otherwise(
        F.date_add("open_date", (rand.uniform(seed, "acct:open", "account_no") * span).cast("int"))
    )
    df = df.withColumn("open_date_acct", F.least(acct_open, F.lit(end)))
    df = (
        df.withColumn("principal", F.lit(None).cast("double"))
        .withColumn("term_months", F.lit(None).cast("int"))
        .withColumn("loan_status", F.lit(None).cast("string"))
    )
    loan_accts = loan_accts.withColumn(
        "account_no", ids.account_no_expr("person_id", F.col("copy"), F.col("slot"))
    )
    cols = [
        *records.columns,
        "slot",
        "account_no",
        "open_date_acct",
        "principal",
        "term_months",
        "loan_status",
    ]
    df = df.select(*cols).unionByName(loan_accts.select(*cols))
    closed_rate = F.when(F.col("persona") == "DORMANT", 0.2).otherwise(0.04)
    close_u = rand.uniform(seed, "acct:close", "account_no")
    close_date = F.when(
        (F.col("slot") != 0) & (F.col("slot") < 4) & (close_u < closed_rate),
        F.date_add(
            "open_date_acct",
            (
                rand.uniform(seed, "acct:close_d", "account_no")
                * F.greatest(F.datediff(F.lit(end), "open_date_acct"), F.lit(1))
            ).cast("int"),
        ),
    ).when(
        F.col("loan_status") == "CLOSED", F.least(F.add_months("open_date_acct", 12), F.lit(end))
    )
    status = (
        F.when(close_date.isNotNull() & (close_date <= F.lit(end)), "CLOSED")
        .when((F.col("persona") == "DORMANT") & (F.col("slot") == 0), "DORMANT")
        .when(F.col("loan_status") == "DEFAULTED", "DEFAULTED")
        .otherwise("ACTIVE")
    )
    slot_type = F.create_map(*[x for k, v in SLOT_TYPES.items() for x in (F.lit(k), F.lit(v))])
    product_code = F.create_map(
        *[
            x
            for k, v in SLOT_TYPES.items()
            for x in (F.lit(k), F.array(*[F.lit(p) for p in BANK_PRODUCTS[v]]))
        ]
    )
    codes = product_code[F.col("slot")]
    pick = (F.floor(rand.uniform(seed, "acct:code", "account_no") * F.size(codes)) + 1).cast("int")
    return (
        df.withColumn("close_date", close_date)
        .withColumn("status", status)
        .withColumn("product_type", slot_type[F.col("slot")])
        .withColumn("product_code", F.element_at(codes, pick))
    )


def build_accounts(accounts: DataFrame, cfg: GeneratorSettings) -> GeneratedSource:
    """bank.accounts: one row per account."""
    spec = ACCOUNTS
    df = accounts.withColumn("batch", batch_of_expr(F.col("open_date_acct"), _initial(cfg)))
    df = with_malformed(df, cfg.dirt.malformed_row, cfg.seed, spec)
    out = df.select(
        "account_no",
        "cust_no",
        "product_type",
        "product_code",
        F.date_format("open_date_acct", "yyyy-MM-dd").alias("open_date"),
        F.date_format("close_date", "yyyy-MM-dd").alias("close_date"),
        "status",
        "person_id",
        "batch",
        "malformed",
        "malformed_kind",
        F.array().cast("array<string>").alias("patterns"),
    )
    return _finish(out, spec, int(cfg.persons * 2))


def build_balances(accounts: DataFrame, cfg: GeneratorSettings) -> GeneratedSource:
    """bank.balances: month-end balance snapshots (Parquet, typed)."""
    seed, sig = cfg.seed, cfg.signal
    start, end = cfg.history.start, cfg.history.end
    first = F.last_day(F.greatest("open_date_acct", F.lit(start)))
    last = F.last_day(F.least(F.coalesce("close_date", F.lit(end)), F.lit(end)))
    df = accounts.withColumn(
        "as_of_date",
        F.explode(
            F.when(first <= last, F.sequence(first, last, F.expr("interval 1 month"))).otherwise(
                F.array()
            )
        ),
    ).withColumn("as_of_date", F.last_day("as_of_date"))
    df = df.filter(F.col("as_of_date") <= F.lit(end))
    df = df.withColumn(
        "balance_key", F.concat_ws("|", "account_no", F.col("as_of_date").cast("string"))
    )
    type_mult = {0: 1.0, 1: 2.5, 2: 2.0, 3: -0.15}
    mult = F.create_map(*[x for k, v in type_mult.items() for x in (F.lit(k), F.lit(v))])[
        F.col("slot")
    ]
    person_level = rand.lognormal(F.col("p_balance"), 0.8, seed, "bal:person", "person_id")
    noise = rand.lognormal(1.0, 0.25, seed, "bal:month", "balance_key")
    days_to_apply = F.datediff("loan_apply_date", "as_of_date")
    lead = float(sig.loan_lead_days)
    ramp = F.when(
        F.col("loan_taker") & (days_to_apply <= lead),
        F.lit(1.0)
        + (sig.balance_rise - 1.0) * F.least(F.lit(1.0), F.lit(1.0) - days_to_apply / lead),
    ).otherwise(F.lit(1.0))
    churn = F.when(
        F.col("churner") & (F.col("as_of_date") > F.col("churn_date")), F.lit(0.05)
    ).otherwise(F.lit(1.0))
    months_in = F.months_between("as_of_date", "open_date_acct")
    loan_left = F.greatest(F.lit(0.0), F.lit(1.0) - months_in / F.col("term_months"))
    balance = F.when(F.col("slot") >= 4, -F.col("principal") * loan_left).otherwise(
        person_level * mult * noise * ramp * churn
    )
    df = df.withColumn("balance", F.round(balance, 2).cast("decimal(18,2)"))
    df = df.withColumn("batch", batch_of_expr(F.col("as_of_date"), _initial(cfg)))
    df = df.withColumn("malformed", F.lit(False)).withColumn(
        "malformed_kind", F.lit(None).cast("string")
    )
    in_lead = F.col("loan_taker") & days_to_apply.between(0, sig.loan_lead_days)
    df = df.withColumn("patterns", dirt.patterns_expr({"loan_lead_up": in_lead}))
    return _finish(df, BALANCES, int(cfg.persons * 2 * 18))


# ---------------------------------------------------------------------------------------------
# transactions
# ---------------------------------------------------------------------------------------------


def _salary_rows(current: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    sig = cfg.signal
    payers = current.filter((F.col("p_salary") > 0) & (F.col("copy") == 0))
    first = F.greatest("open_date_acct", F.lit(cfg.history.start))
    last = F.coalesce("close_date", "activity_end")
    months = F.sequence(
        F.trunc(first, "month"),
        F.trunc(F.least(last, F.lit(cfg.history.end)), "month"),
        F.expr("interval 1 month"),
    )
    df = payers.withColumn("_m", F.explode(F.when(first <= last, months).otherwise(F.array())))
    df = df.withColumn("_d", F.date_add("_m", 9)).filter(
        (F.col("_d") >= first) & (F.col("_d") <= last)
    )
    rise = F.when(
        F.col("loan_taker") & (F.col("_d") >= F.date_sub("loan_apply_date", sig.loan_lead_days)),
        F.lit(sig.salary_rise),
    ).otherwise(F.lit(1.0))
    level = rand.lognormal(F.col("p_salary"), 0.3, cfg.seed, "txn:salary_level", "person_id")
    df = df.withColumn("_seq", F.datediff("_d", F.lit(cfg.history.start)))
    return df.select(
        "*",
        F.lit("SALARY").alias("txn_type"),
        F.lit("CR").alias("direction"),
        F.lit("ONLINE").alias("channel"),
        F.round(level * rise, 2).alias("_amount"),
        (
            F.unix_timestamp(F.col("_d").cast("timestamp"))
            + 9 * 3600
            + rand.randint(0, 3600, cfg.seed, "txn:sal_ts", "account_no", "_seq")
        ).alias("_ts_s"),
        rand.choice(EMPLOYERS, cfg.seed, "txn:employer", "person_id").alias("counterparty"),
        F.lit(None).cast("string").alias("mcc"),
        F.lit("S").alias("_kind"),
    ).drop("_m", "_d")


def _activity_rows(accounts: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    seed = cfg.seed
    acc = accounts.filter(F.col("slot").isin(0, 3))
    first = F.greatest("open_date_acct", F.lit(cfg.history.start))
    last = F.least(
        F.coalesce("close_date", "activity_end"), F.col("activity_end"), F.lit(cfg.history.end)
    )
    months = timeline.months_between_expr(first, last)
    share = F.when(F.col("slot") == 3, 0.5).when(F.col("copy") == 1, 0.3).otherwise(1.0)
    n = rand.count_draw(
        F.col("p_txn_per_month") * months * share + F.lit(1e-9), seed, "txn:n", "account_no"
    )
    df = (
        acc.withColumn("_first", first)
        .withColumn("_last", last)
        .filter(F.col("_first") <= F.col("_last"))
    )
    df = df.withColumn("_seq", F.explode(F.sequence(F.lit(1), F.greatest(n, F.lit(0)))))
    df = df.filter(F.col("_seq") >= 1)
    keys = ["account_no", "_seq"]
    ts = timeline.event_ts_expr(
        cfg, "txn:ts", keys, F.col("_first"), F.col("_last"), F.col("churner")
    )
    kind_card = F.col("slot") == 3
    txn_type = F.when(kind_card, F.lit("PURCHASE")).otherwise(
        rand.weighted_choice(
            {"PURCHASE": 0.57, "TRANSFER": 0.2, "WITHDRAW": 0.1, "DEPOSIT": 0.1, "FEE": 0.03},
            seed,
            "txn:type",
            *keys,
        )
    )
    u_dir = rand.uniform(seed, "txn:dir", *keys)
    direction = (
        F.when(F.col("txn_type").isin("DEPOSIT"), "CR")
        .when((F.col("txn_type") == "TRANSFER") & (u_dir < 0.4), "CR")
        .otherwise("DR")
    )
    u_ch = rand.uniform(seed, "txn:channel", *keys)
    digital = F.col("p_app_rate")
    channel = (
        F.when(F.col("txn_type") == "WITHDRAW", "ATM")
        .when(F.col("txn_type") == "FEE", "COUNTER")
        .when(F.col("txn_type") == "DEPOSIT", F.when(u_ch < 0.5, "COUNTER").otherwise("ATM"))
        .when(u_ch < digital * 0.6, "MOBILE")
        .when(u_ch < digital * 0.6 + 0.2, "ONLINE")
        .when(F.col("txn_type") == "PURCHASE", "POS")
        .otherwise("COUNTER")
    )
    amount = F.when(
        F.col("txn_type") == "FEE", rand.randint(1, 50, seed, "txn:fee", *keys).cast("double")
    ).otherwise(rand.lognormal(F.col("p_txn_amount"), 0.9, seed, "txn:amount", *keys))
    return (
        df.select(
            "*",
            txn_type.alias("txn_type"),
        )
        .select(
            "*",
            direction.alias("direction"),
            channel.alias("channel"),
            F.round(amount, 2).alias("_amount"),
            F.unix_timestamp(ts).alias("_ts_s"),
            F.when(
                F.col("txn_type") == "TRANSFER",
                F.concat(
                    F.lit("622"), rand.digits(rand.randint(0, 10**9, seed, "txn:cp", *keys), 13)
                ),
            ).alias("counterparty"),
            F.when(
                F.col("txn_type") == "PURCHASE", rand.choice(MCCS, seed, "txn:mcc", *keys)
            ).alias("mcc"),
            F.lit("A").alias("_kind"),
        )
        .drop("_first", "_last")
    )


def _repayment_rows(accounts: DataFrame, loans: DataFrame, cfg: GeneratorSettings) -> DataFrame:
    current = accounts.filter((F.col("slot") == 0) & (F.col("copy") == 0))
    active = loans.filter(F.col("status").isin("ACTIVE", "DEFAULTED", "CLOSED")).select(
        "person_id",
        F.col("decision_date").alias("_dec"),
        F.col("principal").alias("_principal"),
        F.col("rate").alias("_rate"),
        F.col("term_months").alias("_term"),
        F.col("status").alias("_lstatus"),
        F.col("slot").alias("_lslot"),
    )
    df = current.join(active, "person_id")
    first = F.greatest(F.add_months("_dec", 1), F.lit(cfg.history.start))
    stop = (
        F.when(F.col("_lstatus") == "DEFAULTED", F.add_months("_dec", 4))
        .when(F.col("_lstatus") == "CLOSED", F.add_months("_dec", 12))
        .otherwise(F.add_months("_dec", F.col("_term")))
    )
    last = F.least(stop, F.col("activity_end"), F.lit(cfg.history.end))
    df = df.withColumn(
        "_m",
        F.explode(
            F.when(first <= last, F.sequence(first, last, F.expr("interval 1 month"))).otherwise(
                F.array()
            )
        ),
    )
    df = df.withColumn(
        "_seq", F.lit(100_000) + F.col("_lslot") * 1000 + F.months_between("_m", "_dec").cast("int")
    )
    installment = (
        F.col("_principal") * (F.lit(1.0) + F.col("_rate") * F.col("_term") / 12) / F.col("_term")
    )
    return df.select(
        "*",
        F.lit("REPAYMENT").alias("txn_type"),
        F.lit("DR").alias("direction"),
        F.lit("ONLINE").alias("channel"),
        F.round(installment, 2).alias("_amount"),
        (F.unix_timestamp(F.col("_m").cast("timestamp")) + 2 * 3600).alias("_ts_s"),
        F.lit("LOAN-REPAYMENT").alias("counterparty"),
        F.lit(None).cast("string").alias("mcc"),
        F.lit("R").alias("_kind"),
    ).drop("_dec", "_principal", "_rate", "_term", "_lstatus", "_lslot", "_m")


def build_transactions(
    accounts: DataFrame, loans: DataFrame, cfg: GeneratorSettings
) -> GeneratedSource:
    """bank.transactions: salary credits, card/current-account activity and loan repayments."""
    seed, d = cfg.seed, cfg.dirt
    spec = TRANSACTIONS
    current = accounts.filter(F.col("slot") == 0)
    parts = [
        _salary_rows(current, cfg),
        _activity_rows(accounts, cfg),
        _repayment_rows(accounts, loans, cfg),
    ]
    cols = [
        "person_id",
        "account_no",
        "_seq",
        "_kind",
        "txn_type",
        "direction",
        "channel",
        "_amount",
        "_ts_s",
        "counterparty",
        "mcc",
    ]
    df = parts[0].select(*cols)
    for part in parts[1:]:
        df = df.unionByName(part.select(*cols))
    df = df.withColumn(
        "txn_id",
        F.concat(
            F.lit("T"),
            F.upper(
                F.substring(
                    F.sha2(
                        F.concat_ws(
                            "|", F.lit(seed), "account_no", "_kind", F.col("_seq").cast("string")
                        ),
                        256,
                    ),
                    1,
                    20,
                )
            ),
        ),
    )
    ts = F.timestamp_seconds("_ts_s")
    ts_text, bad_ts = dirt.bad_value_expr(
        F.date_format(ts, "yyyy-MM-dd HH:mm:ss"),
        d.bad_date,
        dirt.BAD_DATES,
        seed,
        "txn:ts",
        "txn_id",
    )
    df = df.withColumn("txn_ts", ts_text).withColumn("_bad_ts", bad_ts)
    df = _event_patterns_and_batch(df, cfg, spec, F.to_date(ts), {"bad_date": F.col("_bad_ts")})
    out = df.select(
        "txn_id",
        "account_no",
        "txn_ts",
        F.format_string("%.2f", "_amount").alias("amount"),
        "direction",
        "channel",
        "txn_type",
        "counterparty",
        "mcc",
        "person_id",
        "batch",
        "malformed",
        "malformed_kind",
        "patterns",
    )
    return _finish(out, spec, int(cfg.persons * 40))


# ---------------------------------------------------------------------------------------------
# credit bureau and app events
# ---------------------------------------------------------------------------------------------


def build_credit_bureau(
    bank_persons: DataFrame, loans: DataFrame, cfg: GeneratorSettings
) -> GeneratedSource:
    """bank.credit_bureau: credit reports keyed by the raw resident ID number (Parquet)."""
    seed = cfg.seed
    n = rand.randint(1, 3, seed, "cb:n", "person_id").cast("int")
    df = bank_persons.withColumn("_r", F.explode(F.sequence(F.lit(1), n)))
    df = df.withColumn(
        "report_key",
        F.concat_ws("|", F.col("person_id").cast("string"), F.col("_r").cast("string")),
    )
    routine = F.date_add(
        F.lit(cfg.history.start),
        (rand.uniform(seed, "cb:date", "report_key") * cfg.history.days).cast("int"),
    )
    at_apply = F.date_sub(
        "loan_apply_date", rand.randint(1, 5, seed, "cb:apply", "person_id").cast("int")
    )
    df = df.withColumn(
        "report_date", F.when(F.col("loan_taker") & (F.col("_r") == 1), at_apply).otherwise(routine)
    )
    defaulted = (
        loans.filter(F.col("status") == "DEFAULTED")
        .select("person_id")
        .distinct()
        .withColumn("_def", F.lit(True))
    )
    df = df.join(defaulted, "person_id", "left")
    score = (
        F.lit(650)
        + _persona_lookup(SCORE_OFFSET)
        + rand.normal(seed, "cb:score", "person_id") * 55
        + rand.normal(seed, "cb:jitter", "report_key") * 10
    )
    score = F.when(F.col("_def").isNotNull(), score - 150).otherwise(score)
    overdue = F.when(
        F.col("_def").isNotNull(), rand.randint(2, 9, seed, "cb:od", "report_key")
    ).otherwise(
        F.when(
            rand.uniform(seed, "cb:od_any", "report_key") < 0.08,
            rand.randint(1, 2, seed, "cb:od2", "report_key"),
        ).otherwise(0)
    )
    lower_x = rand.uniform(seed, "cb:lower", "report_key") < 0.3
    id_no = F.when(lower_x, F.lower("id_no")).otherwise(F.col("id_no"))
    df = df.select(
        id_no.alias("id_no"),
        "report_date",
        F.least(F.greatest(F.round(score), F.lit(350)), F.lit(950)).cast("int").alias("score"),
        overdue.cast("int").alias("overdue_count_24m"),
        F.round(rand.lognormal(F.col("p_balance") * 0.5, 1.0, seed, "cb:debt", "report_key"), 2)
        .cast("decimal(18,2)")
        .alias("total_debt"),
        "person_id",
        "report_key",
        batch_of_expr(F.col("report_date"), _initial(cfg)).alias("batch"),
        F.lit(False).alias("malformed"),
        F.lit(None).cast("string").alias("malformed_kind"),
        F.array().cast("array<string>").alias("patterns"),
    )
    df = df.filter(F.col("report_date") <= F.lit(cfg.history.end))
    return _finish(df, CREDIT_BUREAU, int(cfg.persons * 1.5))


def build_app_events(bank_persons: DataFrame, cfg: GeneratorSettings) -> GeneratedSource:
    """bank.app_events: mobile-app sessions; loan-calculator views precede loan applications."""
    seed, sig = cfg.seed, cfg.signal
    spec = APP_EVENTS
    users = bank_persons.filter("has_app")
    start = F.greatest(F.col("first_open_date"), F.lit(cfg.history.start))
    end = F.least(F.col("activity_end"), F.lit(cfg.history.end))
    months = timeline.months_between_expr(start, end)
    n = rand.count_draw(
        F.col("p_app_sessions_per_month") * months + F.lit(1e-9), seed, "app:n", "person_id"
    )
    sessions = users.withColumn(
        "_s", F.explode(F.sequence(F.lit(1), F.greatest(n, F.lit(0))))
    ).filter("_s >= 1")
    sessions = (
        sessions.withColumn("_start", start)
        .withColumn("_end", end)
        .filter(F.col("_start") <= F.col("_end"))
    )
    skeys = ["person_id", "_s"]
    sessions = sessions.withColumn(
        "_sts",
        timeline.event_ts_expr(
            cfg, "app:ts", skeys, F.col("_start"), F.col("_end"), F.col("churner")
        ),
    )
    sessions = sessions.withColumn("_logged", rand.uniform(seed, "app:login", *skeys) < 0.7)
    sessions = sessions.withColumn("_k", rand.randint(1, 4, seed, "app:k", *skeys).cast("int"))
    ev = sessions.withColumn("_i", F.explode(F.sequence(F.lit(1), F.col("_k"))))
    ekeys = ["person_id", "_s", "_i"]
    products = [p for v in BANK_PRODUCTS.values() for p in v]
    wealth = list(BANK_PRODUCTS["WEALTH"])
    u = rand.uniform(seed, "app:type", *ekeys)
    etype = (
        F.when((F.col("_i") == 1) & F.col("_logged"), "LOGIN")
        .when(u < F.col("p_wealth_rate") * 0.15, "WEALTH_BUY")
        .when(u < F.col("p_wealth_rate") * 0.15 + 0.012, "LOAN_CALCULATOR")
        .when(u < F.col("p_wealth_rate") * 0.15 + 0.017, "APPLY_START")
        .otherwise("VIEW_PRODUCT")
    )
    ev = (
        ev.withColumn("event_type", etype)
        .withColumn(
            "product_code",
            F.when(F.col("event_type") == "WEALTH_BUY", rand.choice(wealth, seed, "app:wp", *ekeys))
            .when(
                F.col("event_type").isin("LOAN_CALCULATOR", "APPLY_START"),
                rand.choice(BANK_PRODUCTS["LOAN"], seed, "app:lp", *ekeys),
            )
            .when(
                F.col("event_type") == "VIEW_PRODUCT", rand.choice(products, seed, "app:vp", *ekeys)
            ),
        )
        .withColumn("_ts", F.timestamp_seconds(F.unix_timestamp("_sts") + F.col("_i") * 40))
        .withColumn("_lead", F.lit(False))
    )
    # Planted lead-up: calculator views in the lead window, then start + submit on the apply date.
    takers = users.filter("loan_taker")
    m = rand.count_draw(F.lit(float(sig.calculator_views)), seed, "app:calc_n", "person_id") + 1
    calc = takers.withColumn("_i", F.explode(F.sequence(F.lit(1), m))).withColumn("_s", F.lit(-1))
    lead_start = F.date_sub("loan_apply_date", sig.loan_lead_days)
    calc = calc.withColumn(
        "_ts",
        timeline.event_ts_expr(
            cfg,
            "app:calc_ts",
            ["person_id", "_i"],
            lead_start,
            F.date_sub("loan_apply_date", 1),
            F.lit(False),
        ),
    )
    calc = calc.withColumn("event_type", F.lit("LOAN_CALCULATOR"))
    apply_ev = takers.withColumn("_i", F.explode(F.array(F.lit(1), F.lit(2)))).withColumn(
        "_s", F.lit(-2)
    )
    apply_ev = apply_ev.withColumn(
        "event_type", F.when(F.col("_i") == 1, "APPLY_START").otherwise("APPLY_SUBMIT")
    )
    apply_ev = apply_ev.withColumn(
        "_ts",
        F.timestamp_seconds(
            F.unix_timestamp(F.col("loan_apply_date").cast("timestamp"))
            + 10 * 3600
            + F.col("_i") * 300
        ),
    )
    lead_events = (
        calc.unionByName(apply_ev, allowMissingColumns=True)
        .withColumn("product_code", F.lit("LN-CONSUMER"))
        .withColumn("_logged", rand.uniform(seed, "app:lead_login", "person_id", "_s", "_i") < 0.85)
        .withColumn("_lead", F.lit(True))
    )
    lead_events = lead_events.withColumn(
        "_logged", F.when(F.col("_s") == -2, F.lit(True)).otherwise(F.col("_logged"))
    )
    cols = [
        "person_id",
        "_s",
        "_i",
        "event_type",
        "product_code",
        "_ts",
        "_logged",
        "_lead",
        "device_id",
        "device_id_2",
        "loan_apply_date",
    ]
    df = ev.select(*cols).unionByName(lead_events.select(*cols))
    df = df.filter(F.col("_ts") < F.lit(cfg.history.end + dt.timedelta(days=1)).cast("timestamp"))
    df = df.withColumn("event_id", ids.event_id_expr(seed, "app", "person_id", "_s", "_i"))
    device = F.when(
        F.col("device_id_2").isNotNull() & (rand.uniform(seed, "app:dev2", "event_id") < 0.3),
        F.col("device_id_2"),
    ).otherwise(F.col("device_id"))
    df = (
        df.withColumn("device_id", device)
        .withColumn("cust_no", F.when(F.col("_logged"), ids.cust_no_expr("person_id", 0)))
        .withColumn(
            "ts",
            (
                F.unix_timestamp("_ts") * 1000 + rand.randint(0, 999, seed, "app:ms", "event_id")
            ).cast("long"),
        )
    )
    df = _event_patterns_and_batch(
        df, cfg, spec, F.to_date("_ts"), {"loan_lead_up": F.col("_lead")}
    )
    out = df.select(
        "event_id",
        "device_id",
        "cust_no",
        "event_type",
        "product_code",
        "ts",
        "person_id",
        "batch",
        "malformed",
        "malformed_kind",
        "patterns",
    )
    return _finish(out, spec, int(cfg.persons * 20))


def build_bank_sources(persons: DataFrame, cfg: GeneratorSettings) -> list[GeneratedSource]:
    """All bank source tables for the given persons."""
    bank = persons.filter("is_bank")
    records = customer_records(bank, cfg)
    loans = loan_records(bank, cfg)
    accounts = account_records(records, loans, cfg)
    bank_main = records.filter(F.col("copy") == 0)
    return [
        build_customers(records, cfg),
        build_accounts(accounts, cfg),
        build_balances(accounts, cfg),
        build_transactions(accounts, loans, cfg),
        build_loans(loans, cfg),
        build_credit_bureau(bank, loans, cfg),
        build_app_events(bank_main, cfg),
    ]
