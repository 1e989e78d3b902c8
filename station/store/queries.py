"""Query building for the QC log: filters, cursors and result pages.

Kept apart from the connection handling in :mod:`.qcstore` so the SQL that every
read shares lives in one place and always uses bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records import VERDICTS
from .timeutil import Timestamp, to_utc_iso


@dataclass(frozen=True, slots=True)
class InspectionPage:
    """One page of inspections, newest first; pass ``next_cursor`` to get the next."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def parse_cursor(cursor: str | int) -> int:
    """Cursors are the ``seq`` of the last item seen; anything else is refused."""
    text = str(cursor).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(text)


def build_filters(
    *,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    batch: str | None = None,
    verdict: str | None = None,
    defect: str | None = None,
    before_seq: int | None = None,
) -> tuple[str, list[Any]]:
    """A WHERE clause on ``inspections AS i``: ``since`` inclusive, ``until`` exclusive."""
    clauses: list[str] = []
    params: list[Any] = []
    since_iso = None if since is None else to_utc_iso(since, "since")
    until_iso = None if until is None else to_utc_iso(until, "until")
    if since_iso is not None and until_iso is not None and since_iso > until_iso:
        raise ValueError(f"since ({since_iso}) is after until ({until_iso})")
    if since_iso is not None:
        clauses.append("i.ts_utc >= ?")
        params.append(since_iso)
    if until_iso is not None:
        clauses.append("i.ts_utc < ?")
        params.append(until_iso)
    if batch is not None:
        clauses.append("i.batch_id = ?")
        params.append(batch)
    if verdict is not None:
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
        clauses.append("i.verdict = ?")
        params.append(verdict)
    if defect is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM inspection_defects d"
            " WHERE d.inspection_id = i.id AND d.code = ?)"
        )
        params.append(defect)
    if before_seq is not None:
        clauses.append("i.seq < ?")
        params.append(before_seq)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
