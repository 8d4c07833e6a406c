"""Comparisons, blocking and Fellegi–Sunter estimation on small inline data (real Spark)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from profilehouse.config import parse_model
from profilehouse.errors import ConfigError, SchemaError
from profilehouse.identity.blocking import candidate_pairs
from profilehouse.identity.comparisons import ComparisonSpec, gamma_sql, level_labels
from profilehouse.identity.fellegi_sunter import (
    estimate_u,
    expectation_maximisation,
    match_probability,
)
from profilehouse.identity.linker import LinkageSettings, prepared_records, score_pairs, train


def _gamma(spark: SparkSession, spec: ComparisonSpec, left, right, ddl: str) -> int:
    df = spark.createDataFrame([(left, right)], f"a {ddl}, b {ddl}").select(
        F.struct(F.col("a").alias(spec.column)).alias("l"),
        F.struct(F.col("b").alias(spec.column)).alias("r"),
    )
    return df.select(F.expr(gamma_sql(spec)).alias("g")).first()["g"]


NAME = ComparisonSpec(name="name", kind="string", column="v", thresholds=[1, 2])
DATE = ComparisonSpec(name="dob", kind="date", column="v")
EXACT = ComparisonSpec(name="city", kind="exact", column="v")


@pytest.mark.parametrize(
    ("description", "spec", "left", "right", "ddl", "expected"),
    [
        ("identical names", NAME, "王小明", "王小明", "string", "exact"),
        ("one character differs", NAME, "王小明", "王小名", "string", "levenshtein<=1"),
        ("two characters differ", NAME, "王小明", "王大名", "string", "levenshtein<=2"),
        ("unrelated names", NAME, "王小明", "李四", "string", "else"),
        ("null never agrees or disagrees", NAME, None, "王小明", "string", None),
        ("same date", DATE, dt.date(1990, 3, 4), dt.date(1990, 3, 4), "date", "exact"),
        (
            "day and month swapped",
            DATE,
            dt.date(1990, 3, 4),
            dt.date(1990, 4, 3),
            "date",
            "day_month_swapped",
        ),
        ("one digit off", DATE, dt.date(1990, 3, 4), dt.date(1990, 3, 14), "date", "one_digit_off"),
        ("other date", DATE, dt.date(1990, 3, 4), dt.date(1975, 11, 20), "date", "else"),
        ("exact city", EXACT, "上海", "上海", "string", "exact"),
        ("other city", EXACT, "上海", "北京", "string", "else"),
    ],
)
def test_comparison_levels(spark, description, spec, left, right, ddl, expected):
    gamma = _gamma(spark, spec, left, right, ddl)
    got = None if gamma == -1 else level_labels(spec)[gamma]
    assert got == expected, description


def test_comparison_spec_rejects_bad_thresholds():
    with pytest.raises(ConfigError) as err:
        parse_model(
            {
                "comparisons": [
                    {"name": "n", "kind": "string", "column": "n", "thresholds": [2, 1]}
                ],
                "blocking": [["n"]],
            },
            LinkageSettings,
            source="identity.yaml",
        )
    assert (
        "comparisons.0: Value error, thresholds must be ascending positive integers: [2, 1]"
        in str(err.value)
    )


def test_blocking_pairs_once_and_skips_oversize_blocks(spark):
    rows = [
        (1, "a", "x"),
        (2, "a", "x"),  # found by both rules: once, with rule 0
        (3, "a", "y"),
        (4, "b", "y"),
        (5, None, "y"),
        (10, "big", "p"),
        (11, "big", "q"),
        (12, "big", "r"),
    ]
    records = spark.createDataFrame(rows, "uid long, k1 string, k2 string")
    pairs, oversize = candidate_pairs(records, [["k1"], ["k2"]], max_block_size=3)
    expected = spark.createDataFrame(
        [
            *[(1, 2, 0), (1, 3, 0), (2, 3, 0), (3, 4, 1), (3, 5, 1), (4, 5, 1)],
            *[(10, 11, 0), (10, 12, 0), (11, 12, 0)],
        ],
        "uid_l long, uid_r long, rule int",
    )
    assert_df_equality(pairs, expected, ignore_row_order=True, ignore_nullable=True)
    assert oversize.collect() == []
    pairs, oversize = candidate_pairs(records, [["k1"], ["k2"]], max_block_size=2)
    # blocks k1='a' (3 records), k1='big' (3) and k2='y' (3) are too big: nothing pairs 3,4,5
    assert sorted((r["uid_l"], r["uid_r"]) for r in pairs.collect()) == [(1, 2)]
    assert sorted((r["rule"], r["key"], r["records"]) for r in oversize.collect()) == [
        (0, "a", 3),
        (0, "big", 3),
        (1, "y", 3),
    ]


def test_link_only_pairs_cross_datasets(spark):
    records = spark.createDataFrame(
        [(1, "a", "k"), (2, "a", "k"), (3, "b", "k")], "uid long, dataset string, key string"
    )
    pairs, _ = candidate_pairs(records, [["key"]], max_block_size=10, link_only=True)
    assert sorted((r["uid_l"], r["uid_r"]) for r in pairs.collect()) == [(1, 3), (2, 3)]


def _simulated_counts(m, u, prior, n, seed):
    """Pattern counts of n pairs drawn from known m/u (two comparisons)."""
    rng = random.Random(seed)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(n):
        probs = m if rng.random() < prior else u
        pattern = tuple(rng.choices(range(len(p)), weights=p)[0] for p in probs)
        counts[pattern] = counts.get(pattern, 0) + 1
    return counts


def test_em_recovers_known_parameters():
    specs = [
        ComparisonSpec(name="a", kind="string", column="a", thresholds=[1]),
        ComparisonSpec(name="b", kind="exact", column="b"),
        ComparisonSpec(name="c", kind="string", column="c", thresholds=[1]),
    ]
    m = [[0.05, 0.15, 0.80], [0.1, 0.9], [0.02, 0.18, 0.80]]
    u = [[0.90, 0.08, 0.02], [0.95, 0.05], [0.85, 0.10, 0.05]]
    randoms = _simulated_counts(m, u, 0.0, 50_000, seed=1)
    u_hat = estimate_u(randoms, specs)
    for got, want in zip(u_hat.values(), u, strict=True):
        assert got == pytest.approx(want, abs=0.01)
    candidates = _simulated_counts(m, u, 0.3, 50_000, seed=2)
    model = expectation_maximisation(candidates, specs, u_hat)
    assert model.prior == pytest.approx(0.3, abs=0.02)
    for spec, want in zip(specs, m, strict=True):
        assert model.m[spec.name] == pytest.approx(want, abs=0.03)


def test_match_probability_is_logistic_in_weight():
    assert match_probability(0.0) == 0.5
    assert match_probability(10) == pytest.approx(1024 / 1025)
    assert match_probability(-200) == 0.0


def _people(n: int, seed: int):
    """n persons, each as an original and a corrupted duplicate record."""
    rng = random.Random(seed)
    surnames = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"]
    given = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
    rows = []
    for pid in range(n):
        name = rng.choice(surnames) + "".join(rng.choice(given) for _ in range(2))
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
        city = rng.choice(["北京", "上海", "广州", "深圳", "成都"])
        rows.append((pid * 2, pid, name, born, city))
        typo = name[:-1] + rng.choice(given) if rng.random() < 0.3 else name
        dob = (
            born.replace(day=born.month, month=born.day)
            if born.day <= 12 and rng.random() < 0.2
            else born
        )
        rows.append((pid * 2 + 1, pid, typo, dob, city if rng.random() < 0.8 else None))
    return rows


SETTINGS = LinkageSettings.model_validate(
    {
        "derived": {"surname": "substring(name, 1, 1)"},
        "comparisons": [
            {
                "name": "name",
                "kind": "string",
                "column": "name",
                "thresholds": [1],
                "term_frequency": True,
            },
            {"name": "dob", "kind": "date", "column": "dob"},
            {"name": "city", "kind": "exact", "column": "city"},
        ],
        "blocking": [["name"], ["surname", "dob"], ["dob"]],
        "u_sample_pairs": 20_000,
        "match_threshold": 0.9,
    }
)


def test_linker_finds_planted_duplicates_without_labels(spark):
    rows = _people(400, seed=7)
    records = spark.createDataFrame(
        rows, "uid long, person long, name string, dob date, city string"
    )
    report = train(records, SETTINGS)
    assert 0.0 < report.model.prior < 0.5
    weights = report.model.to_dict()["comparisons"]["name"]["weights"]
    assert weights[-1] > weights[1] > weights[0]  # exact > one typo > else
    scored, _ = score_pairs(records, SETTINGS, report.model)
    truth = records.select("uid", "person")
    labelled = scored.join(truth.toDF("uid_l", "pl"), "uid_l").join(
        truth.toDF("uid_r", "pr"), "uid_r"
    )
    linked = labelled.where(F.col("match_probability") >= SETTINGS.match_threshold)
    true_links = linked.where("pl = pr").count()
    precision = true_links / max(linked.count(), 1)
    recall = true_links / 400
    assert precision >= 0.97, precision
    assert recall >= 0.95, recall


def test_missing_comparison_column_is_named(spark):
    records = spark.createDataFrame([(1, "a")], "uid long, name string")
    with pytest.raises(SchemaError) as err:
        prepared_records(records, SETTINGS)
    assert str(err.value) == (
        "comparison column(s) city, dob not in the records (present: uid, name, surname)"
    )


def test_settings_reject_duplicate_comparison_names():
    with pytest.raises(ConfigError) as err:
        parse_model(
            {
                "comparisons": [
                    {"name": "n", "kind": "exact", "column": "a"},
                    {"name": "n", "kind": "exact", "column": "b"},
                ],
                "blocking": [["a"]],
            },
            LinkageSettings,
            source="identity.yaml",
        )
    assert "comparison names must be unique, repeated: n" in str(err.value)


HAN = parse_model(
    {
        "simplified_chinese": ["name"],
        "homophone_keys": {"name_sound": "name"},
        "comparisons": [{"name": "name", "kind": "string", "column": "name", "thresholds": [1]}],
        "blocking": [["name_sound"]],
    },
    LinkageSettings,
    "han.yaml",
)


def test_traditional_and_homophone_names_block_together(spark):
    records = spark.createDataFrame(
        [(1, "張偉"), (2, "张伟"), (3, "张卫"), (4, "李娜")], "uid long, name string"
    )
    prepared = prepared_records(records, HAN)
    names = {r["uid"]: r["name"] for r in prepared.collect()}
    assert names[1] == names[2] == "张伟"
    pairs, _ = candidate_pairs(prepared, HAN.blocking, max_block_size=10)
    assert sorted((r["uid_l"], r["uid_r"]) for r in pairs.collect()) == [(1, 2), (1, 3), (2, 3)]


def test_homophone_key_of_a_missing_column_is_named(spark):
    records = spark.createDataFrame([(1, "x")], "uid long, full_name string")
    with pytest.raises(SchemaError, match="homophone_keys column\\(s\\) name not in the records"):
        prepared_records(records, HAN)
