"""Table catalog: every location derives from one warehouse root."""

from __future__ import annotations

import pytest

from profilehouse.catalog import Layer, TableCatalog
from profilehouse.config import load_environment


def test_locations_derive_from_root() -> None:
    catalog = TableCatalog("hdfs:///lake/warehouse/")
    ref = catalog.table("silver", "bank_customers")
    assert ref.layer is Layer.SILVER
    assert ref.location == "hdfs:///lake/warehouse/silver/bank_customers"
    assert ref.qualified_name == "silver.bank_customers"
    assert catalog.run_summaries_dir() == "hdfs:///lake/warehouse/_runs"


def test_unknown_layer_lists_valid_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown layer 'platinum' \(valid: bronze, silver, identity, gold, ops, vault\)",
    ):
        TableCatalog("/w").table("platinum", "x")


@pytest.mark.parametrize("name", ["", "Bank", "bank-customers", "a b", "../x"])
def test_table_names_must_be_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="lower-case identifier"):
        TableCatalog("/w").table("bronze", name)


@pytest.mark.parametrize(
    ("layer", "name", "location", "restricted"),
    [
        (
            "bronze",
            "bank_customers",
            "hdfs:///lake/warehouse-restricted/bronze/bank_customers",
            True,
        ),
        ("vault", "pii", "hdfs:///lake/warehouse-restricted/vault/pii", True),
        ("ops", "quarantine", "hdfs:///lake/warehouse-restricted/ops/quarantine", True),
        ("ops", "ingest_file_log", "hdfs:///lake/warehouse/ops/ingest_file_log", False),
        ("silver", "bank_customers", "hdfs:///lake/warehouse/silver/bank_customers", False),
        ("identity", "golden_records", "hdfs:///lake/warehouse/identity/golden_records", False),
        ("gold", "profiles", "hdfs:///lake/warehouse/gold/profiles", False),
    ],
)
def test_pii_tables_live_in_the_restricted_zone(
    layer: str, name: str, location: str, restricted: bool
) -> None:
    ref = TableCatalog("hdfs:///lake/warehouse/").table(layer, name)
    assert (ref.location, ref.restricted) == (location, restricted)
    assert ref.qualified_name == f"{layer}.{name}"


def test_an_explicit_restricted_root_is_used() -> None:
    catalog = TableCatalog("s3a://analytics/warehouse", "s3a://pii-zone/restricted/")
    assert catalog.table("vault", "pii").location == "s3a://pii-zone/restricted/vault/pii"
    assert catalog.table("silver", "x").location == "s3a://analytics/warehouse/silver/x"
    assert catalog.layer_dirs("ops") == [
        "s3a://analytics/warehouse/ops",
        "s3a://pii-zone/restricted/ops",
    ]
    assert catalog.layer_dirs("bronze") == ["s3a://pii-zone/restricted/bronze"]
    assert catalog.layer_dirs("gold") == ["s3a://analytics/warehouse/gold"]


@pytest.mark.parametrize(
    ("warehouse", "restricted"),
    [("/w", "/w/"), ("/w", "/w/restricted"), ("/w/analysts", "/w")],
    ids=["same", "inside", "around"],
)
def test_the_two_roots_must_be_apart(warehouse: str, restricted: str) -> None:
    with pytest.raises(ValueError, match="must be apart"):
        TableCatalog(warehouse, restricted)


def test_for_environment_uses_the_profiles_roots() -> None:
    catalog = TableCatalog.for_environment(load_environment("cluster"))
    assert catalog.root == "hdfs:///lakehouse/warehouse"
    assert catalog.restricted_root == "hdfs:///lakehouse/restricted"
