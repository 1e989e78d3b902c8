"""The QC log on a real SQLite file: schema, durability, counts, pagination, batches."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from station.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    BatchError,
    InspectionRecord,
    QCStore,
    SchemaTooNewError,
    StoreError,
)
from station.store.readpool import DEFAULT_IDLE_READERS
from station.store.schema import migrate, split_statements, user_version
from vision.types import Defect, InspectionResult, Measurements

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def make_record(
    verdict: str = "accept",
    codes: tuple[str, ...] = (),
    *,
    minute: int = 0,
    batch: str | None = None,
) -> InspectionRecord:
    """A record at T0 + ``minute`` with one defect per code."""
    return InspectionRecord(
        verdict=verdict,
        station_id="st-1",
        workshop="atelier-a",
        ts_utc=T0 + timedelta(minutes=minute),
        batch_id=batch,
        defects=[{"code": c, "message": c} for c in codes],
        measurements={"width_mm": 175.0, "height_mm": 95.0, "pleats": 3},
        stage_ms={"detect": 2.5},
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "qc" / "qc.db"


@pytest.fixture
def store(db_path: Path) -> Any:
    with QCStore(db_path) as s:
        yield s


# -- schema and files -----------------------------------------------------------------------
def test_new_file_is_migrated_to_current_schema_in_wal_mode(db_path: Path) -> None:
    with QCStore(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    conn = sqlite3.connect(db_path)
    try:
        assert user_version(conn) == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"inspections", "inspection_defects", "batches"} <= tables
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"inspections_ts", "inspections_verdict_ts", "inspections_batch_ts"} <= indexes
        assert "inspection_defects_code" in indexes
    finally:
        conn.close()


def test_connections_are_durable_and_enforce_foreign_keys(store: QCStore) -> None:
    conn = store._writer  # the pragmas are per connection: check the one that writes
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO inspection_defects VALUES ('nope', 'hole')")


def test_reopen_keeps_rows_and_does_not_remigrate(db_path: Path) -> None:
    rec = make_record("reject", ("hole",))
    with QCStore(db_path) as s:
        s.record(rec)
    with QCStore(db_path) as s:
        assert s.get(rec.id)["defects"] == [{"code": "hole", "message": "hole"}]
        assert s.counts()["total"] == 1


def test_refuses_a_database_from_newer_software(db_path: Path) -> None:
    QCStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="upgrade"):
        QCStore(db_path)
    conn = sqlite3.connect(db_path)
    assert user_version(conn) == SCHEMA_VERSION + 1  # left untouched
    conn.close()


def test_refuses_a_file_that_is_not_sqlite(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        QCStore(db_path)


def test_migrations_apply_in_order_and_a_failing_one_rolls_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    extra = "CREATE TABLE second (a INTEGER);\nINSERT INTO second VALUES (1);"
    assert migrate(conn, [*MIGRATIONS, extra]) == SCHEMA_VERSION + 1
    assert conn.execute("SELECT a FROM second").fetchall() == [(1,)]
    broken = "CREATE TABLE third (a INTEGER);\nINSERT INTO missing_table VALUES (1);"
    with pytest.raises(StoreError, match=f"migration {SCHEMA_VERSION + 2} failed"):
        migrate(conn, [*MIGRATIONS, extra, broken])
    assert user_version(conn) == SCHEMA_VERSION + 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='third'").fetchone() is None
    assert not conn.in_transaction
    conn.close()


def test_split_statements_keeps_triggers_whole() -> None:
    script = """
    -- a comment
    CREATE TABLE t (a);
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 1; UPDATE t SET a = 2;
    END;
    -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].rstrip().endswith("END;")
    with pytest.raises(StoreError, match="unterminated"):
        split_statements("CREATE TABLE t (a)")


# -- records --------------------------------------------------------------------------------
def test_from_result_round_trips_with_numpy_and_nan(store: QCStore) -> None:
    result = InspectionResult(
        verdict="reject",
        defects=[
            Defect("pleats", "2 plis au lieu de 3", value=2.0, limit="3"),
            Defect("pleats", "x"),
        ],
        measurements=Measurements(
            width_mm=np.float32(175.5), pleats=2, stitch_length_mm=float("nan")
        ),
        stage_ms={"detect": 3.0, "measure": 4.0},
        message="plis",
    )
    t0 = time.monotonic() - 0.040
    rec = InspectionRecord.from_result(
        result,
        station_id="st-1",
        workshop="atelier-a",
        batch_id="B1",
        spec_version="resilience-adult@2020.1",
        model_version="m1",
        calibration_version="c1",
        t0_mono_s=t0,
        image_raw_path=Path("raw/a.jpg"),
    )
    assert rec.latency_ms is not None and 40.0 <= rec.latency_ms < 5000.0
    assert rec.ts_utc.endswith("Z") and len(rec.ts_utc) == 24
    store.record(rec)
    got = store.get(rec.id)
    assert got is not None
    assert got["verdict"] == "reject" and got["batch_id"] == "B1"
    assert got["width_mm"] == pytest.approx(175.5) and got["pleats"] == 2
    assert got["stitch_length_mm"] is None and got["measurements"]["stitch_length_mm"] is None
    assert got["defects"][0] == {
        "code": "pleats",
        "message": "2 plis au lieu de 3",
        "value": 2.0,
        "limit": "3",
    }
    assert got["stage_ms"] == {"detect": 3.0, "measure": 4.0}
    assert got["image_raw_path"] == "raw/a.jpg" and got["message"] == "plis"
    assert store.counts()["by_defect"] == {"pleats": 1}  # one mask, even with two pleat defects
    json.dumps(got, allow_nan=False)


