"""Stage locks on a real local Delta table: acquire, refuse, wait, take over, renew, release."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog
from profilehouse.config import LockSettings
from profilehouse.locks import (
    LOCK_SCHEMA,
    Lock,
    LockHeldError,
    LockLostError,
    clear_lock,
    current_owner,
    current_owners,
    hold,
    locks_table,
)

QUICK = LockSettings(lease_seconds=60, wait_seconds=0, poll_seconds=0.5)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> TableCatalog:
    return TableCatalog(str(tmp_path_factory.mktemp("locks")))


def test_a_held_lock_is_recorded_and_released(spark: SparkSession, catalog: TableCatalog):
    with hold(spark, catalog, "bronze:a", QUICK, run_id="run-a") as lock:
        owner = current_owner(spark, catalog, "bronze:a")
        assert owner is not None and owner.token == lock.token
        assert owner.run_id == "run-a" and owner.pid > 0
        assert owner.expires_at - owner.acquired_at == dt.timedelta(seconds=60)
    assert current_owner(spark, catalog, "bronze:a") is None


def test_a_second_run_is_refused_with_the_owner_named(spark: SparkSession, catalog: TableCatalog):
    with hold(spark, catalog, "bronze:b", QUICK, run_id="first-run"):
        with pytest.raises(LockHeldError) as caught:
            Lock(spark, catalog, "bronze:b", QUICK, "second-run").acquire()
        # another lock is independent
        with hold(spark, catalog, "silver:b", QUICK):
            pass
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("lock bronze:b is held by run first-run (host ")
    assert message.endswith("python jobs/clear_lock.py --env <env> bronze:b --clear")


def test_a_waiting_run_gets_the_lock_when_it_is_released(
    spark: SparkSession, catalog: TableCatalog
):
    first = Lock(spark, catalog, "identity", QUICK, "first").acquire()
    timer = threading.Timer(2.0, first.release)
    timer.start()
    waiting = LockSettings(lease_seconds=60, wait_seconds=120, poll_seconds=0.5)
    with hold(spark, catalog, "identity", waiting, run_id="second") as second:
        assert current_owner(spark, catalog, "identity").token == second.token
    timer.join()


def test_an_expired_lock_of_a_dead_run_is_taken_over(spark: SparkSession, catalog: TableCatalog):
    with hold(spark, catalog, "silver:c", QUICK):  # creates the partition of the lock
        pass
    long_ago = dt.datetime(2026, 1, 1, 8, 0)
    dead = [("silver:c", "dead-token", "gone-host", 4242, "dead-run", long_ago, long_ago)]
    delta_io.write_table(
        spark.createDataFrame(dead, LOCK_SCHEMA), locks_table(catalog), mode="append"
    )
    assert current_owner(spark, catalog, "silver:c").run_id == "dead-run"
    with hold(spark, catalog, "silver:c", QUICK, run_id="next-run") as lock:
        owner = current_owner(spark, catalog, "silver:c")
        assert (owner.run_id, owner.token) == ("next-run", lock.token)


def test_the_heartbeat_renews_the_lease(spark: SparkSession, catalog: TableCatalog):
    beating = LockSettings(lease_seconds=12, poll_seconds=0.5)  # a beat every 4 s
    with hold(spark, catalog, "bronze:d", beating) as lock:
        first = current_owner(spark, catalog, "bronze:d").expires_at
        deadline = time.monotonic() + 60
        while current_owner(spark, catalog, "bronze:d").expires_at == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(1)
        lock.ensure_held()


def test_a_holder_whose_lock_was_taken_over_learns_it(spark: SparkSession, catalog: TableCatalog):
    first = Lock(spark, catalog, "bronze:e", QUICK, "slow-run").acquire()
    cleared = clear_lock(spark, catalog, "bronze:e")
    assert cleared is not None and cleared.run_id == "slow-run"
    with hold(spark, catalog, "bronze:e", QUICK, run_id="new-run"):
        first.renew()
        with pytest.raises(LockLostError, match="lock bronze:e: this run's lease expired"):
            first.ensure_held()
        first.release()  # removes nothing of the new owner's
        assert current_owner(spark, catalog, "bronze:e").run_id == "new-run"


def test_a_stage_takes_the_locks_of_all_its_sources_at_once_or_none(
    spark: SparkSession, catalog: TableCatalog
):
    names = ["silver:x", "silver:y", "silver:z"]
    with hold(spark, catalog, names, QUICK, run_id="stage-run") as lock:
        owners = current_owners(spark, catalog, names)
        assert sorted(owners) == names
        assert {o.token for o in owners.values()} == {lock.token}
        version = DeltaTable.forPath(spark, locks_table(catalog).location).history(1)
        assert version.first()["operation"] == "MERGE"  # taken by one commit
        # a run wanting an overlapping set is refused, naming the lock in the way ...
        with pytest.raises(LockHeldError) as caught:
            Lock(spark, catalog, ["silver:w", "silver:y"], QUICK, "other-run").acquire()
        assert str(caught.value).startswith("lock silver:y is held by run stage-run (host ")
        assert str(caught.value).endswith("clear_lock.py --env <env> silver:y --clear")
        # ... and keeps none of it: silver:w, free, was given back
        assert current_owner(spark, catalog, "silver:w") is None
    assert current_owners(spark, catalog, [*names, "silver:w"]) == {}
