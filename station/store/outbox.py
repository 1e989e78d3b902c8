"""The outbox: inspections waiting to reach central systems, kept in the QC log itself.

A trigger (migration 3 in :mod:`.schema`) adds one outbox row in the same transaction
as each inspection, so a committed inspection always has a committed outbox row. Each
sink keeps a cursor (the last outbox seq it acknowledged); a row is deleted only once
every configured sink has acknowledged it. Reads use the store's per-thread reader
connections (WAL: never blocking the inspection loop); writes share the store's single
writer and are kept short so the loop waits at most one small transaction.

This module reaches into :class:`QCStore`'s private ``_read``/``_write``: it is part of
the same package and the same durability contract.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .queries import build_filters
from .records import INSPECTION_COLUMNS, inspection_row_to_dict
from .timeutil import Timestamp, utc_now_iso

if TYPE_CHECKING:
    from .qcstore import QCStore

_SELECT_COLUMNS = ", ".join(f"i.{c}" for c in INSPECTION_COLUMNS)
#: Rows evicted per write transaction, so the inspection loop never waits long.
EVICT_CHUNK_ROWS = 1000
#: The payload-size estimate of migration 3's trigger, for rows requeued by hand.
_PAYLOAD_ESTIMATE_SQL = (
    "500 + length(i.defects_json) + length(i.measurements_json) + length(i.stage_ms_json)"
    " + length(i.message) + coalesce(length(i.batch_id), 0)"
    " + coalesce(length(i.image_raw_path), 0) + coalesce(length(i.image_annotated_path), 0)"
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One pending inspection: its outbox seq (the delivery order) and its log row."""

    outbox_seq: int
    inspection: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The backlog as health reports it (bytes are the estimated payload sizes)."""

    count: int
    bytes: int
    oldest_enqueued_utc: str | None
    first_seq: int | None
    last_seq: int | None
    rejected: int
    evicted_rows: int


class Outbox:
    """Queue operations on the outbox tables of one :class:`QCStore`.

    Args:
        store: the open QC log (already migrated, so the tables exist).
    """

    def __init__(self, store: QCStore) -> None:
        self.store = store

    # -- reading -------------------------------------------------------------------------
    def cursor(self, sink: str) -> int:
        """The last outbox seq ``sink`` acknowledged (0 for a sink never seen)."""
        with self.store._read() as conn:
            row = conn.execute(
                "SELECT acked_seq FROM outbox_cursors WHERE sink = ?", (sink,)
            ).fetchone()
        return 0 if row is None else int(row["acked_seq"])

    def pending(self, sink: str, limit: int = 100) -> list[OutboxItem]:
        """The next ``limit`` rows ``sink`` has not acknowledged, oldest first.

        Outbox rows whose inspection is gone (deleted by hand) are skipped: there is
        nothing left to send, and they are pruned with the rest once acknowledged.
        """
        with self.store._read() as conn:
            row = conn.execute(
                "SELECT acked_seq FROM outbox_cursors WHERE sink = ?", (sink,)
            ).fetchone()
            after = 0 if row is None else int(row["acked_seq"])
            rows = conn.execute(
                f"SELECT o.seq AS outbox_seq, {_SELECT_COLUMNS} FROM outbox AS o"
                " JOIN inspections AS i ON i.seq = o.inspection_seq"
                " WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
                (after, int(limit)),
            ).fetchall()
        return [OutboxItem(int(r["outbox_seq"]), inspection_row_to_dict(r)) for r in rows]

    def pending_count(self, sink: str) -> int:
        """How many outbox rows ``sink`` still has to deliver."""
        with self.store._read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM outbox WHERE seq >"
                " coalesce((SELECT acked_seq FROM outbox_cursors WHERE sink = ?), 0)",
                (sink,),
            ).fetchone()
        return int(row[0])

    def stats(self) -> OutboxStats:
        """Backlog size for health: one scan of the outbox (call it every few seconds)."""
        with self.store._read() as conn:
            row = conn.execute(
                "SELECT count(*) AS n, coalesce(sum(payload_bytes), 0) AS b,"
                " min(enqueued_utc) AS oldest, min(seq) AS first, max(seq) AS last FROM outbox"
            ).fetchone()
            rejected = conn.execute("SELECT count(*) FROM outbox_rejects").fetchone()[0]
            evicted = conn.execute(
                "SELECT coalesce(sum(rows), 0) FROM outbox_evictions"
            ).fetchone()[0]
        return OutboxStats(
            count=int(row["n"]),
            bytes=int(row["b"]),
            oldest_enqueued_utc=row["oldest"],
            first_seq=row["first"],
            last_seq=row["last"],
            rejected=int(rejected),
            evicted_rows=int(evicted),
        )

    def rejects(self, sink: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rows refused for good, newest first (for the operator)."""
        where, params = ("WHERE sink = ?", [sink]) if sink is not None else ("", [])
        with self.store._read() as conn:
            rows = conn.execute(
                f"SELECT * FROM outbox_rejects {where} ORDER BY rejected_utc DESC LIMIT ?",
                [*params, int(limit)],
            ).fetchall()
        return [dict(r) for r in rows]

    def cursors(self) -> list[dict[str, Any]]:
        """Every sink's cursor (including sinks no longer configured)."""
        with self.store._read() as conn:
            rows = conn.execute("SELECT * FROM outbox_cursors ORDER BY sink").fetchall()
        return [dict(r) for r in rows]

    def evictions(self) -> list[dict[str, Any]]:
        """Every range dropped over quota, oldest first."""
        with self.store._read() as conn:
            rows = conn.execute("SELECT * FROM outbox_evictions ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    # -- writing -------------------------------------------------------------------------
    def ack(
        self,
        sink: str,
        upto_seq: int,
        *,
        active_sinks: Sequence[str] | None = None,
        rejected: Iterable[tuple[int, str, int | None, str]] = (),
    ) -> int:
        """Record that ``sink`` acknowledged every row up to ``upto_seq``; prune.

        ``rejected`` lists ``(outbox_seq, inspection_id, status, reason)`` rows the sink
        refused for good; they are recorded in the same transaction as the cursor move,
        so a refusal is never both forgotten and skipped. Rows acknowledged by every
        sink in ``active_sinks`` (default: only ``sink``) are deleted. Returns how many.
        """
        now = utc_now_iso()
        sinks = list(active_sinks) if active_sinks is not None else [sink]
        if sink not in sinks:
            sinks.append(sink)
        with self.store._write() as conn:
            conn.execute(
                "INSERT INTO outbox_cursors (sink, acked_seq, updated_utc) VALUES (?, ?, ?)"
                " ON CONFLICT (sink) DO UPDATE SET"
                " acked_seq = max(acked_seq, excluded.acked_seq),"
                " updated_utc = excluded.updated_utc",
                (sink, int(upto_seq), now),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO outbox_rejects"
                " (sink, outbox_seq, inspection_id, status, reason, rejected_utc)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (sink, seq, iid, status, reason[:2000], now)
                    for seq, iid, status, reason in rejected
                ],
            )
            return self._prune(conn, sinks)

    @staticmethod
    def _prune(conn: sqlite3.Connection, sinks: Sequence[str]) -> int:
        """Delete rows every sink in ``sinks`` acknowledged (a sink never seen has 0)."""
        marks = ", ".join("?" for _ in sinks)
        known = conn.execute(
            "SELECT count(*) AS n, min(acked_seq) AS low FROM outbox_cursors"
            f" WHERE sink IN ({marks})",
            list(sinks),
        ).fetchone()
        if int(known["n"]) < len(set(sinks)) or known["low"] is None:
            return 0
        return conn.execute("DELETE FROM outbox WHERE seq <= ?", (int(known["low"]),)).rowcount

    def register(self, sinks: Sequence[str]) -> None:
        """Create cursors for new sinks (at 0: they get the whole current backlog)."""
        now = utc_now_iso()
        with self.store._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO outbox_cursors (sink, acked_seq, updated_utc)"
                " VALUES (?, 0, ?)",
                [(s, now) for s in sinks],
            )

    def evict_over_quota(self, quota_bytes: int) -> int:
        """Drop the oldest rows until the backlog fits ``quota_bytes``; return how many.

        The inspections themselves stay in the log; each dropped range is recorded in
        ``outbox_evictions`` (and shown in health) so an operator can requeue it.
        """
        total = 0
        while True:
            with self.store._write() as conn:
                size = int(
                    conn.execute("SELECT coalesce(sum(payload_bytes), 0) FROM outbox").fetchone()[0]
                )
                if size <= quota_bytes:
                    return total
                rows = conn.execute(
                    "SELECT seq, inspection_seq, payload_bytes FROM outbox ORDER BY seq LIMIT ?",
                    (EVICT_CHUNK_ROWS,),
                ).fetchall()
                excess, cut = size - quota_bytes, []
                for r in rows:
                    cut.append(r)
                    excess -= int(r["payload_bytes"])
                    if excess <= 0:
                        break
                conn.execute("DELETE FROM outbox WHERE seq <= ?", (int(cut[-1]["seq"]),))
                conn.execute(
                    "INSERT INTO outbox_evictions"
                    " (first_inspection_seq, last_inspection_seq, rows, evicted_utc)"
                    " VALUES (?, ?, ?, ?)",
                    (
                        min(int(r["inspection_seq"]) for r in cut),
                        max(int(r["inspection_seq"]) for r in cut),
                        len(cut),
                        utc_now_iso(),
                    ),
                )
                total += len(cut)

    def requeue(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> int:
        """Put logged inspections back in the outbox (every sink sends them again).

        For a range evicted over quota, or a central database rebuilt from scratch;
        central deduplicates on the UUID, so requeuing too much is harmless.
        """
        where, params = build_filters(since=since, until=until, batch=batch)
        with self.store._write() as conn:
            return conn.execute(
                "INSERT INTO outbox (inspection_seq, inspection_id, enqueued_utc, payload_bytes)"
                f" SELECT i.seq, i.id, ?, {_PAYLOAD_ESTIMATE_SQL}"
                f" FROM inspections AS i {where} ORDER BY i.seq",
                [utc_now_iso(), *params],
            ).rowcount

    def requeue_rejects(self, sink: str | None = None) -> int:
        """Requeue the records sinks refused (after the receiver was fixed); forget them."""
        where, params = ("WHERE r.sink = ?", [sink]) if sink is not None else ("", [])
        with self.store._write() as conn:
            n = conn.execute(
                "INSERT INTO outbox (inspection_seq, inspection_id, enqueued_utc, payload_bytes)"
                f" SELECT i.seq, i.id, ?, {_PAYLOAD_ESTIMATE_SQL} FROM inspections AS i"
                f" WHERE i.id IN (SELECT r.inspection_id FROM outbox_rejects AS r {where})"
                " ORDER BY i.seq",
                [utc_now_iso(), *params],
            ).rowcount
            conn.execute(f"DELETE FROM outbox_rejects AS r {where}", params)
        return n


def iter_inspections(
    store: QCStore,
    *,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    batch: str | None = None,
    chunk_rows: int = 500,
) -> Iterator[dict[str, Any]]:
    """Inspections oldest first (by seq), read ``chunk_rows`` at a time.

    Each chunk is one short read transaction, finished before its rows are yielded, so
    a slow consumer (a download, a progress bar) never holds a snapshot open and the
    generator may be resumed from any thread.
    """
    where, params = build_filters(since=since, until=until, batch=batch)
    after = 0
    joiner = "AND" if where else "WHERE"
    while True:
        with store._read() as conn:
            rows = conn.execute(
                f"SELECT {_SELECT_COLUMNS} FROM inspections AS i {where} {joiner} i.seq > ?"
                " ORDER BY i.seq LIMIT ?",
                [*params, after, int(chunk_rows)],
            ).fetchall()
        if not rows:
            return
        items = [inspection_row_to_dict(r) for r in rows]
        after = int(items[-1]["seq"])
        yield from items
