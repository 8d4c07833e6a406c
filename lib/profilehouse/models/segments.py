"""Customer segmentation (MLlib K-means on scaled features) and RFM value tiers.

Segmentation (:func:`train_segmentation`) clusters one feature snapshot (``gold.features``: one
row per ``master_id``) on the features configured under ``segmentation:`` in
``conf/models.yaml``:

1. each feature is cast to double, its nulls (and NaNs) filled (``fill_null``, or the feature's
   own ``fill``) and transformed (``log1p``: ``sign(x) * log(1 + |x|)``, for skewed amounts and
   counts; ``none``);
2. ``VectorAssembler`` then ``StandardScaler(withMean, withStd)``: every feature becomes a
   z-score against the whole population (sample standard deviation);
3. for each k in ``k.min .. k.max``: MLlib ``KMeans`` (k-means||, fixed seed) and the silhouette
   (``ClusteringEvaluator``, squared euclidean) on the scaled vectors, cached once for the loop;
4. the chosen k: among the ks whose smallest cluster holds at least ``min_segment_share`` of the
   customers, the highest silhouette; ks within ``silhouette_tolerance`` of it count as ties, and
   ties go to the smallest k (fewer segments are easier to act on);
5. stable ids: segment 1 is the largest cluster, then by size; equal sizes are ordered by the
   scaled centroid compared feature by feature (rounded to 1e-6). The same data, seed and
   partitioning give the same centroids, hence the same ids and names on a re-run;
6. description: per segment the centroid as z-scores (the scaled centroid), the members' mean
   of each filled feature in original units, the features at or above ``high_z`` / at or below
   ``low_z``, and a name: the first naming rule whose conditions all hold, else one made of its
   most extreme features (``高: App活跃度 / 低: 资产规模``); repeated names get a suffix ``2``,
   ``3`` ... in segment order.

RFM value tiers (:func:`train_rfm_tiers`) cluster buyers on recency (days since the last
purchase: lower is better), frequency and monetary value, and order the clusters by the value
score ``z(F) + z(M) - z(R)`` of their centroids: tier 1 is the most valuable.

:func:`adjusted_rand_index` compares two labelings (segments against the generator's planted
personas) from a Spark contingency table.

Only small things reach the driver: centroids, cluster sizes, per-segment means, the silhouette
curve and contingency tables. Nothing here reads or writes tables: the calling job does.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, PrivateAttr
from pyspark import StorageLevel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, StandardScalerModel, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse.config import StrictModel
from profilehouse.errors import ConfigError, ProfilehouseError, SchemaError
from profilehouse.models.settings import models_file, models_section

log = logging.getLogger(__name__)

SECTION = "segmentation"
RFM_SECTION = "rfm_tiers"

MASTER_ID = "master_id"
SEGMENT_ID = "segment_id"
SEGMENT_NAME = "segment_name"
SEGMENT_NAME_EN = "segment_name_en"
DISTANCE = "distance"
RFM_TIER = "rfm_tier"
RFM_TIER_NAME = "rfm_tier_name"
RFM_TIER_NAME_EN = "rfm_tier_name_en"
KPI_PREFIX = "mean_"

_UNSCALED = "_seg_unscaled"
_SCALED = "_seg_scaled"
_CLUSTER = "_seg_cluster"
_NAME_FEATURES = 2  # a generated name shows at most this many high and this many low features
_CENTROID_DIGITS = 6  # centroids are compared at this precision when ordering equal sizes
_NUMERIC_TYPE = re.compile(r"^(tinyint|smallint|int|bigint|float|double|decimal(\(.*\))?|boolean)$")

Transform = Literal["log1p", "none"]
Level = Literal["high", "low"]


class SegmentationError(ProfilehouseError):
    """Segments cannot be trained: too few customers, or no k gives large enough segments."""


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


class SegmentFeature(StrictModel):
    """One clustering feature: its business names, transform and null fill."""

    name_zh: str = Field(min_length=1, description="Business name in Chinese.")
    name_en: str = Field(min_length=1, description="Business name in English.")
    transform: Transform = Field(
        default="none",
        description="log1p: sign(x) * log(1 + |x|), for skewed amounts and counts; none.",
    )
    fill: float | None = Field(
        default=None, description="Value for nulls and NaNs; default: the section's fill_null."
    )


class SegmentName(StrictModel):
    """A segment's or tier's readable name."""

    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)


class NamingRule(SegmentName):
    """A segment gets this name when every listed feature of its centroid is high / low."""

    when: dict[str, Level] = Field(
        min_length=1, description="Clustering feature → high (z >= high_z) or low (z <= low_z)."
    )


class KRange(StrictModel):
    """The numbers of segments tried."""

    min: int = Field(default=3, ge=2)
    max: int = Field(default=8, ge=2, le=50)


class SegmentationSettings(StrictModel):
    """``segmentation:`` in ``conf/models.yaml``: features, k range, naming rules, KPIs."""

    features: dict[str, SegmentFeature] = Field(
        min_length=2, description="Feature column → business names, transform, fill (in order)."
    )
    fill_null: float = Field(default=0.0, description="Value for nulls of features without fill.")
    k: KRange = Field(default_factory=KRange)
    seed: int = Field(default=20240601, description="K-means seed (k-means|| initialisation).")
    max_iterations: int = Field(default=50, ge=1, le=1000)
    min_segment_share: float = Field(
        default=0.03,
        ge=0,
        lt=0.5,
        description="A k whose smallest cluster holds less than this share is not chosen.",
    )
    silhouette_tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Silhouettes within this of the best count as ties; ties go to the smaller k.",
    )
    high_z: float = Field(default=0.5, gt=0, description="A centroid z-score at or above: high.")
    low_z: float = Field(default=-0.5, lt=0, description="A centroid z-score at or below: low.")
    rules: list[NamingRule] = Field(
        default_factory=list, description="Naming rules, in order: the first that holds names."
    )
    no_signal_name: SegmentName = Field(
        default_factory=lambda: SegmentName(name_zh="大众客户", name_en="mainstream"),
        description="Name of a segment matching no rule and with no high or low feature.",
    )
    kpis: list[str] = Field(
        default_factory=list, description="Feature columns averaged per segment in the summary."
    )

    _source: str = PrivateAttr(default="<segmentation settings>")

    @property
    def source(self) -> str:
        """Where the settings came from (the models file), for error messages."""
        return self._source

    def fill_of(self, feature: str) -> float:
        """The value nulls of ``feature`` are filled with."""
        own = self.features[feature].fill
        return self.fill_null if own is None else own


class _SegmentationSection(StrictModel):
    segmentation: SegmentationSettings


class RfmColumn(StrictModel):
    """One RFM input: its column and transform."""

    column: str = Field(min_length=1)
    transform: Transform = "none"


class RfmTierSettings(StrictModel):
    """``rfm_tiers:`` in ``conf/models.yaml``: RFM columns, K-means settings and tier names."""

    recency: RfmColumn = Field(
        default_factory=lambda: RfmColumn(column="days_since_last_purchase"),
        description="Days since the last purchase (lower is better); null: never bought, no tier.",
    )
    frequency: RfmColumn = Field(
        default_factory=lambda: RfmColumn(column="retail_orders_365d", transform="log1p")
    )
    monetary: RfmColumn = Field(
        default_factory=lambda: RfmColumn(column="retail_spend_365d", transform="log1p")
    )
    seed: int = 20240601
    max_iterations: int = Field(default=50, ge=1, le=1000)
    tiers: list[SegmentName] = Field(
        min_length=2,
        max_length=10,
        description="Tier names, most valuable first; k = their number.",
    )

    _source: str = PrivateAttr(default="<rfm tier settings>")

    @property
    def source(self) -> str:
        return self._source

    def columns(self) -> dict[str, RfmColumn]:
        """Role (recency, frequency, monetary) → its column."""
        return {"recency": self.recency, "frequency": self.frequency, "monetary": self.monetary}


class _RfmSection(StrictModel):
    rfm_tiers: RfmTierSettings


_S = TypeVar("_S", SegmentationSettings, RfmTierSettings)


def load_segmentation_settings(path: str | Path | None = None) -> SegmentationSettings:
    """Load the ``segmentation:`` section of ``conf/models.yaml`` (other sections are ignored).

    ``path``: the models file; default ``models.yaml`` in the config folder. Raises ConfigError
    naming the file and every bad key: first the keys' own values, then, when those are valid,
    every reference (rules, fills) to a feature that is not configured and k min above max.
    """
    source = str(models_file(path))
    settings = _with_source(models_section(source, SECTION, _SegmentationSection), source)
    validate_segmentation_settings(settings)
    return settings


def load_rfm_tier_settings(path: str | Path | None = None) -> RfmTierSettings:
    """Load the ``rfm_tiers:`` section of ``conf/models.yaml``; ConfigError as
    :func:`load_segmentation_settings`."""
    source = str(models_file(path))
    settings = _with_source(models_section(source, RFM_SECTION, _RfmSection), source)
    validate_rfm_tier_settings(settings)
    return settings


def _with_source(settings: _S, source: str) -> _S:
    copy = settings.model_copy()
    copy._source = source
    return copy


def validate_segmentation_settings(
    settings: SegmentationSettings, columns: Mapping[str, str] | None = None
) -> None:
    """Raise ConfigError listing every problem of ``settings``, each naming file and key.

    Always checked: rules name configured features, k.min <= k.max, rule names and KPIs are
    unique. With ``columns`` (column → Spark SQL type: ``dict(df.dtypes)`` of the features, or
    :attr:`FeatureConfig.schema`): every feature and KPI is a column, the features numeric.
    """
    problems = _segmentation_problems(settings)
    if columns is not None:
        problems += _column_problems(settings, columns)
    if problems:
        raise ConfigError(settings.source, problems)


def _segmentation_problems(settings: SegmentationSettings) -> list[str]:
    problems = []
    if settings.k.min > settings.k.max:
        problems.append(
            f"{SECTION}.k.min: {settings.k.min} is above k.max {settings.k.max} "
            "(expected min <= max)"
        )
    if settings.k.min * settings.min_segment_share > 1:
        problems.append(
            f"{SECTION}.min_segment_share: {settings.min_segment_share} leaves no k possible "
            f"(k.min {settings.k.min} segments cannot each hold that share)"
        )
    known = list(settings.features)
    names: dict[str, int] = {}
    for i, rule in enumerate(settings.rules):
        for feature in rule.when:
            if feature not in settings.features:
                problems.append(
                    f"{SECTION}.rules.{i}.when.{feature}: not a clustering feature"
                    f"{_suggestion(feature, known)} (features: {', '.join(known)})"
                )
        if rule.name_zh in names:
            problems.append(
                f"{SECTION}.rules.{i}.name_zh: {rule.name_zh!r} is also the name of rule "
                f"{names[rule.name_zh]} (expected unique names)"
            )
        names.setdefault(rule.name_zh, i)
    for i, kpi in enumerate(settings.kpis):
        if kpi in settings.kpis[:i]:
            problems.append(f"{SECTION}.kpis.{i}: {kpi!r} is listed twice")
    return problems


def _column_problems(settings: SegmentationSettings, columns: Mapping[str, str]) -> list[str]:
    problems = []
    present = list(columns)
    for feature in settings.features:
        if feature not in columns:
            problems.append(
                f"{SECTION}.features.{feature}: no such column in the features"
                f"{_suggestion(feature, present)}"
            )
        elif not _NUMERIC_TYPE.match(columns[feature]):
            problems.append(
                f"{SECTION}.features.{feature}: column is {columns[feature]}, "
                "expected a number or boolean"
            )
    for i, kpi in enumerate(settings.kpis):
        if kpi not in columns:
            problems.append(
                f"{SECTION}.kpis.{i}: no column {kpi!r} in the features{_suggestion(kpi, present)}"
            )
        elif not _NUMERIC_TYPE.match(columns[kpi]):
            problems.append(
                f"{SECTION}.kpis.{i}: column {kpi!r} is {columns[kpi]}, "
                "expected a number or boolean"
            )
    return problems


def validate_rfm_tier_settings(
    settings: RfmTierSettings, columns: Mapping[str, str] | None = None
) -> None:
    """Raise ConfigError when two roles share a column, tier names repeat, or (given
    ``columns``, column → Spark SQL type) a column is missing or not numeric."""
    problems = []
    roles = settings.columns()
    seen: dict[str, str] = {}
    for role, spec in roles.items():
        if spec.column in seen:
            problems.append(
                f"{RFM_SECTION}.{role}.column: {spec.column!r} is also the {seen[spec.column]} "
                "column"
            )
        seen.setdefault(spec.column, role)
        if columns is not None and spec.column not in columns:
            problems.append(
                f"{RFM_SECTION}.{role}.column: no column {spec.column!r} in the input"
                f"{_suggestion(spec.column, list(columns))}"
            )
        elif columns is not None and not _NUMERIC_TYPE.match(columns[spec.column]):
            problems.append(
                f"{RFM_SECTION}.{role}.column: {spec.column!r} is {columns[spec.column]}, "
                "expected a number"
            )
    tier_names = [t.name_zh for t in settings.tiers]
    for i, name in enumerate(tier_names):
        if name in tier_names[:i]:
            problems.append(f"{RFM_SECTION}.tiers.{i}.name_zh: {name!r} is used twice")
    if problems:
        raise ConfigError(settings.source, problems)


def _suggestion(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _require_columns(df: DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{what}: no column(s) {', '.join(missing)} (present: {', '.join(df.columns)})"
        )


# ---------------------------------------------------------------------------------------------
# vectors (Spark)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Input:
    """One clustering input column: how its nulls are filled and how it is transformed."""

    column: str
    transform: Transform
    fill: float


def _segmentation_inputs(settings: SegmentationSettings) -> list[_Input]:
    return [
        _Input(name, spec.transform, settings.fill_of(name))
        for name, spec in settings.features.items()
    ]


def _filled_expr(item: _Input) -> Column:
    """The column as a double, nulls and NaNs replaced by the fill value."""
    value = F.col(item.column).cast("double")
    return F.coalesce(F.nanvl(value, F.lit(None).cast("double")), F.lit(float(item.fill)))


def transform_expr(value: Column, transform: Transform) -> Column:
    """``value`` transformed for clustering: ``log1p`` is ``sign(x) * log(1 + |x|)`` (finite for
    negative amounts such as net flows), ``none`` leaves it."""
    if transform == "log1p":
        return F.signum(value) * F.log1p(F.abs(value))
    return value


def _vectors(df: DataFrame, inputs: Sequence[_Input], keep: Sequence[str | Column]) -> DataFrame:
    """``keep`` columns, each input filled (named as its column) and ``_seg_unscaled``: the vector
    of the transformed inputs."""
    filled = df.select(*keep, *[_filled_expr(i).alias(i.column) for i in inputs])
    parts = [f"_seg_t{n}" for n in range(len(inputs))]
    transformed = filled.select(
        "*",
        *[
            transform_expr(F.col(i.column), i.transform).alias(p)
            for i, p in zip(inputs, parts, strict=True)
        ],
    )
    assembler = VectorAssembler(inputCols=parts, outputCol=_UNSCALED)
    return assembler.transform(transformed).drop(*parts)


def _fit_scaler(vectors: DataFrame) -> StandardScalerModel:
    scaler = StandardScaler(withMean=True, withStd=True, inputCol=_UNSCALED, outputCol=_SCALED)
    return scaler.fit(vectors)


def _kmeans(k: int, seed: int, max_iterations: int) -> KMeans:
    return KMeans(
        k=k,
        seed=seed,
        maxIter=max_iterations,
        initMode="k-means||",
        featuresCol=_SCALED,
        predictionCol=_CLUSTER,
    )


def _cluster_means(
    model: KMeansModel, prepared: DataFrame, columns: Sequence[str]
) -> dict[int, dict[str, float]]:
    """Per K-means cluster, the mean of each (filled) column: k rows collected."""
    rows = (
        model.transform(prepared)
        .groupBy(_CLUSTER)
        .agg(*[F.avg(c).alias(f"_m{n}") for n, c in enumerate(columns)])
        .collect()
    )
    return {
        int(row[_CLUSTER]): {c: float(row[f"_m{n}"]) for n, c in enumerate(columns)} for row in rows
    }


def _lookup_expr(mapping: Mapping[int, Any], key: Column) -> Column:
    """``mapping[key]`` as a literal map lookup (null for keys not in it)."""
    pairs = [x for k, v in sorted(mapping.items()) for x in (F.lit(k), F.lit(v))]
    return F.create_map(*pairs)[key]


def _distance_expr(centers: Sequence[Sequence[float]]) -> Column:
    """Euclidean distance of ``_seg_scaled`` to its cluster's centroid (scaled space)."""
    literal = F.array(*[F.array(*[F.lit(float(x)) for x in c]) for c in centers])
    centre = F.element_at(literal, F.col(_CLUSTER) + 1)
    squares = F.zip_with(vector_to_array(F.col(_SCALED)), centre, lambda a, b: (a - b) * (a - b))
    return F.sqrt(F.aggregate(squares, F.lit(0.0), lambda total, x: total + x))


