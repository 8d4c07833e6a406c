"""Segmentation (K-means, silhouette, stable names), RFM tiers, the adjusted Rand index, config.

Segments are checked on planted groups (numpy, fixed seed) over features of very different
scales with nulls; expectations are computed from the planted data with numpy, not by the
module's own code path. ARI against hand-computed contingency tables.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from profilehouse.errors import ConfigError, SchemaError
from profilehouse.gold.feature_config import load_feature_config
from profilehouse.models.segments import (
    RfmTierSettings,
    SegmentationModel,
    SegmentationSettings,
    adjusted_rand_index,
    assign_rfm_tiers,
    assign_segments,
    load_rfm_tier_settings,
    load_segmentation_settings,
    segment_names,
    segment_summary,
    silhouette_curve,
    train_rfm_tiers,
    train_segmentation,
)

SEED = 20240601

# planted groups: size, then the typical app events, AUM, transactions, amount per transaction,
# tenure in years. The fourth group differs from the population only by its long tenure.
GROUPS = {
    "digital": (260, 300.0, 22_000.0, 20.0, 150.0, 3.0),
    "asset": (220, 3.0, 440_000.0, 3.0, 3_000.0, 8.0),
    "small": (180, 30.0, 5_000.0, 120.0, 30.0, 4.0),
    "loyal": (140, 30.0, 36_000.0, 20.0, 250.0, 15.0),
}
FESTIVAL_NULL_SHARE = 0.03  # filled with fill_null: 0, a mode too small to be a segment
AMOUNT_NULL_SHARE = 0.08  # filled with the feature's own fill
AMOUNT_FILL = 150.0
K_RANGE = (2, 5)

SETTINGS = {
    "features": {
        "app_events": {"name_zh": "App活跃度", "name_en": "app activity", "transform": "log1p"},
        "aum": {"name_zh": "资产规模", "name_en": "assets", "transform": "log1p"},
        "txn_count": {"name_zh": "交易频次", "name_en": "transactions", "transform": "log1p"},
        "avg_amount": {
            "name_zh": "笔均金额",
            "name_en": "amount per transaction",
            "transform": "log1p",
            "fill": AMOUNT_FILL,
        },
        "festival_share": {"name_zh": "节庆占比", "name_en": "festival share"},
        "tenure_years": {"name_zh": "客龄", "name_en": "tenure"},
    },
    "k": {"min": K_RANGE[0], "max": K_RANGE[1]},
    "seed": 7,
    "min_segment_share": 0.05,
    "rules": [
        {
            "name_zh": "高资产保守型",
            "name_en": "high-asset conservative",
            "when": {"aum": "high", "app_events": "low"},
        },
        {"name_zh": "数字活跃型", "name_en": "digital active", "when": {"app_events": "high"}},
        {
            "name_zh": "高频小额用户",
            "name_en": "high-frequency small-ticket",
            "when": {"txn_count": "high", "avg_amount": "low"},
        },
        {
            "name_zh": "节庆型消费人群",
            "name_en": "holiday shoppers",
            "when": {"festival_share": "high"},
        },
    ],
    "kpis": ["spend_kpi", "aum"],
}
FEATURES = list(SETTINGS["features"])


def _planted_rows(seed: int = SEED) -> list[dict]:
    """One row per customer: master_id, persona, the six features (some null), spend_kpi."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, (name, (size, app, aum, txn, amount, tenure)) in enumerate(GROUPS.items()):

        def around(mean: float, sigma: float, n: int = size) -> np.ndarray:
            return mean * np.exp(rng.normal(0.0, sigma, n))

        columns = {
            "app_events": np.round(around(app, 0.25)).astype(int),
            "aum": np.round(around(aum, 0.3), 2),
            "txn_count": np.round(around(txn, 0.25)).astype(int),
            "avg_amount": np.round(around(amount, 0.25), 2),
            "festival_share": rng.beta(8, 72, size),
            "tenure_years": rng.normal(tenure, 1.0, size),
            "spend_kpi": rng.normal(1000.0 * (g + 1), 100.0, size),
        }
        festival_null = rng.random(size) < FESTIVAL_NULL_SHARE
        amount_null = rng.random(size) < AMOUNT_NULL_SHARE
        kpi_null = rng.random(size) < 0.2
        for i in range(size):
            rows.append(
                {
                    "master_id": f"M{g}{i:04d}",
                    "persona": name,
                    "app_events": int(columns["app_events"][i]),
                    "aum": float(columns["aum"][i]),
                    "txn_count": int(columns["txn_count"][i]),
                    "avg_amount": None if amount_null[i] else float(columns["avg_amount"][i]),
                    "festival_share": None
                    if festival_null[i]
                    else float(columns["festival_share"][i]),
                    "tenure_years": float(columns["tenure_years"][i]),
                    "spend_kpi": None if kpi_null[i] else float(columns["spend_kpi"][i]),
                }
            )
    return rows


