"""Named tag builtins: definitions that need the whole population (quantiles, averages) or are
shared standards (RFM cells, lifecycle), with parameters from the tag's YAML.

A builtin declares its parameters (a typed model), its value type and values, the names it
reads, the population statistics it needs (aggregate expressions, computed for every builtin of
a dependency level in one pass) and the column it yields given those statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pyspark.sql import Column
from pyspark.sql import functions as F

from profilehouse.config import StrictModel, describe_validation_errors

RFM_CELLS = (
    "重要价值客户",
    "重要发展客户",
    "重要保持客户",
    "重要挽留客户",
    "一般价值客户",
    "一般发展客户",
    "一般保持客户",
    "一般挽留客户",
)
LIFECYCLE_STAGES = ("新客", "成长", "成熟", "沉睡", "流失预警", "流失")


class QuantileScoreParams(StrictModel):
    feature: str
    higher_is_better: bool = True
    bins: int = Field(default=5, ge=2, le=20)
    population: str | None = Field(
        default=None, description="Spark SQL: who is scored (others get null)."
    )


class RfmCellParams(StrictModel):
    recency_feature: str = Field(description="Days since the last purchase (lower is better).")
    frequency_feature: str
    monetary_feature: str
    split: Literal["mean", "median"] = Field(
        default="mean", description="High means better than the population's mean or median."
    )
    population: str | None = None


class LifecycleParams(StrictModel):
    tenure_feature: str = Field(description="Days since the first activity.")
    recency_feature: str = Field(description="Days since the last activity.")
    change_feature: str = Field(description="Activity change against the previous period.")
    new_days: int = Field(default=90, ge=1)
    growth_days: int = Field(default=365, ge=1)
    dormant_days: int = Field(default=60, ge=1)
    churned_days: int = Field(default=180, ge=1)
    warning_drop: float = Field(default=0.5, gt=0, le=1)


@dataclass(frozen=True)
class Builtin:
    name: str
    params: type[BaseModel]
    value_type: str
    values: tuple[str, ...] | None
    inputs: Callable[[Any], list[str]]
    sql_inputs: Callable[[Any], list[str]]
    statistics: Callable[[Any, str], list[Column]]
    column: Callable[[Any, str, Mapping[str, Any]], Column]

    def parse(self, params: Mapping[str, Any]) -> tuple[BaseModel | None, list[str]]:
        try:
            return self.params.model_validate(dict(params)), []
        except ValidationError as exc:
            return None, describe_validation_errors(exc, self.params)


def _population(sql: str | None) -> Column:
    return F.expr(sql) if sql else F.lit(True)


# --- quantile_score -------------------------------------------------------------------------


def _quantile_statistics(p: QuantileScoreParams, key: str) -> list[Column]:
    cuts = [i / p.bins for i in range(1, p.bins)]
    value = F.when(_population(p.population), F.col(p.feature))
    return [F.percentile_approx(value, cuts, 10_000).alias(f"{key}__cuts")]


def _quantile_column(p: QuantileScoreParams, key: str, stats: Mapping[str, Any]) -> Column:
    cuts = stats[f"{key}__cuts"] or []
    value = F.col(p.feature)
    beats = [(value > F.lit(c)) if p.higher_is_better else (value < F.lit(c)) for c in cuts]
    score = F.lit(1)
    for better in beats:
        score = score + better.cast("int")
    return F.when(_population(p.population) & value.isNotNull(), score.cast("bigint"))


# --- rfm_cell -------------------------------------------------------------------------------


def _rfm_statistics(p: RfmCellParams, key: str) -> list[Column]:
    inside = _population(p.population)
    features = {"r": p.recency_feature, "f": p.frequency_feature, "m": p.monetary_feature}
    if p.split == "mean":
        return [F.avg(F.when(inside, F.col(c))).alias(f"{key}__{k}") for k, c in features.items()]
    return [
        F.percentile_approx(F.when(inside, F.col(c)), 0.5, 10_000).alias(f"{key}__{k}")
        for k, c in features.items()
    ]


def _rfm_column(p: RfmCellParams, key: str, stats: Mapping[str, Any]) -> Column:
    r, f, m = (stats[f"{key}__{k}"] for k in "rfm")
    if r is None or f is None or m is None:
        return F.lit(None).cast("string")
    recent = F.col(p.recency_feature) <= F.lit(r)
    frequent = F.col(p.frequency_feature) > F.lit(f)
    spends = F.col(p.monetary_feature) > F.lit(m)
    index = (F.when(recent, 0).otherwise(2) + F.when(frequent, 0).otherwise(1)) + F.when(
        spends, 0
    ).otherwise(4)
    cells = F.array(*[F.lit(c) for c in RFM_CELLS])
    known = F.col(p.recency_feature).isNotNull() & F.col(p.frequency_feature).isNotNull()
    known &= F.col(p.monetary_feature).isNotNull()
    return F.when(_population(p.population) & known, F.element_at(cells, index + 1))


# --- lifecycle ------------------------------------------------------------------------------


def _lifecycle_column(p: LifecycleParams, _key: str, _stats: Mapping[str, Any]) -> Column:
    recency, tenure = F.col(p.recency_feature), F.col(p.tenure_feature)
    change = F.col(p.change_feature)
    return (
        F.when(recency.isNull(), F.lit(None).cast("string"))
        .when(recency > p.churned_days, "流失")
        .when(recency > p.dormant_days, "沉睡")
        .when(tenure <= p.new_days, "新客")
        .when(change <= -p.warning_drop, "流失预警")
        .when(tenure <= p.growth_days, "成长")
        .otherwise("成熟")
    )


BUILTINS: dict[str, Builtin] = {
    "quantile_score": Builtin(
        name="quantile_score",
        params=QuantileScoreParams,
        value_type="integer",
        values=None,
        inputs=lambda p: [p.feature],
        sql_inputs=lambda p: [p.population] if p.population else [],
        statistics=_quantile_statistics,
        column=_quantile_column,
    ),
    "rfm_cell": Builtin(
        name="rfm_cell",
        params=RfmCellParams,
        value_type="category",
        values=RFM_CELLS,
        inputs=lambda p: [p.recency_feature, p.frequency_feature, p.monetary_feature],
        sql_inputs=lambda p: [p.population] if p.population else [],
        statistics=_rfm_statistics,
        column=_rfm_column,
    ),
    "lifecycle": Builtin(
        name="lifecycle",
        params=LifecycleParams,
        value_type="category",
        values=LIFECYCLE_STAGES,
        inputs=lambda p: [p.tenure_feature, p.recency_feature, p.change_feature],
        sql_inputs=lambda p: [],
        statistics=lambda p, key: [],
        column=_lifecycle_column,
    ),
}
