"""The QC log's schema as an ordered list of migrations.

``PRAGMA user_version`` holds how many migrations a database has had. Opening a
database applies the missing ones, all in one ``BEGIN IMMEDIATE`` transaction, so a
crash or a second process never sees half a schema. Never edit a released
migration: append a new one, because stations in the field already ran the old ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .errors import SchemaTooNewError, StoreError

_V1_INITIAL = """
-- Batches (lots): a production order run on one spec. At most one is open.
CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    workshop      TEXT NOT NULL,
    order_number  TEXT,
    spec_name     TEXT,
    started_utc   TEXT NOT NULL,
    closed_utc    TEXT,
    CHECK (closed_utc IS NULL OR closed_utc >= started_utc)
);
CREATE UNIQUE INDEX batches_one_open ON batches ((closed_utc IS NULL))
    WHERE closed_utc IS NULL;

-- One row per inspected frame. seq is the stable, monotonic cursor key (AUTOINCREMENT
-- never reuses a value, even after deletes); id is the public UUID4.
-- batch_id is deliberately not a foreign key: an inspection must never be lost
-- because its batch row is missing (e.g. a batch set by an external system).
CREATE TABLE inspections (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
    ts_utc                TEXT NOT NULL,
    t0_mono_s             REAL,
    station_id            TEXT NOT NULL,
    workshop              TEXT NOT NULL,
    batch_id              TEXT,
    verdict               TEXT NOT NULL
                          CHECK (verdict IN ('accept', 'reject', 'no_mask', 'error')),
    defects_json          TEXT NOT NULL DEFAULT '[]',
    measurements_json     TEXT NOT NULL DEFAULT '{}',
    stage_ms_json         TEXT NOT NULL DEFAULT '{}',
    latency_ms            REAL,
    width_mm              REAL,
    height_mm             REAL,
    pleats                INTEGER,
    ear_loops             INTEGER,
    stitch_length_mm      REAL,
    spec_version          TEXT,
    model_version         TEXT,
    calibration_version   TEXT,
    image_raw_path        TEXT,
    image_annotated_path  TEXT,
    message               TEXT NOT NULL DEFAULT ''
);
CREATE INDEX inspections_ts ON inspections (ts_utc);
CREATE INDEX inspections_verdict_ts ON inspections (verdict, ts_utc);
CREATE INDEX inspections_batch_ts ON inspections (batch_id, ts_utc);

