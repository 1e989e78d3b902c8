"""Supervisor labels in the QC log (schema v2 ``labels`` table).

A label says what a person saw on an inspection's image: ``good`` or a defect code.
Rows are appended, never updated: the latest one is the label, the earlier ones are
the audit trail. The training-data files are written by :mod:`station.labels`; the
log keeps the same facts so reports can compare station verdicts with people's.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import StoreError
from .records import normalise_uuid
from .timeutil import Timestamp, to_utc_iso, utc_now_iso

_SELECT_LABEL = (
    "SELECT seq, inspection_id, label, verdict_was, defects_was_json, labelled_by, ts_utc,"
    " image, note FROM labels"
)


@dataclass(frozen=True, slots=True)
class Label:
    """One supervisor decision about one inspection."""

    inspection_id: str
    label: str
    verdict_was: str
    defects_was: list[str] = field(default_factory=list)
    labelled_by: str = "supervisor"
    ts_utc: str = ""
    image: str | None = None
    note: str = ""
    seq: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Label:
        return cls(
            inspection_id=row["inspection_id"],
            label=row["label"],
            verdict_was=row["verdict_was"],
            defects_was=list(json.loads(row["defects_was_json"])),
            labelled_by=row["labelled_by"],
            ts_utc=row["ts_utc"],
            image=row["image"],
            note=row["note"],
            seq=int(row["seq"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LabelsMixin:
    """Label reads and writes for :class:`~station.store.QCStore`."""

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def add_label(
        self,
        inspection_id: str,
        label: str,
        *,
        labelled_by: str = "supervisor",
        image: str | None = None,
        note: str = "",
        ts_utc: Timestamp | None = None,
    ) -> Label:
        """Append a label; the inspection's verdict and defects are copied as they were.

        Raises :class:`StoreError` for an unknown inspection (the foreign key would
        too, but this says which id) and ValueError for an empty label.
        """
        key = normalise_uuid(inspection_id)
        if not label or not labelled_by:
            raise ValueError("label and labelled_by must be non-empty")
        when = utc_now_iso() if ts_utc is None else to_utc_iso(ts_utc, "ts_utc")
        with self._write() as conn:
            row = conn.execute("SELECT verdict FROM inspections WHERE id = ?", (key,)).fetchone()
            if row is None:
                raise StoreError(f"no inspection {key} to label")
            codes = [
                r["code"]
                for r in conn.execute(
                    "SELECT code FROM inspection_defects WHERE inspection_id = ? ORDER BY code",
                    (key,),
                )
            ]
            cur = conn.execute(
                "INSERT INTO labels (inspection_id, label, verdict_was, defects_was_json,"
                " labelled_by, ts_utc, image, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, label, row["verdict"], json.dumps(codes), labelled_by, when, image, note),
            )
            seq = int(cur.lastrowid or 0)
        return Label(key, label, row["verdict"], codes, labelled_by, when, image, note, seq)

    def latest_label(self, inspection_id: str) -> Label | None:
        """The label in force for an inspection (the last one written), if any."""
        key = normalise_uuid(inspection_id)
        with self._read() as conn:
            row = conn.execute(
                f"{_SELECT_LABEL} WHERE inspection_id = ? ORDER BY seq DESC LIMIT 1", (key,)
            ).fetchone()
        return None if row is None else Label.from_row(row)

    def label_history(self, inspection_id: str) -> list[Label]:
        """Every label written for an inspection, oldest first."""
        key = normalise_uuid(inspection_id)
        with self._read() as conn:
            rows = conn.execute(
                f"{_SELECT_LABEL} WHERE inspection_id = ? ORDER BY seq", (key,)
            ).fetchall()
        return [Label.from_row(r) for r in rows]
