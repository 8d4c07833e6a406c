"""Table catalog: every location derives from one warehouse root."""

from __future__ import annotations

import pytest

from profilehouse.catalog import Layer, TableCatalog


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
