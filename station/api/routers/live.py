"""A throttled camera preview: the station's last annotated frame as MJPEG.

``multipart/x-mixed-replace`` plays in any ``<img>`` without JavaScript. Frames are
sent only when they change and at most ``live_max_fps`` a second, and only a few
viewers at once: the preview must never take CPU from the inspection loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from station.events import EventBus

from ..dependencies import BusDep, SettingsDep, StationDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/live.mjpg", tags=["live"])

BOUNDARY = "frame"


def _part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


async def _frames(
    request: Request,
    grab: Callable[[], bytes | None],
    bus: EventBus,
    period_s: float,
    max_frames: int | None,
) -> AsyncIterator[bytes]:
    state = request.app.state
    state.live_clients += 1
    sent, last = 0, None
    try:
        while not bus.closed:
            jpeg = await run_in_threadpool(grab)
            if jpeg is not None and jpeg is not last and jpeg != last:
                yield _part(jpeg)
                last, sent = jpeg, sent + 1
                if max_frames is not None and sent >= max_frames:
                    return
            await asyncio.sleep(period_s)
    finally:
        state.live_clients -= 1


@router.get(
    "",
    response_class=StreamingResponse,
    responses={
        200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}},
        503: {"description": "No station attached, no preview, or too many viewers."},
    },
)
async def live_mjpeg(
    request: Request,
    station: StationDep,
    bus: BusDep,
    settings: SettingsDep,
    frames: Annotated[
        int | None, Query(ge=1, le=1000, description="Stop after this many frames.")
    ] = None,
) -> StreamingResponse:
    """The last overlay, refreshed at most ``api.live_max_fps`` times a second."""
    grab = getattr(station, "last_overlay_jpeg", None)
    if grab is None:
        raise HTTPException(status_code=503, detail="no live preview: station offline")
    if request.app.state.live_clients >= settings.max_live_clients:
        raise HTTPException(status_code=503, detail="too many preview viewers")
    return StreamingResponse(
        _frames(request, grab, bus, 1.0 / settings.live_max_fps, frames),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )
