"""Counters for the supervisor page and the end-of-shift report, plain or as series."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..dependencies import BatchQuery, SettingsDep, StoreDep, TimeWindowDep
from ..schemas import Counts
from ..series import batch_series, defect_series, hour_series, shift_series

router = APIRouter(prefix="/api/v1/counts", tags=["counts"])

GroupBy = Literal["hour", "shift", "batch", "defect"]


@router.get(
    "",
    response_model=Counts,
    response_model_exclude_none=True,
    responses={400: {"description": "Bad timestamp."}},
)
def get_counts(
    store: StoreDep,
    settings: SettingsDep,
    window: TimeWindowDep,
    batch: BatchQuery = None,
    group_by: Annotated[
        GroupBy | None,
        Query(
            description=(
                "Also return a series: per UTC hour, per shift (local time, "
                "06-14 / 14-22 / 22-06 by default), per batch, or per defect (Pareto)."
            )
        ),
    ] = None,
) -> dict[str, Any]:
    """Inspections by verdict and by defect in ``[since, until)``, optionally one batch.

    ``last_seq`` is the log position the figures include, so a live page can add the
    streamed events after it (``GET /api/v1/events``) without counting one twice.
    """
    filters = {"since": window.since, "until": window.until, "batch": batch}
    counts = store.counts_snapshot(**filters)
    if group_by is None:
        return counts
    if group_by == "hour":
        series = hour_series(store.hourly_counts(**filters))
    elif group_by == "shift":
        series = shift_series(
            store.hourly_counts(**filters), settings.tz, settings.shift_start_hours
        )
    elif group_by == "batch":
        series = batch_series(store, store.batch_counts(**filters))
    else:
        series = defect_series(counts["by_defect"])
    return {**counts, "group_by": group_by, "series": series}