def test_from_result_without_t0_sums_the_stages() -> None:
    result = InspectionResult(verdict="accept", stage_ms={"a": 1.5, "b": 2.5})
    rec = InspectionRecord.from_result(result, station_id="s", workshop="w")
    assert rec.latency_ms == pytest.approx(4.0)
    with pytest.raises(ValueError, match="monotonic"):
        InspectionRecord.from_result(
            result, station_id="s", workshop="w", t0_mono_s=time.monotonic() + 60
        )


def test_invalid_records_are_refused_before_writing() -> None:
    with pytest.raises(ValueError, match="verdict"):
        make_record("maybe")
    with pytest.raises(ValueError, match="timezone"):
        InspectionRecord(
            verdict="accept", station_id="s", workshop="w", ts_utc="2025-03-01T08:00:00"
        )
    with pytest.raises(ValueError):
        InspectionRecord(verdict="accept", station_id="s", workshop="w", id="../../etc/passwd")


def test_get_unknown_is_none_and_malformed_id_raises(store: QCStore) -> None:
    assert store.get(str(uuid.uuid4())) is None
    for bad in ("../../etc/passwd", "1 OR 1=1", ""):
        with pytest.raises(ValueError):
            store.get(bad)


def test_a_duplicate_id_is_refused_and_leaves_no_partial_row(store: QCStore) -> None:
    rec = make_record("reject", ("hole",))
    store.record(rec)
    with pytest.raises(sqlite3.IntegrityError):
        store.record(rec)
    assert store.counts()["total"] == 1
    store.record(make_record())  # the writer is usable after the failed transaction
    assert store.counts()["total"] == 2


# -- counts ---------------------------------------------------------------------------------
@pytest.fixture
def known_rows(store: QCStore) -> QCStore:
    rows = [
        make_record("accept", minute=0, batch="B1"),
        make_record("accept", minute=1, batch="B1"),
        make_record("reject", ("hole", "stain"), minute=2, batch="B1"),
        make_record("reject", ("hole",), minute=3, batch="B2"),
        make_record("error", ("error",), minute=4, batch="B2"),
        make_record("no_mask", minute=5, batch="B2"),
        make_record("accept", minute=6),
    ]
    for rec in rows:
        store.record(rec)
    return store


def test_counts_by_verdict_and_defect(known_rows: QCStore) -> None:
    assert known_rows.counts() == {
        "total": 7,
        "accepted": 3,
        "rejected": 3,  # 2 reject + 1 error: an error ejects the mask
        "no_mask": 1,
        "errors": 1,
        "by_defect": {"hole": 2, "error": 1, "stain": 1},
    }
    assert list(known_rows.counts()["by_defect"]) == ["hole", "error", "stain"]


