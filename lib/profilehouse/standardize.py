"""Standardisers for the silver layer: Column → Column functions built from Spark built-ins only.

Every function takes the raw source column and returns the standardised value, or null when the
value is missing or cannot be understood; nothing raises on bad data (parsing uses the ``try_*``
functions, so it is safe under ANSI mode). Normalisers are idempotent, so a ``*_valid_expr`` or
mask may be applied to raw or already-normalised input alike.

Full-width forms (U+FF01–U+FF5E, U+FFE0–U+FFE6) are folded to their half-width equivalents and
the ideographic space U+3000 to a space, as typed by Chinese input methods; "whitespace" means
ASCII whitespace plus no-break, ideographic, zero-width and other Unicode spaces.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from profilehouse.columns import id_check_char_expr

# --- character folding ---------------------------------------------------------------------------

# Full-width ASCII U+FF01–U+FF5E → U+0021–U+007E, U+3000 → space, full-width signs → their
# NFKC forms (￠ ￡ ￢ ￣ ￤ ￥ ￦).
_FULLWIDTH = "".join(
    [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"] + [chr(c) for c in range(0xFFE0, 0xFFE7)]
)
_HALFWIDTH = "".join(
    [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)]
    + [" "]
    + list("\u00a2\u00a3\u00ac\u00af\u00a6\u00a5\u20a9")
)

# Java regex character class of whitespace (Java's \s is ASCII only).
_WS = r"[\s\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]"


def halfwidth_expr(col: Column) -> Column:
    """``col`` with full-width ASCII forms and U+3000 folded to half-width; null stays null."""
    return F.translate(col, _FULLWIDTH, _HALFWIDTH)


def _strip(col: Column) -> Column:
    """``col`` without leading and trailing whitespace (Unicode spaces included)."""
    return F.regexp_replace(col, rf"^{_WS}+|{_WS}+$", "")


def _null_if_empty(col: Column) -> Column:
    """``col``, or null when it is the empty string."""
    return F.when(col != "", col)


def _clean(col: Column) -> Column:
    """Half-width, stripped text of ``col`` (any type); null when null or blank."""
    return _null_if_empty(_strip(halfwidth_expr(col.cast("string"))))


def _extract_or_null(col: Column, pattern: str, group: int = 1) -> Column:
    """Group ``group`` of the first match of ``pattern`` in ``col``; null when it does not match."""
    return _null_if_empty(F.regexp_extract(col, pattern, group))


# --- mobile --------------------------------------------------------------------------------------

_MOBILE_SEPARATORS = rf"(?:{_WS}|[\-().])"
_MOBILE_PATTERN = r"^(?:\+86|0086|86)?(1[3-9][0-9]{9})$"


def mobile_e164_expr(col: Column) -> Column:
    """'+86' + 11 digits for a mainland mobile in any common format; null when null or invalid.

    Accepts separators (spaces, '-', '.', parentheses), a '+86' / '0086' / '86' / '(+86)' prefix
    and full-width characters; the 11-digit number must start with 13–19.
    """
    compact = F.regexp_replace(halfwidth_expr(col.cast("string")), _MOBILE_SEPARATORS, "")
    return F.concat(F.lit("+86"), _extract_or_null(compact, _MOBILE_PATTERN))


def mobile_valid_expr(col: Column) -> Column:
    """True when ``col`` is a valid mainland mobile, false when not; null when null or blank."""
    return F.when(_clean(col).isNotNull(), mobile_e164_expr(col).isNotNull())


# --- e-mail --------------------------------------------------------------------------------------

_EMAIL_PATTERN = (
    r"^(?!\.)(?!.*\.\.)[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}(?<!\.)"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


def email_normalized_expr(col: Column) -> Column:
    """Trimmed, lower-cased, half-width e-mail text; null when null or blank (not validated)."""
    return F.lower(_clean(col))


def email_valid_expr(col: Column) -> Column:
    """True when the normalised e-mail looks like local@domain.tld; null when null or blank.

    Pragmatic rule: one '@', no whitespace, the local part of RFC 5322 "atext" characters and
    dots (not leading, trailing or doubled), a dotted ASCII domain ending in a 2+ letter TLD.
    """
    return email_normalized_expr(col).rlike(_EMAIL_PATTERN)


# --- resident ID ---------------------------------------------------------------------------------

_ID_SHAPE = r"^[1-8][0-9]{16}[0-9X]$"
_ID_MIN_BIRTH = dt.date(1900, 1, 1)


def _date_column(value: Column | dt.date | str) -> Column:
    """A date Column from a Column, a ``datetime.date`` or an ISO 'yyyy-MM-dd' string literal."""
    if isinstance(value, Column):
        return value.cast("date")
    if isinstance(value, dt.datetime):
        return F.lit(value.date())
    if isinstance(value, dt.date):
        return F.lit(value)
    if isinstance(value, str):
        try:
            return F.lit(dt.date.fromisoformat(value))
        except ValueError:
            raise ValueError(f"as_of must be an ISO date 'yyyy-MM-dd', got {value!r}") from None
    raise TypeError(f"as_of must be a Column, a date or an ISO date string, got {type(value)}")


def id_no_normalized_expr(col: Column) -> Column:
    """Resident ID text half-width, upper-case, without any whitespace; null when null or blank."""
    return _null_if_empty(F.upper(F.regexp_replace(halfwidth_expr(col.cast("string")), _WS, "")))


def _id_embedded_birth(id_no: Column) -> Column:
    """The birth date in digits 7–14 of a normalised ID; null when it is not a real date."""
    return F.try_to_date(F.substring(id_no, 7, 8), "yyyyMMdd")


def _id_ok_expr(col: Column, as_of: Column | dt.date | str | None) -> Column:
    """Validity of the resident ID in ``col`` (see :func:`id_no_valid_expr`)."""
    id_no = id_no_normalized_expr(col)
    birth = _id_embedded_birth(id_no)
    checks = (
        (F.substring(id_no, 18, 1) == id_check_char_expr(F.substring(id_no, 1, 17)))
        & birth.isNotNull()
        & (birth >= F.lit(_ID_MIN_BIRTH))
    )
    if as_of is not None:
        checks = checks & (birth <= _date_column(as_of))
    return (
        F.when(id_no.isNull(), F.lit(None).cast("boolean"))
        .when(~id_no.rlike(_ID_SHAPE), F.lit(False))
        .otherwise(checks)
    )


def id_no_valid_expr(col: Column, as_of: Column | dt.date | str) -> Column:
    """True when ``col`` is a valid 18-character resident ID, else false; null when null/blank.

    Valid means (after normalisation): 17 digits + a digit or 'X'; region code starting 1–8;
    the GB 11643 check character matches; the embedded birth date (digits 7–14) is a real date
    from 1900-01-01 up to ``as_of`` (a date Column, a ``date`` or an ISO string literal).
    Null also when ``as_of`` is null and every other check passes.
    """
    return _id_ok_expr(col, as_of)


def id_birth_date_expr(col: Column, as_of: Column | dt.date | str | None = None) -> Column:
    """Birth date embedded in a valid resident ID; null when null or invalid.

    Validity as in :func:`id_no_valid_expr`; the not-after-``as_of`` check applies only when
    ``as_of`` is given.
    """
    return F.when(_id_ok_expr(col, as_of), _id_embedded_birth(id_no_normalized_expr(col)))


def id_gender_expr(col: Column, as_of: Column | dt.date | str | None = None) -> Column:
    """'M' when the 17th digit of a valid resident ID is odd, 'F' when even; null when invalid.

    Validity as in :func:`id_birth_date_expr`.
    """
    digit = F.substring(id_no_normalized_expr(col), 17, 1).cast("int")
    return F.when(_id_ok_expr(col, as_of), F.when(F.pmod(digit, F.lit(2)) == 1, "M").otherwise("F"))


# --- names ---------------------------------------------------------------------------------------

# Middle-dot variants in transliterated minority / foreign names (迪丽热巴·迪力木拉提).
_DOTS = "\u30fb\uff65\u2022\u2027\u2219"
_CJK_NAME = r"^[\p{IsHan}\u00b7 ]+$"


def name_normalized_expr(col: Column) -> Column:
    """Person name: half-width, whitespace runs → one space, trimmed; null when null or blank.

    Names made only of Chinese characters (and middle dots) lose all whitespace ('张 伟' → '张伟');
    any other name keeps single spaces and is upper-cased ('john  smith' → 'JOHN SMITH').
    Middle-dot variants become U+00B7.
    """
    text = F.translate(halfwidth_expr(col.cast("string")), _DOTS, "\u00b7" * len(_DOTS))
    collapsed = _null_if_empty(_strip(F.regexp_replace(text, f"{_WS}+", " ")))
    return F.when(collapsed.rlike(_CJK_NAME), F.regexp_replace(collapsed, " ", "")).otherwise(
        F.upper(collapsed)
    )


# --- addresses -----------------------------------------------------------------------------------

_MUNICIPALITIES = ("北京市", "上海市", "天津市", "重庆市")
_PROVINCE_STEMS = (
    "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西", "山东",
    "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾",
)  # fmt: skip
# Province-level divisions: canonical name → other spellings found in addresses.
_PROVINCES: dict[str, tuple[str, ...]] = {
    **{m: (m[:-1],) for m in _MUNICIPALITIES},
    **{f"{p}省": (p,) for p in _PROVINCE_STEMS},
    "内蒙古自治区": ("内蒙古",),
    "广西壮族自治区": ("广西自治区", "广西"),
    "西藏自治区": ("西藏",),
    "宁夏回族自治区": ("宁夏自治区", "宁夏"),
    "新疆维吾尔自治区": ("新疆自治区", "新疆"),
    "香港特别行政区": ("香港",),
    "澳门特别行政区": ("澳门",),
}
_PROVINCE_SPELLINGS = {
    spelling: canonical
    for canonical, others in _PROVINCES.items()
    for spelling in (canonical, *others)
}
_PROVINCE_ALTERNATION = "|".join(sorted(_PROVINCE_SPELLINGS, key=len, reverse=True))
_COUNTRY_PREFIX = "(?:中华人民共和国|中国)?"
# Not followed by 路/街/道/巷: '北京路1号' is a street, not Beijing.
_NOT_STREET = "(?![路街道巷])"
_PROVINCE_PATTERN = f"^{_COUNTRY_PREFIX}({_PROVINCE_ALTERNATION}){_NOT_STREET}"
# A prefecture-level unit right after the (optional) province: ...市 / ...自治州 / ...地区 / ...盟.
_CITY_PATTERN = (
    f"^{_COUNTRY_PREFIX}(?:(?:{_PROVINCE_ALTERNATION}){_NOT_STREET})?"
    r"([\p{IsHan}&&[^省市区县]]{1,10}?(?:市|自治州|地区|盟))"
)


def address_normalized_expr(col: Column) -> Column:
    """Address text half-width with all whitespace removed; null when null or blank."""
    return _null_if_empty(F.regexp_replace(halfwidth_expr(col.cast("string")), _WS, ""))


def province_expr(col: Column) -> Column:
    """Canonical province-level name at the start of an address (广东省, 北京市, 广西壮族自治区).

    Short spellings are canonicalised ('广东广州市…' → 广东省); an optional leading 中国 is
    skipped. Null when null or when the address does not start with a province.
    """
    spelling = _extract_or_null(address_normalized_expr(col), _PROVINCE_PATTERN)
    return F.try_element_at(_province_map(), spelling)


def _province_map() -> Column:
    """map<string, string> literal: province spelling → canonical name."""
    return F.create_map(*[F.lit(x) for kv in _PROVINCE_SPELLINGS.items() for x in kv])


def city_expr(col: Column) -> Column:
    """City of an address (广州市); the municipality itself for 北京/上海/天津/重庆.

    The city is the first ...市 / ...自治州 / ...地区 / ...盟 right after the (optional)
    province at the start of the address. Null when null or not found.
    """
    province = province_expr(col)
    city = _extract_or_null(address_normalized_expr(col), _CITY_PATTERN)
    return F.when(province.isin(*_MUNICIPALITIES), province).otherwise(city)


# --- dates and times -----------------------------------------------------------------------------

_OFFSET_LETTERS = frozenset("XxZOVz")
# Epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (Spark's timestamp range).
_MIN_EPOCH_SECONDS = -62_135_596_800
_MAX_EPOCH_SECONDS = 253_402_300_799


def _check_formats(formats: Sequence[str]) -> list[str]:
    """``formats`` as a list; ValueError when empty or a bare string was passed."""
    if isinstance(formats, str) or not formats:
        raise ValueError(f"formats must be a non-empty sequence of patterns, got {formats!r}")
    return list(formats)


def _has_offset(pattern: str) -> bool:
    """Whether a Spark datetime pattern has an (unquoted) offset or zone field."""
    quoted = False
    for ch in pattern:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in _OFFSET_LETTERS:
            return True
    return False


def parse_date_expr(col: Column, formats: Sequence[str]) -> Column:
    """Date parsed with the first of ``formats`` that fits the trimmed text; null when none does.

    Impossible dates ('31/02/2020', '0000-00-00', '19990231') and text such as 'N/A' give null.
    """
    text = _clean(col)
    return F.coalesce(*[F.try_to_date(text, fmt) for fmt in _check_formats(formats)])


def parse_timestamp_expr(col: Column, formats: Sequence[str], time_zone: str) -> Column:
    """Timestamp (an instant, shown in UTC by the session) parsed with the first fitting format.

    Text is wall-clock time in ``time_zone`` (an IANA name such as 'Asia/Shanghai') unless the
    format has an offset or zone field (X, x, Z, O, V, z), which then decides. Null when none fits.
    """
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {time_zone!r} (use an IANA name)") from None
    text = _clean(col)
    zoned = F.concat(text, F.lit(f" {time_zone}"))
    parsed = [
        F.try_to_timestamp(text, F.lit(fmt))
        if _has_offset(fmt)
        else F.try_to_timestamp(zoned, F.lit(f"{fmt} VV"))
        for fmt in _check_formats(formats)
    ]
    return F.coalesce(*parsed)


def _epoch_to_timestamp(col: Column, micros_per_unit: int) -> Column:
    """Timestamp from a number of epoch units in ``col``; null when not numeric or out of range."""
    value = _clean(col).try_cast(DecimalType(38, 6))
    in_range = value.between(
        _MIN_EPOCH_SECONDS * 1_000_000 // micros_per_unit,
        _MAX_EPOCH_SECONDS * 1_000_000 // micros_per_unit,
    )
    return F.when(in_range, F.timestamp_micros((value * micros_per_unit).cast("long")))


def epoch_millis_to_timestamp_expr(col: Column) -> Column:
    """Timestamp from epoch milliseconds (number or numeric text); null on garbage/out of range."""
    return _epoch_to_timestamp(col, 1_000)


def epoch_seconds_to_timestamp_expr(col: Column) -> Column:
    """Timestamp from epoch seconds (number or numeric text); null on garbage/out of range."""
    return _epoch_to_timestamp(col, 1_000_000)


# --- amounts and codes ---------------------------------------------------------------------------

_CURRENCY_PREFIX = rf"(?i)^([+-]?){_WS}*(?:[¥$]|RMB|CNY){_WS}*"
_CURRENCY_SUFFIX = rf"(?i){_WS}*(?:元|RMB|CNY)$"
_AMOUNT_PATTERN = r"^[+-]?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)$"


def decimal_expr(col: Column, precision: int, scale: int) -> Column:
    """decimal(precision, scale) of an amount like '1,234.50', ' 12.3 ', '¥12.30', '-12元'.

    Accepts a sign, a leading ¥/$/RMB/CNY or trailing 元/RMB/CNY, full-width digits and
    thousands separators in groups of three; rounds half-up to ``scale``. Null when null, not
    numeric or out of range.
    """
    text = F.regexp_replace(
        F.regexp_replace(_clean(col), _CURRENCY_PREFIX, "$1"), _CURRENCY_SUFFIX, ""
    )
    number = F.regexp_replace(text, ",", "")
    return F.when(text.rlike(_AMOUNT_PATTERN), number.try_cast(DecimalType(precision, scale)))


_GENDER_CODES = {
    "M": ("m", "male", "男", "男性", "1"),
    "F": ("f", "female", "女", "女性", "2"),
}


def gender_normalized_expr(col: Column) -> Column:
    """'M' or 'F' from M/F, 男/女, male/female, 1/2 (trimmed, any case); null otherwise."""
    code = F.lower(_clean(col))
    expr = F.when(code.isin(*_GENDER_CODES["M"]), "M")
    return expr.when(code.isin(*_GENDER_CODES["F"]), "F")
