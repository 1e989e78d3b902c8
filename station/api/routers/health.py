"""Liveness for the station's watchdog and the supervisor's "is it up?"."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import APIRouter, Response

from station.store import StoreError

from ..dependencies import StationDep, StoreDep, read_station_status
from ..schemas import Health

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "The QC log cannot be read."}},
)
def healthz(store: StoreDep, station: StationDep, response: Response) -> dict[str, Any]:
    """``ok`` is true when the QC log answers; ``state`` is the station's state."""
    state = read_station_status(station)["state"]
    try:
        store.ping()
    except (StoreError, sqlite3.Error) as exc:
        log.error("health check: QC log unreadable: %s", exc)
        response.status_code = 503
        return {"ok": False, "state": state, "detail": f"QC log unreadable: {exc}"}
    return {"ok": True, "state": state}