SCHEMA = (
    "master_id string, persona string, app_events bigint, aum double, txn_count bigint, "
    "avg_amount double, festival_share double, tenure_years double, spend_kpi double"
)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _planted_rows()


@pytest.fixture(scope="module")
def features(spark: SparkSession, rows: list[dict]) -> DataFrame:
    return spark.createDataFrame([tuple(r.values()) for r in rows], SCHEMA)


@pytest.fixture(scope="module")
def settings() -> SegmentationSettings:
    return SegmentationSettings.model_validate(SETTINGS)


@pytest.fixture(scope="module")
def model(features: DataFrame, settings: SegmentationSettings) -> SegmentationModel:
    return train_segmentation(features, settings)


@pytest.fixture(scope="module")
def assigned(model: SegmentationModel, features: DataFrame) -> DataFrame:
    return assign_segments(model, features)


@pytest.fixture(scope="module")
def segment_of(assigned: DataFrame) -> dict[str, int]:
    """master_id → segment_id (800 rows: small enough for the test to collect)."""
    return {r["master_id"]: r["segment_id"] for r in assigned.collect()}


def _persona_segment(rows: list[dict], segment_of: dict[str, int]) -> dict[str, int]:
    """Each planted persona's most common segment."""
    votes: dict[str, Counter[int]] = {}
    for row in rows:
        votes.setdefault(row["persona"], Counter())[segment_of[row["master_id"]]] += 1
    return {persona: c.most_common(1)[0][0] for persona, c in votes.items()}


def _members(rows: list[dict], segment_of: dict[str, int], segment_id: int) -> list[dict]:
    return [r for r in rows if segment_of[r["master_id"]] == segment_id]


# ---------------------------------------------------------------------------------------------
# training: planted groups recovered, k chosen by silhouette
# ---------------------------------------------------------------------------------------------


def test_planted_groups_are_recovered(
    model: SegmentationModel, features: DataFrame, assigned: DataFrame
) -> None:
    joined = assigned.join(features.select("master_id", "persona"), "master_id")
    assert adjusted_rand_index(joined, "persona", "segment_id") >= 0.9
    assert model.k == len(GROUPS)


def test_silhouette_curve_has_every_k_and_peaks_at_the_planted_k(model: SegmentationModel) -> None:
    curve = silhouette_curve(model)
    assert [k for k, _, _ in curve] == list(range(K_RANGE[0], K_RANGE[1] + 1))
    best_k = max(curve, key=lambda point: point[1])[0]
    assert best_k == len(GROUPS)
    assert all(-1.0 <= s <= 1.0 and cost > 0 for _, s, cost in curve)
    costs = [cost for _, _, cost in curve]
    assert costs[len(GROUPS) - K_RANGE[0]] < costs[0]


def test_segment_ids_follow_size(model: SegmentationModel, rows: list[dict]) -> None:
    sizes = [size for size, *_ in GROUPS.values()]
    assert [s.customers for s in model.segments] == sorted(sizes, reverse=True)
    assert [s.segment_id for s in model.segments] == [1, 2, 3, 4]
    assert sum(s.share for s in model.segments) == pytest.approx(1.0)