# ---------------------------------------------------------------------------------------------
# segmentation: training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SilhouettePoint:
    """One k tried: silhouette, K-means training cost, smallest cluster's share, eligibility."""

    k: int
    silhouette: float
    cost: float
    smallest_share: float
    eligible: bool


@dataclass(frozen=True)
class SegmentProfile:
    """One segment described in business terms."""

    segment_id: int
    cluster: int
    name_zh: str
    name_en: str
    customers: int
    share: float
    z_scores: Mapping[str, float]
    means: Mapping[str, float]
    high: tuple[str, ...]
    low: tuple[str, ...]
    rule: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for logs and the model registry)."""
        return {
            "segment_id": self.segment_id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "customers": self.customers,
            "share": self.share,
            "z_scores": dict(self.z_scores),
            "means": dict(self.means),
            "high": list(self.high),
            "low": list(self.low),
            "rule": self.rule,
        }


@dataclass(frozen=True)
class SegmentationModel:
    """A trained segmentation: the scaler, the chosen K-means model, the silhouette curve and
    the segments (ordered by id)."""

    settings: SegmentationSettings
    scaler: StandardScalerModel
    kmeans: KMeansModel
    curve: tuple[SilhouettePoint, ...]
    segments: tuple[SegmentProfile, ...]
    customers: int

    @property
    def k(self) -> int:
        return len(self.segments)

    def segment(self, segment_id: int) -> SegmentProfile:
        """The segment with this id (KeyError when none)."""
        for profile in self.segments:
            if profile.segment_id == segment_id:
                return profile
        raise KeyError(segment_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for logs and the model registry): settings, curve, segments."""
        return {
            "settings": self.settings.model_dump(),
            "customers": self.customers,
            "k": self.k,
            "curve": [vars(p) for p in self.curve],
            "segments": [s.to_dict() for s in self.segments],
        }


