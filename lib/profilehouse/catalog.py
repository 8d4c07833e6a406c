"""The table catalog: every table's layer, name and location, derived from two storage roots.

Jobs never build paths themselves; they ask the catalog. Each layer is a database in the Spark
catalog (``bronze.bank_customers``) and a folder under a storage root. Tables that hold clear PII
— bronze (rows as received), the vault and ``ops.quarantine`` (whose ``raw`` column is the
rejected row) — live under the *restricted* root (``<restricted>/bronze/bank_customers``,
``<restricted>/vault/pii``, ``<restricted>/ops/quarantine``); everything analysts and BI read
lives under the warehouse root (``<warehouse>/silver/bank_customers``). The two roots are apart
(neither inside the other), so each can get its own ACLs, bucket or IAM policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profilehouse.config import EnvironmentConfig

RESTRICTED_SUFFIX = "-restricted"


class Layer(StrEnum):
    """Storage layers, in the order data flows through them."""

    BRONZE = "bronze"  # rows as received + ingest metadata
    SILVER = "silver"  # typed, standardised, validated, tokenised, deduplicated
    IDENTITY = "identity"  # identity graph, master IDs, links, golden records
    GOLD = "gold"  # tags, features, segments, scores, profiles, KPIs (what BI reads)
    OPS = "ops"  # job runs, data quality, quarantine, metrics, model registry
    VAULT = "vault"  # restricted: the only place raw PII lives


# Every table of these layers holds clear PII.
RESTRICTED_LAYERS = frozenset({Layer.BRONZE, Layer.VAULT})
# Single tables of other layers that hold clear PII (the quarantine keeps each rejected raw row).
RESTRICTED_TABLES = frozenset({(Layer.OPS, "quarantine")})


def is_restricted(layer: Layer | str, name: str) -> bool:
    """True when table ``layer.name`` holds clear PII and so lives in the restricted zone."""
    layer = Layer(layer)
    return layer in RESTRICTED_LAYERS or (layer, name) in RESTRICTED_TABLES


def sibling_restricted_root(warehouse_root: str) -> str:
    """The default restricted root: ``<warehouse>-restricted`` beside the warehouse root.

    A sibling, not a sub-folder: whoever may read the warehouse root must not thereby reach it.
    """
    root = warehouse_root.rstrip("/")
    name = root.rsplit("/", 1)[-1]
    if not name or name.endswith(":"):
        raise ValueError(
            f"cannot derive a restricted root beside warehouse root {warehouse_root!r}; "
            "set restricted_warehouse in the environment profile"
        )
    return root + RESTRICTED_SUFFIX


@dataclass(frozen=True)
class TableRef:
    """A table's identity: layer, name, location and whether it holds clear PII."""

    layer: Layer
    name: str
    location: str
    restricted: bool = False

    @property
    def qualified_name(self) -> str:
        """``layer.name`` as registered in the Spark catalog."""
        return f"{self.layer.value}.{self.name}"


class TableCatalog:
    """Derives every table location and every run artefact path from the two storage roots.

    ``restricted_root`` defaults to the warehouse root's sibling ``<warehouse>-restricted``;
    jobs build the catalog with :meth:`for_environment` so a profile's configured root is used.
    """

    def __init__(self, warehouse_root: str, restricted_root: str | None = None) -> None:
        if not warehouse_root:
            raise ValueError("warehouse_root must be a non-empty path or URI")
        self.root = warehouse_root.rstrip("/")
        self.restricted_root = (restricted_root or sibling_restricted_root(self.root)).rstrip("/")
        a, b = self.root, self.restricted_root
        if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
            raise ValueError(
                f"restricted root {b!r} and warehouse root {a!r} must be apart "
                "(neither inside the other)"
            )

    @classmethod
    def for_environment(cls, env: EnvironmentConfig) -> TableCatalog:
        """The catalog of an environment profile (its warehouse and restricted roots)."""
        return cls(env.warehouse_uri, env.restricted_warehouse_uri)

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
        restricted = is_restricted(layer, name)
        root = self.restricted_root if restricted else self.root
        return TableRef(layer, name, f"{root}/{layer.value}/{name}", restricted)

    def layer_dirs(self, layer: Layer | str) -> list[str]:
        """Every folder that holds tables of ``layer`` (two for a layer with restricted tables,
        e.g. ``ops``): what a reset of that layer must remove."""
        layer = Layer(layer)
        if layer in RESTRICTED_LAYERS:
            return [f"{self.restricted_root}/{layer.value}"]
        dirs = [f"{self.root}/{layer.value}"]
        if any(lay is layer for lay, _ in RESTRICTED_TABLES):
            dirs.append(f"{self.restricted_root}/{layer.value}")
        return dirs

    def run_summaries_dir(self) -> str:
        """Folder where each pipeline run writes its JSON summary."""
        return f"{self.root}/_runs"

    def checkpoint_dir(self, purpose: str) -> str:
        """Folder for Spark checkpoints (streaming offsets, iterative algorithms)."""
        return f"{self.root}/_checkpoints/{purpose}"
