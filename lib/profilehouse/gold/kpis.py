"""KPI definitions (``conf/kpis.yaml``) and their values per snapshot, overall and by dimension.

Every KPI has one definition (指标口径统一) — a count of customers, a rate among a base, or a
ratio of sums — over the snapshot's tags and features; ``start.<column>`` reads the same
customer's snapshot ``window_days`` earlier. All KPIs for all dimensions are one aggregate:
each customer row is stacked once per dimension (plus "all"), then grouped by dimension value.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse.config import StrictModel, conf_path, load_model
from profilehouse.errors import ConfigError, first_error_line

KPIS_FILE = "kpis.yaml"
ALL = "all"
UNKNOWN = "未知"

_START = re.compile(r"\bstart\.")


class KpiName(StrictModel):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Kpi(StrictModel):
    name: KpiName
    kind: Literal["count", "rate", "ratio"]
    condition: str | None = Field(default=None, description="count: who is counted.")
    numerator: str | None = Field(
        default=None, description="rate: who counts among the base; ratio: the summed value."
    )
    denominator: str | None = Field(
        default=None, description="rate: the base; ratio: the summed value divided by."
    )
    window_days: int | None = Field(
        default=None, ge=1, description="How far back `start.` reads (a rate over a window)."
    )
    description: str = ""

    @model_validator(mode="after")
    def _parts_of_its_kind(self) -> Kpi:
        if self.kind == "count" and not self.condition:
            raise ValueError("a count needs its 'condition'")
        if self.kind != "count" and not (self.numerator and self.denominator):
            raise ValueError(f"a {self.kind} needs 'numerator' and 'denominator'")
        reads_start = any(_START.search(p or "") for p in self.parts)
        if reads_start and self.window_days is None:
            raise ValueError("reads start.<column> but has no 'window_days'")
        return self

    @property
    def parts(self) -> list[str | None]:
        return [self.condition, self.numerator, self.denominator]


class KpiConfig(StrictModel):
    dimensions: list[str] = Field(default_factory=list)
    kpis: dict[str, Kpi] = Field(min_length=1)

    def windows(self) -> list[int]:
        """The distinct look-backs KPIs need a start snapshot for."""
        return sorted({k.window_days for k in self.kpis.values() if k.window_days})


def load_kpi_config(conf_dir: str | Path | None = None) -> KpiConfig:
    return load_model(conf_path(KPIS_FILE, conf_dir), KpiConfig)


def start_column(window_days: int) -> str:
    return f"start_{window_days}d"


def _sql(kpi: Kpi, part: str) -> Column:
    """The part's SQL, ``start.`` pointing at the KPI's own start snapshot."""
    if kpi.window_days:
        part = _START.sub(f"{start_column(kpi.window_days)}.", part)
    return F.expr(part)


def _flag(kpi: Kpi, part: str) -> Column:
    return F.coalesce(_sql(kpi, part).cast("boolean"), F.lit(False)).cast("long")


def _problems(customers: DataFrame, config: KpiConfig) -> list[str]:
    """Each dimension and KPI part that does not analyse over ``customers``, named."""
    problems = []
    for name in config.dimensions:
        if name not in customers.columns:
            problems.append(f"dimensions: {name!r} is neither a tag nor a feature")
    for code, kpi in config.kpis.items():
        for label, part in zip(("condition", "numerator", "denominator"), kpi.parts, strict=True):
            if part is None:
                continue
            try:
                customers.select(_sql(kpi, part))
            except (AnalysisException, ParseException) as exc:
                problems.append(f"kpis.{code}.{label}: {first_error_line(str(exc))}")
    return problems or ["the KPIs do not analyse together"]


def kpi_values(customers: DataFrame, config: KpiConfig, snapshot_date: dt.date) -> DataFrame:
    """``(snapshot_date, kpi_code, name_zh, name_en, dimension, dimension_value, numerator,
    denominator, value)`` for every KPI, overall (dimension ``all``) and per dimension value.

    ``customers``: one row per customer with the snapshot's tags and features and, per window,
    a struct column ``start_<w>d`` with the same at the window's start (null when absent).
    """
    dimension = F.explode(
        F.array(
            F.struct(F.lit(ALL).alias("dimension"), F.lit(ALL).alias("value")),
            *[
                F.struct(
                    F.lit(d).alias("dimension"),
                    F.coalesce(F.col(d).cast("string"), F.lit(UNKNOWN)).alias("value"),
                )
                for d in config.dimensions
            ],
        )
    )
    aggregates: list[Column] = []
    for code, kpi in config.kpis.items():
        if kpi.kind == "count":
            numerator = _flag(kpi, kpi.condition)  # type: ignore[arg-type]
            denominator = F.lit(None).cast("double")
        elif kpi.kind == "rate":
            base = _flag(kpi, kpi.denominator)  # type: ignore[arg-type]
            numerator = base * _flag(kpi, kpi.numerator)  # type: ignore[arg-type]
            denominator = base
        else:
            numerator = F.coalesce(_sql(kpi, kpi.numerator).cast("double"), F.lit(0.0))  # type: ignore[arg-type]
            denominator = F.coalesce(_sql(kpi, kpi.denominator).cast("double"), F.lit(0.0))  # type: ignore[arg-type]
        aggregates += [
            F.sum(numerator).cast("double").alias(f"{code}__n"),
            F.sum(denominator).cast("double").alias(f"{code}__d"),
        ]
    try:
        stacked = customers.select("*", dimension.alias("__dim"))
        grouped = stacked.groupBy(
            F.col("__dim.dimension").alias("dimension"),
            F.col("__dim.value").alias("dimension_value"),
        ).agg(*aggregates)
    except (AnalysisException, ParseException):
        raise ConfigError(KPIS_FILE, _problems(customers, config)) from None
    entries = F.array(
        *[
            F.struct(
                F.lit(code).alias("kpi_code"),
                F.lit(kpi.name.zh).alias("name_zh"),
                F.lit(kpi.name.en).alias("name_en"),
                F.col(f"{code}__n").alias("numerator"),
                F.col(f"{code}__d").alias("denominator"),
                (
                    F.col(f"{code}__n")
                    if kpi.kind == "count"
                    else F.col(f"{code}__n") / F.nullif(F.col(f"{code}__d"), F.lit(0.0))
                ).alias("value"),
            )
            for code, kpi in config.kpis.items()
        ]
    )
    return grouped.select(
        F.lit(snapshot_date).alias("snapshot_date"),
        "dimension",
        "dimension_value",
        F.explode(entries).alias("k"),
    ).select(
        "snapshot_date",
        "k.kpi_code",
        "k.name_zh",
        "k.name_en",
        "dimension",
        "dimension_value",
        "k.numerator",
        "k.denominator",
        "k.value",
    )