@dataclass(frozen=True)
class _KFit:
    point: SilhouettePoint
    model: KMeansModel


def train_segmentation(features: DataFrame, settings: SegmentationSettings) -> SegmentationModel:
    """Fit the scaler and K-means for each k in range; keep the best k, its segments described.

    ``features``: one snapshot, one row per ``master_id``, with the configured feature columns.
    Raises SchemaError without ``master_id``, ConfigError (naming file and keys) for features or
    rules that do not fit the data, SegmentationError when there are too few customers or no k
    gives segments of at least ``min_segment_share``.
    """
    _require_columns(features, "features", [MASTER_ID])
    validate_segmentation_settings(settings, dict(features.dtypes))
    inputs = _segmentation_inputs(settings)
    vectors = _vectors(features, inputs, keep=[])
    scaler = _fit_scaler(vectors)
    prepared = scaler.transform(vectors).drop(_UNSCALED).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        customers = prepared.count()
        _check_enough_customers(customers, settings)
        fits = [_fit_k(prepared, k, settings, customers) for k in _k_range(settings)]
        chosen = _chosen_fit(fits, settings)
        means = _cluster_means(chosen.model, prepared, list(settings.features))
    finally:
        prepared.unpersist()
    segments = _segment_profiles(chosen, means, settings, customers)
    log.info(
        "segmentation: k=%d (silhouette %.3f) over %d customers: %s",
        chosen.point.k,
        chosen.point.silhouette,
        customers,
        ", ".join(f"{s.segment_id} {s.name_zh} {s.share:.1%}" for s in segments),
    )
    return SegmentationModel(
        settings=settings,
        scaler=scaler,
        kmeans=chosen.model,
        curve=tuple(f.point for f in fits),
        segments=segments,
        customers=customers,
    )


