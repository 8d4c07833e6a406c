"""The tag registry: ``conf/tags/*.yaml`` → one validated :class:`TagRegistry`.

One file per tag family (its stem is the family) plus ``hierarchy.yaml``, the three-level tree
(一级 / 二级 / 三级) every tag's ``path`` must name. A tag is defined either by a Spark SQL
expression over named features and other tags, or by a named builtin (RFM cells, lifecycle).

Loading checks everything that needs no Spark and reports every problem at once, each naming the
file and the tag: bad keys and values, duplicate codes, codes that shadow a feature, paths not in
the hierarchy, category tags without values, dependency cycles, online tags depending on draft or
retired ones, and literal results outside a category's allowed values.
:func:`sql_problems` adds the checks that need a Spark session (SQL that does not parse or does
not resolve against the feature schema, result types that do not match the value type).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pyspark.errors import AnalysisException, ParseException
from pyspark.logger import PySparkLogger
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DataType,
    DateType,
    IntegerType,
    LongType,
    NumericType,
    ShortType,
    StringType,
)

from profilehouse.config import StrictModel, conf_path, describe_validation_errors, read_yaml
from profilehouse.errors import SPARK_ERROR_LOGGERS, ConfigError, first_error_line
from profilehouse.gold.builtins import BUILTINS

HIERARCHY_FILE = "hierarchy.yaml"
TAGS_DIR = "tags"

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_IDENTIFIER = re.compile(r"`([^`]+)`|\b([A-Za-z_][A-Za-z0-9_]*)\b")
_RESULT_LITERAL = re.compile(r"\b(?:THEN|ELSE)\s+'((?:[^'\\]|\\.)*)'", re.IGNORECASE)

ValueType = Literal["boolean", "category", "integer", "number", "date"]
TagKind = Literal["fact", "rule", "statistic", "model"]
Refresh = Literal["daily", "monthly"]
Status = Literal["draft", "online", "retired"]


class TagName(StrictModel):
    zh: str = Field(min_length=1, description="Name in Chinese, as business users know it.")
    en: str = Field(min_length=1, description="Name in English.")


class BuiltinCall(StrictModel):
    """A named builtin (see :mod:`profilehouse.gold.builtins`) and its parameters."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TagDefinition(StrictModel):
    """One tag: one agreed definition (口径) with its metadata."""

    code: str = Field(
        pattern=_CODE.pattern,
        description="Column name in the wide tag table and the name other tags and audience "
        "expressions use: lower-case letters, digits and underscores.",
    )
    name: TagName
    path: str = Field(description="一级/二级/三级 category path, as declared in hierarchy.yaml.")
    kind: TagKind
    value_type: ValueType
    values: list[str] | None = Field(
        default=None, description="Allowed values of a category tag, in their display order."
    )
    range: tuple[float, float] | None = Field(
        default=None, description="Inclusive [min, max] of a numeric tag's values."
    )
    sql: str | None = Field(
        default=None, description="Spark SQL over feature columns and other tags' codes."
    )
    builtin: BuiltinCall | None = None
    refresh: Refresh = "daily"
    owner: str | None = Field(default=None, description="Default: the file's owner.")
    version: int = Field(default=1, ge=1)
    status: Status = "online"
    description: str = Field(min_length=1)
    suppresses_audiences: bool = Field(
        default=False,
        description="A boolean tag whose customers every audience leaves out unless asked "
        "(opted out of marketing, deceased, on a do-not-contact list).",
    )

    @model_validator(mode="after")
    def _one_definition_and_consistent_values(self) -> TagDefinition:
        if (self.sql is None) == (self.builtin is None):
            raise ValueError("give exactly one of 'sql' and 'builtin'")
        if self.suppresses_audiences and self.value_type != "boolean":
            raise ValueError(
                f"'suppresses_audiences' needs a boolean tag, not a {self.value_type} one"
            )
        if self.value_type == "category" and not self.values:
            raise ValueError("a category tag needs its allowed 'values'")
        if self.value_type != "category" and self.values is not None:
            raise ValueError(f"'values' is only for category tags, not {self.value_type}")
        if self.values is not None and len(set(self.values)) != len(self.values):
            raise ValueError(f"'values' repeats a value: {self.values}")
        if self.range is not None:
            if self.value_type not in ("integer", "number"):
                raise ValueError(
                    f"'range' is only for integer and number tags, not {self.value_type}"
                )
            if self.range[0] > self.range[1]:
                raise ValueError(f"'range' must be [min, max], got {list(self.range)}")
        return self

    @property
    def levels(self) -> list[str]:
        return [part.strip() for part in self.path.split("/")]


