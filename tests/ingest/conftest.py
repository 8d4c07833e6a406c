"""Small hand-written landing zones for bronze/silver tests: exact rows, exact expectations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from profilehouse.catalog import TableCatalog
from profilehouse.ingest.source_config import SourceSpec

CUSTOMER_HEADER = "KHH,name,mobile,email,id_no,gender,birth_date,income,open_date,risk"


def customers_spec(**overrides: Any) -> SourceSpec:
    """A bank customer file whose export names cust_no 'KHH' (mapped by config)."""
    data: dict[str, Any] = {
        "system": "bank",
        "table": "customers",
        "format": "csv",
        "location": "bank/customers",
        "options": {"header": True},
        "columns": {
            "cust_no": {"source": "KHH", "required": True},
            "name": {"pii": "name", "standardize": "name"},
            "mobile": {"pii": "mobile", "standardize": "mobile"},
            "email": {"pii": "email", "standardize": "email"},
            "id_no": {
                "pii": "id_no",
                "standardize": "id_no",
                "cross_check": {"birth_date": "birth_date", "gender": "gender"},
            },
            "gender": {"standardize": "gender"},
            "birth_date": {"type": "date", "formats": ["yyyy-MM-dd"]},
            "annual_income": {"source": "income", "type": "decimal(18,2)"},
            "open_date": {"type": "date", "required": True, "formats": ["yyyy-MM-dd"]},
            "risk_appetite": {"source": "risk"},
        },
        "business_key": ["cust_no"],
        "event_time": "open_date",
        "reject_rate_threshold": 0.5,
        "rules": [
            {
                "name": "risk_known",
                "expr": "risk_appetite IS NULL OR risk_appetite RLIKE '^C[1-5]$'",
            },
            {
                "name": "income_sane",
                "expr": "annual_income IS NULL OR annual_income < 1e8",
                "severity": "warn",
            },
        ],
    }
    data.update(overrides)
    return SourceSpec.model_validate(data)


@dataclass
class Landing:
    """A landing zone in a temp folder plus a warehouse beside it."""

    root: Path

    @property
    def uri(self) -> str:
        return str(self.root / "landing")

    @property
    def catalog(self) -> TableCatalog:
        return TableCatalog(str(self.root / "warehouse"))

    def write(self, location: str, batch: str, name: str, text: str) -> Path:
        folder = self.root / "landing" / location / f"batch={batch}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text, encoding="utf-8")
        return path

    def write_csv(self, location: str, batch: str, name: str, header: str, rows: list[str]) -> Path:
        return self.write(location, batch, name, "\n".join([header, *rows]) + "\n")

    def write_jsonl(self, location: str, batch: str, name: str, records: list[Any]) -> Path:
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
        return self.write(location, batch, name, "\n".join(lines) + "\n")


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    (tmp_path / "landing").mkdir()
    return Landing(tmp_path)
