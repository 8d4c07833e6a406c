"""Bronze text rows → typed, standardised, validated rows (DataFrame in, DataFrame out).

:func:`validated_frame` parses every logical column per ``conf/sources.yaml``, standardises
identifiers and records why a row is rejected (``_errors``) or flagged (``_warnings``):

- ``malformed_row``: the reader could not split or parse the line (the only reason then);
- ``missing:<column>``: a required column has no value;
- ``unparseable:<column>``: a value does not parse as the column's type (an error for required
  columns, a warning otherwise; the value becomes null);
- ``invalid:<column>``: a mobile, e-mail, resident ID or gender that fails its check (warning);
- ``mismatch:<column>.birth_date`` / ``.gender``: a resident ID disagreeing with the row's own
  birth date or gender (warning);
- ``rule:<name>``: a configured rule does not hold (its severity decides);
- ``rescued_columns``: the row carried columns the config does not know (warning).

:func:`protected_frame` then replaces every PII column by its token and masked value: every
non-null value, invalid ones included (tokenised under the ``invalid`` purpose, masked without
any character kept), so no value of a PII column reaches silver in clear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from profilehouse import standardize as std
from profilehouse.columns import mask_middle_expr
from profilehouse.ingest.bronze import CORRUPT, RESCUED
from profilehouse.ingest.source_config import ColumnSpec, SourceSpec
from profilehouse.privacy.tokens import (
    hmac_token_from_keys,
    mask_account_no_expr,
    mask_address_expr,
    mask_card_no_expr,
    mask_counterparty_expr,
    mask_email_expr,
    mask_generic_expr,
    mask_id_no_expr,
    mask_mobile_expr,
    mask_name_expr,
)

ERRORS, WARNINGS, RAW = "_errors", "_warnings", "_raw"
MALFORMED = "malformed_row"
DEFAULT_DATE_FORMATS = ("yyyy-MM-dd",)
DEFAULT_TIMESTAMP_FORMATS = (
    "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",  # how bronze renders Parquet timestamps
    "yyyy-MM-dd'T'HH:mm:ssXXX",
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd'T'HH:mm:ss",
)
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")
_NUMERIC = {"int": "int", "long": "bigint", "double": "double", "boolean": "boolean"}


def _clean(col: Column) -> Column:
    """Trimmed text; null when blank."""
    return F.nullif(F.trim(col), F.lit(""))


def typed_value_expr(raw: Column, spec: ColumnSpec, time_zone: str) -> Column:
    """The value of a bronze text column parsed as ``spec.type`` (null when it does not parse)."""
    kind = spec.type
    decimal = _DECIMAL.match(kind)
    if kind == "string":
        value = _STANDARDIZERS.get(spec.standardize or "", _clean)(raw)
    elif kind == "date":
        value = std.parse_date_expr(raw, spec.formats or DEFAULT_DATE_FORMATS)
    elif kind == "timestamp":
        value = _timestamp_expr(raw, spec, time_zone)
    elif decimal:
        value = std.decimal_expr(raw, int(decimal.group(1)), int(decimal.group(2)))
    elif kind in _NUMERIC:
        value = _clean(raw).try_cast(_NUMERIC[kind])
    else:
        value = F.from_json(_clean(raw), kind)  # array<...> / struct<...> / map<...>
    return value


def _timestamp_expr(raw: Column, spec: ColumnSpec, time_zone: str) -> Column:
    if spec.epoch == "millis":
        return std.epoch_millis_to_timestamp_expr(raw)
    if spec.epoch == "seconds":
        return std.epoch_seconds_to_timestamp_expr(raw)
    return std.parse_timestamp_expr(raw, spec.formats or DEFAULT_TIMESTAMP_FORMATS, time_zone)


def _mobile_standardized(raw: Column) -> Column:
    """E.164 when valid; otherwise the cleaned text (flagged ``invalid:`` by the validation)."""
    return F.coalesce(std.mobile_e164_expr(raw), _clean(std.halfwidth_expr(raw)))


# standardize: value → its standard form (see profilehouse.standardize)
_STANDARDIZERS: dict[str, Callable[[Column], Column]] = {
    "mobile": _mobile_standardized,
    "email": std.email_normalized_expr,
    "id_no": std.id_no_normalized_expr,
    "name": std.name_normalized_expr,
    "address": std.address_normalized_expr,
    "gender": std.gender_normalized_expr,
}


def _validity_expr(value: Column, spec: ColumnSpec, as_of: Column) -> Column | None:
    """True/false for standardised identifiers (null when the value is null); None otherwise."""
    match spec.standardize:
        case "mobile":
            return std.mobile_valid_expr(value)
        case "email":
            return std.email_valid_expr(value)
        case "id_no":
            return std.id_no_valid_expr(value, as_of)
    return None


def _reasons(pairs: Iterable[tuple[Column, str]]) -> Column:
    """array<string> of the reasons whose condition is true (empty when none)."""
    flags = [F.when(cond, F.lit(reason)) for cond, reason in pairs]
    if not flags:
        return F.array().cast("array<string>")
    return F.filter(F.array(*flags), lambda x: x.isNotNull())


def _as_of_expr() -> Column:
    """The date identifiers are checked against: the row's batch date, else today."""
    return F.coalesce(F.try_to_date(F.col("_batch"), "yyyy-MM-dd"), F.current_date())


