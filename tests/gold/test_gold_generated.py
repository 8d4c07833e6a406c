"""The gold stage on the generator's SF 0.01 data (real Spark + Delta, the session's resolved
warehouse): the planted behaviours are found by the tags meant to find them, and KPIs equal an
independent computation that attributes silver rows to persons by the ground truth instead of
by identity resolution, features and tags."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from profilehouse import delta_io
from profilehouse.gold.features import snapshot_end
from profilehouse.gold.quality import PLANTED_SIGNALS
from profilehouse.gold.stage import GoldResult
from profilehouse.tables import silver_table
from profilehouse.truth import read_truth_records
from tests.conftest import Generated, Ingested


def test_every_planted_behaviour_is_found_by_its_tag(gold_made: GoldResult) -> None:
    report = gold_made.signals
    assert set(report) == {s.name for s in PLANTED_SIGNALS}
    for name, figures in report.items():
        assert figures["planted"] >= 15, (name, figures)  # enough to judge at SF 0.01
        assert figures["recall"] >= 0.9, (name, figures)
        assert figures["false_positive_rate"] <= 0.15, (name, figures)


def _silver(spark: SparkSession, ingested: Ingested, name: str) -> DataFrame:
    return delta_io.read_table(spark, silver_table(ingested.catalog, name))


def _customer_persons(spark: SparkSession, truth: str) -> DataFrame:
    """``(cust_no, person_id)`` from the ground truth of the bank's customer records."""
    records = read_truth_records(spark, truth)
    return records.where(F.col("source") == "bank.customers").select(
        F.col("record_key").alias("cust_no"), "person_id"
    )


def _open_on(day: dt.date) -> F.Column:
    return (F.col("open_date") <= F.lit(day)) & (
        F.col("close_date").isNull() | (F.col("close_date") > F.lit(day))
    )


@pytest.fixture(scope="module")
def truth_bank_kpis(spark: SparkSession, generated: Generated, ingested: Ingested, gold_made):
    """Deposit, loan and deposit-and-loan persons at the snapshot date, by the ground truth."""
    day = gold_made.snapshot_date
    persons = _customer_persons(spark, generated.truth)
    accounts = _silver(spark, ingested, "bank_accounts").where(_open_on(day))
    deposit = (
        accounts.where(F.col("product_type").isin("CURRENT", "TIME_DEPOSIT"))
        .join(persons, "cust_no")
        .select("person_id")
        .distinct()
    )
    loan_accounts = accounts.where(F.col("product_type") == "LOAN").select("cust_no")
    loans = _silver(spark, ingested, "bank_loans")
    active = loans.where(
        (F.col("status") == "ACTIVE") & (F.col("apply_date") < F.lit(snapshot_end(day)))
    ).select("cust_no")
    loan = loan_accounts.union(active).join(persons, "cust_no").select("person_id").distinct()
    return {
        "deposit_customers": deposit.count(),
        "loan_customers": loan.count(),
        "deposit_and_loan_customers": deposit.intersect(loan).count(),
    }


@pytest.mark.parametrize(
    "kpi", ["deposit_customers", "loan_customers", "deposit_and_loan_customers"]
)
def test_bank_kpis_match_the_ground_truth(gold_made: GoldResult, truth_bank_kpis, kpi) -> None:
    expected = truth_bank_kpis[kpi]
    got = gold_made.kpis[kpi].value
    assert expected > 10
    # a person whose two customer numbers identity left apart counts twice: allow 3 %
    assert abs(got - expected) <= max(2, 0.03 * expected), (kpi, got, expected)


def test_average_order_value_matches_the_silver_orders(
    spark: SparkSession, ingested: Ingested, gold_made: GoldResult
) -> None:
    """客单价 over 365 days = spend / orders of every paid online order and every receipt of a
    known customer (a member card or a valid mobile on it; an anonymous receipt is nobody's) in
    the window, whoever the customer is: a receipt's spend is its lines' (qty × price −
    discount)."""
    end = snapshot_end(gold_made.snapshot_date)
    in_window = (F.col("ts") >= F.lit(end - dt.timedelta(days=365))) & (F.col("ts") < F.lit(end))
    pos = (
        _silver(spark, ingested, "retail_pos_lines")
        .where(
            in_window & (F.col("member_id").isNotNull() | F.coalesce("mobile_valid", F.lit(False)))
        )
        .agg(
            F.countDistinct("receipt_id").alias("orders"),
            F.sum(F.col("qty") * F.col("unit_price") - F.coalesce("discount", F.lit(0))).alias(
                "spend"
            ),
        )
        .first()
    )
    ecom = (
        _silver(spark, ingested, "retail_ecom_orders")
        .where(in_window & (F.col("status") == "PAID"))
        .agg(F.count("*").alias("orders"), F.sum("amount").alias("spend"))
        .first()
    )
    expected = float(pos["spend"] + ecom["spend"]) / (pos["orders"] + ecom["orders"])
    assert gold_made.kpis["avg_order_value_365d"].value == pytest.approx(expected, rel=1e-6)


def test_the_run_reports_its_seconds_by_step(gold_made: GoldResult) -> None:
    steps = gold_made.figures["seconds_by_step"]
    assert list(steps)[:4] == ["inputs", "features", "tags", "long_tags"]
    assert {"tag_catalog", "kpis", "planted_signals"} <= set(steps)
    assert all(seconds >= 0 for seconds in steps.values())
    assert sum(steps.values()) <= gold_made.seconds + 0.1 * len(steps)