class TagFileHeader(StrictModel):
    """One family's file in ``conf/tags/``: its keys besides the tags."""

    owner: str = Field(min_length=1, description="Owner of the file's tags unless a tag names one.")
    description: str = ""
    tags: list[Any] = Field(default_factory=list, description="The family's tags.")


class TagFile(StrictModel):
    """One family's file with its valid tags."""

    owner: str
    description: str = ""
    tags: list[TagDefinition]


class HierarchyFile(StrictModel):
    """``conf/tags/hierarchy.yaml``: 一级 → 二级 → list of 三级."""

    hierarchy: dict[str, dict[str, list[str]]] = Field(min_length=1)


@dataclass(frozen=True)
class Tag:
    """A validated tag with where it came from and what it reads."""

    definition: TagDefinition
    family: str
    file: str
    owner: str
    tag_inputs: frozenset[str] = frozenset()
    feature_inputs: frozenset[str] = frozenset()

    @property
    def code(self) -> str:
        return self.definition.code

    @property
    def online(self) -> bool:
        return self.definition.status == "online"


@dataclass(frozen=True)
class TagRegistry:
    """Every tag of ``conf/tags/``, validated, in dependency order."""

    tags: tuple[Tag, ...]
    hierarchy: Mapping[str, Mapping[str, tuple[str, ...]]]
    folder: str
    features: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def by_code(self) -> dict[str, Tag]:
        return {tag.code: tag for tag in self.tags}

    def online(self) -> list[Tag]:
        """The tags to compute, dependencies first."""
        return [tag for tag in self.tags if tag.online]

    def levels(self, tags: Iterable[Tag] | None = None) -> list[list[Tag]]:
        """``tags`` (default: online ones) grouped so each group reads only earlier groups."""
        chosen = list(self.online() if tags is None else tags)
        depth: dict[str, int] = {}
        for tag in chosen:  # already in dependency order
            depth[tag.code] = 1 + max((depth.get(d, -1) for d in tag.tag_inputs), default=-1)
        groups: list[list[Tag]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for tag in chosen:
            groups[depth[tag.code]].append(tag)
        return groups


def tags_folder(conf_dir: str | Path | None = None) -> Path:
    return conf_path(TAGS_DIR, conf_dir)


def load_tag_registry(
    features: Mapping[str, str], conf_dir: str | Path | None = None
) -> TagRegistry:
    """Load and validate every tag file against ``features`` (feature name → Spark SQL type).

    Raises one :class:`ConfigError` listing every problem found in the folder.
    """
    folder = tags_folder(conf_dir)
    if not folder.is_dir():
        raise ConfigError(str(folder), ["tag folder not found"])
    problems: list[str] = []
    hierarchy = _load_hierarchy(folder / HIERARCHY_FILE, problems)
    files = sorted(p for p in folder.glob("*.yaml") if p.name != HIERARCHY_FILE)
    if not files:
        problems.append(f"{folder}: no tag files (*.yaml besides {HIERARCHY_FILE})")
    loaded = [(path, _load_tag_file(path, problems)) for path in files]
    tags = [
        _tag(path, tag_file, definition)
        for path, tag_file in loaded
        if tag_file is not None
        for definition in tag_file.tags
    ]
    tags, input_problems = _with_inputs(tags, features)
    problems += input_problems
    problems += _duplicate_codes(tags)
    problems += _duplicate_names(tags)
    problems += _feature_shadows(tags, features)
    problems += _hierarchy_problems(tags, hierarchy)
    problems += _value_literal_problems(tags)
    ordered, order_problems = _dependency_order(tags)
    problems += order_problems
    problems += _status_problems(tags)
    if problems:
        raise ConfigError(str(folder), problems)
    return TagRegistry(tuple(ordered), hierarchy, str(folder), dict(features))


def _load_hierarchy(path: Path, problems: list[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    try:
        data = read_yaml(path)
        parsed = HierarchyFile.model_validate(data)
    except ConfigError as exc:
        problems += [f"{path.name}: {p}" for p in exc.problems]
        return {}
    except ValidationError as exc:
        problems += [f"{path.name}: {p}" for p in describe_validation_errors(exc, HierarchyFile)]
        return {}
    return {
        top: {middle: tuple(leaves) for middle, leaves in middles.items()}
        for top, middles in parsed.hierarchy.items()
    }


def _load_tag_file(path: Path, problems: list[str]) -> TagFile | None:
    """The file's tags that are valid; every invalid tag adds its problems (one bad tag never
    hides the problems of the others)."""
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        problems += [f"{path.name}: {p}" for p in exc.problems]
        return None
    entries = data.get("tags")
    header = {**data, "tags": []}
    try:
        TagFileHeader.model_validate(header)
    except ValidationError as exc:
        problems += [f"{path.name}: {p}" for p in describe_validation_errors(exc, TagFileHeader)]
        return None
    if not isinstance(entries, list) or not entries:
        problems.append(f"{path.name}: tags: a non-empty list of tags is required")
        return None
    tags = []
    for index, entry in enumerate(entries):
        try:
            tags.append(TagDefinition.model_validate(entry))
        except ValidationError as exc:
            code = entry.get("code") if isinstance(entry, dict) else None
            problems += [
                f"{path.name}: tag {code or '<no code>'}: tags.{index}{_located(err)}"
                for err in exc.errors(include_url=False)
            ]
    if not tags:
        return None
    return TagFile(owner=header["owner"], description=header.get("description", ""), tags=tags)


def _located(err: Any) -> str:
    """``.<key>: <message>`` for one pydantic error of a tag (the whole tag is not repeated)."""
    loc = ".".join(str(p) for p in err["loc"])
    where = f".{loc}" if loc else ""
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key (allowed: {', '.join(sorted(TagDefinition.model_fields))})"
    if err["type"] == "missing":
        return f"{where}: required key is missing"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" + (f" (got {err['input']!r})" if loc else "")


def _tag(path: Path, tag_file: TagFile, definition: TagDefinition) -> Tag:
    return Tag(
        definition=definition,
        family=path.stem,
        file=path.name,
        owner=definition.owner or tag_file.owner,
    )


def _with_inputs(tags: list[Tag], features: Mapping[str, str]) -> tuple[list[Tag], list[str]]:
    """Tags with the features and tags they read. A builtin's unknown name or bad parameters are
    problems here; unknown names in SQL are found when it is resolved (:func:`sql_problems`)."""
    codes = {tag.code.lower() for tag in tags}
    lower_features = {f.lower() for f in features}
    result, problems = [], []
    for tag in tags:
        definition = tag.definition
        referenced = referenced_names(definition.sql) if definition.sql else set()
        if definition.builtin:
            named, builtin_problems = _builtin_names(definition)
            problems += [f"{_label(tag)}: {p}" for p in builtin_problems]
            unknown = {n for n in named if n.lower() not in codes | lower_features}
            problems += [
                f"{_label(tag)}: builtin {definition.builtin.name} reads {n!r}, which is "
                "neither a feature nor a tag"
                for n in sorted(unknown)
            ]
            referenced |= {n.lower() for n in named}
            for sql in _builtin_sql(definition):
                referenced |= referenced_names(sql)
        result.append(
            replace(
                tag,
                tag_inputs=frozenset(referenced & codes),
                feature_inputs=frozenset(referenced & lower_features),
            )
        )
    return result, problems


def _builtin_names(definition: TagDefinition) -> tuple[list[str], list[str]]:
    """Names a builtin tag reads, and the problems of its call (unknown builtin, bad
    parameters, a value type or values the builtin cannot give)."""
    call = definition.builtin
    assert call is not None
    builtin = BUILTINS.get(call.name)
    if builtin is None:
        return [], [f"unknown builtin {call.name!r} (known: {', '.join(sorted(BUILTINS))})"]
    params, problems = builtin.parse(call.params)
    problems = [f"builtin {call.name} params.{p}" for p in problems]
    if builtin.value_type != definition.value_type:
        problems.append(
            f"builtin {call.name} gives {builtin.value_type} values, but the tag's value_type "
            f"is {definition.value_type}"
        )
    elif builtin.values is not None:
        missing = [v for v in builtin.values if v not in (definition.values or [])]
        if missing:
            problems.append(f"builtin {call.name} gives values {missing} not in the tag's values")
    return (builtin.inputs(params) if params else []), problems


def _builtin_sql(definition: TagDefinition) -> list[str]:
    call = definition.builtin
    builtin = BUILTINS.get(call.name) if call else None
    if call is None or builtin is None:
        return []
    params, problems = builtin.parse(call.params)
    return builtin.sql_inputs(params) if params and not problems else []


def referenced_names(sql: str) -> set[str]:
    """Lower-cased identifiers in ``sql`` outside string literals (function names and keywords
    included; callers intersect with the names they know)."""
    bare = _QUOTED.sub("''", sql)
    return {(quoted or plain).lower() for quoted, plain in _IDENTIFIER.findall(bare)}


def _label(tag: Tag) -> str:
    return f"{tag.file}: tag {tag.code}"


def _duplicate_codes(tags: list[Tag]) -> list[str]:
    first: dict[str, Tag] = {}
    problems = []
    for tag in tags:
        key = tag.code.lower()
        if key in first:
            other = first[key]
            problems.append(
                f"{_label(tag)}: duplicate code, already defined in {other.file} "
                f"({other.definition.name.zh})"
            )
        else:
            first[key] = tag
    return problems


def _duplicate_names(tags: list[Tag]) -> list[str]:
    """Chinese names must be unique too: audiences and business users name tags by them."""
    first: dict[str, Tag] = {}
    problems = []
    for tag in tags:
        name = tag.definition.name.zh
        if name in first and first[name].code != tag.code:
            other = first[name]
            problems.append(
                f"{_label(tag)}: name {name!r} is also the name of tag {other.code} ({other.file})"
            )
        first.setdefault(name, tag)
    return problems


def _feature_shadows(tags: list[Tag], features: Mapping[str, str]) -> list[str]:
    lower = {f.lower() for f in features}
    return [
        f"{_label(tag)}: code is also a feature's name; tag codes and feature names must differ"
        for tag in tags
        if tag.code.lower() in lower
    ]


def _hierarchy_problems(
    tags: list[Tag], hierarchy: Mapping[str, Mapping[str, tuple[str, ...]]]
) -> list[str]:
    if not hierarchy:
        return []
    problems = []
    for tag in tags:
        levels = tag.definition.levels
        if len(levels) != 3 or not all(levels):
            problems.append(
                f"{_label(tag)}: path {tag.definition.path!r} must have three levels "
                "'一级/二级/三级'"
            )
            continue
        top, middle, leaf = levels
        if top not in hierarchy:
            problems.append(
                f"{_label(tag)}: path {tag.definition.path!r}: level 1 {top!r} is not in "
                f"{HIERARCHY_FILE} (present: {', '.join(hierarchy)})"
            )
        elif middle not in hierarchy[top]:
            problems.append(
                f"{_label(tag)}: path {tag.definition.path!r}: level 2 {middle!r} is not under "
                f"{top!r} in {HIERARCHY_FILE} (present: {', '.join(hierarchy[top])})"
            )
        elif leaf not in hierarchy[top][middle]:
            problems.append(
                f"{_label(tag)}: path {tag.definition.path!r}: level 3 {leaf!r} is not under "
                f"{top}/{middle} in {HIERARCHY_FILE} "
                f"(present: {', '.join(hierarchy[top][middle])})"
            )
    return problems


def _value_literal_problems(tags: list[Tag]) -> list[str]:
    """Literal results (``THEN 'x'`` / ``ELSE 'x'``) of a category tag outside its values."""
    problems = []
    for tag in tags:
        definition = tag.definition
        if definition.value_type != "category" or not definition.sql:
            continue
        allowed = set(definition.values or [])
        for literal in _RESULT_LITERAL.findall(definition.sql):
            if literal not in allowed:
                problems.append(
                    f"{_label(tag)}: result {literal!r} is not one of its values "
                    f"({', '.join(definition.values or [])})"
                )
    return problems


def _dependency_order(tags: list[Tag]) -> tuple[list[Tag], list[str]]:
    """Tags sorted so each follows the tags it reads; cycles are reported with their path."""
    by_code = {tag.code.lower(): tag for tag in tags}
    state: dict[str, str] = {}
    ordered: list[Tag] = []
    problems: list[str] = []

    def visit(code: str, trail: list[str]) -> None:
        if state.get(code) == "done":
            return
        if state.get(code) == "active":
            cycle = [*trail[trail.index(code) :], code]
            tag = by_code[code]
            problems.append(f"{_label(tag)}: dependency cycle {' → '.join(cycle)}")
            return
        state[code] = "active"
        for dep in sorted(by_code[code].tag_inputs):
            visit(dep, [*trail, code])
        state[code] = "done"
        ordered.append(by_code[code])

    for tag in tags:
        visit(tag.code.lower(), [])
    return ordered, problems


def _status_problems(tags: list[Tag]) -> list[str]:
    by_code = {tag.code.lower(): tag for tag in tags}
    problems = []
    for tag in tags:
        if not tag.online:
            continue
        for dep in sorted(tag.tag_inputs):
            if not by_code[dep].online:
                problems.append(
                    f"{_label(tag)}: an online tag reads tag {dep}, which is "
                    f"{by_code[dep].definition.status}"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# checks that need Spark
# ---------------------------------------------------------------------------------------------

TAG_COLUMN_TYPES: dict[str, str] = {
    "boolean": "boolean",
    "category": "string",
    "integer": "bigint",
    "number": "double",
    "date": "date",
}


def check_tag_sql(spark: SparkSession, registry: TagRegistry) -> None:
    """Raise one :class:`ConfigError` listing every tag whose SQL does not parse, does not
    resolve against the feature schema and the tags it may read, or has the wrong result type."""
    problems = sql_problems(spark, registry)
    if problems:
        raise ConfigError(registry.folder, problems)


def sql_problems(spark: SparkSession, registry: TagRegistry) -> list[str]:
    """Problems of every SQL-defined tag, checked on an empty frame with the features', the
    tags' and ``snapshot_date``'s columns (no data is read). All tags are analysed in one
    projection; only when that fails is each analysed alone, to name every broken one."""
    columns = [f"`{name}` {sql_type}" for name, sql_type in registry.features.items()]
    columns += [
        f"`{tag.code}` {TAG_COLUMN_TYPES[tag.definition.value_type]}" for tag in registry.tags
    ]
    columns.append("snapshot_date date")
    empty = spark.createDataFrame([], ", ".join(columns))
    checks = [
        (tag, f"builtin sql {sql!r}", sql)
        for tag in registry.tags
        for sql in _builtin_sql(tag.definition)
    ]
    checks += [
        (tag, f"sql {tag.definition.sql!r}", tag.definition.sql)
        for tag in registry.tags
        if tag.definition.sql
    ]
    with _quiet_analysis_errors():
        try:
            schema = empty.select(
                *[F.expr(sql).alias(f"c{i}") for i, (_, _, sql) in enumerate(checks)]
            ).schema
            types: list[DataType | str] = [f.dataType for f in schema]
        except (ParseException, AnalysisException):
            types = [_analysed_type(empty, sql) for _, _, sql in checks]
    problems = []
    for (tag, what, _), result in zip(checks, types, strict=True):
        if isinstance(result, str):
            problems.append(f"{_label(tag)}: {what}: {result}")
        elif what.startswith("sql") and not _fits(result, tag.definition.value_type):
            problems.append(
                f"{_label(tag)}: sql gives {result.simpleString()}, but the tag's value_type "
                f"is {tag.definition.value_type}"
            )
    return problems


def _analysed_type(frame: DataFrame, sql: str) -> DataType | str:
    """The type of ``sql`` over ``frame``, or the first line of why it does not analyse."""
    try:
        return frame.select(F.expr(sql)).schema[0].dataType
    except (ParseException, AnalysisException) as exc:
        return first_error_line(str(exc))


@contextmanager
def _quiet_analysis_errors() -> Iterator[None]:
    """PySpark logs every analysis error it raises; here they are expected and reported."""
    loggers = [PySparkLogger.getLogger(name) for name in SPARK_ERROR_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _fits(data_type: DataType, value_type: str) -> bool:
    if value_type == "boolean":
        return isinstance(data_type, BooleanType)
    if value_type == "category":
        return isinstance(data_type, StringType)
    if value_type == "integer":
        return isinstance(data_type, ByteType | ShortType | IntegerType | LongType)
    if value_type == "number":
        return isinstance(data_type, NumericType)
    return isinstance(data_type, DateType)
