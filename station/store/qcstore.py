"""The durable QC log: every inspection, every batch, in one SQLite file.

Durability comes first: WAL with ``synchronous=FULL`` means :meth:`QCStore.record`
returns only once the row is on disk, so a power cut or ``kill -9`` loses no row the
inspection loop believed written. One writer connection, guarded by a lock, serves the
inspection loop (and the rare batch change); readers borrow a read connection for one
transaction from a small pool (:mod:`.readpool`), and WAL lets them run while the loop
writes.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .analytics import AnalyticsMixin, read_counts
from .errors import BatchError, StoreBusyError, StoreError
from .labelstore import LabelsMixin
from .queries import InspectionPage, build_filters, parse_cursor
from .readpool import ReaderPool
from .records import (
    INSPECTION_COLUMNS,
    Batch,
    InspectionRecord,
    inspection_row_to_dict,
    normalise_uuid,
)
from .schema import SCHEMA_VERSION, check_not_newer, migrate, user_version
from .timeutil import Timestamp, to_utc_iso, utc_now_iso

log = logging.getLogger(__name__)

#: How long a connection waits for another's lock before failing with "database is locked".
DEFAULT_BUSY_TIMEOUT_MS = 5000
#: Largest page :meth:`QCStore.list_inspections` returns, to bound memory and latency.
MAX_PAGE_LIMIT = 500

_INSERT_INSPECTION = (
    "INSERT INTO inspections ("
    + ", ".join(c for c in INSPECTION_COLUMNS if c != "seq")
    + ") VALUES ("
    + ", ".join(f":{c}" for c in INSPECTION_COLUMNS if c != "seq")
    + ")"
)
_SELECT_INSPECTION = "SELECT " + ", ".join(f"i.{c}" for c in INSPECTION_COLUMNS)
_SELECT_BATCH = "SELECT id, workshop, order_number, spec_name, started_utc, closed_utc FROM batches"

#: Called after an inspection is durably committed, with the record and its ``seq``.
RecordListener = Callable[[InspectionRecord, int], None]


class QCStore(AnalyticsMixin, LabelsMixin):
    """The QC log in one SQLite file; safe to share between threads.

    Open it once per process, write from the inspection loop with :meth:`record`,
    read from anywhere. The store is a context manager; :meth:`close` it on exit.
    """

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS):
        self.path = Path(path)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._write_lock = threading.Lock()
        self._readers = ReaderPool(lambda: self._connect(read_only=True))
        self._closed = False
        self._listeners: list[RecordListener] = []
        #: Transactions this object committed: readers that keep answers (the API's
        #: response cache) start afresh when it changes.
        self.writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        try:
            self.schema_version = self._prepare()
        except BaseException:
            self._writer.close()
            raise

    # -- connections ---------------------------------------------------------------------
    def _connect(self, *, read_only: bool = False) -> sqlite3.Connection:
        """A connection in autocommit mode: transactions are always explicit here."""
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000.0,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open QC log {self.path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            if read_only:
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open QC log {self.path}: {exc}") from exc
        return conn

    def _prepare(self) -> int:
        """Check the version, switch to WAL, migrate; refuse newer or non-SQLite files."""
        conn = self._writer
        where = str(self.path)
        try:
            check_not_newer(user_version(conn), SCHEMA_VERSION, where)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{where}: cannot enable WAL (journal_mode is {mode!r})")
            return migrate(conn, where=where)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open QC log {where}: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"QC log {self.path} is closed")

    @property
    def read_connections(self) -> int:
        """Read connections open now (idle in the pool or lent): at most the pool's
        idle cap at rest, whatever the number of threads that have read."""
        return self._readers.open_count

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same snapshot."""
        self._check_open()
        with self._readers.lend() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def _write(self, timeout_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction on the single writer; commit returns once durable.

        ``timeout_s`` bounds the wait for the writer and for another connection's
        lock (instead of the connection's busy timeout): the inspection loop must
        give up in time to fire its pulse. Giving up raises :class:`StoreBusyError`.
        """
        started_s = time.monotonic()
        if not self._write_lock.acquire(timeout=-1 if timeout_s is None else max(0.0, timeout_s)):
            raise StoreBusyError(f"QC log {self.path}: writer busy for {timeout_s:.3f} s")
        try:
            self._check_open()
            conn = self._writer
            if timeout_s is not None:
                left_ms = max(0, int((timeout_s - (time.monotonic() - started_s)) * 1000))
                conn.execute(f"PRAGMA busy_timeout = {left_ms:d}")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreBusyError(f"QC log {self.path}: {exc}") from exc
            finally:
                if timeout_s is not None:
                    conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            try:
                yield conn
                conn.execute("COMMIT")
                self.writes += 1
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._write_lock.release()

    def close_readers(self) -> None:
        """Close every reader connection; the next read opens a new one.

        The API calls this on shutdown so that it leaves no open handles.
        """
        self._readers.close_all()

    def close(self) -> None:
        """Close all connections; later calls raise :class:`StoreError`. Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
        self._readers.close_all(final=True)

    def __enter__(self) -> QCStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inspections ---------------------------------------------------------------------
    def record(self, rec: InspectionRecord, *, timeout_s: float | None = None) -> int:
        """Append one inspection and its defect codes in one durable transaction.

        Returns the row's ``seq``. Record listeners run after the commit, on this
        thread; one that raises is logged and never undoes or fails the write.
        ``timeout_s`` bounds the wait for a busy log (:class:`StoreBusyError`).
        """
        row = rec.to_row()
        codes = [(rec.id, code) for code in rec.defect_codes]
        with self._write(timeout_s) as conn:
            cur = conn.execute(_INSERT_INSPECTION, row)
            seq = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO inspection_defects (inspection_id, code) VALUES (?, ?)", codes
            )
        for listener in list(self._listeners):
            try:
                listener(rec, seq)
            except Exception:
                log.exception("QC log record listener %r failed", listener)
        return seq

    def add_record_listener(self, listener: RecordListener) -> None:
        """Call ``listener(record, seq)`` after each committed inspection (live events).

        Listeners run on the inspection loop's thread, so they must be quick and never
        block (e.g. :meth:`station.events.EventBus.publish`).
        """
        self._listeners.append(listener)

    def remove_record_listener(self, listener: RecordListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def get(self, inspection_id: str) -> dict[str, Any] | None:
        """One inspection as a dict, or None if unknown; non-UUID ids raise ValueError."""
        key = normalise_uuid(inspection_id)
        with self._read() as conn:
            row = conn.execute(
                f"{_SELECT_INSPECTION} FROM inspections AS i WHERE i.id = ?", (key,)
            ).fetchone()
        return None if row is None else inspection_row_to_dict(row)

    def counts(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> dict[str, Any]:
        """Counts for the supervisor: ``since`` inclusive, ``until`` exclusive.

        ``rejected`` includes errors, because a mask that could not be inspected is
        ejected (fail-safe); ``errors`` tells them apart. ``by_defect`` counts masks
        carrying each code at least once, most frequent first.
        """
        where, params = build_filters(since=since, until=until, batch=batch)
        with self._read() as conn:
            return read_counts(conn, where, params)

    def list_inspections(
        self,
        limit: int = 50,
        cursor: str | int | None = None,
        verdict: str | None = None,
        defect: str | None = None,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> InspectionPage:
        """Inspections newest first, ``limit`` at a time (1..500).

        Paging is keyed on ``seq``, so rows written while a client pages never shift,
        duplicate or hide the rows it has not read yet.
        """
        if not 1 <= int(limit) <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_LIMIT}, not {limit!r}")
        before_seq = None if cursor is None else parse_cursor(cursor)
        where, params = build_filters(
            since=since,
            until=until,
            batch=batch,
            verdict=verdict,
            defect=defect,
            before_seq=before_seq,
        )
        with self._read() as conn:
            rows = conn.execute(
                f"{_SELECT_INSPECTION} FROM inspections AS i {where} ORDER BY i.seq DESC LIMIT ?",
                [*params, int(limit) + 1],
            ).fetchall()
        items = [inspection_row_to_dict(r) for r in rows[: int(limit)]]
        next_cursor = str(items[-1]["seq"]) if len(rows) > int(limit) else None
        return InspectionPage(items=items, next_cursor=next_cursor)

    # -- batches -------------------------------------------------------------------------
    def start_batch(
        self,
        workshop: str,
        *,
        order_number: str | None = None,
        spec_name: str | None = None,
        batch_id: str | None = None,
        started: Timestamp | None = None,
        close_previous: bool = False,
    ) -> Batch:
        """Open a batch; only one may be open at a time.

        With ``close_previous`` the open batch (if any) is closed at this batch's start,
        in the same transaction, so counts never see two open batches. Without it an
        open batch is an error: switching orders by accident would mix their counts.
        The default id (``YYYYMMDD-HHMMSS`` UTC) is short enough to read aloud.
        """
        if not workshop:
            raise ValueError("workshop must be non-empty")
        started_utc = utc_now_iso() if started is None else to_utc_iso(started, "started")
        if batch_id is None:
            batch_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        if not batch_id.strip():
            raise ValueError("batch_id must be non-empty")
        with self._write() as conn:
            current = conn.execute(f"{_SELECT_BATCH} WHERE closed_utc IS NULL").fetchone()
            if current is not None:
                if not close_previous:
                    raise BatchError(
                        f"batch {current['id']!r} is still open: close it first "
                        "or pass close_previous=True"
                    )
                if started is None and started_utc < current["started_utc"]:
                    # "now" before the open batch began: the wall clock stepped back
                    # (NTP on a Pi without RTC). Keep batches in order, not the step.
                    log.warning("wall clock before the open batch's start: clamped")
                    started_utc = current["started_utc"]
                if started_utc < current["started_utc"]:
                    raise BatchError(
                        f"new batch starts at {started_utc}, before the open batch "
                        f"{current['id']!r} started ({current['started_utc']})"
                    )
                conn.execute(
                    "UPDATE batches SET closed_utc = ? WHERE id = ?", (started_utc, current["id"])
                )
            try:
                conn.execute(
                    "INSERT INTO batches (id, workshop, order_number, spec_name, started_utc)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (batch_id, workshop, order_number, spec_name, started_utc),
                )
            except sqlite3.IntegrityError as exc:
                raise BatchError(f"batch id {batch_id!r} already exists") from exc
        return Batch(batch_id, workshop, order_number, spec_name, started_utc, None)

    def close_batch(self, batch_id: str | None = None, *, closed: Timestamp | None = None) -> Batch:
        """Close ``batch_id`` (default: the open batch) and return it as closed."""
        closed_utc = utc_now_iso() if closed is None else to_utc_iso(closed, "closed")
        with self._write() as conn:
            if batch_id is None:
                row = conn.execute(f"{_SELECT_BATCH} WHERE closed_utc IS NULL").fetchone()
                if row is None:
                    raise BatchError("no open batch to close")
            else:
                row = conn.execute(f"{_SELECT_BATCH} WHERE id = ?", (batch_id,)).fetchone()
                if row is None:
                    raise BatchError(f"unknown batch {batch_id!r}")
                if row["closed_utc"] is not None:
                    raise BatchError(f"batch {batch_id!r} was already closed {row['closed_utc']}")
            if closed is None and closed_utc < row["started_utc"]:
                log.warning("wall clock before the batch's start: close clamped")
                closed_utc = row["started_utc"]
            if closed_utc < row["started_utc"]:
                raise BatchError(
                    f"cannot close batch {row['id']!r} at {closed_utc}, "
                    f"before it started ({row['started_utc']})"
                )
            conn.execute("UPDATE batches SET closed_utc = ? WHERE id = ?", (closed_utc, row["id"]))
        return replace(Batch.from_row(row), closed_utc=closed_utc)

    def current_batch(self) -> Batch | None:
        """The open batch, if any."""
        with self._read() as conn:
            row = conn.execute(f"{_SELECT_BATCH} WHERE closed_utc IS NULL").fetchone()
        return None if row is None else Batch.from_row(row)

    def get_batch(self, batch_id: str) -> Batch | None:
        """One batch by id, open or closed."""
        with self._read() as conn:
            row = conn.execute(f"{_SELECT_BATCH} WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else Batch.from_row(row)

    def ping(self) -> None:
        """Raise unless the log can be read (for health checks)."""
        with self._read() as conn:
            conn.execute("SELECT 1 FROM inspections LIMIT 1").fetchall()
