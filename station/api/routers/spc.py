"""Control chart and capability (Cp, Cpk) of body width and height, per batch."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from ..dependencies import BatchQuery, ConfigDep, StationDep, StoreDep, TimeWindowDep
from ..schemas import Spc
from ..spc import find_spec, spc_report, spec_name_of

router = APIRouter(prefix="/api/v1/spc", tags=["spc"])


@router.get("", response_model=Spc, responses={404: {"description": "Unknown batch."}})
def get_spc(
    store: StoreDep,
    station: StationDep,
    config: ConfigDep,
    window: TimeWindowDep,
    batch: BatchQuery = None,
    points: Annotated[
        int, Query(ge=1, le=5000, description="Latest masks returned for the chart.")
    ] = 500,
) -> dict[str, Any]:
    """Width and height of ``batch`` (default: the open batch; with neither a batch nor
    an open one, the time window) against the tolerances of the batch's spec.

    Mean, σ (sample, n − 1), Cp, Cpk and the control limits use every mask of the
    scope; ``points`` only bounds what the chart receives.
    """
    scope_batch = batch
    if scope_batch is None and window.since is None and window.until is None:
        current = store.current_batch()
        scope_batch = current.id if current is not None else None
    spec_name = None
    if scope_batch is not None:
        found = store.get_batch(scope_batch)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no batch {scope_batch!r}")
        spec_name = found.spec_name
    rows = store.measurement_series(since=window.since, until=window.until, batch=scope_batch)
    if spec_name is None and rows:
        logged = Counter(spec_name_of(r["spec_version"]) for r in rows)
        spec_name = logged.most_common(1)[0][0]
    spec = find_spec(spec_name, station, config)
    return {
        "batch": scope_batch,
        "since": window.since,
        "until": window.until,
        "spec": spec.label,
        **spc_report(rows, spec, points),
    }
