"""Read-side aggregates of the QC log for the supervisor page, the API and SPC.

Kept out of :mod:`.qcstore` (which owns connections and writes) as a mixin so the
aggregates share the store's per-thread read transactions: a counts snapshot and the
log position it was taken at come from the same SQLite snapshot, which is what lets
a live page add streamed events on top of it without counting any mask twice.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import Any

from .queries import build_filters
from .records import Batch
from .timeutil import Timestamp

#: Verdict tallies over ``inspections AS i``; ``rejected_only`` excludes errors.
VERDICT_SUMS = (
    "count(*) AS total,"
    " coalesce(sum(i.verdict = 'accept'), 0) AS accepted,"
    " coalesce(sum(i.verdict = 'reject'), 0) AS rejected_only,"
    " coalesce(sum(i.verdict = 'error'), 0) AS errors,"
    " coalesce(sum(i.verdict = 'no_mask'), 0) AS no_mask"
)

_SELECT_BATCH = "SELECT id, workshop, order_number, spec_name, started_utc, closed_utc FROM batches"


def tally(row: sqlite3.Row) -> dict[str, int]:
    """One row of :data:`VERDICT_SUMS` as the API's counters.

    ``rejected`` includes errors: a mask that could not be inspected is ejected.
    """
    return {
        "total": int(row["total"]),
        "accepted": int(row["accepted"]),
        "rejected": int(row["rejected_only"]) + int(row["errors"]),
        "no_mask": int(row["no_mask"]),
        "errors": int(row["errors"]),
    }


def read_counts(conn: sqlite3.Connection, where: str, params: list[Any]) -> dict[str, Any]:
    """Counters and masks per defect code under ``where``, inside the caller's transaction."""
    row = conn.execute(f"SELECT {VERDICT_SUMS} FROM inspections AS i {where}", params).fetchone()
    by_defect = conn.execute(
        "SELECT d.code, count(*) AS n FROM inspection_defects AS d"
        f" JOIN inspections AS i ON i.id = d.inspection_id {where}"
        " GROUP BY d.code ORDER BY n DESC, d.code",
        params,
    ).fetchall()
    return {**tally(row), "by_defect": {r["code"]: int(r["n"]) for r in by_defect}}


class AnalyticsMixin:
    """Aggregates for :class:`~station.store.QCStore` (which provides ``_read``)."""

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def counts_snapshot(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`QCStore.counts` plus ``last_seq``, the log position it includes.

        Both come from one read transaction: every inspection with ``seq <= last_seq``
        is counted (if it matches the filters) and none after it, so a client that
        applies only streamed events with a greater ``seq`` never double-counts.
        """
        where, params = build_filters(since=since, until=until, batch=batch)
        with self._read() as conn:
            counts = read_counts(conn, where, params)
            last = conn.execute("SELECT coalesce(max(seq), 0) FROM inspections").fetchone()[0]
        return {**counts, "last_seq": int(last)}

    def last_seq(self) -> int:
        """The newest log position (0 for an empty log)."""
        with self._read() as conn:
            return int(conn.execute("SELECT coalesce(max(seq), 0) FROM inspections").fetchone()[0])

    def hourly_counts(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> list[dict[str, Any]]:
        """Counters per UTC hour, oldest first; hours without inspections are absent.

        Grouping on the fixed-width text prefix ``YYYY-MM-DDTHH`` uses the ts index.
        """
        where, params = build_filters(since=since, until=until, batch=batch)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT substr(i.ts_utc, 1, 13) AS hour, {VERDICT_SUMS}"
                f" FROM inspections AS i {where} GROUP BY hour ORDER BY hour",
                params,
            ).fetchall()
        return [{"hour_utc": f"{r['hour']}:00:00.000Z", **tally(r)} for r in rows]

    def batch_counts(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> list[dict[str, Any]]:
        """Counters per batch id (``None`` for masks inspected outside any batch)."""
        where, params = build_filters(since=since, until=until, batch=batch)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT i.batch_id AS batch_id, min(i.ts_utc) AS first_utc, {VERDICT_SUMS}"
                f" FROM inspections AS i {where} GROUP BY i.batch_id ORDER BY first_utc",
                params,
            ).fetchall()
        return [{"batch_id": r["batch_id"], "first_utc": r["first_utc"], **tally(r)} for r in rows]

    def measurement_series(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        batch: str | None = None,
    ) -> list[dict[str, Any]]:
        """Body width and height of every measured mask, oldest first (for SPC).

        Accepted and rejected masks both count: a mask rejected for its size is part of
        the process spread. Errors and empty frames carry no measurement and drop out.
        """
        where, params = build_filters(since=since, until=until, batch=batch)
        clause = "i.verdict IN ('accept', 'reject') AND (i.width_mm IS NOT NULL"
        clause += " OR i.height_mm IS NOT NULL)"
        where = f"{where} AND {clause}" if where else f"WHERE {clause}"
        with self._read() as conn:
            rows = conn.execute(
                "SELECT i.seq, i.id, i.ts_utc, i.width_mm, i.height_mm, i.spec_version"
                f" FROM inspections AS i {where} ORDER BY i.seq",
                params,
            ).fetchall()
        return [dict(r) for r in rows]

    def list_batches(self, limit: int = 50) -> list[Batch]:
        """Batches, newest start first (the open one, if any, comes first)."""
        with self._read() as conn:
            rows = conn.execute(
                f"{_SELECT_BATCH} ORDER BY started_utc DESC, id DESC LIMIT ?", (int(limit),)
            ).fetchall()
        return [Batch.from_row(r) for r in rows]
