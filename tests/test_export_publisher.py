"""The publisher: in-order store-and-forward that survives its sinks and never blocks."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_export_support import fill, make_record, wait_for

from station.config.export import ExportConfig
from station.export.publisher import Publisher, backoff_s
from station.export.sinks import (
    Identity,
    Outbound,
    RecordRejected,
    Sink,
    SinkHalted,
    TransientSinkError,
)
from station.store import QCStore
from station.store.outbox import Outbox

IDENT = Identity(station_id="st-1", workshop="atelier-a")


def _cfg(name: str, batch: int = 10) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        batch_size_records=batch,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        enabled=True,
    )


class ListSink(Sink):
    """Collects delivered records; ``script`` decides each call's fate."""

    type = "test"

    def __init__(self, name: str, script: Any = None, batch: int = 10) -> None:
        super().__init__(_cfg(name, batch), IDENT)
        self.script = script
        self.got: list[dict[str, Any]] = []
        self.calls = 0

    def send(self, items: Sequence[Outbound]) -> int:
        self.calls += 1
        n = len(items) if self.script is None else self.script(self, items)
        self.got.extend(json.loads(i.payload) for i in items[:n])
        return n


@pytest.fixture
def store(tmp_path: Path) -> QCStore:
    s = QCStore(tmp_path / "qc.sqlite3")
    yield s
    s.close()