def validated_frame(bronze: DataFrame, spec: SourceSpec) -> DataFrame:
    """Typed logical columns (standardised; PII still clear), validity flags, ``_errors``,
    ``_warnings``, ``_raw`` (the row as received, JSON), the bronze metadata columns and
    ``__raw_<column>`` (each value as received, for diagnostics; never written to silver)."""
    raw_json = F.coalesce(
        F.col(CORRUPT),
        F.to_json(F.struct(*[F.col(c) for c in spec.columns], F.col(RESCUED))),
    )
    typed = {
        name: typed_value_expr(F.col(name), col, spec.time_zone)
        for name, col in spec.columns.items()
    }
    staged = bronze.withColumns(
        {**{f"__raw_{n}": F.col(n) for n in spec.columns}, **typed, RAW: raw_json}
    )
    as_of = _as_of_expr()
    flags: dict[str, Column] = {}
    errors: list[tuple[Column, str]] = []
    warnings: list[tuple[Column, str]] = []
    for name, col in spec.columns.items():
        raw_present = _clean(F.col(f"__raw_{name}")).isNotNull()
        value = F.col(name)
        if col.required:
            errors.append((~raw_present, f"missing:{name}"))
        if col.type != "string":
            failed = raw_present & value.isNull()
            (errors if col.required else warnings).append((failed, f"unparseable:{name}"))
        validity = _validity_expr(value, col, as_of)
        if validity is not None and col.pii_when:
            validity = F.when(F.expr(col.pii_when), validity)
        if validity is not None:
            flags[f"{name}_valid"] = validity
            warnings.append((~validity, f"invalid:{name}"))
        if col.standardize == "gender":
            warnings.append((raw_present & value.isNull(), f"invalid:{name}"))
        if col.cross_check:
            warnings.extend(_id_cross_checks(name, col, as_of))
    for rule in spec.rules:
        holds = F.coalesce(F.expr(rule.expr), F.lit(False))
        (errors if rule.severity == "error" else warnings).append((~holds, f"rule:{rule.name}"))
    warnings.append((F.col(RESCUED).isNotNull(), "rescued_columns"))
    malformed = F.col(CORRUPT).isNotNull()
    return staged.withColumns(flags).withColumns(
        {
            ERRORS: F.when(malformed, F.array(F.lit(MALFORMED))).otherwise(_reasons(errors)),
            WARNINGS: F.when(malformed, F.array().cast("array<string>")).otherwise(
                _reasons(warnings)
            ),
        }
    )


def _id_cross_checks(name: str, col: ColumnSpec, as_of: Column) -> list[tuple[Column, str]]:
    check = col.cross_check
    assert check is not None
    checks = []
    if check.birth_date:
        embedded = std.id_birth_date_expr(F.col(name), as_of)
        checks.append((embedded != F.col(check.birth_date), f"mismatch:{name}.birth_date"))
    if check.gender:
        embedded = std.id_gender_expr(F.col(name), as_of)
        checks.append((embedded != F.col(check.gender), f"mismatch:{name}.gender"))
    return checks


# --- PII protection ------------------------------------------------------------------------------

INVALID_PURPOSE = "invalid"


def _birth_date_mask(value: Column) -> Column:
    return F.concat(F.substring(value.cast("string"), 1, 4), F.lit("-**-**"))


