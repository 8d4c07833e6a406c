"""Per-stage locks: one run at a time per source and stage, never stuck after a crash.

Lock names: ``bronze:<source>``, ``silver:<source>``, ``identity``. A lock has an owner (host,
process ID, run ID, a random token), ``acquired_at`` and a lease (``expires_at``) that a
heartbeat thread renews while the lock is held. A run that crashes stops renewing: once its
lease has expired the next run takes the lock over. A live lock makes a second run wait (up to
``wait_seconds``) and then fail with :class:`LockHeldError`, naming the lock, its owner, since
when, and how to clear it.

**Where the locks live, and why.** The lock store is one Delta table, ``ops.locks`` (one row
per held lock, partitioned by lock name), changed only by MERGE / UPDATE / DELETE, never by a
blind append. The primitives a Hadoop file system offers differ by store: HDFS and ABFS (with a
hierarchical namespace) create a file atomically when it does not exist
(``FileSystem.create(path, overwrite=false)``), the local file system's Hadoop client checks and
then creates (not atomic between processes), and S3A has no create-if-absent (S3's conditional
writes are only partly supported by Hadoop). A Delta table is the one store that behaves the
same everywhere the warehouse can live: every change is a commit that Delta's optimistic
concurrency checks against the commits made since it read. Two runs that both find a lock free
(or expired) and both MERGE themselves in read the same partition; whichever commits second
fails with a concurrent-modification conflict, reads the lock again and sees the winner.

What is guaranteed where: exactly what Delta guarantees for concurrent writers on that store.
On HDFS, ABFS, GCS and the local file system (one machine) at most one run holds a lock. On S3,
Delta's commits are mutually exclusive within one driver, and across drivers only with a
``LogStore`` that provides it (``S3DynamoDBLogStore``) — which a warehouse written by more than
one cluster needs for every table anyway. Leases compare wall-clock times of the hosts involved:
clocks must agree to well within a lease (NTP does that). A holder whose lease could not be
renewed (e.g. the driver stalled for longer than a lease) loses the lock to the next run;
:meth:`Lock.ensure_held` tells it so, and the stages are safe against that too (bronze verifies
its load-ID claim in the file log; identity appends are idempotent).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from profilehouse import delta_io
from profilehouse.catalog import TableCatalog, TableRef
from profilehouse.config import LockSettings
from profilehouse.errors import ProfilehouseError
from profilehouse.tables import locks_table

log = logging.getLogger(__name__)

LOCK_SCHEMA = T.StructType(
    [
        T.StructField("name", T.StringType(), False),
        T.StructField("token", T.StringType(), False),
        T.StructField("host", T.StringType(), False),
        T.StructField("pid", T.LongType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("acquired_at", T.TimestampType(), False),
        T.StructField("expires_at", T.TimestampType(), False),
    ]
)
_CREATE_GUARD = threading.Lock()  # threads of one driver create the lock table one at a time


class LockHeldError(ProfilehouseError):
    """Another live run holds the lock this run needs."""


class LockLostError(ProfilehouseError):
    """This run's lease expired and another run took its lock over."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock, since when and until when (without renewal)."""

    name: str
    token: str
    host: str
    pid: int
    run_id: str
    acquired_at: dt.datetime
    expires_at: dt.datetime

    def describe(self) -> str:
        return (
            f"run {self.run_id} (host {self.host}, pid {self.pid}) since "
            f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC, lease until {self.expires_at:%H:%M:%S} UTC"
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _ensure_table(spark: SparkSession, ref: TableRef) -> None:
    """Create the lock table when absent (a creation race is a conflict: retried)."""
    with _CREATE_GUARD:
        if delta_io.table_exists(spark, ref):
            return
        delta_io.retry_on_conflict(
            lambda: (
                DeltaTable.createIfNotExists(spark)
                .location(ref.location)
                .addColumns(LOCK_SCHEMA)
                .partitionedBy("name")
                .execute()
            )
        )


def current_owner(spark: SparkSession, catalog: TableCatalog, name: str) -> LockOwner | None:
    """Who holds lock ``name`` now (its row, expired or not), or None when nobody does."""
    return current_owners(spark, catalog, [name]).get(name)


def current_owners(
    spark: SparkSession, catalog: TableCatalog, names: Sequence[str]
) -> dict[str, LockOwner]:
    """Lock name → who holds it now (expired or not), for those of ``names`` someone holds;
    one read of the lock table."""
    ref = locks_table(catalog)
    if not names or not delta_io.table_exists(spark, ref):
        return {}
    rows = delta_io.read_table(spark, ref).where(F.col("name").isin(*names)).collect()
    return {r["name"]: LockOwner(**r.asDict()) for r in rows}


def clear_lock(spark: SparkSession, catalog: TableCatalog, name: str) -> LockOwner | None:
    """Remove lock ``name`` whoever holds it (for a run known to be dead); returns the owner
    it had. The dead run's lease expiring does the same without anybody's help."""
    owner = current_owner(spark, catalog, name)
    if owner is not None:
        table = DeltaTable.forPath(spark, locks_table(catalog).location)
        condition = (F.col("name") == name) & (F.col("token") == owner.token)
        delta_io.retry_on_conflict(lambda: table.delete(condition))
    return owner


class Lock:
    """Locks held together by this run (see :func:`hold`); renewed by one heartbeat thread.

    A stage takes the locks of all its sources at once: one MERGE to take them, one UPDATE per
    heartbeat, one DELETE to release, however many sources (a MERGE on the lock table costs
    seconds, which per source and stage added up to a tenth of a small ingest run). All or
    none: when another live run holds any of them, the ones just taken are given back before
    waiting, so two runs wanting overlapping sets never hold a part each and wait for ever.
    """

    def __init__(
        self,
        spark: SparkSession,
        catalog: TableCatalog,
        names: str | Sequence[str],
        settings: LockSettings,
        run_id: str | None = None,
    ) -> None:
        self.names: tuple[str, ...] = (names,) if isinstance(names, str) else tuple(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"lock names must be given, each once: {self.names!r}")
        self.spark, self.settings = spark, settings
        self.ref = locks_table(catalog)
        self.catalog = catalog
        self.token = uuid.uuid4().hex
        self.run_id = run_id or self.token[:12]
        self.lost = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def name(self) -> str:
        """The lock's name, or its names joined by ', ' (for messages)."""
        return ", ".join(self.names)

    def holds(self, name: str) -> bool:
        """Whether ``name`` is one of the locks this object holds."""
        return name in self.names

    # --- acquiring ---------------------------------------------------------------------------

    def acquire(self) -> Lock:
        """Take every lock, waiting up to ``wait_seconds`` while a live run holds any of them.

        Raises :class:`LockHeldError` naming the owners when the wait ends first.
        """
        _ensure_table(self.spark, self.ref)
        deadline = time.monotonic() + self.settings.wait_seconds
        while True:
            self._try_take()
            owners = current_owners(self.spark, self.catalog, self.names)
            others = {n: o for n, o in owners.items() if o.token != self.token}
            if not others and len(owners) == len(self.names):
                log.info("lock %s: acquired by run %s", self.name, self.run_id)
                self._start_heartbeat()
                return self
            if len(others) < len(owners):  # all or none: give back what was just taken
                self._delete_mine()
            if not others:  # released between our MERGE and the read: try again now
                continue
            if time.monotonic() >= deadline:
                raise LockHeldError(self._held_message(others))
            time.sleep(min(self.settings.poll_seconds, max(deadline - time.monotonic(), 0.1)))

    def _try_take(self) -> None:
        """MERGE this run in as owner of every lock that is free or whose lease has expired.

        Two runs doing this at once read the same partitions: the second to commit conflicts
        and does nothing (the caller then reads who won)."""
        now = _now()
        expires = now + dt.timedelta(seconds=self.settings.lease_seconds)
        host, pid = socket.gethostname(), os.getpid()
        rows = [(n, self.token, host, pid, self.run_id, now, expires) for n in self.names]
        mine = self.spark.createDataFrame(rows, LOCK_SCHEMA)
        condition = f"t.name IN ({_sql_list(self.names)}) AND t.name = s.name"
        try:
            (
                DeltaTable.forPath(self.spark, self.ref.location)
                .alias("t")
                .merge(mine.alias("s"), condition)
                .whenMatchedUpdateAll(condition="t.expires_at <= s.acquired_at")
                .whenNotMatchedInsertAll()
                .execute()
            )
        except Exception as exc:
            if not delta_io.is_conflict(exc):
                raise

    def _held_message(self, others: dict[str, LockOwner]) -> str:
        waited = f" (waited {self.settings.wait_seconds} s)" if self.settings.wait_seconds else ""
        held = "; ".join(f"lock {n} is held by {o.describe()}" for n, o in sorted(others.items()))
        names = " ".join(sorted(others))
        return (
            f"{held}{waited}; let that run finish, or if it is dead wait for its lease to "
            f"expire (then the next run takes the lock over) or clear it now: "
            f"python jobs/clear_lock.py --env <env> {names} --clear"
        )

    # --- holding -----------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(
            target=self._renew_until_released, name=f"lock-heartbeat {self.name}", daemon=True
        )
        self._heartbeat.start()

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                self.renew()
            except Exception:  # a failed renewal is retried next beat; the lease has slack
                log.warning("lock %s: renewing the lease failed", self.name, exc_info=True)

    def _mine(self) -> Column:
        return F.col("name").isin(*self.names) & (F.col("token") == self.token)

    def renew(self) -> None:
        """Extend the leases by ``lease_seconds`` from now; marks the lock lost when another
        run has taken any of them over."""
        expires = F.lit(_now() + dt.timedelta(seconds=self.settings.lease_seconds))
        table = DeltaTable.forPath(self.spark, self.ref.location)
        delta_io.retry_on_conflict(lambda: table.update(self._mine(), {"expires_at": expires}))
        owners = current_owners(self.spark, self.catalog, self.names)
        taken = [n for n in self.names if n not in owners or owners[n].token != self.token]
        if taken:
            self.lost = True
            log.error(
                "lock %s: lost (the lease expired and another run took over)", ", ".join(taken)
            )

    def ensure_held(self) -> None:
        """Raise :class:`LockLostError` when the heartbeat found the lock taken over."""
        if self.lost:
            raise LockLostError(
                f"lock {self.name}: this run's lease expired and another run took the lock "
                f"over; stop and re-run (raise locks.lease_seconds if runs stall that long)"
            )

    # --- releasing ---------------------------------------------------------------------------

    def _delete_mine(self) -> None:
        table = DeltaTable.forPath(self.spark, self.ref.location)
        delta_io.retry_on_conflict(lambda: table.delete(self._mine()))

    def release(self) -> None:
        """Stop renewing and remove the lock rows that are still this run's."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self._delete_mine()


def _sql_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _sql_list(names: Sequence[str]) -> str:
    return ", ".join(f"'{_sql_literal(n)}'" for n in names)


@contextmanager
def hold(
    spark: SparkSession,
    catalog: TableCatalog,
    names: str | Sequence[str],
    settings: LockSettings | None = None,
    run_id: str | None = None,
) -> Iterator[Lock]:
    """Hold lock ``names`` (one name, or several taken together) for the ``with`` block
    (released in ``finally``, even on errors).

    Raises :class:`LockHeldError` when another live run holds any of them beyond the wait.
    """
    lock = Lock(spark, catalog, names, settings or LockSettings(), run_id).acquire()
    try:
        yield lock
    finally:
        try:
            lock.release()
        except Exception:  # never hide the block's own error; the lease frees the lock
            log.warning(
                "lock %s: release failed; it frees when its lease ends", lock.name, exc_info=True
            )
