"""Tags against a ground truth (demo and test runs): are the planted behaviours found?

The generator plants behaviours on known persons (holiday shoppers, churners, stored-value
hoarders; see ``<truth>/persons``). Each planted signal names the tag meant to find it; the
report gives, per signal, the recall among the planted persons and the false-positive rate
among the other persons of the same base (e.g. retail members for holiday shoppers).

A person is judged by their *main* master ID: the one holding most of their records with a
clear key (customer numbers, member numbers, orders, receipts); a person with none counts as
not found. A behaviour only shows over enough activity: a signal's base may ask for a number
of orders in the truth (``truth_orders``, whatever identity made of them); ``recall_all`` is
taken over every planted person. A production run has no ground truth: :func:`no_truth_report`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from profilehouse.gold.features import MASTER_ID

# truth source → identity record source, for sources whose record key is the truth key as is
# (receipt lines share their receipt's record, the part of the truth key before '#')
CLEAR_KEY_SOURCES = {
    "bank.customers": "bank_customers",
    "bank.loans": "bank_loans",
    "retail.members": "retail_members",
    "retail.ecom_orders": "retail_ecom_orders",
    "retail.pos_lines": "retail_pos_lines",
}


@dataclass(frozen=True)
class PlantedSignal:
    """A behaviour the generator plants, and the tag condition meant to find it."""

    name: str
    planted: str  # SQL over the truth persons: who carries the behaviour
    base: str  # SQL over the truth persons (and truth_orders): the population judged
    found: str  # SQL over the wide tags: the tag says so


PLANTED_SIGNALS = (
    # a share of orders near festivals shows only over a few orders: a member who bought
    # twice in 18 months is a holiday shopper nobody can tell from the data
    PlantedSignal(
        "holiday_shoppers",
        "persona = 'HOLIDAY_SHOPPER'",
        "is_retail AND truth_orders >= 5",
        "holiday_shopper",
    ),
    # the DORMANT persona is quiet from the start: 沉睡 is right for them, neither found
    # nor false, so they are outside the base
    PlantedSignal(
        "churners",
        "churner",
        "(is_bank OR is_retail) AND persona <> 'DORMANT'",
        "lifecycle_stage IN ('沉睡', '流失预警', '流失')",
    ),
    PlantedSignal(
        "stored_value_hoarders",
        "stored_value_hoarder",
        "has_stored_value",
        "stored_value_hoarder",
    ),
)


def main_masters(members: DataFrame, truth_records: DataFrame) -> DataFrame:
    """``(person_id, master_id)``: each person's master holding most of their clear-key records
    (ties: the smallest master ID)."""
    source = F.try_element_at(
        F.create_map(*[F.lit(x) for kv in CLEAR_KEY_SOURCES.items() for x in kv]),
        F.col("source"),
    )
    keys = truth_records.where(source.isNotNull()).select(
        F.concat(source, F.lit("|"), F.split("record_key", "#").getItem(0)).alias("record_id"),
        "person_id",
    )
    counts = (
        members.select("record_id", MASTER_ID)
        .join(keys.distinct(), "record_id")
        .groupBy("person_id", MASTER_ID)
        .count()
    )
    first = Window.partitionBy("person_id").orderBy(F.desc("count"), MASTER_ID)
    return (
        counts.withColumn("rank", F.row_number().over(first))
        .where("rank = 1")
        .select("person_id", MASTER_ID)
    )


def truth_orders(truth_records: DataFrame) -> DataFrame:
    """``(person_id, truth_orders)``: each person's store receipts and online orders as the
    ground truth has them (whether or not identity resolution attached them to the person)."""
    orders = truth_records.where(F.col("source").isin("retail.pos_lines", "retail.ecom_orders"))
    return (
        orders.select("person_id", "source", F.split("record_key", "#").getItem(0).alias("key"))
        .distinct()
        .groupBy("person_id")
        .agg(F.count("*").alias("truth_orders"))
    )


def signal_report(
    persons: DataFrame,
    masters: DataFrame,
    wide: DataFrame,
    orders: DataFrame,
    signals: tuple[PlantedSignal, ...] = PLANTED_SIGNALS,
) -> dict[str, dict[str, float | int | None]]:
    """Per signal: planted persons of the base, how many the tag finds (recall), the other
    persons of the base and how many the tag wrongly finds (false-positive rate), and all the
    planted persons with how many of them the tag finds (``recall_all``: the ones too quiet to
    show the behaviour included). ``orders``: :func:`truth_orders`. One aggregate for all."""
    persons = persons.join(orders, "person_id", "left").fillna(0, ["truth_orders"])

    def flag(sql: str) -> F.Column:
        return F.coalesce(F.expr(sql), F.lit(False))

    # flags computed on each side first: truth and tags may share column names
    truth = persons.select(
        "person_id",
        *[flag(s.base).alias(f"{s.name}__base") for s in signals],
        *[flag(s.planted).alias(f"{s.name}__is") for s in signals],
    )
    # every planted person, attached to a master or not (recall_all)
    everyone = truth.join(masters, "person_id", "left")
    tagged = wide.select(MASTER_ID, *[flag(s.found).alias(f"{s.name}__tag") for s in signals])
    judged = everyone.join(tagged, MASTER_ID, "left")
    aggregates = []
    for s in signals:
        base, planted = F.col(f"{s.name}__base"), F.col(f"{s.name}__is")
        found = F.coalesce(F.col(f"{s.name}__tag"), F.lit(False))
        aggregates += [
            F.count_if(planted).alias(f"{s.name}__all"),
            F.count_if(planted & found).alias(f"{s.name}__all_found"),
            F.count_if(base & planted).alias(f"{s.name}__planted"),
            F.count_if(base & planted & found).alias(f"{s.name}__found"),
            F.count_if(base & ~planted).alias(f"{s.name}__others"),
            F.count_if(base & ~planted & found).alias(f"{s.name}__false"),
        ]
    row = judged.agg(*aggregates).first()
    report: dict[str, dict[str, float | int]] = {}
    for s in signals:
        planted, found = row[f"{s.name}__planted"], row[f"{s.name}__found"]
        others, false = row[f"{s.name}__others"], row[f"{s.name}__false"]
        report[s.name] = {
            "planted": planted,
            "found": found,
            "recall": round(found / planted, 4) if planted else None,
            "others": others,
            "false_positives": false,
            "false_positive_rate": round(false / others, 4) if others else None,
            "planted_all": row[f"{s.name}__all"],
            "recall_all": round(row[f"{s.name}__all_found"] / row[f"{s.name}__all"], 4)
            if row[f"{s.name}__all"]
            else None,
        }
    return report


def no_truth_report() -> dict[str, str]:
    """What a run without a ground truth (a production run) reports instead."""
    return {"ground_truth": "none"}
