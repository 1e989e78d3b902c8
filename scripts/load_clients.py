"""The benchmark's HTTP clients: what supervisor pages do to a running station.

Used by ``scripts/load.py`` (load, memory) and ``scripts/station_memory.py``: each
client polls the page's GET endpoints and holds an event stream; a *page* also
watches the live preview. Everything is bounded by ``stop_at`` (monotonic seconds).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

#: The GET endpoints the supervisor page polls (station/web/js), all under /api/v1.
POLLED_PATHS: tuple[str, ...] = (
    "/api/v1/status",
    "/api/v1/counts",
    "/api/v1/inspections?limit=20",
    "/api/v1/spc",
    "/api/v1/specs",
    "/api/v1/batches",
    "/api/v1/labels",
    "/healthz",
)
#: Seconds between two polls of one client (the page refreshes every few seconds;
#: a benchmark client polls faster to load the server more).
POLL_PERIOD_S = 1.0
#: HTTP timeout of one request, seconds.
REQUEST_TIMEOUT_S = 10.0
#: Seconds an idle client connection is kept (uvicorn closes them after 5 s).
KEEPALIVE_S = 2.0


@dataclass
class ClientStats:
    requests: int = 0
    failures: int = 0
    sse_events: int = 0
    sse_failures: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.errors) < 10:
            self.errors.append(what)

    def add(self, other: ClientStats) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.sse_events += other.sse_events
        self.sse_failures += other.sse_failures
        self.errors += other.errors[: max(0, 10 - len(self.errors))]


async def _poller(client: httpx.AsyncClient, stats: ClientStats, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        for path in POLLED_PATHS:
            try:
                r = await client.get(path)
                stats.requests += 1
                if r.status_code != 200:
                    stats.fail(f"{path}: HTTP {r.status_code}")
            except httpx.HTTPError as err:
                stats.requests += 1
                stats.fail(f"{path}: {type(err).__name__}")
        await asyncio.sleep(POLL_PERIOD_S)


async def _sse(client: httpx.AsyncClient, stats: ClientStats, stop_at: float) -> None:
    """Hold one event stream open until ``stop_at``, counting inspection events."""
    try:
        async with client.stream("GET", "/api/v1/events", timeout=None) as r:
            stats.requests += 1
            if r.status_code != 200:
                stats.sse_failures += 1
                stats.fail(f"events: HTTP {r.status_code}")
                return
            lines = r.aiter_lines()
            while True:
                left = stop_at - time.monotonic()
                if left <= 0:
                    return
                try:
                    line = await asyncio.wait_for(anext(lines), timeout=left)
                except (TimeoutError, StopAsyncIteration):
                    return
                if line.startswith("event: inspection"):
                    stats.sse_events += 1
    except httpx.HTTPError as err:
        stats.sse_failures += 1
        stats.fail(f"events: {type(err).__name__}")


async def _page(client: httpx.AsyncClient, stats: ClientStats, stop_at: float) -> None:
    """What one open supervisor page does: live preview, event stream and polls."""

    async def preview() -> None:
        try:
            async with client.stream("GET", "/api/v1/live.mjpg", timeout=None) as r:
                async for _ in r.aiter_bytes():
                    if time.monotonic() >= stop_at:
                        return
        except httpx.HTTPError as err:
            stats.fail(f"live: {type(err).__name__}")

    await asyncio.gather(_poller(client, stats, stop_at), _sse(client, stats, stop_at), preview())


async def drive_clients(base_url: str, clients: int, seconds: float) -> ClientStats:
    """``clients`` concurrent clients, each polling the API and holding an SSE stream."""
    stats = ClientStats()
    stop_at = time.monotonic() + seconds
    # Idle connections are dropped before uvicorn's own 5 s keep-alive ends: reusing one
    # the server is closing at that very moment is a client bug, not a server failure.
    limits = httpx.Limits(max_connections=2 * clients + 4, keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:
        tasks = []
        for _ in range(clients):
            tasks.append(_poller(client, stats, stop_at))
            tasks.append(_sse(client, stats, stop_at))
        await asyncio.gather(*tasks)
    return stats
