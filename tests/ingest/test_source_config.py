"""Source declarations: the shipped file loads, mistakes fail with file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from profilehouse.errors import ConfigError
from profilehouse.ingest.source_config import load_sources

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_shipped_sources_cover_every_generated_table() -> None:
    sources = load_sources()
    names = {s.name for s in sources.values()}
    assert names == {
        "bank_customers", "bank_accounts", "bank_balances", "bank_transactions", "bank_loans",
        "bank_credit_bureau", "bank_app_events", "retail_members", "retail_pos_lines",
        "retail_ecom_orders", "retail_behavior_events", "retail_stored_value",
        "marketing_campaigns", "marketing_contacts",
    }  # fmt: skip
    customers = sources["bank_customers"]
    assert customers.pii_columns == {
        "name": "name", "id_no": "id_no", "mobile": "mobile", "email": "email", "address": "address"
    }  # fmt: skip
    assert customers.options["header"] == "true"  # YAML bool → reader option string
    assert sources["retail_pos_lines"].business_key == ["receipt_id", "line_no"]


def test_renamed_export_column_is_config_only(tmp_path: Path) -> None:
    data = yaml.safe_load((CONF / "sources.yaml").read_text(encoding="utf-8"))
    data["sources"]["bank_customers"]["columns"]["cust_no"]["source"] = "KHH"
    (tmp_path / "sources.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )
    spec = load_sources(tmp_path)["bank_customers"]
    assert spec.source_column("cust_no") == "KHH"
    assert spec.source_column("name") == "name"


def _minimal(**overrides: object) -> dict:
    source = {
        "system": "bank",
        "table": "customers",
        "format": "csv",
        "location": "bank/customers",
        "columns": {"cust_no": {"required": True}, "open_date": {"type": "date"}},
        "business_key": ["cust_no"],
    }
    source.update(overrides)
    return {"sources": {"bank_customers": source}}


@pytest.mark.parametrize(
    ("description", "overrides", "expected"),
    [
        (
            "unknown format",
            {"format": "xml"},
            "sources.bank_customers.format: Input should be 'csv', 'jsonl' or 'parquet' (got 'xml')",
        ),
        (
            "undeclared key",
            {"business_key": ["cust_id"]},
            "business_key columns not declared: cust_id",
        ),
        (
            "optional key",
            {"columns": {"cust_no": {}}, "business_key": ["cust_no"]},
            "business_key column 'cust_no' must be required: true",
        ),
        (
            "event time not a date",
            {"event_time": "cust_no"},
            "event_time 'cust_no' must be a date or timestamp column",
        ),
        ("unknown event time", {"event_time": "ts"}, "event_time 'ts' is not a declared column"),
        (
            "bad type",
            {"columns": {"cust_no": {"required": True, "type": "varchar"}}},
            "sources.bank_customers.columns.cust_no.type: Value error, unknown type 'varchar'",
        ),
        (
            "bad decimal",
            {"columns": {"cust_no": {"required": True, "type": "decimal(5,9)"}}},
            "unknown type 'decimal(5,9)'",
        ),
        (
            "formats on a string",
            {"columns": {"cust_no": {"required": True, "formats": ["yyyy"]}}},
            "formats are only allowed on date/timestamp columns, not string",
        ),
        (
            "unknown column key",
            {"columns": {"cust_no": {"required": True, "pii_kind": "name"}}},
            "sources.bank_customers.columns.cust_no.pii_kind: unknown key (allowed: clear_when, cross_check, epoch, formats, nullable, pii, pii_kinds, pii_when, required, source, standardize, type)",
        ),
        (
            "unknown pii kind",
            {"columns": {"cust_no": {"required": True, "pii": "salary"}}},
            "sources.bank_customers.columns.cust_no.pii: Input should be",
        ),
        (
            "clear_when without pii_when or pii_kinds",
            {"columns": {"cust_no": {"required": True, "pii": "name", "clear_when": "true"}}},
            "clear_when needs pii_when or pii_kinds",
        ),
        (
            "a PII column as event time",
            {
                "columns": {
                    "cust_no": {"required": True},
                    "seen": {"type": "date", "pii": "birth_date"},
                },
                "event_time": "seen",
            },
            "event_time 'seen' is a PII column (silver holds only its token): use a clear column",
        ),
        (
            "two columns one export column",
            {"columns": {"cust_no": {"required": True}, "other": {"source": "cust_no"}}},
            "two logical columns read the same export column: cust_no",
        ),
        (
            "threshold above 1",
            {"reject_rate_threshold": 2},
            "sources.bank_customers.reject_rate_threshold: Input should be less than or equal to 1 (got 2)",
        ),
    ],
)
def test_invalid_declarations(
    tmp_path: Path, description: str, overrides: dict, expected: str
) -> None:
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(_minimal(**overrides)), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_sources(tmp_path)
    assert str(tmp_path / "sources.yaml") in str(err.value), description
    assert expected in str(err.value), description


def test_same_table_declared_twice(tmp_path: Path) -> None:
    data = _minimal()
    data["sources"]["customers_again"] = dict(data["sources"]["bank_customers"])
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="both declare bank_customers"):
        load_sources(tmp_path)
