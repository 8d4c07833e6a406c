"""No raw PII outside the vault: after ingesting the SF 0.01 demo data and resolving identities,
no string of any silver, identity or gold table equals a PII value of the vault, holds a valid
resident ID, or is a resident-ID mask that the clear columns (birth date, gender, city) turn
back into a handful of IDs; and the errors that bad input produces quote none of its values.

Tables are found by listing the layer folders (every Delta table there), not from a list, so a
new table is scanned the day it appears.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse import standardize as std
from profilehouse.catalog import Layer, TableCatalog, TableRef
from profilehouse.columns import ID_CHECK_CHARS, ID_WEIGHTS
from profilehouse.config import load_model
from profilehouse.errors import ProfilehouseError
from profilehouse.gold.stage import GoldResult
from profilehouse.ingest.bronze import load_bronze_source
from profilehouse.ingest.silver import load_silver_source, vault_table
from profilehouse.ingest.source_config import SourcesFile
from tests.conftest import Ingested
from tests.ingest.conftest import CUSTOMER_HEADER, Landing, customers_spec

SCANNED_LAYERS = (Layer.SILVER, Layer.IDENTITY, Layer.GOLD)
_TOKEN = r"^(token:)?[0-9a-f]{64}$"
_ID_IN_TEXT = r"([1-8][0-9]{16}[0-9Xx])"
_PARTS = "[|:#\u241f]"  # separators of composite values (record IDs, namespaced identifiers)
# candidates an ID mask may leave once birth date, gender and city are known, at the least
MIN_ID_CANDIDATES = 1_000
DISTRICTS_PER_CITY = 10  # region codes (6 digits) a known city leaves


# --- finding and flattening tables ---------------------------------------------------------------


def layer_tables(catalog: TableCatalog, layer: Layer) -> list[TableRef]:
    """Every Delta table in the layer's folder."""
    folder = Path(catalog.table(layer, "x").location).parent
    if not folder.is_dir():
        return []
    return [
        catalog.table(layer, p.name)
        for p in sorted(folder.iterdir())
        if (p / "_delta_log").is_dir()
    ]


def _field_as_string(name: str) -> Callable[[Column], Column]:
    """``x -> x.name as string`` for :func:`F.transform` (a one-argument lambda: one with a
    second argument, even a defaulted one, is handed the element's index)."""
    return lambda x: x[name].cast("string")


def _leaf_arrays(col: Column, dtype: T.DataType, label: str) -> list[tuple[str, Column]]:
    """(label, array<string>) of every string inside ``col`` (structs and arrays walked; maps and
    deeper nesting as their JSON text)."""
    if isinstance(dtype, T.StringType):
        return [(label, F.array(col))]
    if isinstance(dtype, T.StructType):
        return [
            leaf
            for f in dtype.fields
            for leaf in _leaf_arrays(col[f.name], f.dataType, f"{label}.{f.name}")
        ]
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.StringType):
        return [(label, col)]
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, T.StructType):
        return [
            (
                f"{label}[].{f.name}",
                F.transform(col, _field_as_string(f.name)),
            )
            for f in dtype.elementType.fields
        ]
    if isinstance(dtype, T.MapType | T.ArrayType):
        return [(label, F.array(F.to_json(col)))]
    return []


def string_leaves(df: DataFrame) -> DataFrame:
    """``(column, value)``: every non-null string of ``df``, nested ones included."""
    leaves = [
        leaf
        for f in df.schema.fields
        for leaf in _leaf_arrays(F.col(f"`{f.name}`"), f.dataType, f.name)
    ]
    if not leaves:
        return df.sparkSession.createDataFrame([], "column string, value string")
    entries = F.array(
        *[
            F.struct(F.lit(label).alias("column"), values.alias("values"))
            for label, values in leaves
        ]
    )
    return (
        df.select(F.explode(entries).alias("e"))
        .select("e.column", F.explode("e.values").alias("value"))
        .where(F.col("value").isNotNull())
    )


def comparable_expr(col: Column) -> Column:
    """A value as compared with the vault: lower case, no spaces, dashes, brackets or +86."""
    compact = F.lower(F.regexp_replace(std.halfwidth_expr(col), r"[\s\u3000\-()]", ""))
    return F.regexp_replace(compact, r"^(\+86|0086)(?=1[3-9][0-9]{9}$)", "")


def resident_id_expr(col: Column) -> Column:
    """A valid resident ID found anywhere in ``col`` (not inside a token); null when none."""
    found = F.regexp_extract(col, _ID_IN_TEXT, 1)
    ok = std.id_no_valid_expr(found, F.lit("2100-01-01"))
    return F.when(~col.rlike(_TOKEN) & ok, found)


# --- ID masks ------------------------------------------------------------------------------------


