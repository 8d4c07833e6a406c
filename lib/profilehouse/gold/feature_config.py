"""Feature definitions (``conf/features.yaml``) as typed, validated objects.

A *feature source* is a query over silver tables (default: the silver table of the same name)
whose rows reach a master customer through an identity record (``record``). Its features are
aggregates of those rows per master customer up to the snapshot date, each over every window in
``windows`` (``<name>_<w>d``) or over the whole history (``<name>``). *Derived* features are Spark
SQL over other features, computed after all sources. Adding a feature needs no code.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from profilehouse.config import StrictModel, conf_path, load_model

FEATURES_FILE = "features.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

Aggregate = Literal["count", "sum", "min", "max", "avg", "count_distinct"]


class RecordLink(StrictModel):
    """How a row reaches its identity record: the record source and its key, as SQL on the row."""

    source: str | None = Field(
        default=None, description="An identity record source (conf/identity.yaml records)."
    )
    source_column: str | None = Field(
        default=None, description="A column naming each row's record source (mixed rows)."
    )
    key: list[str] = Field(
        min_length=1, description="Spark SQL over the row giving that source's key, in order."
    )

    @model_validator(mode="after")
    def _one_source(self) -> RecordLink:
        if (self.source is None) == (self.source_column is None):
            raise ValueError("give exactly one of 'source' and 'source_column'")
        return self


class Calendar(StrictModel):
    """Dates that matter to the business (festivals): rows get ``in_<name>``."""

    dates: list[dt.date] = Field(min_length=1)
    days_around: int = Field(default=0, ge=0, description="Days either side that count.")


class FeatureSpec(StrictModel):
    """One aggregate over a source's rows."""

    agg: Aggregate
    value: str | None = Field(
        default=None, description="Spark SQL over the row; required except for count."
    )
    where: str | None = Field(default=None, description="Spark SQL filter on the row.")
    windows: bool | list[int] = Field(
        default=True,
        description="true: every configured window; a list: these windows; false: the whole "
        "history up to the snapshot date.",
    )
    type: Literal["long", "double", "decimal", "date", "timestamp", "string"] | None = Field(
        default=None, description="Result type (default: long for counts, double otherwise)."
    )
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _value_when_needed(self) -> FeatureSpec:
        if self.agg != "count" and not self.value:
            raise ValueError(f"agg {self.agg} needs a 'value' expression")
        return self


class FeatureSource(StrictModel):
    """Rows of one query over silver, aggregated per master customer."""

    query: str | None = Field(
        default=None,
        description="Spark SQL SELECT over silver tables named by source (e.g. "
        "'SELECT b.*, a.product_type FROM bank_balances b JOIN bank_accounts a USING "
        "(account_no_token)'); default: the silver table of this entry's name.",
    )
    time: str | None = Field(
        default=None,
        description="The row's event time (a date or timestamp column); rows after the "
        "snapshot date are left out. None: current facts (golden records), never filtered.",
    )
    record: RecordLink | None = Field(
        default=None,
        description="Default: this entry's name as the record source, keyed as in "
        "conf/identity.yaml.",
    )
    master_id: str | None = Field(
        default=None,
        description="A column already holding the master ID (identity.golden_records); "
        "then no record link is used.",
    )
    latest_by: list[str] | None = Field(
        default=None,
        description="Keep only each key's newest row at or before the snapshot date (month-end "
        "balances: the current balance per account).",
    )
    features: dict[str, FeatureSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _windows_need_time(self) -> FeatureSource:
        if self.master_id and self.record:
            raise ValueError("give 'record' or 'master_id', not both")
        if self.time is None:
            windowed = [n for n, spec in self.features.items() if spec.windows is not False]
            if windowed:
                raise ValueError(
                    f"features {windowed} are windowed but the source has no 'time' "
                    "(set windows: false)"
                )
        return self


class SnapshotSettings(StrictModel):
    windows: list[int] = Field(
        min_length=1, description="Window lengths in days, each ending on the snapshot date."
    )
    auto_refresh: Literal["full", "incremental"] = Field(
        default="full",
        description="What a gold run in the default mode (auto) does: recompute every "
        "customer (full), or refresh from an earlier snapshot made with the same feature "
        "configuration (incremental; equal results, and full when no such snapshot exists). "
        "Full by default: at SF 0.1 the incremental refresh measured 3.6x a full run "
        "(docs/benchmarks.md).",
    )
    incremental_max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="An incremental refresh recomputes a feature source only for the customers "
        "whose rows of it changed in a way it cannot fold; above this share of the customers "
        "it recomputes the source for everyone (as cheap then, and no list to join)",
    )


class FeatureConfig(StrictModel):
    """``conf/features.yaml``."""

    snapshot: SnapshotSettings
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    sources: dict[str, FeatureSource] = Field(min_length=1)
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="Feature name → Spark SQL over other features (in order; later ones may "
        "read earlier ones).",
    )
    derived_types: dict[str, str] = Field(
        default_factory=dict, description="Result type of a derived feature (default double)."
    )

    @model_validator(mode="after")
    def _names(self) -> FeatureConfig:
        problems = []
        seen: dict[str, str] = {}
        for where, name in self._declared():
            if not _NAME.match(name):
                problems.append(f"{where}: feature name {name!r} must be lower_snake_case")
            if name in seen:
                problems.append(f"{where}: feature {name!r} is also produced by {seen[name]}")
            seen[name] = where
        for name in self.derived_types:
            if name not in self.derived:
                problems.append(f"derived_types.{name}: no such derived feature")
        windows = set(self.snapshot.windows)
        for source_name, source in self.sources.items():
            for feature_name, spec in source.features.items():
                if isinstance(spec.windows, list) and not set(spec.windows) <= windows:
                    problems.append(
                        f"sources.{source_name}.features.{feature_name}.windows: "
                        f"{sorted(set(spec.windows) - windows)} not in snapshot.windows "
                        f"{sorted(windows)}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _declared(self) -> list[tuple[str, str]]:
        names = [
            (f"sources.{source_name}.features.{feature_name}", column)
            for source_name, source in self.sources.items()
            for feature_name, spec in source.features.items()
            for column in self.columns_of(feature_name, spec)
        ]
        names += [(f"derived.{name}", name) for name in self.derived]
        return names

    def windows_of(self, spec: FeatureSpec) -> list[int | None]:
        """The windows a feature is computed over; None is the whole history."""
        if spec.windows is False:
            return [None]
        if spec.windows is True:
            return list(self.snapshot.windows)
        return list(spec.windows)

    def columns_of(self, name: str, spec: FeatureSpec) -> list[str]:
        return [name if w is None else f"{name}_{w}d" for w in self.windows_of(spec)]

    @property
    def schema(self) -> dict[str, str]:
        """Every feature column → its Spark SQL type (what tags may read)."""
        result: dict[str, str] = {}
        for source in self.sources.values():
            for name, spec in source.features.items():
                for column in self.columns_of(name, spec):
                    result[column] = result_type(spec)
        for name in self.derived:
            result[name] = self.derived_types.get(name, "double")
        return result


def result_type(spec: FeatureSpec) -> str:
    if spec.type == "decimal":
        return "decimal(38,2)"
    if spec.type:
        return "bigint" if spec.type == "long" else spec.type
    return "bigint" if spec.agg in ("count", "count_distinct") else "double"


def load_feature_config(conf_dir: str | Path | None = None) -> FeatureConfig:
    """Load ``conf/features.yaml``; raise ConfigError naming every problem."""
    return load_model(conf_path(FEATURES_FILE, conf_dir), FeatureConfig)
