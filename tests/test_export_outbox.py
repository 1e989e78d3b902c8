"""The outbox in the QC log: atomic with each inspection, per-sink cursors, quota."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_export_support import fill, make_record

from station.store import MIGRATIONS, SCHEMA_VERSION, QCStore
from station.store.outbox import Outbox
from station.store.schema import migrate, user_version


@pytest.fixture
def store(tmp_path: Path) -> QCStore:
    s = QCStore(tmp_path / "qc.sqlite3")
    yield s
    s.close()


def test_outbox_migration_is_last_and_versions_are_sequential(store: QCStore) -> None:
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    assert "CREATE TABLE outbox" in MIGRATIONS[-1]
    assert sum("CREATE TABLE outbox (" in m for m in MIGRATIONS) == 1


def test_each_committed_inspection_has_its_outbox_row(store: QCStore) -> None:
    recs = fill(store, 3)
    items = Outbox(store).pending("any", limit=10)
    assert [i.inspection["id"] for i in items] == [r.id for r in recs]
    assert [i.outbox_seq for i in items] == sorted(i.outbox_seq for i in items)


def test_a_failed_inspection_leaves_no_outbox_row(store: QCStore) -> None:
    rec = make_record(0)
    store.record(rec)
    with pytest.raises(sqlite3.IntegrityError):
        store.record(rec)  # duplicate UUID: the whole transaction rolls back
    assert Outbox(store).stats().count == 1


def test_upgrade_enqueues_inspections_logged_before_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    outbox_index = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE outbox (" in m)
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:outbox_index])
    rec = make_record(0)
    row = rec.to_row()
    conn.execute(
        f"INSERT INTO inspections ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    conn.close()
    with QCStore(path) as store:
        assert user_version(store._writer) == SCHEMA_VERSION
        assert [i.inspection["id"] for i in Outbox(store).pending("s")] == [rec.id]


def test_rows_leave_only_when_every_sink_acknowledged(store: QCStore) -> None:
    fill(store, 4)
    box = Outbox(store)
    sinks = ["mqtt", "http"]
    box.register(sinks)
    seqs = [i.outbox_seq for i in box.pending("mqtt")]
    assert box.ack("mqtt", seqs[-1], active_sinks=sinks) == 0  # http has not acked
    assert box.pending("mqtt") == []
    assert len(box.pending("http")) == 4
    assert box.ack("http", seqs[1], active_sinks=sinks) == 2
    assert box.stats().count == 2
    assert box.pending_count("http") == 2
    assert box.ack("http", seqs[0], active_sinks=sinks) == 0  # a cursor never goes back
    assert box.cursor("http") == seqs[1]


def test_a_refusal_is_recorded_with_the_cursor_move(store: QCStore) -> None:
    recs = fill(store, 2)
    box = Outbox(store)
    items = box.pending("http")
    box.ack("http", items[0].outbox_seq, rejected=[(items[0].outbox_seq, recs[0].id, 400, "bad")])
    rejects = box.rejects()
    assert [(r["inspection_id"], r["status"]) for r in rejects] == [(recs[0].id, 400)]
    assert box.stats().rejected == 1
    assert box.requeue_rejects() == 1
    assert box.rejects() == []
    assert [i.inspection["id"] for i in box.pending("http")] == [recs[1].id, recs[0].id]


def test_quota_evicts_oldest_and_requeue_brings_them_back(store: QCStore) -> None:
    recs = fill(store, 20)
    box = Outbox(store)
    with store._read() as conn:
        sizes = [r[0] for r in conn.execute("SELECT payload_bytes FROM outbox ORDER BY seq")]
    assert box.evict_over_quota(sum(sizes[15:])) == 15  # exactly the newest 5 fit
    stats = box.stats()
    assert stats.count == 5 and stats.evicted_rows == 15
    (eviction,) = box.evictions()
    assert eviction["rows"] == 15
    assert [i.inspection["id"] for i in box.pending("s")] == [r.id for r in recs[15:]]
    assert box.evict_over_quota(10**9) == 0
    n = box.requeue(
        since=recs[0].ts_utc,
        until=recs[15].ts_utc,  # exactly the evicted range
    )
    assert n == 15
    assert len(box.pending("s", limit=100)) == 20


def test_rows_whose_inspection_vanished_are_skipped(store: QCStore) -> None:
    recs = fill(store, 3)
    with store._write() as conn:
        conn.execute("DELETE FROM inspections WHERE id = ?", (recs[1].id,))
    box = Outbox(store)
    assert [i.inspection["id"] for i in box.pending("s")] == [recs[0].id, recs[2].id]