def _k_range(settings: SegmentationSettings) -> range:
    return range(settings.k.min, settings.k.max + 1)


def _check_enough_customers(customers: int, settings: SegmentationSettings) -> None:
    if customers <= settings.k.max:
        raise SegmentationError(
            f"segmentation needs more customers than k.max ({settings.k.max}); "
            f"the features have {customers}"
        )


def _fit_k(prepared: DataFrame, k: int, settings: SegmentationSettings, customers: int) -> _KFit:
    model = _kmeans(k, settings.seed, settings.max_iterations).fit(prepared)
    sizes = list(model.summary.clusterSizes)
    smallest = min(sizes) / customers if len(sizes) == k else 0.0
    if sum(1 for s in sizes if s > 0) >= 2:
        silhouette = _silhouette(model.transform(prepared))
    else:
        silhouette = float("nan")
    eligible = math.isfinite(silhouette) and smallest >= settings.min_segment_share
    point = SilhouettePoint(k, silhouette, float(model.summary.trainingCost), smallest, eligible)
    log.info(
        "segmentation k=%d: silhouette %.4f, cost %.1f, smallest segment %.1f%%%s",
        k,
        silhouette,
        point.cost,
        100 * smallest,
        "" if eligible else " (not eligible)",
    )
    return _KFit(point, model)


