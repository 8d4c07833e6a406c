"""Silver-layer standardisers on tricky values.

Each table is evaluated in one DataFrame (one Spark job) by a module-scoped fixture; the
parametrised tests then assert case by case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from profilehouse.columns import ID_CHECK_CHARS, ID_WEIGHTS
from profilehouse.standardize import (
    address_normalized_expr,
    city_expr,
    decimal_expr,
    email_normalized_expr,
    email_valid_expr,
    epoch_millis_to_timestamp_expr,
    epoch_seconds_to_timestamp_expr,
    gender_normalized_expr,
    halfwidth_expr,
    id_birth_date_expr,
    id_gender_expr,
    id_no_normalized_expr,
    id_no_valid_expr,
    mobile_e164_expr,
    mobile_valid_expr,
    name_normalized_expr,
    parse_date_expr,
    parse_timestamp_expr,
    province_expr,
)

Results = dict[str, dict[str, Any]]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _evaluate(
    spark: SparkSession,
    cases: Sequence[tuple[Any, ...]],
    outputs: dict[str, Callable[[Column], Column]],
    value_type: str = "string",
) -> Results:
    """{description: {output name: value}} for every case, computed in one select."""
    descs = [c[0] for c in cases]
    assert len(set(descs)) == len(descs), "case descriptions must be unique"
    df = spark.createDataFrame([(c[0], c[1]) for c in cases], f"desc string, v {value_type}")
    rows = df.select("desc", *[fn(F.col("v")).alias(name) for name, fn in outputs.items()])
    return {r["desc"]: r.asDict() for r in rows.collect()}


def _check(results: Results, desc: str, output: str, value: Any, expected: Any) -> None:
    got = results[desc][output]
    assert got == expected, f"{desc}: {output}({value!r}) = {got!r}, expected {expected!r}"


def _ids(cases: Sequence[tuple[Any, ...]]) -> list[str]:
    return [c[0] for c in cases]


def _micros(iso: str | None) -> int | None:
    """Epoch microseconds of an ISO timestamp with offset (None stays None)."""
    if iso is None:
        return None
    return (dt.datetime.fromisoformat(iso) - EPOCH) // dt.timedelta(microseconds=1)


def _resident_id(first17: str) -> str:
    """``first17`` + its GB 11643 check character (an independent Python implementation)."""
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK_CHARS[total % 11]


# --- full-width folding --------------------------------------------------------------------------


def test_halfwidth_covers_the_whole_fullwidth_ascii_block(spark: SparkSession) -> None:
    full = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000\uffe5"
    half = "".join(chr(c) for c in range(0x21, 0x7F)) + " \u00a5"
    df = spark.createDataFrame([(full,), (None,)], "v string")
    assert [r[0] for r in df.select(halfwidth_expr(F.col("v"))).collect()] == [half, None]


# --- mobile --------------------------------------------------------------------------------------

E164 = "+8613800138000"
MOBILE_CASES = [
    # (description, input, expected E.164, expected validity)
    ("plain 11 digits", "13800138000", E164, True),
    ("+86 with spaces", "+86 138 0013 8000", E164, True),
    ("+86 with hyphens", "+86-138-0013-8000", E164, True),
    ("0086 prefix", "008613800138000", E164, True),
    ("hyphenated", "138-0013-8000", E164, True),
    ("spaced", "138 0013 8000", E164, True),
    ("+86 compact", "+8613800138000", E164, True),
    ("padded", " 13800138000 ", E164, True),
    ("86 prefix without plus", "8613800138000", E164, True),
    ("86 prefix spaced", "86 138 0013 8000", E164, True),
    ("(+86) prefix", "(+86) 138 0013 8000", E164, True),
    ("(+86) compact", "(+86)13800138000", E164, True),
    ("full-width parentheses", "（＋86）13800138000", E164, True),
    ("full-width digits", "１３８００１３８０００", E164, True),
    ("full-width +86 and U+3000", "＋８６\u3000１３８\u3000００１３\u3000８０００", E164, True),
    ("tabs and nbsp", "138\t0013\u00a08000", E164, True),
    ("dotted", "138.0013.8000", E164, True),
    ("199 prefix", "19912345678", "+8619912345678", True),
    ("170 prefix", "17012345678", "+8617012345678", True),
    ("starts 12", "12345678901", None, False),
    ("starts 10", "10012345678", None, False),
    ("two digits", "12", None, False),
    ("short code", "10086", None, False),
    ("10 digits", "1380013800", None, False),
    ("12 digits", "138001380001", None, False),
    ("+1 country code", "+1 3800138000", None, False),
    ("HK number with +852", "+852 9123 4567", None, False),
    ("0086 + invalid", "0086 12345678901", None, False),
    ("letters around", "abc13800138000", None, False),
    ("letter O for zero", "138-0013-800O", None, False),
    ("double prefix", "+86+8613800138000", None, False),
    ("landline", "010-12345678", None, False),
    ("empty", "", None, None),
    ("blank", " \u3000 ", None, None),
    ("null", None, None, None),
]


@pytest.fixture(scope="module")
def mobile_results(spark: SparkSession) -> Results:
    return _evaluate(spark, MOBILE_CASES, {"e164": mobile_e164_expr, "valid": mobile_valid_expr})


@pytest.mark.parametrize(("desc", "value", "e164", "valid"), MOBILE_CASES, ids=_ids(MOBILE_CASES))
def test_mobile(
    mobile_results: Results, desc: str, value: str | None, e164: str | None, valid: bool | None
) -> None:
    _check(mobile_results, desc, "e164", value, e164)
    _check(mobile_results, desc, "valid", value, valid)


# --- e-mail --------------------------------------------------------------------------------------

EMAIL_CASES = [
    # (description, input, expected normalised, expected validity)
    ("clean", "zhang.wei@qq.com", "zhang.wei@qq.com", True),
    ("upper-case", "ZHANG.WEI123@QQ.COM", "zhang.wei123@qq.com", True),
    ("upper-case with spaces", "  Zhang.Wei@QQ.Com  ", "zhang.wei@qq.com", True),
    ("full-width", "ｚｈａｎｇ＠ｑｑ．ｃｏｍ", "zhang@qq.com", True),
    ("U+3000 padding", "\u3000li.na@163.com\u3000", "li.na@163.com", True),
    ("plus tag, sub-domains", "user+tag@mail.example.co.uk", "user+tag@mail.example.co.uk", True),
    ("digits and hyphen domain", "a1@my-mail.cn", "a1@my-mail.cn", True),
    ("inner space", "zhang wei@qq.com", "zhang wei@qq.com", False),
    ("two @", "zhang@wei@qq.com", "zhang@wei@qq.com", False),
    ("double @", "zhang@@qq.com", "zhang@@qq.com", False),
    ("no TLD", "zhang.wei@qq", "zhang.wei@qq", False),
    ("no @", "zhang.wei.qq.com", "zhang.wei.qq.com", False),
    ("empty local part", "@qq.com", "@qq.com", False),
    ("leading dot", ".zhang@qq.com", ".zhang@qq.com", False),
    ("trailing dot in local", "zhang.@qq.com", "zhang.@qq.com", False),
    ("double dot", "zhang..wei@qq.com", "zhang..wei@qq.com", False),
    ("domain starts with hyphen", "zhang@-qq.com", "zhang@-qq.com", False),
    ("one-letter TLD", "zhang@qq.c", "zhang@qq.c", False),
    ("Chinese local part", "张伟@qq.com", "张伟@qq.com", False),
    ("N/A", "N/A", "n/a", False),
    ("empty", "", None, None),
    ("blank", "   ", None, None),
    ("null", None, None, None),
]


@pytest.fixture(scope="module")
def email_results(spark: SparkSession) -> Results:
    return _evaluate(spark, EMAIL_CASES, {"norm": email_normalized_expr, "valid": email_valid_expr})


@pytest.mark.parametrize(("desc", "value", "norm", "valid"), EMAIL_CASES, ids=_ids(EMAIL_CASES))
def test_email(
    email_results: Results, desc: str, value: str | None, norm: str | None, valid: bool | None
) -> None:
    _check(email_results, desc, "norm", value, norm)
    _check(email_results, desc, "valid", value, valid)


# --- resident ID ---------------------------------------------------------------------------------

AS_OF = dt.date(2025, 6, 30)
ID_F = "11010519491231002X"  # GB 11643's worked example: born 1949-12-31, 17th digit 2 → F
ID_M = "440305199001010018"  # born 1990-01-01, 17th digit 1 → M
ID_CASES = [
    # (description, input, (normalised, valid, birth date, gender))
    ("valid, check X", ID_F, (ID_F, True, dt.date(1949, 12, 31), "F")),
    ("valid, check digit", ID_M, (ID_M, True, dt.date(1990, 1, 1), "M")),
    ("lower-case x", ID_F.lower(), (ID_F, True, dt.date(1949, 12, 31), "F")),
    ("spaces inside and around", " 110105 19491231 002x ", (ID_F, True, dt.date(1949, 12, 31), "F")),
    ("full-width digits", "４４０３０５１９９００１０１００１８", (ID_M, True, dt.date(1990, 1, 1), "M")),
    ("full-width X and U+3000", "11010519491231002Ｘ\u3000", (ID_F, True, dt.date(1949, 12, 31), "F")),
    ("leap day", _resident_id("44030520000229003"), (_resident_id("44030520000229003"), True, dt.date(2000, 2, 29), "M")),
    ("born on as_of", _resident_id("44030520250630004"), (_resident_id("44030520250630004"), True, AS_OF, "F")),
    ("wrong check digit", "440305199001010017", ("440305199001010017", False, None, None)),
    ("wrong check X", "44030519900101001X", ("44030519900101001X", False, None, None)),
    ("impossible date 19990231", _resident_id("44030519990231001"), (_resident_id("44030519990231001"), False, None, None)),
    ("1900 is not a leap year", _resident_id("44030519000229001"), (_resident_id("44030519000229001"), False, None, None)),
    ("month 13", _resident_id("44030519901301001"), (_resident_id("44030519901301001"), False, None, None)),
    ("born before 1900", _resident_id("11010518991231002"), (_resident_id("11010518991231002"), False, None, None)),
    ("future birth date", _resident_id("44030520300101001"), (_resident_id("44030520300101001"), False, None, None)),
    ("born the day after as_of", _resident_id("44030520250701001"), (_resident_id("44030520250701001"), False, None, None)),
    ("region starts 9", _resident_id("94030519900101001"), (_resident_id("94030519900101001"), False, None, None)),
    ("region starts 0", _resident_id("04030519900101001"), (_resident_id("04030519900101001"), False, None, None)),
    ("17 characters", ID_M[:17], (ID_M[:17], False, None, None)),
    ("19 characters", ID_M + "0", (ID_M + "0", False, None, None)),
    ("15-digit first-generation ID", "440305900101001", ("440305900101001", False, None, None)),
    ("letter in the middle", "4403051990X1010018", ("4403051990X1010018", False, None, None)),
    ("letter check A", "44030519900101001A", ("44030519900101001A", False, None, None)),
    ("hyphenated", "440305-19900101-0018", ("440305-19900101-0018", False, None, None)),
    ("empty", "", (None, None, None, None)),
    ("blank", " \u3000", (None, None, None, None)),
    ("null", None, (None, None, None, None)),
]  # fmt: skip


@pytest.fixture(scope="module")
def id_results(spark: SparkSession) -> Results:
    return _evaluate(
        spark,
        ID_CASES,
        {
            "norm": id_no_normalized_expr,
            "valid": lambda c: id_no_valid_expr(c, AS_OF),
            "birth": lambda c: id_birth_date_expr(c, AS_OF),
            "gender": lambda c: id_gender_expr(c, AS_OF),
        },
    )


@pytest.mark.parametrize(("desc", "value", "expected"), ID_CASES, ids=_ids(ID_CASES))
def test_id_no(
    id_results: Results, desc: str, value: str | None, expected: tuple[Any, ...]
) -> None:
    for output, want in zip(("norm", "valid", "birth", "gender"), expected, strict=True):
        _check(id_results, desc, output, value, want)


def test_id_as_of_forms(spark: SparkSession) -> None:
    """as_of as a Column, an ISO string or omitted; a null as_of gives null validity."""
    born_2030 = _resident_id("44030520300101001")
    rows = [
        ("col before birth", born_2030, dt.date(2029, 12, 31)),
        ("col on birth", born_2030, dt.date(2030, 1, 1)),
        ("col null", born_2030, None),
        ("col null, bad check", ID_M[:17] + "7", None),
    ]
    df = spark.createDataFrame(rows, "desc string, v string, as_of date")
    out = {
        r["desc"]: r
        for r in df.select(
            "desc",
            id_no_valid_expr(F.col("v"), F.col("as_of")).alias("valid"),
            id_no_valid_expr(F.col("v"), "2030-01-01").alias("valid_str"),
            id_birth_date_expr(F.col("v")).alias("birth_any"),
            id_gender_expr(F.col("v")).alias("gender_any"),
        ).collect()
    }
    assert [out[d]["valid"] for d, *_ in rows] == [False, True, None, False]
    assert out["col before birth"]["valid_str"] is True
    assert out["col null"]["birth_any"] == dt.date(2030, 1, 1), "no as_of: future allowed"
    assert out["col null"]["gender_any"] == "M"
    assert out["col null, bad check"]["birth_any"] is None
    with pytest.raises(ValueError, match="ISO date"):
        id_no_valid_expr(F.col("v"), "as_of")


# --- names ---------------------------------------------------------------------------------------

NAME_CASES = [
    ("clean Chinese", "张伟", "张伟"),
    ("padded (generator)", " 张伟  ", "张伟"),
    ("inner space", "张 伟", "张伟"),
    ("inner U+3000", "张\u3000伟", "张伟"),
    ("spaces everywhere", " 欧阳 娜 娜\t", "欧阳娜娜"),
    ("traditional characters", "張偉", "張偉"),
    ("middle dot", "迪丽热巴·迪力木拉提", "迪丽热巴·迪力木拉提"),
    ("katakana middle dot", "迪丽热巴・迪力木拉提", "迪丽热巴·迪力木拉提"),
    ("spaced middle dot", "迪丽热巴 · 迪力木拉提", "迪丽热巴·迪力木拉提"),
    ("Latin lower-case", "john smith", "JOHN SMITH"),
    ("Latin spacing runs", "  John   Smith ", "JOHN SMITH"),
    ("Latin tab and nbsp", "John\t\u00a0Smith", "JOHN SMITH"),
    ("full-width Latin with U+3000", "Ｊｏｈｎ\u3000Ｓｍｉｔｈ", "JOHN SMITH"),
    ("Latin punctuation", "mary-jane o'neil", "MARY-JANE O'NEIL"),
    ("mixed scripts keep one space", "张  John", "张 JOHN"),
    ("zero-width space", "\u200b张伟\ufeff", "张伟"),
    ("single character", "伟", "伟"),
    ("empty", "", None),
    ("only U+3000 and spaces", "\u3000 \u3000", None),
    ("null", None, None),
]


@pytest.fixture(scope="module")
def name_results(spark: SparkSession) -> Results:
    return _evaluate(spark, NAME_CASES, {"norm": name_normalized_expr})


@pytest.mark.parametrize(("desc", "value", "expected"), NAME_CASES, ids=_ids(NAME_CASES))
def test_name(name_results: Results, desc: str, value: str | None, expected: str | None) -> None:
    _check(name_results, desc, "norm", value, expected)


# --- addresses -----------------------------------------------------------------------------------

ADDRESS_CASES = [
    # (description, input, (normalised, province, city))
    ("province + city (generator)", "广东省广州市天河区体育西路12号301室", ("广东省广州市天河区体育西路12号301室", "广东省", "广州市")),
    ("municipality (generator)", "北京市朝阳区建国路8号1201室", ("北京市朝阳区建国路8号1201室", "北京市", "北京市")),
    ("spaces removed", "上海市 浦东新区 世纪大道 8号", ("上海市浦东新区世纪大道8号", "上海市", "上海市")),
    ("short province name", "广东 广州市 天河区", ("广东广州市天河区", "广东省", "广州市")),
    ("short municipality", "重庆渝中区解放碑", ("重庆渝中区解放碑", "重庆市", "重庆市")),
    ("country prefix", "中国浙江省杭州市西湖区", ("中国浙江省杭州市西湖区", "浙江省", "杭州市")),
    ("three-character province", "黑龙江省哈尔滨市南岗区", ("黑龙江省哈尔滨市南岗区", "黑龙江省", "哈尔滨市")),
    ("autonomous region", "广西壮族自治区南宁市青秀区", ("广西壮族自治区南宁市青秀区", "广西壮族自治区", "南宁市")),
    ("league", "内蒙古自治区锡林郭勒盟锡林浩特市", ("内蒙古自治区锡林郭勒盟锡林浩特市", "内蒙古自治区", "锡林郭勒盟")),
    ("autonomous prefecture", "湖北省恩施土家族苗族自治州恩施市", ("湖北省恩施土家族苗族自治州恩施市", "湖北省", "恩施土家族苗族自治州")),
    ("district named 市南区", "山东省青岛市市南区香港中路", ("山东省青岛市市南区香港中路", "山东省", "青岛市")),
    ("城区 after 市", "江苏省苏州市工业园区星湖街", ("江苏省苏州市工业园区星湖街", "江苏省", "苏州市")),
    ("full-width digits", "广东省深圳市南山区科技园１２号", ("广东省深圳市南山区科技园12号", "广东省", "深圳市")),
    ("city without province", "广州市天河区体育西路", ("广州市天河区体育西路", None, "广州市")),
    ("province without city", "广东省天河区体育西路", ("广东省天河区体育西路", "广东省", None)),
    ("district only", "天河区体育西路12号", ("天河区体育西路12号", None, None)),
    ("street named after Beijing", "北京路123号", ("北京路123号", None, None)),
    ("empty", "", (None, None, None)),
    ("null", None, (None, None, None)),
]  # fmt: skip


@pytest.fixture(scope="module")
def address_results(spark: SparkSession) -> Results:
    return _evaluate(
        spark,
        ADDRESS_CASES,
        {"norm": address_normalized_expr, "province": province_expr, "city": city_expr},
    )


@pytest.mark.parametrize(("desc", "value", "expected"), ADDRESS_CASES, ids=_ids(ADDRESS_CASES))
def test_address(
    address_results: Results, desc: str, value: str | None, expected: tuple[Any, ...]
) -> None:
    for output, want in zip(("norm", "province", "city"), expected, strict=True):
        _check(address_results, desc, output, value, want)


# --- dates ---------------------------------------------------------------------------------------

DATE_FORMATS = ("yyyy-MM-dd", "yyyy/MM/dd", "yyyyMMdd", "dd/MM/yyyy")
DATE_CASES = [
    ("ISO", "2020-02-29", dt.date(2020, 2, 29)),
    ("slashes (retail)", "2020/02/29", dt.date(2020, 2, 29)),
    ("compact", "20200229", dt.date(2020, 2, 29)),
    ("day first", "29/02/2020", dt.date(2020, 2, 29)),
    ("padded", " 2021-03-04 ", dt.date(2021, 3, 4)),
    ("full-width digits", "１９９０-０１-０５", dt.date(1990, 1, 5)),
    ("31/02/2020 (bad_date)", "31/02/2020", None),
    ("N/A (bad_date)", "N/A", None),
    ("0000-00-00 (bad_date)", "0000-00-00", None),
    ("99999999 (bad_date)", "99999999", None),
    ("unknown (bad_date)", "unknown", None),
    ("29 Feb in a common year", "2021-02-29", None),
    ("month 13", "2020-13-01", None),
    ("single-digit month", "2020-1-05", None),
    ("trailing time", "2020-01-05 10:00:00", None),
    ("empty", "", None),
    ("null", None, None),
]


@pytest.fixture(scope="module")
def date_results(spark: SparkSession) -> Results:
    return _evaluate(spark, DATE_CASES, {"date": lambda c: parse_date_expr(c, DATE_FORMATS)})


@pytest.mark.parametrize(("desc", "value", "expected"), DATE_CASES, ids=_ids(DATE_CASES))
def test_parse_date(
    date_results: Results, desc: str, value: str | None, expected: dt.date | None
) -> None:
    _check(date_results, desc, "date", value, expected)


def test_parse_date_first_format_wins(spark: SparkSession) -> None:
    df = spark.createDataFrame([("01/02/2020",), ("13/02/2020",)], "v string")
    got = df.select(parse_date_expr(F.col("v"), ["MM/dd/yyyy", "dd/MM/yyyy"])).collect()
    assert [r[0] for r in got] == [dt.date(2020, 1, 2), dt.date(2020, 2, 13)]


def test_parse_date_rejects_no_formats() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        parse_date_expr(F.col("v"), [])
    with pytest.raises(ValueError, match="non-empty"):
        parse_date_expr(F.col("v"), "yyyy-MM-dd")


# --- timestamps ----------------------------------------------------------------------------------

TS_FORMATS = ("yyyy-MM-dd HH:mm:ss", "yyyyMMddHHmmss", "yyyy-MM-dd'T'HH:mm:ssXXX")
TS_CASES = [
    # (description, input, expected instant, parsed as Asia/Shanghai unless it has an offset)
    ("bank txn_ts", "2024-03-01 10:00:00", "2024-03-01T02:00:00+00:00"),
    ("POS compact", "20240301100000", "2024-03-01T02:00:00+00:00"),
    ("ISO +08:00 (e-commerce)", "2024-03-01T10:00:00+08:00", "2024-03-01T02:00:00+00:00"),
    ("ISO offset wins over zone", "2024-03-01T10:00:00+00:00", "2024-03-01T10:00:00+00:00"),
    ("ISO Z", "2024-03-01T10:00:00Z", "2024-03-01T10:00:00+00:00"),
    ("previous UTC day", "2024-01-01 07:59:59", "2023-12-31T23:59:59+00:00"),
    ("padded", " 1999-12-31 23:59:59 ", "1999-12-31T15:59:59+00:00"),
    ("date only", "2024-03-01", None),
    ("30 February", "2024-02-30 10:00:00", None),
    ("hour 24", "2024-03-01 24:00:00", None),
    ("N/A", "N/A", None),
    ("0000-00-00", "0000-00-00 00:00:00", None),
    ("empty", "", None),
    ("null", None, None),
]


@pytest.fixture(scope="module")
def ts_results(spark: SparkSession) -> Results:
    return _evaluate(
        spark,
        TS_CASES,
        {"micros": lambda c: F.unix_micros(parse_timestamp_expr(c, TS_FORMATS, "Asia/Shanghai"))},
    )


@pytest.mark.parametrize(("desc", "value", "expected"), TS_CASES, ids=_ids(TS_CASES))
def test_parse_timestamp(
    ts_results: Results, desc: str, value: str | None, expected: str | None
) -> None:
    _check(ts_results, desc, "micros", value, _micros(expected))


def test_parse_timestamp_zones(spark: SparkSession) -> None:
    """Wall-clock text in other zones, daylight saving time included."""
    cases = [
        ("America/New_York", "2024-07-01 12:00:00", "2024-07-01T16:00:00+00:00"),  # EDT
        ("America/New_York", "2024-01-15 12:00:00", "2024-01-15T17:00:00+00:00"),  # EST
        ("Europe/London", "2024-07-01 12:00:00", "2024-07-01T11:00:00+00:00"),
        ("UTC", "2024-07-01 12:00:00", "2024-07-01T12:00:00+00:00"),
    ]
    df = spark.createDataFrame([(v,) for _, v, _ in cases], "v string")
    cols = [
        F.unix_micros(parse_timestamp_expr(F.col("v"), ["yyyy-MM-dd HH:mm:ss"], tz)).alias(f"c{i}")
        for i, (tz, _, _) in enumerate(cases)
    ]
    rows = df.select(*cols).collect()
    for i, (tz, value, expected) in enumerate(cases):
        assert rows[i][i] == _micros(expected), f"{value} in {tz}"


def test_parse_timestamp_rejects_unknown_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_timestamp_expr(F.col("v"), ["yyyy-MM-dd"], "Mars/Olympus")


# --- epoch numbers -------------------------------------------------------------------------------

EPOCH_MILLIS_CASES = [
    ("app_events ts", "1700000000000", "2023-11-14T22:13:20+00:00"),
    ("with millis", "1700000000123", "2023-11-14T22:13:20.123000+00:00"),
    ("padded", " 1700000000000 ", "2023-11-14T22:13:20+00:00"),
    ("fraction of a milli", "1700000000000.5", "2023-11-14T22:13:20.000500+00:00"),
    ("scientific notation", "1.7E12", "2023-11-14T22:13:20+00:00"),
    ("zero", "0", "1970-01-01T00:00:00+00:00"),
    ("negative", "-1000", "1969-12-31T23:59:59+00:00"),
    ("out of range", "99999999999999999999", None),
    ("letters", "abc", None),
    ("digits then letters", "12abc", None),
    ("NaN", "NaN", None),
    ("empty", "", None),
    ("null", None, None),
]
EPOCH_SECONDS_CASES = [
    ("behavior_events ts", "1700000000", "2023-11-14T22:13:20+00:00"),
    ("fractional", "1700000000.25", "2023-11-14T22:13:20.250000+00:00"),
    ("last second of 9999", "253402300799", "9999-12-31T23:59:59+00:00"),
    ("year 10000", "253402300800", None),
    ("garbage", "unknown", None),
    ("null", None, None),
]


@pytest.fixture(scope="module")
def epoch_results(spark: SparkSession) -> Results:
    cases = [(f"ms {d}", v) for d, v, _ in EPOCH_MILLIS_CASES] + [
        (f"s {d}", v) for d, v, _ in EPOCH_SECONDS_CASES
    ]
    return _evaluate(
        spark,
        cases,
        {
            "ms": lambda c: F.unix_micros(epoch_millis_to_timestamp_expr(c)),
            "s": lambda c: F.unix_micros(epoch_seconds_to_timestamp_expr(c)),
        },
    )


@pytest.mark.parametrize(
    ("desc", "value", "expected"), EPOCH_MILLIS_CASES, ids=_ids(EPOCH_MILLIS_CASES)
)
def test_epoch_millis(
    epoch_results: Results, desc: str, value: str | None, expected: str | None
) -> None:
    _check(epoch_results, f"ms {desc}", "ms", value, _micros(expected))


@pytest.mark.parametrize(
    ("desc", "value", "expected"), EPOCH_SECONDS_CASES, ids=_ids(EPOCH_SECONDS_CASES)
)
def test_epoch_seconds(
    epoch_results: Results, desc: str, value: str | None, expected: str | None
) -> None:
    _check(epoch_results, f"s {desc}", "s", value, _micros(expected))


def test_epoch_numeric_columns(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1700000000000, 1.7e9), (None, None)], "ms long, s double")
    rows = df.select(
        F.unix_micros(epoch_millis_to_timestamp_expr(F.col("ms"))),
        F.unix_micros(epoch_seconds_to_timestamp_expr(F.col("s"))),
    ).collect()
    expected = _micros("2023-11-14T22:13:20+00:00")
    assert tuple(rows[0]) == (expected, expected)
    assert tuple(rows[1]) == (None, None)


# --- amounts -------------------------------------------------------------------------------------

DECIMAL_CASES = [
    ("thousands separator", "1,234.50", Decimal("1234.50")),
    ("padded", " 12.3 ", Decimal("12.30")),
    ("yen sign", "¥12.30", Decimal("12.30")),
    ("full-width yen sign", "￥12.30", Decimal("12.30")),
    ("minus before yen", "-¥12.30", Decimal("-12.30")),
    ("minus after yen", "¥-12.30", Decimal("-12.30")),
    ("dollar", "$5", Decimal("5.00")),
    ("yuan suffix", "12元", Decimal("12.00")),
    ("RMB prefix with space", "RMB 1,000", Decimal("1000.00")),
    ("lower-case cny", "cny12", Decimal("12.00")),
    ("full-width digits and comma", "１，２３４.５", Decimal("1234.50")),
    ("rounds half up", "0.005", Decimal("0.01")),
    ("rounds long fraction", "1,234,567.891", Decimal("1234567.89")),
    ("leading dot", ".5", Decimal("0.50")),
    ("explicit plus", "+7", Decimal("7.00")),
    ("negative zero", "-0", Decimal("0.00")),
    ("integer", "42", Decimal("42.00")),
    ("bad grouping", "1,23", None),
    ("bad grouping 2", "12,34.5", None),
    ("two dots", "12.3.4", None),
    ("inner space", "12 34", None),
    ("scientific", "1e3", None),
    ("too many digits", "12345678901234567", None),
    ("letters", "abc", None),
    ("N/A", "N/A", None),
    ("sign only", "-", None),
    ("currency only", "¥", None),
    ("empty", "", None),
    ("null", None, None),
]


@pytest.fixture(scope="module")
def decimal_results(spark: SparkSession) -> Results:
    return _evaluate(spark, DECIMAL_CASES, {"dec": lambda c: decimal_expr(c, 18, 2)})


@pytest.mark.parametrize(("desc", "value", "expected"), DECIMAL_CASES, ids=_ids(DECIMAL_CASES))
def test_decimal(
    decimal_results: Results, desc: str, value: str | None, expected: Decimal | None
) -> None:
    _check(decimal_results, desc, "dec", value, expected)


# --- gender --------------------------------------------------------------------------------------

GENDER_CASES = [
    ("M", "M", "M"),
    ("lower m", "m", "M"),
    ("padded m", " m ", "M"),
    ("full-width M", "Ｍ", "M"),
    ("男", "男", "M"),
    ("男性", "男性", "M"),
    ("male", "male", "M"),
    ("MALE", "MALE", "M"),
    ("1", "1", "M"),
    ("F", "F", "F"),
    ("lower f", "f", "F"),
    ("女", "女", "F"),
    ("padded 女 with U+3000", "\u3000女 ", "F"),
    ("Female", "Female", "F"),
    ("2", "2", "F"),
    ("0", "0", None),
    ("3", "3", None),
    ("X", "X", None),
    ("unknown", "unknown", None),
    ("empty", "", None),
    ("null", None, None),
]


@pytest.fixture(scope="module")
def gender_results(spark: SparkSession) -> Results:
    return _evaluate(spark, GENDER_CASES, {"gender": gender_normalized_expr})


@pytest.mark.parametrize(("desc", "value", "expected"), GENDER_CASES, ids=_ids(GENDER_CASES))
def test_gender(
    gender_results: Results, desc: str, value: str | None, expected: str | None
) -> None:
    _check(gender_results, desc, "gender", value, expected)
