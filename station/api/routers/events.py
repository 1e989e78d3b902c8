"""Server-Sent Events: one ``inspection`` event per mask, for live pages.

A browser's ``EventSource`` reconnects by itself; after a reconnect the page
re-reads ``/api/v1/counts`` and applies only events whose ``seq`` is newer than the
``last_seq`` it got, so a dropped connection never double-counts a mask.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from station.events import Event, EventBus

from ..dependencies import BusDep, SettingsDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/events", tags=["events"])

#: Milliseconds a browser waits before reconnecting.
RETRY_MS = 3000


def format_event(event: Event) -> str:
    """One SSE message; the JSON is on one line, so one ``data:`` field suffices."""
    data = json.dumps(event.data, separators=(",", ":"), allow_nan=False)
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def _stream(bus: EventBus, keepalive_s: float) -> AsyncIterator[str]:
    sub = bus.subscribe()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while not sub.closed:
            event = await sub.next(timeout_s=keepalive_s)
            if event is not None:
                yield format_event(event)
            elif not sub.closed:
                yield ": keepalive\n\n"
        if sub.dropped:
            log.info("SSE client was too slow: %d events dropped", sub.dropped)
    finally:
        bus.unsubscribe(sub)


@router.get(
    "",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": (
                "event: inspection, data: {id, seq, ts_utc, verdict, defects, width_mm, "
                "height_mm, latency_ms, batch_id, has_image}; also event: batch and label."
            ),
        },
        503: {"description": "Too many open streams."},
    },
)
async def stream_events(bus: BusDep, settings: SettingsDep) -> StreamingResponse:
    """Live events as ``text/event-stream`` (keep-alive comments when idle)."""
    if bus.subscriber_count >= settings.max_event_clients:
        raise HTTPException(status_code=503, detail="too many live pages open")
    return StreamingResponse(
        _stream(bus, settings.sse_keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
