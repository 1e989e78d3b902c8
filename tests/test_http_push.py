"""HTTP push against a real local receiver that fails like a workshop network does."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_export_support import fill, make_record, wait_for

from station.config.export import ExportConfig, HttpSinkConfig
from station.export.publisher import Publisher
from station.export.sinks import Identity, Outbound, RecordRejected, SinkHalted
from station.export.sinks.http import HttpSink, idempotency_key
from station.store import QCStore
from station.store.outbox import Outbox


class Receiver:
    """A receiver on 127.0.0.1 that answers 200, 500, slowly, or as ``rule`` says."""

    def __init__(self, fail_rate: float = 0.0, slow_rate: float = 0.0, seed: int = 0) -> None:
        self.fail_rate, self.slow_rate = fail_rate, slow_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.received: list[str] = []  # every record id stored, duplicates included
        self.keys: list[tuple[str, tuple[str, ...]]] = []
        self.statuses: list[int] = []
        self.rule: Any = None  # (body) -> status or None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.decide(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"status": status}).encode())

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/ingest"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def decide(self, headers: Any, body: dict[str, Any]) -> int:
        ids = [r["id"] for r in body["records"]]
        assert body["ids"] == ids
        with self.lock:
            self.keys.append((headers["Idempotency-Key"], tuple(ids)))
            status = self.rule(body) if self.rule is not None else None
            roll = self.rng.random()
        if status is None:
            if roll < self.fail_rate:
                status = 500
            elif roll < self.fail_rate + self.slow_rate:
                time.sleep(0.4)  # past the client's timeout: it retries, we stored it
                status = 200
            else:
                status = 200
        if status == 200:
            with self.lock:
                self.received.extend(ids)
        with self.lock:
            self.statuses.append(status)
        return status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QCStore]:
    s = QCStore(tmp_path / "qc.sqlite3")
    yield s
    s.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_rate=0.3, slow_rate=0.15, seed=3)
    yield r
    r.close()


def _http_config(url: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "name": "central",
        "url": url,
        "timeout_s": 0.2,
        "batch_size_records": 10,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        **kw,
    }


def _publisher(store: QCStore, sink: dict[str, Any]) -> Publisher:
    config = ExportConfig.model_validate(
        {"sinks": [sink], "poll_interval_s": 0.02, "stats_interval_s": 0.05}
    )
    return Publisher.from_config(store, config, station_id="st-1", workshop="atelier-a")


def test_intermittent_500s_and_timeouts_deliver_all_once_after_dedup(
    store: QCStore, receiver: Receiver
) -> None:
    n = 100
    recs = fill(store, n)
    pub = _publisher(store, _http_config(receiver.url))
    pub.start()
    try:
        wait_for(lambda: Outbox(store).stats().count == 0, timeout_s=60, what="outbox drained")
    finally:
        pub.stop()
    assert 500 in receiver.statuses  # the failures did happen
    assert len(receiver.received) >= n
    first_seen = list(dict.fromkeys(receiver.received))
    assert first_seen == [r.id for r in recs]  # all N, once each after dedup, in order
    keys: dict[tuple[str, ...], set[str]] = {}
    for key, ids in receiver.keys:
        keys.setdefault(ids, set()).add(key)
    assert all(len(k) == 1 for k in keys.values())  # a retried batch keeps its key
    assert pub.health()["last_error"] is not None


def test_a_400_is_isolated_reported_in_health_and_not_retried_forever(
    store: QCStore,
) -> None:
    receiver = Receiver()
    try:
        recs = fill(store, 5)
        store.record(make_record(50, message="POISON"))
        tail = fill(store, 4, batch="B2")
        receiver.rule = lambda body: (
            400 if any(r["message"] == "POISON" for r in body["records"]) else None
        )
        pub = _publisher(store, _http_config(receiver.url))
        pub.start()
        try:
            wait_for(lambda: Outbox(store).stats().count == 0, timeout_s=20, what="drained")
            wait_for(lambda: pub.health()["last_4xx"] is not None, what="4xx in health")
            time.sleep(0.2)
        finally:
            pub.stop()
        health = pub.health()
        assert health["last_4xx"]["status"] == 400
        assert health["last_4xx"]["sink"] == "central"
        assert health["sinks"]["central"]["rejected"] == 1
        assert receiver.received == [r.id for r in recs + tail]
        assert receiver.statuses.count(400) <= 4  # bisected once, never retried
        (reject,) = Outbox(store).rejects()
        assert reject["status"] == 400
    finally:
        receiver.close()


def test_401_halts_the_sink_without_skipping_records(store: QCStore) -> None:
    receiver = Receiver()
    receiver.rule = lambda _body: 401
    try:
        fill(store, 3)
        pub = _publisher(store, _http_config(receiver.url, halt_retry_s=60))
        pub.start()
        try:
            wait_for(lambda: pub.health()["state"] == "halted", what="halted")
            time.sleep(0.2)
        finally:
            pub.stop()
        assert receiver.statuses == [401]
        assert pub.health()["last_4xx"]["status"] == 401
        assert Outbox(store).stats().count == 3
    finally:
        receiver.close()


def _outbound(n: int) -> list[Outbound]:
    out = []
    for i in range(n):
        record = {"id": f"00000000-0000-4000-8000-{i:012d}", "message": "POISON" if i == 5 else ""}
        out.append(Outbound(i + 1, record, json.dumps(record)))
    return out


def test_bisection_finds_the_refused_record_and_many_refusals_halt() -> None:
    receiver = Receiver()
    receiver.rule = lambda body: (
        422 if any(r["message"] == "POISON" for r in body["records"]) else None
    )
    try:
        cfg = HttpSinkConfig.model_validate(_http_config(receiver.url))
        sink = HttpSink(cfg, Identity("st-1", "atelier-a"))
        items = _outbound(8)
        assert sink.send(items) == 4  # 422 on [0..7]: the first half [0..3] goes alone
        assert sink.send(items[4:]) == 1  # [4..7], [4, 5] refused; [4] alone is fine
        with pytest.raises(RecordRejected) as err:
            sink.send(items[5:])  # [5..7] -> [5] alone: refused for good
        assert (err.value.index, err.value.status) == (0, 422)
        assert sink.send(items[6:]) == 2
        receiver.rule = lambda _body: 400
        with pytest.raises(SinkHalted, match="in a row"):
            for k in range(10):
                try:
                    sink.send(items[k : k + 1])
                except RecordRejected:
                    continue
    finally:
        receiver.close()


def test_unreachable_receiver_is_transient(store: QCStore) -> None:
    from test_export_support import free_port

    fill(store, 2)
    pub = _publisher(store, _http_config(f"http://127.0.0.1:{free_port()}/x"))
    pub.start()
    try:
        wait_for(lambda: pub.health()["state"] == "retrying", what="retrying")
    finally:
        pub.stop()
    assert "POST http://127.0.0.1" in pub.health()["last_error"]["message"]
    assert pub.health()["last_4xx"] is None
    assert Outbox(store).stats().count == 2


def test_idempotency_key_is_stable_and_batch_specific() -> None:
    a = idempotency_key("st-1", "w", ["x", "y"])
    assert a == idempotency_key("st-1", "w", ["x", "y"])
    assert a != idempotency_key("st-1", "w", ["x"])
    assert a != idempotency_key("st-2", "w", ["x", "y"])