def _silhouette(predictions: DataFrame) -> float:
    evaluator = ClusteringEvaluator(
        featuresCol=_SCALED,
        predictionCol=_CLUSTER,
        metricName="silhouette",
        distanceMeasure="squaredEuclidean",
    )
    return float(evaluator.evaluate(predictions))


def _chosen_fit(fits: Sequence[_KFit], settings: SegmentationSettings) -> _KFit:
    """The smallest eligible k whose silhouette is within the tolerance of the best."""
    eligible = [f for f in fits if f.point.eligible]
    if not eligible:
        curve = ", ".join(
            f"k={f.point.k}: smallest {f.point.smallest_share:.1%}, silhouette "
            f"{f.point.silhouette:.3f}"
            for f in fits
        )
        raise SegmentationError(
            f"no k in {settings.k.min}..{settings.k.max} gives segments of at least "
            f"{settings.min_segment_share:.1%} of the customers ({curve}); lower "
            f"{SECTION}.min_segment_share or the k range"
        )
    best = max(f.point.silhouette for f in eligible)
    return min(
        (f for f in eligible if f.point.silhouette >= best - settings.silhouette_tolerance),
        key=lambda f: f.point.k,
    )


# ---------------------------------------------------------------------------------------------
# segmentation: description and names
# ---------------------------------------------------------------------------------------------


def _stable_order(sizes: Sequence[int], centers: Sequence[Sequence[float]]) -> list[int]:
    """Cluster indexes in segment order: larger first, then by rounded centroid."""

    def key(cluster: int) -> tuple[int, tuple[float, ...]]:
        rounded = tuple(round(float(x), _CENTROID_DIGITS) for x in centers[cluster])
        return -sizes[cluster], rounded

    return sorted(range(len(sizes)), key=key)


def _segment_profiles(
    chosen: _KFit,
    means: Mapping[int, Mapping[str, float]],
    settings: SegmentationSettings,
    customers: int,
) -> tuple[SegmentProfile, ...]:
    features = list(settings.features)
    centers = [list(map(float, c)) for c in chosen.model.clusterCenters()]
    sizes = list(chosen.model.summary.clusterSizes)
    order = _stable_order(sizes, centers)
    z_scores = [dict(zip(features, centers[cluster], strict=True)) for cluster in order]
    names = segment_names(z_scores, settings)
    profiles = []
    for segment_id, (cluster, z, (name_zh, name_en, rule)) in enumerate(
        zip(order, z_scores, names, strict=True), start=1
    ):
        high, low = high_low_features(z, settings.high_z, settings.low_z)
        profiles.append(
            SegmentProfile(
                segment_id=segment_id,
                cluster=cluster,
                name_zh=name_zh,
                name_en=name_en,
                customers=int(sizes[cluster]),
                share=sizes[cluster] / customers,
                z_scores=z,
                means=dict(means.get(cluster, dict.fromkeys(features, float("nan")))),
                high=high,
                low=low,
                rule=rule,
            )
        )
    return tuple(profiles)


