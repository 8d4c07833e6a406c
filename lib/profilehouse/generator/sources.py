"""The contract between the per-system builders and the writer."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame

from profilehouse.generator.writer import SourceSpec

# Columns every generated source DataFrame carries besides ``spec.columns``; they go to the ground
# truth, never into the source files.
TRUTH_COLUMNS = ("person_id", "batch", "malformed", "malformed_kind", "patterns")


@dataclass(frozen=True)
class GeneratedSource:
    """A source table ready to write: its export spec, its rows and a size hint.

    ``df`` has ``spec.columns`` (all strings for CSV/JSON sources, except nested JSON items) plus
    TRUTH_COLUMNS: ``person_id`` (the true person), ``batch`` (``YYYY-MM-DD`` delivery date),
    ``malformed`` / ``malformed_kind`` (see writer.with_malformed) and ``patterns``
    (array<string>: names of the dirty-data patterns applied to this record), and ``spec.key``
    when the key is not one of the spec columns (a derived record key; never written to files).
    """

    spec: SourceSpec
    df: DataFrame
    expected_rows: int
