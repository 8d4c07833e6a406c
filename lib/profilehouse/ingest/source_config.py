"""Typed declarations of the source tables (``conf/sources.yaml``).

One entry per source system table: where its files land, their format and reader options, the
explicit schema as a mapping from the logical columns of the product (docs/data_dictionary.md) to
the export's own column names, the business key, the column deciding which version is latest, the
event-time column, validation rules and which columns hold PII. Onboarding a bank whose export
calls ``cust_no`` ``KHH`` is a config change: ``cust_no: {source: KHH}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from profilehouse.config import StrictModel, conf_path, load_model
from profilehouse.ingest.encodings import DEFAULT_ENCODING, encoding_problem

SIMPLE_TYPES = ("string", "int", "long", "double", "boolean", "date", "timestamp")
_DECIMAL = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
_NESTED = re.compile(r"^(array|struct|map)<.+>$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")

PiiKind = Literal[
    "name",
    "mobile",
    "email",
    "id_no",
    "address",
    "birth_date",
    "openid",
    "device",
    "account_no",
    "card_no",
    "counterparty",
]
Standardizer = Literal["mobile", "email", "id_no", "name", "address", "gender"]


class IdCrossCheck(StrictModel):
    """Columns of the same row that a resident ID's embedded birth date and gender must match."""

    birth_date: str | None = None
    gender: str | None = None


class ColumnSpec(StrictModel):
    """One logical column of a source and how to read it."""

    source: str | None = Field(default=None, description="Column name in the export.")
    type: str = "string"
    required: bool = Field(default=False, description="The export must contain this column.")
    nullable: bool = True
    formats: list[str] = Field(default_factory=list, description="Date/timestamp patterns.")
    epoch: Literal["seconds", "millis"] | None = None
    pii: PiiKind | None = None
    pii_when: str | None = Field(
        default=None,
        description="Spark SQL condition: the value is PII only in rows where it holds "
        "(a contact's target_key is a mobile only when target_type = 'MOBILE').",
    )
    pii_kinds: dict[PiiKind, str] = Field(
        default_factory=dict,
        description="For a column mixing identifiers: PII kind → Spark SQL condition of the rows "
        "holding that kind (first match wins); other rows keep their clear value.",
    )
    clear_when: str | None = Field(
        default=None,
        description="For a pii_when / pii_kinds column: Spark SQL condition of the rows whose "
        "value is not PII and stays in clear (default: NOT pii_when; none for pii_kinds). "
        "A value in a row neither clear nor of a PII kind is tokenised as 'invalid'.",
    )
    standardize: Standardizer | None = None
    cross_check: IdCrossCheck | None = None

    @property
    def is_pii(self) -> bool:
        return bool(self.pii or self.pii_kinds)

    @property
    def partly_pii(self) -> bool:
        """PII in some rows only (``pii_when`` / ``pii_kinds``): the clear column stays."""
        return bool(self.pii_when or self.pii_kinds)

    def clear_sql(self) -> str | None:
        """SQL of the rows whose value is not PII and stays clear; None when no row is."""
        if self.clear_when:
            return self.clear_when
        if self.pii_when:
            return f"NOT ({self.pii_when})"
        return None

    def pii_kind_sql(self) -> str:
        """SQL of the row's declared PII kind; null in rows that are of no declared kind."""
        if self.pii_kinds:
            cases = " ".join(
                f"WHEN ({cond}) THEN '{kind}'" for kind, cond in self.pii_kinds.items()
            )
            return f"CASE {cases} END"
        if self.pii_when:
            return f"CASE WHEN ({self.pii_when}) THEN '{self.pii}' END"
        return f"'{self.pii}'"

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().replace(" ", "")
        if value in SIMPLE_TYPES or _NESTED.match(value):
            return value
        match = _DECIMAL.match(value)
        if match and 0 < int(match.group(2)) <= int(match.group(1)) <= 38:
            return value
        raise ValueError(
            f"unknown type {value!r} (expected one of {', '.join(SIMPLE_TYPES)}, "
            "decimal(p,s) with 0 < s <= p <= 38, or a Spark DDL array<...>/struct<...>/map<...>)"
        )

    @model_validator(mode="after")
    def _formats_fit_type(self) -> ColumnSpec:
        if self.formats and self.type not in ("date", "timestamp"):
            raise ValueError(f"formats are only allowed on date/timestamp columns, not {self.type}")
        if self.epoch and self.type != "timestamp":
            raise ValueError("epoch is only allowed on timestamp columns")
        if self.pii_when and not self.pii:
            raise ValueError("pii_when needs pii")
        if self.pii_kinds and self.pii:
            raise ValueError("use either pii (+ pii_when) or pii_kinds, not both")
        if self.clear_when and not (self.pii_when or self.pii_kinds):
            raise ValueError("clear_when needs pii_when or pii_kinds")
        if self.cross_check and self.standardize != "id_no":
            raise ValueError("cross_check is only allowed with standardize: id_no")
        if self.standardize and self.type != "string":
            raise ValueError(f"standardize needs a string column, not {self.type}")
        return self