def high_low_features(
    z_scores: Mapping[str, float], high_z: float, low_z: float
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The features at or above ``high_z`` (highest first) and at or below ``low_z`` (lowest
    first)."""
    high = sorted((f for f, z in z_scores.items() if z >= high_z), key=lambda f: -z_scores[f])
    low = sorted((f for f, z in z_scores.items() if z <= low_z), key=lambda f: z_scores[f])
    return tuple(high), tuple(low)


def segment_names(
    z_scores: Sequence[Mapping[str, float]], settings: SegmentationSettings
) -> list[tuple[str, str, int | None]]:
    """``(name_zh, name_en, rule index or None)`` of each segment, given its centroid z-scores.

    The first rule whose conditions all hold names a segment; else its most extreme features do
    (``高: A、B / 低: C``), else ``no_signal_name``. A name given before gets the suffix `` 2``,
    `` 3`` ... in the order of ``z_scores``.
    """
    named = [_segment_name(z, settings) for z in z_scores]
    return _unique_names(named)


def _segment_name(
    z: Mapping[str, float], settings: SegmentationSettings
) -> tuple[str, str, int | None]:
    for i, rule in enumerate(settings.rules):
        if all(_holds(z[f], level, settings) for f, level in rule.when.items()):
            return rule.name_zh, rule.name_en, i
    high, low = high_low_features(z, settings.high_z, settings.low_z)
    if not high and not low:
        return settings.no_signal_name.name_zh, settings.no_signal_name.name_en, None
    name_zh, name_en = _generated_name(high[:_NAME_FEATURES], low[:_NAME_FEATURES], settings)
    return name_zh, name_en, None


def _generated_name(
    high: Sequence[str], low: Sequence[str], settings: SegmentationSettings
) -> tuple[str, str]:
    """``高: A、B / 低: C`` and ``high: A, B / low: C`` from the features' business names."""

    def text(labels: tuple[str, str], separator: str, language: str) -> str:
        return " / ".join(
            f"{label}: {separator.join(getattr(settings.features[f], language) for f in part)}"
            for label, part in zip(labels, (high, low), strict=True)
            if part
        )

    return text(("高", "低"), "、", "name_zh"), text(("high", "low"), ", ", "name_en")


def _holds(z: float, level: Level, settings: SegmentationSettings) -> bool:
    return z >= settings.high_z if level == "high" else z <= settings.low_z


def _unique_names(
    named: Sequence[tuple[str, str, int | None]],
) -> list[tuple[str, str, int | None]]:
    taken = Counter(zh for zh, _, _ in named)
    seen: Counter[str] = Counter()
    result = []
    for zh, en, rule in named:
        seen[zh] += 1
        if seen[zh] == 1:
            result.append((zh, en, rule))
            continue
        n = seen[zh]
        while f"{zh} {n}" in taken:
            n += 1
        taken[f"{zh} {n}"] += 1
        result.append((f"{zh} {n}", f"{en} {n}", rule))
    return result


# ---------------------------------------------------------------------------------------------
# segmentation: outputs
# ---------------------------------------------------------------------------------------------


def assign_segments(model: SegmentationModel, features: DataFrame) -> DataFrame:
    """``master_id``, ``segment_id``, ``segment_name`` (中文), ``segment_name_en`` and
    ``distance`` (euclidean, in z-scores) to the segment's centroid, per row of ``features``.

    Raises SchemaError when ``master_id`` or a feature column is missing.
    """
    _require_columns(features, "features", [MASTER_ID, *model.settings.features])
    vectors = _vectors(features, _segmentation_inputs(model.settings), keep=[MASTER_ID])
    predicted = model.kmeans.transform(model.scaler.transform(vectors))
    by_cluster = {s.cluster: s for s in model.segments}
    cluster = F.col(_CLUSTER)
    return predicted.select(
        MASTER_ID,
        _lookup_expr({c: s.segment_id for c, s in by_cluster.items()}, cluster).alias(SEGMENT_ID),
        _lookup_expr({c: s.name_zh for c, s in by_cluster.items()}, cluster).alias(SEGMENT_NAME),
        _lookup_expr({c: s.name_en for c, s in by_cluster.items()}, cluster).alias(SEGMENT_NAME_EN),
        _distance_expr(model.kmeans.clusterCenters()).alias(DISTANCE),
    )


SEGMENT_DESCRIPTION_SCHEMA = T.StructType(
    [
        T.StructField(SEGMENT_ID, T.IntegerType(), False),
        T.StructField("name_zh", T.StringType(), False),
        T.StructField("name_en", T.StringType(), False),
        T.StructField("high_features", T.ArrayType(T.StringType(), False), False),
        T.StructField("low_features", T.ArrayType(T.StringType(), False), False),
        T.StructField("centroid_z", T.MapType(T.StringType(), T.DoubleType(), False), False),
        T.StructField("feature_means", T.MapType(T.StringType(), T.DoubleType(), True), False),
    ]
)


def segment_summary(
    model: SegmentationModel, assigned: DataFrame, features: DataFrame
) -> DataFrame:
    """One row per segment (by id): ``segment_id``, ``name_zh``, ``name_en``, ``customers``,
    ``share`` (of the assigned customers), ``high_features`` / ``low_features`` (feature
    columns), ``centroid_z`` (feature → z-score), ``feature_means`` (feature → members' mean in
    original units, at training) and ``mean_<kpi>`` for each configured KPI (nulls left out).

    ``assigned``: as :func:`assign_segments` returns; ``features``: the snapshot holding the
    KPI columns, one row per ``master_id``. Segments without customers have ``customers`` 0.
    """
    kpis = model.settings.kpis
    _require_columns(assigned, "assigned", [MASTER_ID, SEGMENT_ID])
    _require_columns(features, "features", [MASTER_ID, *kpis])
    stats = (
        assigned.select(MASTER_ID, SEGMENT_ID)
        .join(features.select(MASTER_ID, *kpis), MASTER_ID, "left")
        .groupBy(SEGMENT_ID)
        .agg(
            F.count(F.lit(1)).alias("customers"),
            *[F.avg(F.col(k).cast("double")).alias(f"{KPI_PREFIX}{k}") for k in kpis],
        )
    )
    descriptions = features.sparkSession.createDataFrame(
        [_description_row(s) for s in model.segments], SEGMENT_DESCRIPTION_SCHEMA
    )
    customers = F.coalesce(F.col("customers"), F.lit(0)).cast("bigint")
    everyone = Window.partitionBy(F.lit(1))
    return (
        descriptions.join(stats, SEGMENT_ID, "left")
        .withColumn("customers", customers)
        .select(
            SEGMENT_ID,
            "name_zh",
            "name_en",
            "customers",
            (F.col("customers") / F.sum("customers").over(everyone)).alias("share"),
            "high_features",
            "low_features",
            "centroid_z",
            "feature_means",
            *[f"{KPI_PREFIX}{k}" for k in kpis],
        )
        .orderBy(SEGMENT_ID)
    )


def _description_row(segment: SegmentProfile) -> tuple[Any, ...]:
    return (
        segment.segment_id,
        segment.name_zh,
        segment.name_en,
        list(segment.high),
        list(segment.low),
        {f: float(z) for f, z in segment.z_scores.items()},
        {f: (None if math.isnan(m) else float(m)) for f, m in segment.means.items()},
    )


def silhouette_curve(model: SegmentationModel) -> list[tuple[int, float, float]]:
    """``(k, silhouette, training cost)`` for each k tried, in k order."""
    return [(p.k, p.silhouette, p.cost) for p in model.curve]


# ---------------------------------------------------------------------------------------------
# RFM value tiers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RfmTierProfile:
    """One value tier: its centroid (z-scores and members' means by role) and value score."""

    tier: int
    cluster: int
    name_zh: str
    name_en: str
    customers: int
    value_score: float
    z_scores: Mapping[str, float]
    means: Mapping[str, float]


@dataclass(frozen=True)
class RfmTierModel:
    """Trained RFM tiers: the scaler, the K-means model and the tiers (tier 1 first)."""

    settings: RfmTierSettings
    scaler: StandardScalerModel
    kmeans: KMeansModel
    tiers: tuple[RfmTierProfile, ...]
    customers: int


def _rfm_inputs(settings: RfmTierSettings) -> list[_Input]:
    # recency nulls are never clustered (non-buyers); frequency and monetary nulls count as 0
    return [_Input(c.column, c.transform, 0.0) for c in settings.columns().values()]


def train_rfm_tiers(rfm: DataFrame, settings: RfmTierSettings) -> RfmTierModel:
    """K-means with ``len(tiers)`` clusters on the buyers' scaled recency, frequency, monetary;
    tiers ordered by the centroid's ``z(F) + z(M) - z(R)``, highest first (ties: larger first).

    ``rfm``: one row per ``master_id``; rows with a null recency (never bought) are left out.
    Raises SchemaError or ConfigError when a column is missing, SegmentationError with fewer
    buyers than tiers.
    """
    _require_columns(rfm, "rfm", [MASTER_ID])
    validate_rfm_tier_settings(settings, dict(rfm.dtypes))
    inputs = _rfm_inputs(settings)
    buyers = rfm.where(F.col(settings.recency.column).isNotNull())
    vectors = _vectors(buyers, inputs, keep=[])
    scaler = _fit_scaler(vectors)
    prepared = scaler.transform(vectors).drop(_UNSCALED).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        customers = prepared.count()
        k = len(settings.tiers)
        if customers <= k:
            raise SegmentationError(
                f"RFM tiers need more than {k} buyers; the input has {customers}"
            )
        model = _kmeans(k, settings.seed, settings.max_iterations).fit(prepared)
        means = _cluster_means(model, prepared, [i.column for i in inputs])
    finally:
        prepared.unpersist()
    tiers = _rfm_tier_profiles(model, means, settings)
    log.info(
        "RFM tiers over %d buyers: %s",
        customers,
        ", ".join(f"{t.tier} {t.name_zh} {t.customers} (score {t.value_score:.2f})" for t in tiers),
    )
    return RfmTierModel(settings, scaler, model, tiers, customers)


def _rfm_tier_profiles(
    model: KMeansModel, means: Mapping[int, Mapping[str, float]], settings: RfmTierSettings
) -> tuple[RfmTierProfile, ...]:
    roles = settings.columns()
    centers = [dict(zip(roles, map(float, c), strict=True)) for c in model.clusterCenters()]
    sizes = list(model.summary.clusterSizes)
    scores = [c["frequency"] + c["monetary"] - c["recency"] for c in centers]
    order = sorted(range(len(centers)), key=lambda c: (-round(scores[c], 9), -sizes[c], c))
    return tuple(
        RfmTierProfile(
            tier=tier,
            cluster=cluster,
            name_zh=settings.tiers[tier - 1].name_zh,
            name_en=settings.tiers[tier - 1].name_en,
            customers=int(sizes[cluster]),
            value_score=scores[cluster],
            z_scores=centers[cluster],
            means={
                role: means.get(cluster, {}).get(spec.column, float("nan"))
                for role, spec in roles.items()
            },
        )
        for tier, cluster in enumerate(order, start=1)
    )


def assign_rfm_tiers(model: RfmTierModel, rfm: DataFrame) -> DataFrame:
    """``master_id``, ``rfm_tier`` (1: most valuable), ``rfm_tier_name`` (中文) and
    ``rfm_tier_name_en`` per row of ``rfm``; all null for rows with a null recency."""
    roles = model.settings.columns()
    _require_columns(rfm, "rfm", [MASTER_ID, *(c.column for c in roles.values())])
    recency = model.settings.recency.column
    keep = [F.col(MASTER_ID), F.col(recency).alias("_recency")]
    vectors = _vectors(rfm, _rfm_inputs(model.settings), keep=keep)
    predicted = model.kmeans.transform(model.scaler.transform(vectors))
    by_cluster = {t.cluster: t for t in model.tiers}
    buyer = F.col("_recency").isNotNull()

    def tier_value(mapping: Mapping[int, Any]) -> Column:
        return F.when(buyer, _lookup_expr(mapping, F.col(_CLUSTER)))

    return predicted.select(
        MASTER_ID,
        tier_value({c: t.tier for c, t in by_cluster.items()}).alias(RFM_TIER),
        tier_value({c: t.name_zh for c, t in by_cluster.items()}).alias(RFM_TIER_NAME),
        tier_value({c: t.name_en for c, t in by_cluster.items()}).alias(RFM_TIER_NAME_EN),
    )


# ---------------------------------------------------------------------------------------------
# quality: adjusted Rand index
# ---------------------------------------------------------------------------------------------


def adjusted_rand_index(
    df: DataFrame, label_col: str, cluster_col: str, *, max_cells: int = 100_000
) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) of two labelings of the rows of ``df``.

    1.0: the same partition (whatever the label values); about 0 for independent labelings;
    negative when worse than chance. Rows where either column is null are left out. The
    contingency table (labels × clusters) is computed by Spark and collected: more than
    ``max_cells`` cells raise ValueError. Both labelings trivial (one group each, or every row
    alone) count as agreeing: 1.0.
    """
    _require_columns(df, "adjusted_rand_index input", [label_col, cluster_col])
    cells = (
        df.where(F.col(label_col).isNotNull() & F.col(cluster_col).isNotNull())
        .groupBy(F.col(label_col).alias("_label"), F.col(cluster_col).alias("_cluster"))
        .agg(F.count(F.lit(1)).alias("_n"))
        .limit(max_cells + 1)
        .collect()
    )
    if len(cells) > max_cells:
        raise ValueError(
            f"adjusted_rand_index: more than {max_cells} (label, cluster) cells; "
            f"{label_col} and {cluster_col} should be few groups"
        )
    return _ari_of_contingency({(r["_label"], r["_cluster"]): int(r["_n"]) for r in cells})


def _ari_of_contingency(cells: Mapping[tuple[Any, Any], int]) -> float:
    """ARI from the contingency counts n_ij: (sum C(n_ij,2) - E) / (max - E), where
    E = sum C(a_i,2) sum C(b_j,2) / C(n,2) and max = (sum C(a_i,2) + sum C(b_j,2)) / 2."""
    rows: Counter[Any] = Counter()
    cols: Counter[Any] = Counter()
    for (label, cluster), n in cells.items():
        rows[label] += n
        cols[cluster] += n
    total = sum(cells.values())
    index = sum(math.comb(n, 2) for n in cells.values())
    sum_rows = sum(math.comb(n, 2) for n in rows.values())
    sum_cols = sum(math.comb(n, 2) for n in cols.values())
    pairs = math.comb(total, 2)
    if pairs == 0:
        return 1.0
    expected = sum_rows * sum_cols / pairs
    maximum = (sum_rows + sum_cols) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)
