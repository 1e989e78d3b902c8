"""Shared FastAPI dependencies: the app's collaborators and query parsing.

Collaborators live on ``app.state`` (set by :func:`station.api.create_app`), so
routers never import globals and tests can build as many apps as they like.

:class:`StationView` is the whole contract between the API and the running station.
Only ``status()`` is required: every other member is looked up when used, and an
endpoint whose member is missing degrades (``live.mjpg`` answers 503, batches are
written to the QC log directly, images are resolved from the log's stored paths).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Protocol

from fastapi import Depends, HTTPException, Query, Request

from station.events import EventBus
from station.labels import TrainingSetWriter
from station.store import Batch, QCStore, to_utc_iso

from .i18n import Locales
from .images import ImageResolver
from .settings import ApiSettings

if TYPE_CHECKING:
    from vision.spec import PrototypeSpec

log = logging.getLogger(__name__)

ImageKind = Literal["annotated", "raw"]


class StationView(Protocol):
    """What the API needs from the running station; the station runtime implements it.

    ``status()`` returns a JSON-ready dict with at least ``state`` (``"running"``,
    ``"warning"``, ``"error"``…) and whatever helps a supervisor: camera, model, spec,
    calibration, latency, uptime. It is called from API worker threads, so it must be
    thread-safe and quick (return a snapshot, never wait on the camera).
    """

    def status(self) -> dict[str, Any]: ...


class LiveStation(StationView, Protocol):
    """The full station, as :func:`create_app` uses it when each member exists.

    Attributes:
        events: the bus inspections are published on (see :mod:`station.events`);
            the runtime wires it to the store with :func:`station.events.attach_store`.
        data_dir: where the QC log, images, token and training data live.
        spec: the prototype spec in force (tolerances for SPC and the detail view).
    """

    events: EventBus
    data_dir: Path
    spec: PrototypeSpec

    def last_overlay_jpeg(self) -> bytes | None:
        """The latest annotated frame as JPEG, or None before the first one.

        Called up to ``live_max_fps`` times a second per viewer: return a cached
        ``bytes`` object (the same object while the frame is unchanged).
        """
        ...

    def image_path(self, inspection_id: str, kind: ImageKind) -> Path | None:
        """The archived JPEG of an inspection, or None (never archived or deleted)."""
        ...

    def start_batch(self, workshop: str, order_number: str | None, spec_name: str) -> Batch:
        """Close the open batch if any, open a new one, switch to its spec; no restart.

        Raises ValueError for an unknown spec name.
        """
        ...

    def close_batch(self) -> Batch:
        """Close the open batch (``station.store.BatchError`` if there is none)."""
        ...


def get_store(request: Request) -> QCStore:
    return request.app.state.store


def get_station(request: Request) -> StationView | None:
    return request.app.state.station


def get_config(request: Request) -> Any:
    return request.app.state.config


def get_locales(request: Request) -> Locales:
    return request.app.state.locales


def get_bus(request: Request) -> EventBus:
    return request.app.state.bus


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_images(request: Request) -> ImageResolver:
    return request.app.state.images


def get_training(request: Request) -> TrainingSetWriter | None:
    return request.app.state.training


StoreDep = Annotated[QCStore, Depends(get_store)]
StationDep = Annotated[StationView | None, Depends(get_station)]
ConfigDep = Annotated[Any, Depends(get_config)]
LocalesDep = Annotated[Locales, Depends(get_locales)]
BusDep = Annotated[EventBus, Depends(get_bus)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
ImagesDep = Annotated[ImageResolver, Depends(get_images)]
TrainingDep = Annotated[TrainingSetWriter | None, Depends(get_training)]


def read_station_status(station: StationView | None) -> dict[str, Any]:
    """The station's status, ``{"state": "offline"}`` without one.

    A failing ``status()`` is logged and reported as ``state: "error"`` rather than a
    500: the supervisor page must still say *something* about the station.
    """
    if station is None:
        return {"state": "offline"}
    try:
        status = dict(station.status())
    except Exception as exc:
        log.exception("station status() failed")
        return {"state": "error", "message": f"station status unavailable: {exc}"}
    status.setdefault("state", "unknown")
    return status


# In a query string "+" means space, so an unencoded "+01:00" offset arrives as " 01:00".
_LOST_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


def parse_query_timestamp(value: str | None, name: str) -> str | None:
    """A query timestamp in the log's UTC format; 400 with the reason if unusable."""
    if value is None:
        return None
    try:
        return to_utc_iso(_LOST_PLUS.sub(r"\1+\2", value.strip()), name)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


class TimeWindow(NamedTuple):
    """A half-open time window ``[since, until)`` in the log's UTC format."""

    since: str | None
    until: str | None


_TS_HELP = "ISO-8601 with a timezone, e.g. 2025-03-01T08:00:00Z or 2025-03-01T09:00:00+01:00"


def time_window(
    since: Annotated[
        str | None, Query(max_length=64, description=f"Inclusive start; {_TS_HELP}.")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description=f"Exclusive end; {_TS_HELP}.")
    ] = None,
) -> TimeWindow:
    """Parse ``since``/``until``; 400 if either is malformed or they are reversed."""
    window = TimeWindow(
        parse_query_timestamp(since, "since"), parse_query_timestamp(until, "until")
    )
    if window.since and window.until and window.since > window.until:
        raise HTTPException(
            status_code=400, detail=f"since ({window.since}) is after until ({window.until})"
        )
    return window


TimeWindowDep = Annotated[TimeWindow, Depends(time_window)]
BatchQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=64, description="Only this batch (lot) id."),
]