def test_assignment_has_one_row_per_customer_with_distance(
    assigned: DataFrame, rows: list[dict]
) -> None:
    assert assigned.columns == [
        "master_id",
        "segment_id",
        "segment_name",
        "segment_name_en",
        "distance",
    ]
    got = assigned.collect()
    assert len(got) == len(rows)
    assert all(r["distance"] >= 0 and r["segment_name"] for r in got)


def test_distance_is_euclidean_in_z_scores(
    model: SegmentationModel, rows: list[dict], assigned: DataFrame
) -> None:
    z = _standardised(rows)
    by_id = {r["master_id"]: r for r in assigned.collect()}
    for i in (0, 300, 700):
        row = by_id[rows[i]["master_id"]]
        centre = np.array([model.segment(row["segment_id"]).z_scores[f] for f in FEATURES])
        assert row["distance"] == pytest.approx(float(np.linalg.norm(z[i] - centre)), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# stable ids and names
# ---------------------------------------------------------------------------------------------


def _only_planted_k(settings: SegmentationSettings) -> SegmentationSettings:
    """The settings trying only k = 4: each k's fit does not depend on the others (same seed),
    so a re-run reproduces the first run's chosen model at a quarter of the cost."""
    k = len(GROUPS)
    return settings.model_copy(update={"k": settings.k.model_copy(update={"min": k, "max": k})})


def test_rerun_gives_identical_ids_and_names(
    features: DataFrame, settings: SegmentationSettings, assigned: DataFrame
) -> None:
    again = assign_segments(train_segmentation(features, _only_planted_k(settings)), features)
    assert_df_equality(assigned, again, ignore_row_order=True)


def test_shuffled_rows_give_the_same_assignment(
    spark: SparkSession, rows: list[dict], settings: SegmentationSettings, assigned: DataFrame
) -> None:
    order = np.random.default_rng(1).permutation(len(rows))
    shuffled = spark.createDataFrame([tuple(rows[i].values()) for i in order], SCHEMA)
    shuffled = shuffled.repartition(3)
    model = train_segmentation(shuffled, _only_planted_k(settings))
    again = assign_segments(model, shuffled)
    assert_approx_df_equality(assigned, again, 1e-9, ignore_row_order=True)


# ---------------------------------------------------------------------------------------------
# names and description
# ---------------------------------------------------------------------------------------------


def test_planted_personas_get_the_rule_names(
    model: SegmentationModel, rows: list[dict], segment_of: dict[str, int]
) -> None:
    persona = _persona_segment(rows, segment_of)
    names = {p: model.segment(s).name_zh for p, s in persona.items()}
    assert names["digital"] == "数字活跃型"
    assert names["asset"] == "高资产保守型"
    assert names["small"] == "高频小额用户"
    assert model.segment(persona["digital"]).name_en == "digital active"
    assert model.segment(persona["digital"]).rule == 1


def test_unmatched_segment_is_named_by_its_extreme_features(
    model: SegmentationModel, rows: list[dict], segment_of: dict[str, int]
) -> None:
    loyal = model.segment(_persona_segment(rows, segment_of)["loyal"])
    assert (loyal.name_zh, loyal.name_en, loyal.rule) == ("高: 客龄", "high: tenure", None)
    assert len({s.name_zh for s in model.segments}) == model.k


@pytest.mark.parametrize(
    ("z_scores", "expected"),
    [
        (
            [{"app_events": 1.2}, {"app_events": 0.9}, {"app_events": 0.5}],
            ["数字活跃型", "数字活跃型 2", "数字活跃型 3"],
        ),
        (
            [{"tenure_years": 2.0, "aum": -0.7}, {"tenure_years": 1.0, "aum": -0.6}],
            ["高: 客龄 / 低: 资产规模", "高: 客龄 / 低: 资产规模 2"],
        ),
        (
            [{"tenure_years": 0.8, "txn_count": 0.6, "aum": 0.9}, {"aum": 0.49}],
            ["高: 资产规模、客龄", "大众客户"],
        ),
        (
            [{"aum": 0.5, "app_events": -0.5}, {"txn_count": 1.0, "avg_amount": -1.0}],
            ["高资产保守型", "高频小额用户"],
        ),
    ],
    ids=["same-rule-suffixed", "same-generated-suffixed", "top-two-highs-and-no-signal", "edges"],
)
def test_segment_names(
    settings: SegmentationSettings, z_scores: list[dict[str, float]], expected: list[str]
) -> None:
    full = [dict.fromkeys(FEATURES, 0.0) | z for z in z_scores]
    assert [zh for zh, _, _ in segment_names(full, settings)] == expected


def test_z_score_signs_match_the_planting(
    model: SegmentationModel, rows: list[dict], segment_of: dict[str, int]
) -> None:
    persona = _persona_segment(rows, segment_of)
    asset, digital = model.segment(persona["asset"]), model.segment(persona["digital"])
    small, loyal = model.segment(persona["small"]), model.segment(persona["loyal"])
    assert asset.z_scores["aum"] > 1 and asset.z_scores["app_events"] < -1
    assert digital.z_scores["app_events"] > 1
    assert small.z_scores["txn_count"] > 1 and small.z_scores["avg_amount"] < -1
    assert loyal.z_scores["tenure_years"] > 1
    assert asset.high[0] == "aum" and "app_events" in asset.low
    assert "tenure_years" in loyal.high and not loyal.low


def _standardised(rows: list[dict], *, transform: bool = True) -> np.ndarray:
    """The clustering input computed with numpy: nulls filled, log1p, z-scores (sample sd)."""
    fills = {"avg_amount": AMOUNT_FILL}
    logged = {"app_events", "aum", "txn_count", "avg_amount"} if transform else set()
    columns = []
    for f in FEATURES:
        values = np.array([fills.get(f, 0.0) if r[f] is None else r[f] for r in rows], float)
        columns.append(np.log1p(values) if f in logged else values)
    matrix = np.column_stack(columns)
    return (matrix - matrix.mean(axis=0)) / matrix.std(axis=0, ddof=1)


def test_centroid_z_scores_are_members_means_of_log1p_z_scores(
    model: SegmentationModel, rows: list[dict], segment_of: dict[str, int]
) -> None:
    z = _standardised(rows)
    ids = np.array([segment_of[r["master_id"]] for r in rows])
    for segment in model.segments:
        expected = z[ids == segment.segment_id].mean(axis=0)
        got = [segment.z_scores[f] for f in FEATURES]
        assert got == pytest.approx(list(expected), abs=1e-6)
    # without the transform the centroids would be far from these
    untransformed = _standardised(rows, transform=False)
    small = model.segment(_persona_segment(rows, segment_of)["small"])
    raw_centroid = untransformed[ids == small.segment_id].mean(axis=0)
    assert abs(raw_centroid[FEATURES.index("aum")] - small.z_scores["aum"]) > 0.3


def test_feature_means_are_of_filled_values_in_original_units(
    model: SegmentationModel, rows: list[dict], segment_of: dict[str, int]
) -> None:
    for segment in model.segments:
        members = _members(rows, segment_of, segment.segment_id)
        festival = [r["festival_share"] for r in members]
        amount = [r["avg_amount"] for r in members]
        filled_festival = np.mean([0.0 if v is None else v for v in festival])
        filled_amount = np.mean([AMOUNT_FILL if v is None else v for v in amount])
        assert segment.means["festival_share"] == pytest.approx(filled_festival, rel=1e-9)
        assert segment.means["avg_amount"] == pytest.approx(filled_amount, rel=1e-9)
        assert segment.means["aum"] == pytest.approx(np.mean([r["aum"] for r in members]))
        # the fills matter: the means of the non-null values are different
        non_null = np.mean([v for v in festival if v is not None])
        assert abs(non_null - filled_festival) > 1e-3


def test_summary_has_kpi_means_and_descriptions(
    model: SegmentationModel,
    assigned: DataFrame,
    features: DataFrame,
    rows: list[dict],
    segment_of: dict[str, int],
) -> None:
    summary = segment_summary(model, assigned, features)
    assert summary.columns == [
        "segment_id",
        "name_zh",
        "name_en",
        "customers",
        "share",
        "high_features",
        "low_features",
        "centroid_z",
        "feature_means",
        "mean_spend_kpi",
        "mean_aum",
    ]
    got = summary.collect()
    assert [r["segment_id"] for r in got] == [1, 2, 3, 4]
    for row in got:
        members = _members(rows, segment_of, row["segment_id"])
        spend = [r["spend_kpi"] for r in members if r["spend_kpi"] is not None]
        assert row["customers"] == len(members)
        assert row["share"] == pytest.approx(len(members) / len(rows))
        assert row["mean_spend_kpi"] == pytest.approx(np.mean(spend), rel=1e-9)
        assert row["mean_aum"] == pytest.approx(np.mean([r["aum"] for r in members]), rel=1e-9)
        segment = model.segment(row["segment_id"])
        assert row["name_zh"] == segment.name_zh
        assert row["centroid_z"] == pytest.approx(dict(segment.z_scores))
        assert row["high_features"] == list(segment.high)


# ---------------------------------------------------------------------------------------------
# boundary checks
# ---------------------------------------------------------------------------------------------


def test_features_and_kpis_missing_from_the_data_are_all_reported(
    features: DataFrame, settings: SegmentationSettings
) -> None:
    broken = features.drop("tenure_years", "spend_kpi").withColumnRenamed("aum", "aum_cny")
    with pytest.raises(ConfigError) as caught:
        train_segmentation(broken, settings)
    assert caught.value.problems == [
        "segmentation.features.aum: no such column in the features (did you mean aum_cny?)",
        "segmentation.features.tenure_years: no such column in the features",
        "segmentation.kpis.0: no column 'spend_kpi' in the features",
        "segmentation.kpis.1: no column 'aum' in the features (did you mean aum_cny?)",
    ]
    assert str(caught.value).startswith("invalid config file <segmentation settings>:")


def test_non_numeric_feature_is_refused(
    features: DataFrame, settings: SegmentationSettings
) -> None:
    text = features.withColumn("tenure_years", features["tenure_years"].cast("string"))
    with pytest.raises(ConfigError) as caught:
        train_segmentation(text, settings)
    assert caught.value.problems == [
        "segmentation.features.tenure_years: column is string, expected a number or boolean"
    ]


def test_missing_master_id_is_a_schema_error(
    features: DataFrame, settings: SegmentationSettings
) -> None:
    with pytest.raises(SchemaError, match="features: no column"):
        train_segmentation(features.drop("master_id"), settings)


# ---------------------------------------------------------------------------------------------
# RFM tiers
# ---------------------------------------------------------------------------------------------

# planted value groups, most valuable first: size, days since last purchase, orders, spend
RFM_GROUPS = {
    "champions": (50, 5.0, 40.0, 20_000.0),
    "promising": (70, 25.0, 12.0, 3_000.0),
    "occasional": (90, 90.0, 4.0, 600.0),
    "lapsed": (60, 300.0, 1.0, 80.0),
}
RFM_SETTINGS = {
    "recency": {"column": "days_since", "transform": "none"},
    "frequency": {"column": "orders", "transform": "log1p"},
    "monetary": {"column": "spend", "transform": "log1p"},
    "seed": 3,
    "tiers": [
        {"name_zh": "高价值", "name_en": "high value"},
        {"name_zh": "潜力", "name_en": "potential"},
        {"name_zh": "一般", "name_en": "average"},
        {"name_zh": "低价值", "name_en": "low value"},
    ],
}


def test_rfm_tier_one_is_the_recent_frequent_big_spenders(spark: SparkSession) -> None:
    rng = np.random.default_rng(SEED)
    data, planted = [], {}
    for g, (size, days, orders, spend) in enumerate(RFM_GROUPS.values()):
        for i in range(size):
            customer = f"R{g}{i:03d}"
            planted[customer] = g + 1
            data.append(
                (
                    customer,
                    int(max(0, round(days * np.exp(rng.normal(0, 0.2))))),
                    int(max(1, round(orders * np.exp(rng.normal(0, 0.2))))),
                    None if i % 20 == 0 else float(spend * np.exp(rng.normal(0, 0.2))),
                )
            )
    data += [(f"N{i}", None, None, None) for i in range(5)]  # never bought
    rfm = spark.createDataFrame(data, "master_id string, days_since int, orders int, spend double")
    settings = RfmTierSettings.model_validate(RFM_SETTINGS)
    model = train_rfm_tiers(rfm, settings)
    tiers = {r["master_id"]: r for r in assign_rfm_tiers(model, rfm).collect()}

    assert model.customers == sum(size for size, *_ in RFM_GROUPS.values())
    assert [t.tier for t in model.tiers] == [1, 2, 3, 4]
    assert [t.value_score for t in model.tiers] == sorted(
        (t.value_score for t in model.tiers), reverse=True
    )
    by_group = Counter((planted[c], r["rfm_tier"]) for c, r in tiers.items() if c in planted)
    # a null spend counts as 0 and may drop a customer a tier; every other one keeps its group's
    agreeing = sum(n for (group, tier), n in by_group.items() if group == tier)
    assert agreeing >= 0.9 * len(planted)
    champion = tiers["R0001"]
    assert (champion["rfm_tier"], champion["rfm_tier_name"], champion["rfm_tier_name_en"]) == (
        1,
        "高价值",
        "high value",
    )
    assert tiers["R3001"]["rfm_tier_name"] == "低价值"
    assert all(tiers[f"N{i}"]["rfm_tier"] is None for i in range(5))
    assert all(tiers[f"N{i}"]["rfm_tier_name"] is None for i in range(5))


# ---------------------------------------------------------------------------------------------
# adjusted Rand index
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "clusters", "expected"),
    [
        ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], 1.0),
        ([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 9, 9], 1.0),  # the values do not matter
        # pairs: together in both 1 of C(4,2)=6; rows sum 1, columns sum 2: expected 2/6,
        # max 3/2: (1 - 1/3) / (3/2 - 1/3) = 4/7
        ([0, 0, 1, 2], [0, 0, 1, 1], 4 / 7),
        ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),  # one class split into singletons
        # no pair together in both; rows 2, columns 2: expected 4/6, max 2: (0 - 2/3)/(4/3)
        ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),
        # table a: x5 y1, b: x1 y4, c: y3 (n 14): index 10+6+3 = 19, rows 15+10+3 = 28,
        # columns 15+28 = 43, pairs 91: (19 - 28*43/91) / (71/2 - 28*43/91) = 1050/4053
        (
            ["a"] * 6 + ["b"] * 5 + ["c"] * 3,
            ["x"] * 5 + ["y"] + ["x"] + ["y"] * 4 + ["y"] * 3,
            1050 / 4053,
        ),
        ([0, 0, 0], [1, 1, 1], 1.0),  # both one group: the same partition
    ],
    ids=[
        "identical",
        "relabelled",
        "textbook-4-7",
        "split-into-singletons",
        "worse-than-chance",
        "hand-computed-3x2",
        "trivial",
    ],
)
def test_adjusted_rand_index(
    spark: SparkSession, labels: list, clusters: list, expected: float
) -> None:
    kind = "string" if isinstance(labels[0], str) else "int"
    df = spark.createDataFrame(
        list(zip(labels, clusters, strict=True)), f"label {kind}, cluster {kind}"
    )
    assert adjusted_rand_index(df, "label", "cluster") == pytest.approx(expected, abs=1e-12)