-- One row per (inspection, defect code): by-defect counts without parsing JSON.
CREATE TABLE inspection_defects (
    inspection_id  TEXT NOT NULL REFERENCES inspections (id) ON DELETE CASCADE,
    code           TEXT NOT NULL,
    PRIMARY KEY (inspection_id, code)
) WITHOUT ROWID;
CREATE INDEX inspection_defects_code ON inspection_defects (code, inspection_id);
"""

_V2_LABELS = """
-- Supervisor labels: a person confirms or corrects what the station decided. Rows are
-- only appended; the latest row (highest seq) for an inspection is its label. The old
-- rows stay as the audit trail of who changed their mind and when.
CREATE TABLE labels (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    inspection_id        TEXT NOT NULL REFERENCES inspections (id) ON DELETE CASCADE,
    label                TEXT NOT NULL,
    verdict_was          TEXT NOT NULL,
    defects_was_json     TEXT NOT NULL DEFAULT '[]',
    labelled_by          TEXT NOT NULL,
    ts_utc               TEXT NOT NULL,
    image                TEXT,
    note                 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX labels_inspection ON labels (inspection_id, seq);
"""

_V3_OUTBOX = """
-- Store-and-forward to central systems. The trigger puts the outbox row in the same
-- transaction as its inspection: a committed inspection always has its outbox row, even
-- if the station crashes before any publisher runs. No foreign key: a future migration
-- that rebuilds `inspections` must not cascade-delete the backlog.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    inspection_seq  INTEGER NOT NULL,
    inspection_id   TEXT NOT NULL,
    enqueued_utc    TEXT NOT NULL,
    payload_bytes   INTEGER NOT NULL
);
-- How far each sink has acknowledged (an outbox seq). A row leaves the outbox once
-- every configured sink has acknowledged it.
CREATE TABLE outbox_cursors (
    sink         TEXT PRIMARY KEY,
    acked_seq    INTEGER NOT NULL DEFAULT 0,
    updated_utc  TEXT NOT NULL
);
-- Rows one sink refused for good (e.g. HTTP 400 on that record alone): the sink moves
-- on, the operator sees them here and in health; the inspection stays in the log.
CREATE TABLE outbox_rejects (
    sink           TEXT NOT NULL,
    outbox_seq     INTEGER NOT NULL,
    inspection_id  TEXT NOT NULL,
    status         INTEGER,
    reason         TEXT NOT NULL,
    rejected_utc   TEXT NOT NULL,
    PRIMARY KEY (sink, outbox_seq)
);
-- Ranges dropped from the outbox because the backlog outgrew its disk quota. The
-- inspections stay in the log: `qc-station outbox requeue` sends them again.
CREATE TABLE outbox_evictions (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    first_inspection_seq  INTEGER NOT NULL,
    last_inspection_seq   INTEGER NOT NULL,
    rows                  INTEGER NOT NULL,
    evicted_utc           TEXT NOT NULL
);
CREATE TRIGGER inspections_enqueue AFTER INSERT ON inspections
BEGIN
    INSERT INTO outbox (inspection_seq, inspection_id, enqueued_utc, payload_bytes)
    VALUES (
        NEW.seq, NEW.id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
        500 + length(NEW.defects_json) + length(NEW.measurements_json)
            + length(NEW.stage_ms_json) + length(NEW.message)
            + coalesce(length(NEW.batch_id), 0)
            + coalesce(length(NEW.image_raw_path), 0)
            + coalesce(length(NEW.image_annotated_path), 0)
    );
END;
-- Inspections logged before this migration go out too: central wants every one.
INSERT INTO outbox (inspection_seq, inspection_id, enqueued_utc, payload_bytes)
SELECT seq, id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
    500 + length(defects_json) + length(measurements_json) + length(stage_ms_json)
    + length(message) + coalesce(length(batch_id), 0)
    + coalesce(length(image_raw_path), 0) + coalesce(length(image_annotated_path), 0)
FROM inspections ORDER BY seq;
"""

#: Ordered migrations; migration ``n`` (1-based) brings a database to version ``n``.
MIGRATIONS: tuple[str, ...] = (_V1_INITIAL, _V2_LABELS, _V3_OUTBOX)

#: The schema version this code writes.
SCHEMA_VERSION: int = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements with SQLite's own tokenizer.

    ``executescript`` would be simpler but commits any open transaction first, which
    would break applying a migration atomically.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise StoreError(f"unterminated SQL statement in migration: {buffer.strip()[:80]!r}")
    return statements


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database header."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(version: int, known: int, where: str) -> None:
    """Refuse a database written by newer code (see :class:`SchemaTooNewError`)."""
    if version > known:
        raise SchemaTooNewError(
            f"{where} has schema version {version}, but this station software only knows "
            f"versions up to {known}: upgrade the software (or open a copy with the newer "
            "version); the file was left untouched"
        )


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[str] = MIGRATIONS,
    *,
    where: str = "database",
) -> int:
    """Apply the missing migrations in one transaction and return the final version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so the explicit
    ``BEGIN IMMEDIATE`` here is the only transaction. The version is re-read inside
    the write lock, so two processes opening a new file at once migrate it once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = user_version(conn)
        check_not_newer(version, len(migrations), where)
        for number in range(version + 1, len(migrations) + 1):
            try:
                for statement in split_statements(migrations[number - 1]):
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise StoreError(f"{where}: migration {number} failed: {exc}") from exc
            conn.execute(f"PRAGMA user_version = {number:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(migrations)