# pii kind → masked display value of a value that passed its kind's check; values that failed
# it, and values a kind's mask cannot show, get the generic mask (no character kept)
_MASKS: dict[str, Callable[[Column], Column]] = {
    "mobile": mask_mobile_expr,
    "email": mask_email_expr,
    "id_no": mask_id_no_expr,
    "name": mask_name_expr,
    "address": mask_address_expr,
    "birth_date": _birth_date_mask,
    "account_no": mask_account_no_expr,
    "card_no": mask_card_no_expr,
    "counterparty": mask_counterparty_expr,
}


def _kind_mask_expr(value: Column, kind: str) -> Column:
    mask = _MASKS.get(kind)
    return mask(value) if mask else mask_middle_expr(value.cast("string"), 4, 2)


def _checked_kinds(col: ColumnSpec) -> list[str]:
    return list(col.pii_kinds) if col.pii_kinds else [col.pii or ""]


def pii_purpose_expr(name: str, col: ColumnSpec) -> Column:
    """The token purpose of column ``name``'s value in each row (null when null or clear).

    The declared PII kind when the value passes the kind's check (``<col>_valid`` for mobile,
    e-mail and resident ID); ``'invalid'`` when it fails it, or when a ``pii_kinds`` /
    ``pii_when`` column's value is neither of a declared kind nor in a ``clear_when`` row (an
    unusual openid). Invalid values are tokenised apart from valid ones, so identity never
    links on garbage, yet no value of a PII column is ever kept in clear.
    """
    kind = F.expr(col.pii_kind_sql())
    if col.standardize in ("mobile", "email", "id_no"):
        kind = F.when(F.col(f"{name}_valid"), kind)
    clear = col.clear_sql()
    purpose = F.when(F.col(name).isNull(), F.lit(None).cast("string")).when(kind.isNotNull(), kind)
    if clear is not None:
        purpose = purpose.when(F.coalesce(F.expr(clear), F.lit(False)), F.lit(None))
    return purpose.otherwise(F.lit(INVALID_PURPOSE))


def pii_value_expr(name: str, purpose: Column) -> Column:
    """The value of column ``name`` that is tokenised: the standardised value when valid, the
    trimmed value as received when not (null in clear rows)."""
    return F.when(purpose.isNotNull(), F.col(name).cast("string"))


def pii_mask_expr(value: Column, purpose: Column, col: ColumnSpec) -> Column:
    """The masked display of ``value``: its kind's mask when valid, else the generic mask."""
    masked = None
    for kind in _checked_kinds(col):
        masked = (F.when if masked is None else masked.when)(
            purpose == kind, _kind_mask_expr(value, kind)
        )
    return F.coalesce(masked, mask_generic_expr(value))


def protected_frame(validated: DataFrame, spec: SourceSpec) -> DataFrame:
    """``validated`` with each PII column replaced by ``<col>_token`` and ``<col>_masked``
    (plus ``<col>_province``/``_city`` for addresses), ``__pii_<col>`` holding the tokenised
    value and ``__pii_kind_<col>`` its purpose, for the vault (drop both before writing
    anywhere but the vault).

    Needs the key columns of :func:`profilehouse.privacy.tokens.token_key_frame` joined in.
    A ``pii_when`` / ``pii_kinds`` column keeps its clear value only in rows where it is not PII.
    """
    pii_columns = {name: col for name, col in spec.columns.items() if col.is_pii}
    # one projection computes each purpose and value, the next derives token and mask from them
    # (so the normalisation is not repeated inside every expression that uses it)
    purposes = {f"__pii_kind_{n}": pii_purpose_expr(n, c) for n, c in pii_columns.items()}
    normalised = validated.withColumns(purposes).withColumns(
        {f"__pii_{n}": pii_value_expr(n, F.col(f"__pii_kind_{n}")) for n in pii_columns}
    )
    replaced: dict[str, Column] = {}
    drop = []
    for name, col in pii_columns.items():
        pii, purpose = F.col(f"__pii_{name}"), F.col(f"__pii_kind_{name}")
        replaced[f"{name}_token"] = hmac_token_from_keys(pii, purpose)
        replaced[f"{name}_masked"] = pii_mask_expr(pii, purpose, col)
        if col.standardize == "address":
            replaced[f"{name}_province"] = std.province_expr(F.col(name))
            replaced[f"{name}_city"] = std.city_expr(F.col(name))
        if col.partly_pii:
            replaced[name] = F.when(purpose.isNull(), F.col(name))
        else:
            drop.append(name)
    return normalised.withColumns(replaced).drop(*drop)