def test_adjusted_rand_index_leaves_out_nulls(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(0, 0), (0, 0), (1, 2), (2, 2), (None, 1), (1, None)], "label int, cluster int"
    )
    assert adjusted_rand_index(df, "label", "cluster") == pytest.approx(4 / 7)


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


def test_shipped_settings_name_real_features() -> None:
    segmentation, rfm = load_segmentation_settings(), load_rfm_tier_settings()
    schema = load_feature_config().schema
    numeric = {"bigint", "double", "decimal(38,2)"}
    named = [*segmentation.features, *segmentation.kpis]
    named += [c.column for c in rfm.columns().values()]
    assert {n: schema.get(n) for n in named if schema.get(n) not in numeric} == {}
    for rule in segmentation.rules:
        assert set(rule.when) <= set(segmentation.features)
    assert segmentation.k.min <= segmentation.k.max
    assert len({r.name_zh for r in segmentation.rules}) == len(segmentation.rules)
    assert [t.name_zh for t in rfm.tiers] == ["高价值", "潜力", "一般", "低价值"]


def _models_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


TWO_FEATURES = {
    "app_activity": {"name_zh": "App活跃度", "name_en": "app activity", "transform": "log1p"},
    "balance": {"name_zh": "余额", "name_en": "balance"},
}


