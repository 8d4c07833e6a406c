"""Identity runs that stop before they commit: the run plan (``identity.pending_run``) pins the
inputs, an interrupted run is finished as planned under the same settings and withdrawn under
other ones.

The end-to-end check (a crash after each write boundary, re-run, tables equal to an
uninterrupted run) is not here yet: its scenario must first make run 2 merge two masters under
the conflicting-holders guard (giving a customer another's resident-ID token no longer merges).
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from profilehouse import delta_io
from profilehouse.catalog import Layer, TableCatalog
from profilehouse.identity import run_state
from profilehouse.identity.settings import load_identity_settings
from profilehouse.identity.stage import identity_table


def test_an_interrupted_run_is_finished_as_planned_or_withdrawn(spark: SparkSession, tmp_path):
    """Cheap, without an identity run: the plan pins input versions; it is finished while it
    is the latest uncommitted run under the same settings; under other settings it is withdrawn
    (its appended rows deleted) and the new run takes the next sequence number."""
    catalog = TableCatalog(str(tmp_path))
    settings = load_identity_settings()
    silver = catalog.table(Layer.SILVER, "people")
    delta_io.write_table(spark.range(3), silver)
    aliases = identity_table(catalog, "master_aliases")
    delta_io.write_table(spark.createDataFrame([("old",), ("run-x",)], "run_id string"), aliases)

    planned = run_state.plan_run(spark, catalog, settings, "run-x", "full", [silver], [aliases])
    assert (planned.seq, planned.inputs) == (1, {"silver.people": 0})
    delta_io.write_table(spark.range(3, 5), silver, mode="append")  # newer input arrives
    assert run_state.interrupted_run(spark, catalog, settings) == planned

    other = settings.model_copy(update={"records": dict(list(settings.records.items())[:2])})
    assert run_state.interrupted_run(spark, catalog, other) is None
    newer = run_state.plan_run(spark, catalog, other, "run-y", "full", [silver], [aliases])
    assert (newer.seq, newer.inputs) == (2, {"silver.people": 1})
    assert [r["run_id"] for r in delta_io.read_table(spark, aliases).collect()] == ["old"]
