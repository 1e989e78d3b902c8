"""Production batches (lots): list them, start one, close one.

With a station attached the station starts and closes batches itself, because a
batch may change the prototype spec the line is measured against (no restart). In
log-only mode the QC log is written directly.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool

from station.recipes import available_specs
from station.store import Batch, BatchError, QCStore

from ..dependencies import BusDep, ConfigDep, StationDep, StoreDep
from ..schemas import BatchList, BatchOut, BatchStart
from ..security import SupervisorDep
from ..spc import find_spec

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/batches", tags=["batches"])

_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or wrong supervisor token."},
    409: {"description": "Conflicts with the open batch."},
    413: {"description": "Body too large."},
}


@router.get("", response_model=BatchList)
def list_batches(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Batches, most recent first, and the open one."""
    current = store.current_batch()
    return {
        "items": [b.to_dict() for b in store.list_batches(limit)],
        "current": None if current is None else current.to_dict(),
    }


def _default_workshop(config: Any) -> str:
    """The configured workshop (``[station] workshop``), which every record carries."""
    return str(getattr(getattr(config, "station", None), "workshop", None) or "atelier")


def _start(store: QCStore, station: Any, body: BatchStart, workshop: str, spec_name: str) -> Batch:
    current = store.current_batch()
    if current is not None and not body.close_previous:
        raise BatchError(f"batch {current.id!r} is still open: close it first")
    starter = getattr(station, "start_batch", None)
    if starter is not None:
        return starter(workshop, body.order_number, spec_name)
    return store.start_batch(
        workshop, order_number=body.order_number, spec_name=spec_name, close_previous=True
    )


@router.post(
    "",
    status_code=201,
    response_model=BatchOut,
    responses=_WRITE_RESPONSES,
    dependencies=[SupervisorDep],
)
async def start_batch(
    body: BatchStart,
    store: StoreDep,
    station: StationDep,
    config: ConfigDep,
    bus: BusDep,
) -> dict[str, Any]:
    """Open a batch for a production order (supervisor token required).

    409 while another batch is open, unless ``close_previous`` is true.
    """
    known = available_specs()
    spec_name = body.spec_name or find_spec(None, station, None).spec.name
    if spec_name not in known:
        raise HTTPException(
            status_code=422, detail=f"unknown spec {spec_name!r}: see /api/v1/specs"
        )
    workshop = body.workshop or _default_workshop(config)
    try:
        batch = await run_in_threadpool(_start, store, station, body, workshop, spec_name)
    except BatchError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    log.info("batch %s started (order %s, spec %s)", batch.id, batch.order_number, spec_name)
    bus.publish("batch", {"action": "started", **batch.to_dict()})
    return batch.to_dict()


def _close(store: QCStore, station: Any, batch_id: str) -> Batch:
    batch = store.get_batch(batch_id)
    if batch is None:
        raise LookupError(f"no batch {batch_id!r}")
    if not batch.is_open:
        raise BatchError(f"batch {batch_id!r} was already closed {batch.closed_utc}")
    closer = getattr(station, "close_batch", None)
    return closer() if closer is not None else store.close_batch(batch_id)


@router.post(
    "/{batch_id}/close",
    response_model=BatchOut,
    responses={**_WRITE_RESPONSES, 404: {"description": "Unknown batch."}},
    dependencies=[SupervisorDep],
)
async def close_batch(
    store: StoreDep,
    station: StationDep,
    bus: BusDep,
    batch_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> dict[str, Any]:
    """Close the open batch (supervisor token required); 409 if it is already closed."""
    try:
        batch = await run_in_threadpool(_close, store, station, batch_id)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except BatchError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    log.info("batch %s closed", batch.id)
    bus.publish("batch", {"action": "closed", **batch.to_dict()})
    return batch.to_dict()
