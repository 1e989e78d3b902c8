"""The live event bus, and Server-Sent Events over a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from station.api import create_app
from station.events import EventBus, attach_store, inspection_event
from station.store import InspectionRecord, QCStore


def record(verdict: str = "reject", codes: tuple[str, ...] = ("hole",)) -> InspectionRecord:
    return InspectionRecord(
        verdict=verdict,
        station_id="st-1",
        workshop="atelier-a",
        batch_id="B1",
        defects=[{"code": c, "message": c} for c in codes],
        measurements={"width_mm": 200.5, "height_mm": float("nan")},
        latency_ms=123.4,
        image_annotated_path="ab/x_annotated.jpg",
    )


# -- the bus --------------------------------------------------------------------------------
def test_publish_from_threads_reaches_subscribers_in_order() -> None:
    async def scenario() -> list[int]:
        bus = EventBus()
        sub = bus.subscribe()
        threads = [
            threading.Thread(target=lambda: [bus.publish("inspection", {}) for _ in range(50)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = []
        while len(ids) < 200:
            event = await sub.next(timeout_s=2)
            assert event is not None
            ids.append(event.id)
        return ids

    assert asyncio.run(scenario()) == list(range(1, 201))


def test_a_slow_subscriber_loses_the_oldest_events_only() -> None:
    async def scenario() -> tuple[list[int], int]:
        bus = EventBus(queue_size=3)
        slow = bus.subscribe()
        for i in range(10):
            bus.publish("inspection", {"i": i})
        await asyncio.sleep(0)  # let the loop run the deliveries
        got = []
        while (event := await slow.next(timeout_s=0.05)) is not None:
            got.append(event.data["i"])
        return got, slow.dropped

    assert asyncio.run(scenario()) == ([7, 8, 9], 7)


def test_close_ends_subscriptions_and_refuses_events() -> None:
    async def scenario() -> None:
        bus = EventBus()
        sub = bus.subscribe()
        bus.publish("inspection", {"n": 1})
        bus.close()
        first = await sub.next(timeout_s=1)
        assert first is not None and first.data == {"n": 1}
        assert await sub.next(timeout_s=1) is None and sub.closed
        assert bus.publish("inspection", {}) is None
        late = bus.subscribe()
        assert late.closed

    asyncio.run(scenario())


def test_listeners_run_and_a_failing_one_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen = []
    bus.add_listener(lambda e: (_ for _ in ()).throw(RuntimeError("boom")))
    bus.add_listener(lambda e: seen.append(e.type))
    with caplog.at_level(logging.ERROR):
        bus.publish("inspection", {})
    assert seen == ["inspection"]
    assert "boom" in caplog.text


def test_inspection_event_shape_is_json_safe() -> None:
    rec = record()
    event = inspection_event(rec, 42)
    assert event == {
        "id": rec.id,
        "seq": 42,
        "ts_utc": rec.ts_utc,
        "verdict": "reject",
        "defects": ["hole"],
        "width_mm": 200.5,
        "height_mm": None,
        "latency_ms": 123.4,
        "batch_id": "B1",
        "has_image": True,
    }
    json.dumps(event, allow_nan=False)


def test_store_listener_publishes_committed_rows(tmp_path: Path) -> None:
    bus = EventBus()
    seen = []
    bus.add_listener(lambda e: seen.append(e.data))
    with QCStore(tmp_path / "qc.db") as store:
        detach = attach_store(bus, store)
        store.record(record())
        detach()
        store.record(record())
    assert [e["seq"] for e in seen] == [1]


def test_a_failing_listener_never_fails_the_record(tmp_path: Path) -> None:
    with QCStore(tmp_path / "qc.db") as store:
        store.add_record_listener(lambda rec, seq: 1 / 0)
        assert store.record(record()) == 1
        assert store.counts()["total"] == 1


# -- SSE over a real server -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, QCStore]]:
    store = QCStore(tmp_path / "qc.sqlite3")
    port = free_port()
    app = create_app(store, token="x" * 20)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        app.state.bus.close()  # ends open streams so the server can stop
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    assert not thread.is_alive()


def test_sse_delivers_an_event_per_inspection(served: tuple[str, QCStore]) -> None:
    base, store = served
    rec = record()
    with (
        httpx.Client(timeout=10) as http,
        http.stream("GET", f"{base}/api/v1/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == "retry: 3000"
        assert next(lines) == ": connected"
        threading.Timer(0.2, store.record, args=(rec,)).start()
        message: dict[str, str] = {}
        for line in lines:
            if not line:
                if message:
                    break
                continue
            field, _, value = line.partition(": ")
            message[field] = value
    assert message["event"] == "inspection"
    data = json.loads(message["data"])
    assert data["id"] == rec.id and data["verdict"] == "reject" and data["seq"] == 1
    counts = httpx.get(f"{base}/api/v1/counts").json()
    assert counts["last_seq"] == data["seq"], "a page can tell this event is counted"
