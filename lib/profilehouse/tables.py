"""Every table the stages write, named in one place beside the catalog.

Stages ask here for their tables instead of spelling a layer and a name themselves, so this file
is the list of what the warehouse holds. Where each table lives (the analyst warehouse or the
restricted zone for clear PII) is the catalog's decision
(:func:`profilehouse.catalog.is_restricted`).

- bronze: one table per source, rows as received (restricted);
- silver: one table per source, typed, validated, tokenised, one row per business key;
- vault: ``pii``, normalised PII values by token (restricted);
- identity: :data:`IDENTITY_TABLES`;
- ops: ``ingest_file_log``, ``quarantine`` (restricted), ``ingest_reconciliation``,
  ``dq_rule_counts``, ``identity_metrics``, ``locks``.
"""

from __future__ import annotations

from typing import Protocol

from profilehouse.catalog import Layer, TableCatalog, TableRef

# ops
FILE_LOG = "ingest_file_log"
QUARANTINE = "quarantine"
RECONCILIATION = "ingest_reconciliation"
RULE_COUNTS = "dq_rule_counts"
IDENTITY_METRICS = "identity_metrics"
LOCKS = "locks"
# vault
VAULT_PII = "pii"

# identity: the published tables, then the state a later run starts from, then run bookkeeping
IDENTITY_TABLES = frozenset(
    {
        # published
        "master_members",
        "identifier_map",
        "match_links",
        "identifier_links",
        "noisy_identifiers",
        "golden_records",
        "master_aliases",
        "master_lineage",
        # state of the last run (pinned by version in run_state)
        "records",
        "record_identifiers",
        "scored_pairs",
        "oversize_blocks",
        "phase1_clusters",
        "term_frequencies",
        # staged by an incremental run
        "changed_records",
        "rescored_pairs",
        "dirty_records",
        # run bookkeeping
        "run_state",
        "pending_run",
    }
)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def _source_name(source: str | _Named) -> str:
    return source if isinstance(source, str) else source.name


def bronze_table(catalog: TableCatalog, source: str | _Named) -> TableRef:
    """``bronze.<source>``: the source's rows as received (restricted zone)."""
    return catalog.table(Layer.BRONZE, _source_name(source))


def silver_table(catalog: TableCatalog, source: str | _Named) -> TableRef:
    """``silver.<source>``: the source typed, validated, tokenised, one row per business key."""
    return catalog.table(Layer.SILVER, _source_name(source))


def vault_table(catalog: TableCatalog) -> TableRef:
    """``vault.pii``: the only place normalised PII values live, by token (restricted zone)."""
    return catalog.table(Layer.VAULT, VAULT_PII)


def file_log_table(catalog: TableCatalog) -> TableRef:
    """``ops.ingest_file_log``: every landing file and what bronze did with it."""
    return catalog.table(Layer.OPS, FILE_LOG)


def quarantine_table(catalog: TableCatalog) -> TableRef:
    """``ops.quarantine``: rejected rows with their reasons and raw row (restricted zone)."""
    return catalog.table(Layer.OPS, QUARANTINE)


def reconciliation_table(catalog: TableCatalog) -> TableRef:
    """``ops.ingest_reconciliation``: rows in = accepted + quarantined, per load and batch."""
    return catalog.table(Layer.OPS, RECONCILIATION)


def rule_counts_table(catalog: TableCatalog) -> TableRef:
    """``ops.dq_rule_counts``: rows per data-quality rule, per load and batch."""
    return catalog.table(Layer.OPS, RULE_COUNTS)


def identity_metrics_table(catalog: TableCatalog) -> TableRef:
    """``ops.identity_metrics``: each identity run's figures, quality and model."""
    return catalog.table(Layer.OPS, IDENTITY_METRICS)


def locks_table(catalog: TableCatalog) -> TableRef:
    """``ops.locks``: the per-stage locks of runs in progress."""
    return catalog.table(Layer.OPS, LOCKS)


def identity_table(catalog: TableCatalog, name: str) -> TableRef:
    """``identity.<name>``, one of :data:`IDENTITY_TABLES` (ValueError naming the others)."""
    if name not in IDENTITY_TABLES:
        raise ValueError(
            f"unknown identity table {name!r} (known: {', '.join(sorted(IDENTITY_TABLES))}); "
            "add a new one to profilehouse.tables.IDENTITY_TABLES"
        )
    return catalog.table(Layer.IDENTITY, name)