def test_counts_since_is_inclusive_and_until_exclusive(known_rows: QCStore) -> None:
    c = known_rows.counts(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert (c["total"], c["rejected"], c["errors"]) == (2, 2, 0)
    assert c["by_defect"] == {"hole": 2, "stain": 1}
    paris = timezone(timedelta(hours=1))
    c = known_rows.counts(
        since="2025-03-01T09:05:00+01:00", until=datetime(2025, 3, 1, 9, 6, tzinfo=paris)
    )
    assert (c["total"], c["no_mask"]) == (1, 1)
    assert known_rows.counts(since="2025-03-01T08:10:00Z")["total"] == 0


def test_counts_by_batch(known_rows: QCStore) -> None:
    b1 = known_rows.counts(batch="B1")
    assert (b1["total"], b1["accepted"], b1["rejected"]) == (3, 2, 1)
    b2 = known_rows.counts(batch="B2", since=T0 + timedelta(minutes=4))
    assert (b2["total"], b2["errors"], b2["no_mask"]) == (2, 1, 1)
    assert known_rows.counts(batch="nope")["total"] == 0


def test_counts_refuse_bad_or_naive_timestamps(store: QCStore) -> None:
    with pytest.raises(ValueError, match="timezone"):
        store.counts(since="2025-03-01T08:00:00")
    with pytest.raises(ValueError, match="ISO-8601"):
        store.counts(until="yesterday")
    with pytest.raises(ValueError, match="after"):
        store.counts(since=T0 + timedelta(hours=1), until=T0)


# -- pagination -----------------------------------------------------------------------------
def test_pagination_is_complete_without_duplicates(store: QCStore) -> None:
    ids = []
    for i in range(23):
        rec = make_record(
            "reject" if i % 3 == 0 else "accept", ("hole",) if i % 3 == 0 else (), minute=i
        )
        store.record(rec)
        ids.append(rec.id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_inspections(limit=5, cursor=cursor)
        seen += [item["id"] for item in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        store.record(make_record(minute=99))  # newer rows must not shift the pages
    assert pages == 5
    assert seen == list(reversed(ids))

    rejected = store.list_inspections(limit=3, verdict="reject")
    assert [i["verdict"] for i in rejected.items] == ["reject"] * 3
    rest = store.list_inspections(limit=500, verdict="reject", cursor=rejected.next_cursor)
    assert len(rejected.items) + len(rest.items) == 8 and rest.next_cursor is None
    assert len(store.list_inspections(limit=500, defect="hole").items) == 8
    window = store.list_inspections(
        since=T0 + timedelta(minutes=20), until=T0 + timedelta(minutes=22)
    )
    assert [i["ts_utc"] for i in window.items] == [
        "2025-03-01T08:21:00.000Z",
        "2025-03-01T08:20:00.000Z",
    ]


def test_pagination_rejects_bad_limits_and_cursors(store: QCStore) -> None:
    for limit in (0, 501):
        with pytest.raises(ValueError, match="limit"):
            store.list_inspections(limit=limit)
    for cursor in ("abc", "-1", "1; DROP TABLE inspections"):
        with pytest.raises(ValueError, match="cursor"):
            store.list_inspections(cursor=cursor)


# -- batches --------------------------------------------------------------------------------
def test_batch_lifecycle(store: QCStore) -> None:
    assert store.current_batch() is None
    b1 = store.start_batch(
        "atelier-a", order_number="OF-12", spec_name="adult", batch_id="B1", started=T0
    )
    assert store.current_batch() == b1 and b1.is_open
    with pytest.raises(BatchError, match="still open"):
        store.start_batch("atelier-a", batch_id="B2")
    b2 = store.start_batch(
        "atelier-a", batch_id="B2", started=T0 + timedelta(hours=1), close_previous=True
    )
    closed_b1 = store.get_batch("B1")
    assert closed_b1 is not None and closed_b1.closed_utc == b2.started_utc
    with pytest.raises(BatchError, match="already exists"):
        store.start_batch("atelier-a", batch_id="B1", close_previous=True)
    assert store.current_batch() == b2  # the failed start rolled back the close
    closed = store.close_batch(closed=T0 + timedelta(hours=2))
    assert closed.id == "B2" and closed.closed_utc == "2025-03-01T10:00:00.000Z"
    assert store.current_batch() is None
    with pytest.raises(BatchError, match="no open batch"):
        store.close_batch()
    with pytest.raises(BatchError, match="already closed"):
        store.close_batch("B1")
    store.start_batch("atelier-a", batch_id="B3", started=T0)
    with pytest.raises(BatchError, match="before it started"):
        store.close_batch("B3", closed=T0 - timedelta(minutes=1))


# -- concurrency and durability -------------------------------------------------------------
def test_readers_on_other_threads_read_while_the_loop_writes(store: QCStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        for i in range(150):
            store.record(make_record("accept" if i % 2 else "reject", minute=i))
        done.set()

    def reader() -> None:
        try:
            last = 0
            while not done.is_set():
                total = store.counts()["total"]
                assert total >= last  # each read is one consistent, growing snapshot
                last = total
        except BaseException as exc:  # noqa: BLE001 - collect any failure of the reader thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert store.counts()["total"] == 150


def test_threads_that_read_then_exit_leave_no_connection_open(store: QCStore) -> None:
    """The API's worker threads come and go: each new one must not keep a connection."""
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        t = threading.Thread(target=store.counts)
        t.start()
        t.join(timeout=10)
    assert store.read_connections <= DEFAULT_IDLE_READERS
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2 * DEFAULT_IDLE_READERS


def test_readers_at_once_each_get_a_connection_and_close_the_extra(store: QCStore) -> None:
    barrier = threading.Barrier(5)
    seen: list[int] = []

    def read() -> None:
        with store._read() as conn:
            seen.append(id(conn))
            barrier.wait(timeout=10)  # all five hold a transaction at once

    threads = [threading.Thread(target=read) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(set(seen)) == 5
    assert store.read_connections == DEFAULT_IDLE_READERS
    store.close()
    assert store.read_connections == 0


def test_closed_store_raises(db_path: Path) -> None:
    s = QCStore(db_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.counts()
    with pytest.raises(StoreError, match="closed"):
        s.record(make_record())


def test_kill_9_loses_no_committed_row(db_path: Path) -> None:
    """A child acknowledges each commit on stdout, then SIGKILLs itself mid-stream."""
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from station.store import InspectionRecord, QCStore
        store = QCStore({str(db_path)!r})
        for i in range(40):
            store.record(InspectionRecord(verdict="accept", station_id="s", workshop="w"))
            print(i + 1, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", child], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acknowledged = int(proc.stdout.split()[-1])
    assert acknowledged == 40
    assert (db_path.parent / (db_path.name + "-wal")).exists()  # rows still in the WAL
    with QCStore(db_path) as s:
        assert s.counts()["total"] == acknowledged
    assert os.path.getsize(db_path) > 0