def _rule(when: dict) -> dict:
    return {"name_zh": "数字活跃型", "name_en": "digital active", "when": when}


@pytest.mark.parametrize(
    ("section", "problems"),
    [
        (
            {"features": TWO_FEATURES, "rules": [_rule({"app_activty": "high"})]},
            [
                "segmentation.rules.0.when.app_activty: not a clustering feature (did you mean "
                "app_activity?) (features: app_activity, balance)"
            ],
        ),
        (
            {"features": TWO_FEATURES, "k": {"min": 6, "max": 4}},
            ["segmentation.k.min: 6 is above k.max 4 (expected min <= max)"],
        ),
        (
            {
                "features": TWO_FEATURES,
                "k": {"min": 5, "max": 3},
                "rules": [_rule({"balance": "high", "age": "low"}), _rule({"balance": "low"})],
                "kpis": ["balance", "balance"],
            },
            [
                "segmentation.k.min: 5 is above k.max 3 (expected min <= max)",
                "segmentation.rules.0.when.age: not a clustering feature "
                "(features: app_activity, balance)",
                "segmentation.rules.1.name_zh: '数字活跃型' is also the name of rule 0 "
                "(expected unique names)",
                "segmentation.kpis.1: 'balance' is listed twice",
            ],
        ),
        (
            {"features": TWO_FEATURES, "rules": [_rule({"balance": "medium"})]},
            ["segmentation.rules.0.when.balance: Input should be 'high' or 'low' (got 'medium')"],
        ),
        (
            {"features": {"balance": {**TWO_FEATURES["balance"], "transform": "log"}, "x": {}}},
            [
                "segmentation.features.balance.transform: Input should be 'log1p' or 'none' "
                "(got 'log')",
                "segmentation.features.x.name_zh: required key is missing",
                "segmentation.features.x.name_en: required key is missing",
            ],
        ),
        (
            {"features": TWO_FEATURES, "k": {"min": 1, "max": 4}},
            ["segmentation.k.min: Input should be greater than or equal to 2 (got 1)"],
        ),
    ],
    ids=[
        "unknown-rule-feature",
        "k-min-above-max",
        "every-problem-at-once",
        "bad-level",
        "bad-transform",
        "k-below-2",
    ],
)
def test_segmentation_settings_errors_name_file_and_key(
    tmp_path: Path, section: dict, problems: list[str]
) -> None:
    path = _models_file(tmp_path, {"clv": {}, "segmentation": section})
    with pytest.raises(ConfigError) as caught:
        load_segmentation_settings(path)
    lines = "\n".join(f"  - {p}" for p in problems)
    assert str(caught.value) == f"invalid config file {path}:\n{lines}"


def test_rfm_settings_errors_name_file_and_key(tmp_path: Path) -> None:
    section = {**RFM_SETTINGS, "monetary": {"column": "orders"}}
    section["tiers"] = [*RFM_SETTINGS["tiers"][:3], RFM_SETTINGS["tiers"][0]]
    path = _models_file(tmp_path, {"rfm_tiers": section})
    with pytest.raises(ConfigError) as caught:
        load_rfm_tier_settings(path)
    assert caught.value.problems == [
        "rfm_tiers.monetary.column: 'orders' is also the frequency column",
        "rfm_tiers.tiers.3.name_zh: '高价值' is used twice",
    ]
    assert caught.value.path == str(path)


def test_settings_loaders_ignore_other_sections(tmp_path: Path) -> None:
    path = _models_file(
        tmp_path,
        {"clv": {"horizon_month": "bad"}, "segmentation": {"features": TWO_FEATURES}},
    )
    settings = load_segmentation_settings(path)
    assert list(settings.features) == ["app_activity", "balance"]
    assert settings.source == str(path)
    assert settings.fill_of("balance") == 0.0
