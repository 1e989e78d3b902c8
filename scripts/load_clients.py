"""The benchmark's HTTP clients: what supervisor pages do to a running station.

Used by ``scripts/load.py`` (load, memory) and ``scripts/station_memory.py``. Two
kinds of client, each holding an event stream:

- **stress** (the default): polls all the page's GET endpoints every second, about
  forty times what an open page asks;
- **page**: what ``station/web/js`` does once loaded: the start-up requests, the
  status every 5 s, a thumbnail for each streamed reject and the SPC charts at most
  every 10 s after a measured mask.

:func:`_page` (memory benchmarks) adds the live preview to a stress client.
Everything is bounded by ``stop_at`` (monotonic seconds).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

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
#: What an open supervisor page does (station/web/js/main.js, gallery.js).
PAGE_STATUS_EVERY_S = 5.0
PAGE_SPC_DEBOUNCE_S = 10.0
PAGE_THUMB_PX = 320
PAGE_GALLERY_SIZE = 12
PAGE_RATE_WINDOW_S = 300.0
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


async def _get(client: httpx.AsyncClient, stats: ClientStats, path: str) -> httpx.Response | None:
    """One counted GET: the response, or None (and a recorded failure) unless 200."""
    try:
        r = await client.get(path)
    except httpx.HTTPError as err:
        stats.requests += 1
        stats.fail(f"{path}: {type(err).__name__}")
        return None
    stats.requests += 1
    if r.status_code != 200:
        stats.fail(f"{path}: HTTP {r.status_code}")
        return None
    return r


async def _poller(client: httpx.AsyncClient, stats: ClientStats, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        for path in POLLED_PATHS:
            await _get(client, stats, path)
        await asyncio.sleep(POLL_PERIOD_S)


async def _sse(
    client: httpx.AsyncClient,
    stats: ClientStats,
    stop_at: float,
    on_event: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> None:
    """Hold one event stream open until ``stop_at``, counting inspection events (and
    handing each to ``on_event``, as the page does)."""
    try:
        async with client.stream("GET", "/api/v1/events", timeout=None) as r:
            stats.requests += 1
            if r.status_code != 200:
                stats.sse_failures += 1
                stats.fail(f"events: HTTP {r.status_code}")
                return
            lines = r.aiter_lines()
            kind = ""
            while True:
                left = stop_at - time.monotonic()
                if left <= 0:
                    return
                try:
                    line = await asyncio.wait_for(anext(lines), timeout=left)
                except (TimeoutError, StopAsyncIteration):
                    return
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                    if kind == "inspection":
                        stats.sse_events += 1
                elif line.startswith("data: ") and on_event is not None and kind == "inspection":
                    await on_event(json.loads(line[len("data: ") :]))
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


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


async def _page_client(client: httpx.AsyncClient, stats: ClientStats, stop_at: float) -> None:
    """One open supervisor page, request for request (``station/web/js``)."""
    spc_due: list[float] = []
    shown: dict[str, str] = {}

    def scope(status: dict[str, Any] | None) -> dict[str, str]:
        batch = (status or {}).get("batch")
        if batch:
            return {"batch": str(batch["id"])}
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return {"since": _iso(today.timestamp())}

    async def resync(status: dict[str, Any] | None) -> None:
        q = scope(status)
        shown.clear()
        shown.update(q)
        since = _iso(time.time() - PAGE_RATE_WINDOW_S)
        await asyncio.gather(
            _get(client, stats, f"/api/v1/counts?{urlencode({**q, 'group_by': 'hour'})}"),
            _get(client, stats, f"/api/v1/inspections?{urlencode({'since': since, 'limit': 500})}"),
        )
        rejects = {"verdict": "reject", "limit": 2 * PAGE_GALLERY_SIZE, **q}
        gallery = await _get(client, stats, f"/api/v1/inspections?{urlencode(rejects)}")
        if gallery is not None:
            items = [i for i in gallery.json()["items"] if i.get("image_url")]
            for item in items[:PAGE_GALLERY_SIZE]:
                await _get(client, stats, _thumb(item["id"]))
        await _get(client, stats, f"/api/v1/spc?{urlencode({**q, 'points': 300})}")

    async def status_loop() -> None:
        while time.monotonic() < stop_at:
            await asyncio.sleep(min(PAGE_STATUS_EVERY_S, max(stop_at - time.monotonic(), 0)))
            if time.monotonic() < stop_at:
                await _get(client, stats, "/api/v1/status")

    async def spc_loop() -> None:
        """The charts reload once, ``PAGE_SPC_DEBOUNCE_S`` after a measured mask."""
        while time.monotonic() < stop_at:
            await asyncio.sleep(min(0.5, max(stop_at - time.monotonic(), 0)))
            if spc_due and time.monotonic() >= spc_due[0] and time.monotonic() < stop_at:
                spc_due.clear()
                await _get(client, stats, f"/api/v1/spc?{urlencode({**shown, 'points': 300})}")

    async def on_event(event: dict[str, Any]) -> None:
        if event.get("verdict") in ("reject", "error") and event.get("has_image"):
            await _get(client, stats, _thumb(event["id"]))
        if (
            event.get("width_mm") is not None or event.get("height_mm") is not None
        ) and not spc_due:
            spc_due.append(time.monotonic() + PAGE_SPC_DEBOUNCE_S)

    await _get(client, stats, "/api/v1/i18n/fr")
    await asyncio.gather(
        _get(client, stats, "/api/v1/specs"), _get(client, stats, "/api/v1/labels")
    )
    first = await _get(client, stats, "/api/v1/status")
    status = first.json() if first is not None else None
    await resync(status)
    await asyncio.gather(_sse(client, stats, stop_at, on_event), status_loop(), spc_loop())


def _thumb(inspection_id: str) -> str:
    return f"/api/v1/inspections/{inspection_id}/image?width_px={PAGE_THUMB_PX}"


async def drive_clients(
    base_url: str, clients: int, seconds: float, profile: str = "stress"
) -> ClientStats:
    """``clients`` concurrent clients, each holding an SSE stream: ``stress`` clients
    poll every GET endpoint each second, ``page`` clients do what an open page does."""
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
            if profile == "page":
                tasks.append(_page_client(client, stats, stop_at))
            elif profile == "stress":
                tasks.append(_poller(client, stats, stop_at))
                tasks.append(_sse(client, stats, stop_at))
            else:
                raise ValueError(f"unknown client profile {profile!r} (stress, page)")
        await asyncio.gather(*tasks)
    return stats