def _run(store: QCStore, sinks: list[Sink], **kw: Any) -> Publisher:
    pub = Publisher(store, sinks, poll_interval_s=0.02, stats_interval_s=0.05, **kw)
    pub.start()
    return pub


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_s(n, 1.0, 30.0, rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(30.0, 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
    assert len({round(backoff_s(3, 1.0, 30.0, rng), 6) for _ in range(20)}) > 10  # jitter


def test_file_sink_gets_every_record_in_order_and_the_outbox_empties(
    store: QCStore, tmp_path: Path
) -> None:
    out = tmp_path / "central.jsonl"
    config = ExportConfig.model_validate(
        {
            "sinks": [
                {"type": "file", "name": "usb", "path": str(out), "batch_size_records": 7},
                {"type": "file", "name": "off", "path": str(tmp_path / "x"), "enabled": False},
            ],
            "poll_interval_s": 0.02,
        }
    )
    recs = fill(store, 30)
    pub = Publisher.from_config(store, config, station_id="st-1", workshop="atelier-a")
    assert pub.sink_names == ["usb"]
    pub.start()
    try:
        more = [make_record(100 + i) for i in range(5)]
        for rec in more:  # recorded while the publisher drains
            store.record(rec)
            pub.wake()
        wait_for(lambda: Outbox(store).stats().count == 0, what="outbox drained")
    finally:
        pub.stop()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [r.id for r in recs + more]
    health = pub.health()
    assert health["sinks"]["usb"]["sent"] == 35
    assert health["state"] in ("idle", "sending")


def test_flaky_sink_gets_everything_in_order_and_the_publisher_survives(store: QCStore) -> None:
    rng = random.Random(7)

    def flaky(_sink: ListSink, items: Sequence[Outbound]) -> int:
        roll = rng.random()
        if roll < 0.2:
            raise TransientSinkError("network down")
        if roll < 0.3:
            raise RuntimeError("bug in a sink")  # must not kill the thread
        if roll < 0.5:
            return rng.randint(0, len(items))  # partial acknowledgement
        return len(items)

    sink = ListSink("flaky", flaky, batch=8)
    recs = fill(store, 60)
    pub = _run(store, [sink])
    try:
        wait_for(lambda: Outbox(store).stats().count == 0, timeout_s=20, what="drained")
    finally:
        pub.stop()
    assert [r["id"] for r in sink.got] == [r.id for r in recs]  # in order, no gap, no dupe
    health = pub.health()
    assert health["last_error"] is not None
    assert health["sinks"]["flaky"]["sent"] == 60


def test_a_blocked_sink_never_blocks_recording(store: QCStore) -> None:
    release = threading.Event()

    def blocked(_sink: ListSink, items: Sequence[Outbound]) -> int:
        release.wait(10)
        return len(items)

    sink = ListSink("stuck", blocked)
    pub = _run(store, [sink])
    try:
        fill(store, 1)
        wait_for(lambda: sink.calls == 1, what="sink busy")
        t0 = time.monotonic()
        recs = [make_record(10 + i) for i in range(50)]
        for rec in recs:
            store.record(rec)
        elapsed_s = time.monotonic() - t0
        assert elapsed_s < 5.0  # 50 durable commits, no waiting on the sink
        wait_for(lambda: pub.health()["backlog"].get("count") == 51, what="backlog in health")
        assert pub.health()["backlog"]["bytes"] > 0
        release.set()
        wait_for(lambda: Outbox(store).stats().count == 0, what="drained after release")
    finally:
        release.set()
        pub.stop()


def test_rows_wait_for_the_slowest_sink(store: QCStore) -> None:
    down = threading.Event()
    down.set()

    def maybe(_sink: ListSink, items: Sequence[Outbound]) -> int:
        if down.is_set():
            raise TransientSinkError("central unreachable")
        return len(items)

    fast, slow = ListSink("fast"), ListSink("slow", maybe)
    recs = fill(store, 12)
    pub = _run(store, [fast, slow])
    try:
        wait_for(lambda: len(fast.got) == 12, what="fast sink")
        time.sleep(0.1)
        assert Outbox(store).stats().count == 12  # the slow sink still needs them
        health = pub.health()
        assert health["sinks"]["slow"]["state"] == "retrying"
        assert "central unreachable" in health["sinks"]["slow"]["last_error"]
        down.clear()
        wait_for(lambda: Outbox(store).stats().count == 0, what="both acknowledged")
    finally:
        pub.stop()
    assert [r["id"] for r in slow.got] == [r.id for r in recs]


def test_a_refused_record_is_reported_and_skipped(store: QCStore) -> None:
    recs = fill(store, 5)
    bad_id = recs[2].id

    def refuse(sink: ListSink, items: Sequence[Outbound]) -> int:
        for k, item in enumerate(items):
            if item.id == bad_id:  # items[:k] were delivered, item k refused
                sink.got.extend(json.loads(i.payload) for i in items[:k])
                raise RecordRejected(k, 400, "HTTP 400 width_mm: not a number")
        return len(items)

    sink = ListSink("http", refuse)
    pub = _run(store, [sink])
    try:
        wait_for(lambda: Outbox(store).stats().count == 0, what="drained")
        wait_for(lambda: pub.health()["backlog"].get("rejected") == 1, what="stats refresh")
    finally:
        pub.stop()
    assert [r["id"] for r in sink.got] == [r.id for i, r in enumerate(recs) if i != 2]
    health = pub.health()
    assert health["last_4xx"]["status"] == 400
    assert health["last_4xx"]["inspection_id"] == bad_id
    assert health["sinks"]["http"]["rejected"] == 1
    assert Outbox(store).rejects()[0]["inspection_id"] == bad_id


def test_a_halted_sink_waits_and_keeps_every_record(store: QCStore) -> None:
    def halt(_sink: ListSink, _items: Sequence[Outbound]) -> int:
        raise SinkHalted(401, "HTTP 401 bad token", retry_after_s=60)

    sink = ListSink("http", halt)
    fill(store, 3)
    pub = _run(store, [sink])
    try:
        wait_for(lambda: pub.health()["state"] == "halted", what="halted")
        time.sleep(0.1)
        assert sink.calls == 1  # not hammering a misconfigured receiver
    finally:
        pub.stop()
    health = pub.health()
    assert health["last_4xx"]["status"] == 401
    assert health["sinks"]["http"]["retry_in_s"] == 60
    assert Outbox(store).stats().count == 3


def test_quota_is_enforced_in_the_background(store: QCStore) -> None:
    def down(_sink: ListSink, _items: Sequence[Outbound]) -> int:
        raise TransientSinkError("offline")

    fill(store, 30)
    quota = Outbox(store).stats().bytes // 3
    pub = _run(store, [ListSink("m", down)], quota_bytes=quota)
    try:
        wait_for(lambda: pub.health()["backlog"].get("evicted", 0) > 0, what="eviction")
    finally:
        pub.stop()
    health = pub.health()
    assert health["backlog"]["bytes"] <= quota
    assert health["backlog"]["count"] + health["backlog"]["evicted"] == 30
    assert store.counts()["total"] == 30  # the log itself keeps everything


def test_stop_is_prompt_and_restart_resumes(store: QCStore) -> None:
    first = ListSink("s")
    fill(store, 5)
    pub = _run(store, [first])
    wait_for(lambda: len(first.got) == 5, what="first run")
    t0 = time.monotonic()
    pub.stop()
    assert time.monotonic() - t0 < 2.0
    more = fill(store, 3, batch="B2")
    second = ListSink("s")
    pub = _run(store, [second])
    try:
        wait_for(lambda: len(second.got) == 3, what="second run")
    finally:
        pub.stop()
    assert [r["id"] for r in second.got] == [r.id for r in more]