class Rule(StrictModel):
    """A validation rule: a Spark SQL boolean over logical columns that valid rows satisfy."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    expr: str
    severity: Literal["error", "warn"] = "error"
    description: str = ""


class SourceSpec(StrictModel):
    """One source system table."""

    system: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    format: Literal["csv", "jsonl", "parquet"]
    location: str = Field(description="Folder under the landing root holding batch=<date> folders.")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Reader options; `encoding` (or `charset`, default UTF-8) applies to every "
        "text format: CSV headers and rows and JSON lines.",
    )
    min_file_age_seconds: int = Field(
        default=0,
        ge=0,
        description="Hold back files modified less than this many seconds ago (an upload that "
        "may still be growing); 0 trusts upload suffixes such as ._COPYING_ alone.",
    )
    time_zone: str = "Asia/Shanghai"
    columns: dict[str, ColumnSpec]
    business_key: list[str]
    order_by: str | None = Field(default=None, description="Latest version wins by this column.")
    event_time: str | None = None
    extra_columns: Literal["fail", "rescue"] = "rescue"
    missing_columns: Literal["keep", "fail"] = Field(
        default="keep",
        description="A file without an optional column: keep silver's existing values of that "
        "column (and warn), or fail the load naming file and column.",
    )
    reject_rate_threshold: float = Field(default=0.05, ge=0.0, le=1.0)
    reject_min_rows: int = Field(
        default=10,
        ge=1,
        description="A load fails on its reject rate only when at least this many rows are "
        "rejected (a 2-of-99 daily file is noise, not a broken feed).",
    )
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("options", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _known_encoding(self) -> SourceSpec:
        for key in ("encoding", "charset"):
            problem = encoding_problem(self.options[key]) if key in self.options else None
            if problem:
                raise ValueError(f"options.{key}: {problem}")
        return self

    @model_validator(mode="after")
    def _references_exist(self) -> SourceSpec:
        problems = []
        bad_names = [c for c in self.columns if not _IDENTIFIER.match(c)]
        if bad_names:
            problems.append(f"column names must be lower-case identifiers: {', '.join(bad_names)}")
        known = set(self.columns)
        for field in ("order_by", "event_time"):
            value = getattr(self, field)
            if value is not None and value not in known:
                problems.append(f"{field} {value!r} is not a declared column")
        missing = [k for k in self.business_key if k not in known]
        if not self.business_key:
            problems.append("business_key must name at least one column")
        if missing:
            problems.append(f"business_key columns not declared: {', '.join(missing)}")
        for key in self.business_key:
            if key in known and not self.columns[key].required:
                problems.append(f"business_key column {key!r} must be required: true")
        if self.event_time in known and self.columns[self.event_time].type not in (
            "date",
            "timestamp",
        ):
            problems.append(f"event_time {self.event_time!r} must be a date or timestamp column")
        sources = [c.source or name for name, c in self.columns.items()]
        dupes = sorted({s for s in sources if sources.count(s) > 1})
        if dupes:
            problems.append(f"two logical columns read the same export column: {', '.join(dupes)}")
        rule_names = [r.name for r in self.rules]
        dupe_rules = sorted({r for r in rule_names if rule_names.count(r) > 1})
        if dupe_rules:
            problems.append(f"duplicate rule names: {', '.join(dupe_rules)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _order_columns_not_pii(self) -> SourceSpec:
        problems = [
            f"{field} {value!r} is a PII column (silver holds only its token): use a clear column"
            for field in ("order_by", "event_time")
            if (value := getattr(self, field)) in self.columns and self.columns[value].is_pii
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _cross_checks_exist(self) -> SourceSpec:
        problems = [
            f"columns.{name}.cross_check: {target!r} is not a declared column"
            for name, col in self.columns.items()
            if col.cross_check
            for target in (col.cross_check.birth_date, col.cross_check.gender)
            if target is not None and target not in self.columns
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def name(self) -> str:
        """``system_table``: the name of its bronze and silver tables."""
        return f"{self.system}_{self.table}"

    @property
    def encoding(self) -> str:
        """The text encoding of the source's files (``options.encoding``/``charset``)."""
        return self.options.get("encoding", self.options.get("charset", DEFAULT_ENCODING))

    def source_column(self, logical: str) -> str:
        """The export's name for logical column ``logical``."""
        spec = self.columns[logical]
        return spec.source or logical

    @property
    def pii_columns(self) -> dict[str, PiiKind]:
        return {name: c.pii or "mixed" for name, c in self.columns.items() if c.is_pii}


class SourcesFile(StrictModel):
    sources: dict[str, SourceSpec]

    @model_validator(mode="after")
    def _unique_tables(self) -> SourcesFile:
        seen: dict[str, str] = {}
        for key, spec in self.sources.items():
            if spec.name in seen:
                raise ValueError(
                    f"sources {seen[spec.name]!r} and {key!r} both declare {spec.name}"
                )
            seen[spec.name] = key
        return self


def load_sources(conf_dir: str | Path | None = None) -> dict[str, SourceSpec]:
    """Load and validate ``sources.yaml``; raises ConfigError listing every problem."""
    return load_model(conf_path("sources.yaml", conf_dir), SourcesFile).sources
