"""What the station is doing right now, plus the batch open in the QC log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..dependencies import StationDep, StoreDep, read_station_status
from ..faults import assess
from ..schemas import StationStatus

router = APIRouter(prefix="/api/v1/status", tags=["status"])


@router.get("", response_model=StationStatus)
def get_status(store: StoreDep, station: StationDep) -> dict[str, Any]:
    """The runtime's status (``state: offline`` without one), passed through.

    Typical keys: ``camera`` (state, fps, source), ``model`` (name, version, hash),
    ``spec`` and ``calibration`` (version, age), ``latency_ms`` (p50, p99), ``late``,
    ``in_flight``, ``gpio``, ``archive``, ``disk``, ``temperature_c``, ``uptime_s``.
    ``faults`` lists what needs attention (``severity`` fault: red banner).
    ``batch`` always comes from the QC log, the authority on batches, so the page
    counts the same batch the log is filling.
    """
    status = read_station_status(station)
    status["faults"] = assess(status)
    batch = store.current_batch()
    status["batch"] = None if batch is None else batch.to_dict()
    return status