def id_candidates(mask_shape: str) -> int:
    """How many resident IDs fit an 18-character mask ('d' = shown character, '*' = hidden)
    when the birth date (characters 7-14), the gender (parity of the 17th) and the city (one
    of ~10 region codes) are known from clear columns; the check character (18th) is
    computed from the rest, so a hidden one costs nothing and a shown one divides by 11."""
    shown = [c != "*" for c in mask_shape]
    region = 1 if all(shown[:6]) else DISTRICTS_PER_CITY
    sequence = 10 ** sum(not s for s in shown[14:16]) * (1 if shown[16] else 5)
    return max(1, region * sequence // (11 if shown[17] else 1))


def test_id_candidates_of_masks() -> None:
    assert id_candidates("dddddd********dddd") == 1  # the old mask: first 6 + last 4
    assert id_candidates("**************dddd") < 10  # last 4: about one once checked
    assert id_candidates("*" * 18) >= MIN_ID_CANDIDATES


def _check_char(first17: str) -> str:
    return ID_CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


# --- the scan ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolved_catalog(ingested: Ingested, gold_made: GoldResult) -> TableCatalog:
    """The ingested warehouse with identity resolved and the gold tables made."""
    return ingested.catalog


@pytest.fixture(scope="module")
def vault_values(spark: SparkSession, resolved_catalog: TableCatalog) -> DataFrame:
    """``(kind, comparable)`` of every vault value (as compared), cached."""
    vault = delta_io.read_table(spark, vault_table(resolved_catalog))
    return (
        vault.select("kind", comparable_expr(F.col("value")).alias("comparable"))
        .where(F.length("comparable") >= 2)
        .dropDuplicates(["comparable"])
        .cache()
    )


def _leaks(df: DataFrame, vault_values: DataFrame) -> list[str]:
    leaves = string_leaves(df)
    # a value and each part of a composite one (a record ID 'source|key', 'kind:value')
    parts = F.array_distinct(F.concat(F.array("value"), F.split("value", _PARTS)))
    compared = leaves.select("column", F.explode(parts).alias("part")).select(
        "column", comparable_expr(F.col("part")).alias("comparable")
    )
    in_vault = compared.join(F.broadcast(vault_values), "comparable").select(
        "column", F.concat(F.lit("a vault "), F.col("kind"), F.lit(" value")).alias("what")
    )
    ids = leaves.where(resident_id_expr(F.col("value")).isNotNull()).select(
        "column", F.lit("a valid resident ID").alias("what")
    )
    rows = in_vault.unionByName(ids).distinct().limit(20).collect()
    return [f"{r['column']} holds {r['what']}" for r in rows]


def _id_mask_shapes(df: DataFrame) -> list[tuple[str, str]]:
    """Distinct (column, shape) of 18-character resident-ID masks ('d' shown, '*' hidden)."""
    leaves = string_leaves(df).where(
        F.col("value").rlike(r"^[0-9X*]{18}$") & F.col("value").contains("*")
    )
    shapes = leaves.select("column", F.regexp_replace("value", "[0-9X]", "d").alias("shape"))
    return [(r["column"], r["shape"]) for r in shapes.distinct().collect()]


def test_the_scan_finds_what_it_looks_for(spark: SparkSession, vault_values: DataFrame) -> None:
    """The scan itself can fail: a planted vault value, a valid ID and the old ID mask."""
    value = vault_values.where(F.col("kind") == "mobile").first()["comparable"]
    first17 = "11010119900307003"
    planted = spark.createDataFrame(
        [
            (
                f"+86 {value}",
                f"marketing_contacts|{value}",
                {"id": f"x{first17}{_check_char(first17)}"},
                ["a", f"{first17[:6]}********0031"],
                [{"kind": "mobile", "value": value}],
            )
        ],
        "mobile string, record_id string, nested struct<id:string>, masks array<string>,"
        " held array<struct<kind:string, value:string>>",
    )
    leaks = _leaks(planted, vault_values)
    assert "mobile holds a vault mobile value" in leaks
    assert "nested.id holds a valid resident ID" in leaks
    assert "record_id holds a vault mobile value" in leaks
    assert "held[].value holds a vault mobile value" in leaks
    shapes = _id_mask_shapes(planted)
    assert [id_candidates(s) for _c, s in shapes] == [1]


def test_no_table_holds_a_vault_value_or_a_resident_id(
    spark: SparkSession, resolved_catalog: TableCatalog, vault_values: DataFrame
) -> None:
    tables = [t for layer in SCANNED_LAYERS for t in layer_tables(resolved_catalog, layer)]
    assert len(tables) > 20, [t.qualified_name for t in tables]
    assert {"gold.features", "gold.customer_tags", "gold.tag_values", "gold.kpi_daily"} <= {
        t.qualified_name for t in tables
    }
    found = {
        t.qualified_name: leaks
        for t in tables
        if (leaks := _leaks(delta_io.read_table(spark, t), vault_values))
    }
    assert not found


def test_no_resident_id_mask_can_be_completed_from_clear_columns(
    spark: SparkSession, resolved_catalog: TableCatalog
) -> None:
    tables = [t for layer in SCANNED_LAYERS for t in layer_tables(resolved_catalog, layer)]
    weak = {
        f"{t.qualified_name}.{column}: {shape} leaves {id_candidates(shape)} candidate(s)"
        for t in tables
        for column, shape in _id_mask_shapes(delta_io.read_table(spark, t))
        if id_candidates(shape) < MIN_ID_CANDIDATES
    }
    assert not weak
    masks = delta_io.read_table(spark, resolved_catalog.table(Layer.SILVER, "bank_customers"))
    assert masks.where(F.col("id_no_masked").isNotNull()).count() > 0  # masks were scanned


# --- error messages ------------------------------------------------------------------------------

PLANTED_NAME, PLANTED_MOBILE, PLANTED_EMAIL = (
    "诸葛孔明",
    "13912345678",
    "planted.person@example.com",
)
PLANTED_ID = "11010119900307003" + _check_char("11010119900307003")
PLANTED = (PLANTED_NAME, PLANTED_MOBILE, PLANTED_EMAIL, PLANTED_ID)


def planted_row(cust_no: str, open_date: str = "2021-05-06") -> str:
    """A customer row (CUSTOMER_HEADER) holding every planted value."""
    return f"{cust_no},{PLANTED_NAME},{PLANTED_MOBILE},{PLANTED_EMAIL},{PLANTED_ID},男,1990-03-07,,{open_date},C1"


def leaked_values(message: str) -> list[str]:
    """The planted values (in any common spelling) and resident IDs found in ``message``."""
    compact = message.replace(" ", "").replace("-", "").lower()
    found = [v for v in PLANTED if v.lower() in compact]
    for i in range(len(message) - 17):
        candidate = message[i : i + 18].upper()
        if (
            candidate[:17].isdigit()
            and candidate[0] in "12345678"
            and candidate[17] == _check_char(candidate[:17])
        ):
            found.append(f"resident ID at {i}")
    return found


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    (tmp_path / "landing").mkdir()
    return Landing(tmp_path)


def _error_of(action) -> str:
    with pytest.raises(ProfilehouseError) as err:
        action()
    return str(err.value)


def test_a_csv_without_header_is_reported_without_its_first_row(
    spark: SparkSession, landing: Landing
) -> None:
    landing.write(
        "bank/customers",
        "2025-01-01",
        "a.csv",
        planted_row("C001") + "\n" + planted_row("C002") + "\n",
    )
    message = _error_of(
        lambda: load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    )
    assert not leaked_values(message), message


def test_errors_of_bad_input_quote_no_value_of_it(
    spark: SparkSession, landing: Landing, token_key: bytes, tmp_path: Path
) -> None:
    messages = {}
    # a required column missing from the header
    landing.write_csv(
        "bank/customers", "2025-01-01", "a.csv",
        CUSTOMER_HEADER.replace(",open_date", ",opened"), [planted_row("C001")],
    )  # fmt: skip
    messages["missing column"] = _error_of(
        lambda: load_bronze_source(spark, landing.catalog, customers_spec(), landing.uri)
    )
    # a typed column that parses in no row (its values are mobiles)
    other = Landing(tmp_path / "typed")
    (other.root / "landing").mkdir(parents=True)
    rows = [planted_row(f"C{i:03d}", open_date=PLANTED_MOBILE) for i in range(12)]
    other.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, rows)
    spec = customers_spec(reject_rate_threshold=1.0)
    load_bronze_source(spark, other.catalog, spec, other.uri)
    messages["unparseable column"] = _error_of(
        lambda: load_silver_source(spark, other.catalog, spec, token_key)
    )
    # a load rejecting too many rows
    third = Landing(tmp_path / "rejects")
    (third.root / "landing").mkdir(parents=True)
    rows = [planted_row(f"C{i:03d}").replace(",C1", ",C9") for i in range(12)]
    third.write_csv("bank/customers", "2025-01-01", "a.csv", CUSTOMER_HEADER, rows)
    spec = customers_spec(reject_rate_threshold=0.1, reject_min_rows=1)
    load_bronze_source(spark, third.catalog, spec, third.uri)
    messages["reject rate"] = _error_of(
        lambda: load_silver_source(spark, third.catalog, spec, token_key)
    )
    # a bad config value
    conf = tmp_path / "sources.yaml"
    conf.write_text(
        "sources:\n  c:\n    system: bank\n    table: customers\n    format: csv\n"
        "    location: bank/customers\n    business_key: [cust_no]\n    columns:\n"
        "      cust_no: {required: true}\n      mobile: {pii: phone}\n",
        encoding="utf-8",
    )
    messages["bad config"] = _error_of(lambda: load_model(conf, SourcesFile))
    leaks = {what: leaked_values(m) for what, m in messages.items() if leaked_values(m)}
    assert not leaks, {what: messages[what] for what in leaks}
