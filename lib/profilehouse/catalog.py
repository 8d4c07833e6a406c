"""The table catalog: every table's layer, name and location, derived from one warehouse root.

Jobs never build paths themselves; they ask the catalog. Each layer is a database in the Spark
catalog (``bronze.bank_customers``) and a folder under the warehouse root
(``<warehouse>/bronze/bank_customers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Layer(StrEnum):
    """Storage layers, in the order data flows through them."""

    BRONZE = "bronze"  # rows as received + ingest metadata
    SILVER = "silver"  # typed, standardised, validated, tokenised, deduplicated
    IDENTITY = "identity"  # identity graph, master IDs, links, golden records
    GOLD = "gold"  # tags, features, segments, scores, profiles, KPIs (what BI reads)
    OPS = "ops"  # job runs, data quality, quarantine, metrics, model registry
    VAULT = "vault"  # restricted: the only place raw PII lives


@dataclass(frozen=True)
class TableRef:
    """A table's identity: layer, name and location."""

    layer: Layer
    name: str
    location: str

    @property
    def qualified_name(self) -> str:
        """``layer.name`` as registered in the Spark catalog."""
        return f"{self.layer.value}.{self.name}"


class TableCatalog:
    """Derives every table location and every run artefact path from one warehouse root."""

    def __init__(self, warehouse_root: str) -> None:
        if not warehouse_root:
            raise ValueError("warehouse_root must be a non-empty path or URI")
        self.root = warehouse_root.rstrip("/")

    def table(self, layer: Layer | str, name: str) -> TableRef:
        """Return the reference of table ``name`` in ``layer``.

        Raises ValueError for an unknown layer (listing the valid ones) or a name that is not a
        simple lower-case identifier.
        """
        try:
            layer = Layer(layer)
        except ValueError:
            valid = ", ".join(layer.value for layer in Layer)
            raise ValueError(f"unknown layer {layer!r} (valid: {valid})") from None
        if not name or not name.replace("_", "").isalnum() or name.lower() != name:
            raise ValueError(f"table name must be a lower-case identifier, got {name!r}")
        return TableRef(layer, name, f"{self.root}/{layer.value}/{name}")

    def run_summaries_dir(self) -> str:
        """Folder where each pipeline run writes its JSON summary."""
        return f"{self.root}/_runs"

    def checkpoint_dir(self, purpose: str) -> str:
        """Folder for Spark checkpoints (streaming offsets, iterative algorithms)."""
        return f"{self.root}/_checkpoints/{purpose}"
