"""The shared answer for polled GETs: computed once, never stale past a write or commit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from station.api import create_app
from station.api.cache import ResponseCache
from station.api.settings import ApiSettings
from station.store import InspectionRecord, QCStore

TOKEN = "t" * 32


class CountingStation:
    """A station whose status() counts how often the API asked."""

    def __init__(self) -> None:
        self.calls = 0

    def status(self) -> dict[str, Any]:
        self.calls += 1
        return {"state": "running", "uptime_s": float(self.calls)}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QCStore]:
    with QCStore(tmp_path / "qc.db") as s:
        yield s


def app_client(store: QCStore, station: Any, ttl_ms: float) -> TestClient:
    settings = ApiSettings(response_cache_ms=ttl_ms)
    return TestClient(create_app(store, station, token=TOKEN, settings=settings))


def test_identical_polls_share_one_answer(store: QCStore) -> None:
    station = CountingStation()
    with app_client(store, station, ttl_ms=60_000) as client:
        first = [client.get("/api/v1/status") for _ in range(5)]
        # Each status() call gives another uptime: equal bodies were computed once.
        assert all(r.status_code == 200 and r.content == first[0].content for r in first)
        # Another question (query string) or another language is another answer.
        assert client.get("/api/v1/status?x=1").content != first[0].content
        other = client.get("/api/v1/status", headers={"Accept-Language": "en"})
        assert other.content != first[0].content


def test_cache_off_and_credentials_are_never_shared(store: QCStore) -> None:
    station = CountingStation()
    with app_client(store, station, ttl_ms=0) as client:
        assert client.get("/api/v1/status").content != client.get("/api/v1/status").content
    station = CountingStation()
    with app_client(store, station, ttl_ms=60_000) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        a = client.get("/api/v1/status", headers=auth)
        assert a.content != client.get("/api/v1/status", headers=auth).content


def test_a_commit_to_the_log_starts_afresh(store: QCStore) -> None:
    with app_client(store, None, ttl_ms=60_000) as client:
        assert client.get("/api/v1/counts").json()["total"] == 0
        store.record(InspectionRecord(verdict="accept", station_id="st-1", workshop="a"))
        assert client.get("/api/v1/counts").json()["total"] == 1


def test_a_write_through_the_api_starts_afresh(store: QCStore) -> None:
    with app_client(store, None, ttl_ms=60_000) as client:
        assert client.get("/api/v1/batches").json()["items"] == []
        r = client.post(
            "/api/v1/batches",
            json={"workshop": "atelier-a", "order_number": "OF-1"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code in (200, 201), r.text
        assert len(client.get("/api/v1/batches").json()["items"]) == 1


def test_the_page_still_sees_the_latest_batch(store: QCStore) -> None:
    """A refused write (no token) also empties the cache; the answer stays right."""
    with app_client(store, None, ttl_ms=60_000) as client:
        before = client.get("/api/v1/batches").content
        assert client.post("/api/v1/batches", json={"workshop": "a"}).status_code == 401
        assert client.get("/api/v1/batches").content == before


# -- the middleware alone: expiry, errors, concurrent misses ---------------------------


class Counter:
    """A tiny ASGI app: answers ``calls`` so far, status from the path, after a pause."""

    def __init__(self, pause_s: float = 0.0) -> None:
        self.calls = 0
        self.pause_s = pause_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await asyncio.sleep(self.pause_s)
        status = 500 if scope["path"].endswith("fail") else 200
        body = str(self.calls).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body})


async def _get(app: Any, path: str, n: int = 1) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://qc") as client:
        return list(await asyncio.gather(*(client.get(path) for _ in range(n))))


def test_answers_expire_and_errors_are_not_kept() -> None:
    now = [0.0]
    inner = Counter()
    cache = ResponseCache(inner, ttl_ms=500, paths={"/a", "/fail"}, clock=lambda: now[0])
    assert [r.text for r in asyncio.run(_get(cache, "/a"))] == ["1"]
    now[0] = 0.4
    assert [r.text for r in asyncio.run(_get(cache, "/a"))] == ["1"]
    now[0] = 0.95
    assert [r.text for r in asyncio.run(_get(cache, "/a"))] == ["2"]
    codes = [r.status_code for r in asyncio.run(_get(cache, "/fail"))]
    codes += [r.status_code for r in asyncio.run(_get(cache, "/fail"))]
    assert codes == [500, 500] and inner.calls == 4
    asyncio.run(_get(cache, "/other"))  # not a listed path: always computed
    asyncio.run(_get(cache, "/other"))
    assert inner.calls == 6


def test_concurrent_identical_polls_are_computed_once() -> None:
    inner = Counter(pause_s=0.05)
    cache = ResponseCache(inner, ttl_ms=10_000, paths={"/a"})
    responses = asyncio.run(_get(cache, "/a", n=20))
    assert inner.calls == 1 and {r.text for r in responses} == {"1"}
    assert cache.misses == 1 and cache.hits == 19


def test_generation_change_drops_the_answer() -> None:
    generation = [0]
    inner = Counter()
    cache = ResponseCache(inner, ttl_ms=10_000, generation=lambda: generation[0], paths={"/a"})
    asyncio.run(_get(cache, "/a"))
    generation[0] += 1
    assert [r.text for r in asyncio.run(_get(cache, "/a"))] == ["2"]
