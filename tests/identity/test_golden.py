"""Tests of golden records (survivorship) on small inline data with a real Spark session."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest
from chispa import assert_df_equality
from pydantic import ValidationError
from pyspark.sql import DataFrame, SparkSession

from profilehouse.config import StrictModel, parse_model
from profilehouse.errors import ConfigError, SchemaError
from profilehouse.identity.golden import (
    SurvivorshipRule,
    build_golden_records,
    golden_record_columns,
)

SCHEMA = "master_id string, source string, updated_at timestamp, v string, v_valid boolean"
OUT_SCHEMA = "master_id string, v string, v_source string"

Rule = SurvivorshipRule


def day(n: int | None) -> dt.datetime | None:
    """A timestamp on day ``n`` of January 2024; None stays None."""
    return None if n is None else dt.datetime(2024, 1, n, 12)


def members(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """Members of SCHEMA from ``(master_id, source, day, v[, v_valid])`` rows (valid by default)."""
    full = [(m, s, day(d), v, *(rest or (True,))) for m, s, d, v, *rest in rows]
    return spark.createDataFrame(full, SCHEMA)


def golden_v(spark: SparkSession, rows: list[tuple], rule: SurvivorshipRule) -> DataFrame:
    """Golden ``v`` and ``v_source`` per master for ``rows`` under ``rule``."""
    return build_golden_records(members(spark, rows), {"v": rule}).select(
        "master_id", "v", "v_source"
    )


def expected_v(
    spark: SparkSession, expected: dict[str, tuple[str | None, str | None]]
) -> DataFrame:
    return spark.createDataFrame([(m, v, s) for m, (v, s) in expected.items()], OUT_SCHEMA)


# --- each strategy and its tie-breaks ------------------------------------------------------------

STRATEGY_CASES = [
    pytest.param(
        Rule(strategy="source_priority", sources=["crm", "app"]),
        [
            ("preferred", "app", 3, "A"),
            ("preferred", "crm", 1, "B"),
            ("preferred", "pos", 5, "C"),
            # pos and web are both unlisted: they tie, the more recent wins; null crm never wins
            ("unlisted", "pos", 1, "P"),
            ("unlisted", "web", 2, "W"),
            ("unlisted", "crm", 9, None),
            ("recent", "crm", 1, "A"),
            ("recent", "crm", 2, "B"),
            ("recent", "app", 3, "C"),
            # recency decides before frequency: B is more frequent, A more recent
            ("recent_over_frequent", "crm", 2, "A"),
            ("recent_over_frequent", "crm", 1, "B"),
            ("recent_over_frequent", "app", 5, "B"),
            # same source and time: B is more frequent (the pos row counts too)
            ("frequent", "crm", 1, "A"),
            ("frequent", "crm", 1, "B"),
            ("frequent", "pos", 9, "B"),
            ("value", "crm", 1, "A"),
            ("value", "crm", 1, "B"),
            ("null_ts", "crm", None, "A"),
            ("null_ts", "crm", 1, "B"),
        ],
        {
            "preferred": ("B", "crm"),
            "unlisted": ("W", "web"),
            "recent": ("B", "crm"),
            "recent_over_frequent": ("A", "crm"),
            "frequent": ("B", "crm"),
            "value": ("B", "crm"),
            "null_ts": ("B", "crm"),
        },
        id="source_priority",
    ),
    pytest.param(
        Rule(strategy="most_recent"),
        [
            ("recent", "app", 1, "A"),
            ("recent", "crm", 2, "B"),
            ("recent", "pos", None, "C"),
            ("value", "crm", 2, "A"),
            ("value", "pos", 2, "B"),
            ("all_null_ts", "a", None, "X"),
            ("all_null_ts", "b", None, "Y"),
            ("same_value", "crm", 2, "A"),
            ("same_value", "pos", 2, "A"),
        ],
        {
            "recent": ("B", "crm"),
            "value": ("B", "pos"),
            "all_null_ts": ("Y", "b"),
            "same_value": ("A", "pos"),
        },
        id="most_recent",
    ),
    pytest.param(
        Rule(strategy="most_recent", sources=["pos", "crm"]),
        [
            ("source_tie", "crm", 2, "A"),
            ("source_tie", "pos", 2, "B"),
            ("source_tie", "app", 1, "C"),
            ("source_over_value", "crm", 2, "Z"),
            ("source_over_value", "pos", 2, "A"),
            ("recent_over_source", "pos", 1, "A"),
            ("recent_over_source", "web", 2, "B"),
        ],
        {
            "source_tie": ("B", "pos"),
            "source_over_value": ("A", "pos"),
            "recent_over_source": ("B", "web"),
        },
        id="most_recent_with_sources",
    ),
    pytest.param(
        Rule(strategy="most_frequent"),
        [
            ("frequent", "a", 2, "X"),
            ("frequent", "b", 1, "X"),
            ("frequent", "c", 3, "Y"),
            ("recent_occurrence", "a", 1, "X"),
            ("recent_occurrence", "b", 3, "Y"),
            ("recent_occurrence", "c", 2, "X"),
            ("recent_occurrence", "d", 1, "Y"),
            ("value", "a", 1, "X"),
            ("value", "b", 1, "Y"),
            ("null_ts", "a", None, "X"),
            ("null_ts", "b", None, "X"),
            ("null_ts", "c", 1, "Y"),
        ],
        {
            "frequent": ("X", "a"),
            "recent_occurrence": ("Y", "b"),
            "value": ("Y", "b"),
            "null_ts": ("X", "b"),
        },
        id="most_frequent",
    ),
]


@pytest.mark.parametrize(("rule", "rows", "expected"), STRATEGY_CASES)
def test_strategy_picks_expected_value_and_source(
    spark: SparkSession, rule: SurvivorshipRule, rows: list[tuple], expected: dict
) -> None:
    assert_df_equality(
        golden_v(spark, rows, rule),
        expected_v(spark, expected),
        ignore_row_order=True,
        ignore_nullable=True,
    )


# --- missing values and validity -----------------------------------------------------------------

BLANK_ROWS = [
    ("blank", "crm", 9, "   "),
    ("blank", "web", 9, "   "),
    ("blank", "crm", 8, None),
    ("blank", "pos", 9, "\t\u3000\u00a0"),
    ("blank", "pos", 8, ""),
    ("blank", "app", 1, "A"),
    ("nothing", "crm", 1, None),
    ("nothing", "app", 2, " "),
]


@pytest.mark.parametrize(
    "rule",
    [
        Rule(strategy="source_priority", sources=["crm", "pos", "web", "app"]),
        Rule(strategy="most_recent", sources=["crm", "pos"]),
        Rule(strategy="most_frequent"),
    ],
    ids=lambda r: r.strategy,
)
def test_null_and_blank_values_never_win(spark: SparkSession, rule: SurvivorshipRule) -> None:
    assert_df_equality(
        golden_v(spark, BLANK_ROWS, rule),
        expected_v(spark, {"blank": ("A", "app"), "nothing": (None, None)}),
        ignore_row_order=True,
        ignore_nullable=True,
    )


VALIDITY_ROWS = [
    ("m1", "crm", 3, "A", False),
    ("m1", "app", 2, "B", True),
    ("m1", "pos", 4, "C", None),
    ("m2", "crm", 1, "A", False),
    ("m2", "app", 2, "B", None),
    ("m3", "a", 2, "X", False),
    ("m3", "b", 2, "X", False),
    ("m3", "c", 1, "Y", True),
]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param(
            Rule(strategy="most_recent", valid_only=True),
            {"m1": ("B", "app"), "m2": (None, None), "m3": ("Y", "c")},
            id="most_recent-valid_only",
        ),
        pytest.param(
            Rule(strategy="most_recent"),
            {"m1": ("C", "pos"), "m2": ("B", "app"), "m3": ("X", "b")},
            id="most_recent-all",
        ),
        pytest.param(
            Rule(strategy="most_frequent", valid_only=True),
            {"m1": ("B", "app"), "m2": (None, None), "m3": ("Y", "c")},
            id="most_frequent-valid_only",
        ),
        pytest.param(
            Rule(strategy="most_frequent"),
            {"m1": ("C", "pos"), "m2": ("B", "app"), "m3": ("X", "b")},
            id="most_frequent-all",
        ),
    ],
)
def test_valid_only_skips_invalid_values(
    spark: SparkSession, rule: SurvivorshipRule, expected: dict
) -> None:
    assert_df_equality(
        golden_v(spark, VALIDITY_ROWS, rule),
        expected_v(spark, expected),
        ignore_row_order=True,
        ignore_nullable=True,
    )


# --- whole output: several attributes of different types ----------------------------------------


def test_golden_records_over_typed_attributes(spark: SparkSession) -> None:
    schema = (
        "master_id string, source string, updated_at timestamp, name string, "
        "birth_date date, balance decimal(12,2), balance_valid boolean"
    )
    d = dt.date
    rows = [
        ("m1", "crm", day(1), "Li Wei", d(1990, 5, 1), Decimal("10.00"), True),
        ("m1", "app", day(3), "li wei", d(1990, 5, 1), Decimal("30.00"), False),
        ("m1", "pos", day(2), None, d(1990, 1, 5), Decimal("20.00"), True),
        ("m2", "app", day(1), "Wang Fang", None, None, True),
        ("m2", "web", None, "  ", d(1985, 2, 2), Decimal("5.50"), True),
        ("m3", "pos", day(1), None, None, Decimal("1.00"), False),
    ]
    rules = {
        "name": Rule(strategy="source_priority", sources=["crm", "app"]),
        "birth_date": Rule(strategy="most_frequent"),
        "balance": Rule(strategy="most_recent", valid_only=True),
    }
    actual = build_golden_records(spark.createDataFrame(rows, schema), rules)

    expected = spark.createDataFrame(
        [
            ("m1", "Li Wei", "crm", d(1990, 5, 1), "app", Decimal("20.00"), "pos", 3),
            ("m2", "Wang Fang", "app", d(1985, 2, 2), "web", Decimal("5.50"), "web", 2),
            ("m3", None, None, None, None, None, None, 1),
        ],
        "master_id string, name string, name_source string, birth_date date, "
        "birth_date_source string, balance decimal(12,2), balance_source string, "
        "record_count long",
    )
    assert actual.columns == golden_record_columns(rules)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_golden_record_columns_in_rule_order() -> None:
    rules = {"mobile": Rule(strategy="most_recent"), "city": Rule(strategy="most_frequent")}
    assert golden_record_columns(rules) == [
        "master_id",
        "mobile",
        "mobile_source",
        "city",
        "city_source",
        "record_count",
    ]


# --- determinism against a reference implementation ---------------------------------------------

TIE_RULES = {
    "a": Rule(strategy="source_priority", sources=["crm", "app"]),
    "b": Rule(strategy="most_recent", sources=["pos"], valid_only=True),
    "c": Rule(strategy="most_frequent"),
}
TIE_SCHEMA = (
    "master_id string, source string, updated_at timestamp, a string, b string, b_valid boolean, "
    "c string"
)


def tie_heavy_rows(seed: int = 7) -> list[dict[str, Any]]:
    """Rows drawn from tiny domains so that every tie-break is exercised."""
    rnd = random.Random(seed)
    values = ["A", "B", "C", " ", None]
    return [
        {
            "master_id": f"m{m}",
            "source": rnd.choice(["crm", "app", "pos", "web"]),
            "updated_at": day(rnd.choice([1, 2, None])),
            "a": rnd.choice(values),
            "b": rnd.choice(values),
            "b_valid": rnd.choice([True, False, None]),
            "c": rnd.choice(values),
        }
        for m in range(6)
        for _ in range(20)
    ]


def reference_golden(rows: list[dict[str, Any]], rules: dict[str, SurvivorshipRule]) -> list:
    """Golden records computed row by row in Python, straight from the documented precedence."""
    by_master: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_master[row["master_id"]].append(row)
    out = []
    for master, group in by_master.items():
        record: list[Any] = [master]
        for attr, rule in rules.items():
            candidates = [
                r
                for r in group
                if r[attr] is not None
                and r[attr].strip()
                and (r.get(f"{attr}_valid") or not rule.valid_only)
            ]
            frequency = Counter(r[attr] for r in candidates)
            best = max(
                candidates,
                key=lambda r, rule=rule, attr=attr, freq=frequency: (
                    *reference_keys(rule, r, freq[r[attr]]),
                    r[attr],
                    r["source"],
                ),
                default=None,
            )
            record += [best[attr], best["source"]] if best else [None, None]
        out.append((*record, len(group)))
    return out


def reference_keys(rule: SurvivorshipRule, row: dict[str, Any], frequency: int) -> tuple:
    preference = (
        len(rule.sources) - rule.sources.index(row["source"])
        if row["source"] in rule.sources
        else 0
    )
    recency = (row["updated_at"] is not None, row["updated_at"] or dt.datetime.min)
    if rule.strategy == "source_priority":
        return (preference, recency, frequency)
    if rule.strategy == "most_recent":
        return (recency, preference)
    return (frequency, recency)


def test_ties_are_broken_deterministically(spark: SparkSession) -> None:
    rows = tie_heavy_rows()
    fields = ["master_id", "source", "updated_at", "a", "b", "b_valid", "c"]
    results = []
    for seed, partitions in ((1, 1), (2, 3)):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        df = spark.createDataFrame([tuple(r[f] for f in fields) for r in shuffled], TIE_SCHEMA)
        results.append(build_golden_records(df.repartition(partitions), TIE_RULES))

    expected = spark.createDataFrame(
        reference_golden(rows, TIE_RULES),
        "master_id string, a string, a_source string, b string, b_source string, "
        "c string, c_source string, record_count long",
    )
    assert_df_equality(results[0], results[1], ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(results[0], expected, ignore_row_order=True, ignore_nullable=True)


# --- schema and config errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "rules", "message"),
    [
        pytest.param(
            "master_id string, source string, updated_at timestamp, name string",
            {
                "name": Rule(strategy="most_recent"),
                "email": Rule(strategy="most_recent", valid_only=True),
                "phone": Rule(strategy="most_frequent"),
            },
            "golden records: members lack column(s) email, phone, email_valid "
            "(columns present: master_id, source, updated_at, name)",
            id="missing-attributes",
        ),
        pytest.param(
            "master_id string, name string",
            {"name": Rule(strategy="most_recent")},
            "golden records: members lack column(s) source, updated_at "
            "(columns present: master_id, name)",
            id="missing-keys",
        ),
        pytest.param(
            "master_id string, source string, updated_at timestamp, name string, name_valid string",
            {"name": Rule(strategy="most_recent", valid_only=True)},
            "golden records: validity column name_valid must be boolean, is string",
            id="validity-not-boolean",
        ),
        pytest.param(
            "master_id string, source string, updated_at timestamp, city string, city_source string",
            {"city": Rule(strategy="most_recent"), "city_source": Rule(strategy="most_recent")},
            "golden records: attribute names give duplicate output column(s) city_source",
            id="output-clash",
        ),
    ],
)
def test_schema_errors_name_the_problem(
    spark: SparkSession, schema: str, rules: dict[str, SurvivorshipRule], message: str
) -> None:
    empty = spark.createDataFrame([], schema)
    with pytest.raises(SchemaError) as excinfo:
        build_golden_records(empty, rules)
    assert str(excinfo.value) == message


class IdentityConf(StrictModel):
    """A stand-in for the identity config file: attribute → rule."""

    survivorship: dict[str, SurvivorshipRule]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        pytest.param(
            {"strategy": "source_priority"},
            "survivorship.email: Value error, strategy source_priority needs a non-empty "
            "'sources' list (source names in order of preference) "
            "(got {'strategy': 'source_priority'})",
            id="no-sources",
        ),
        pytest.param(
            {"strategy": "source_priority", "sources": []},
            "survivorship.email: Value error, strategy source_priority needs a non-empty "
            "'sources' list (source names in order of preference) "
            "(got {'strategy': 'source_priority', 'sources': []})",
            id="empty-sources",
        ),
        pytest.param(
            {"strategy": "most_recent", "valid": True},
            "survivorship.email.valid: unknown key (allowed: sources, strategy, valid_only)",
            id="unknown-key",
        ),
    ],
)
def test_rule_config_errors_name_the_key(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_model({"survivorship": {"email": rule}}, IdentityConf, source="identity.yaml")
    assert excinfo.value.problems == [problem]


def test_source_priority_rule_requires_sources() -> None:
    with pytest.raises(ValidationError, match="source_priority needs a non-empty 'sources'"):
        SurvivorshipRule(strategy="source_priority")
    assert SurvivorshipRule(strategy="most_frequent").sources == []
