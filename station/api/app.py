"""The API app factory: the station hands in its collaborators, we wire the routes.

The station owns the store, the runtime and the uvicorn server (and so the bind
address); this module only builds the ASGI app, which keeps it testable with a real
SQLite file and no camera.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from station.auth import load_or_create_token, token_path
from station.events import EventBus, attach_store
from station.labels import TrainingSetWriter, training_dir
from station.store import QCStore, StoreError

from .cache import ResponseCache
from .dependencies import StationView
from .i18n import WEB_DIR, load_locales, render_pages
from .images import ImageResolver
from .metrics import Metrics
from .routers import (
    auth,
    batches,
    counts,
    events,
    export,
    health,
    i18n,
    inspections,
    labels,
    live,
    metrics,
    spc,
    specs,
    status,
    web,
)
from .security import BodySizeLimit
from .settings import ApiSettings

log = logging.getLogger(__name__)

API_VERSION = "1.1.0"
_ROUTERS = (
    health,
    status,
    counts,
    inspections,
    export,
    labels,
    events,
    live,
    batches,
    spc,
    specs,
    auth,
    metrics,
    i18n,
    web,
)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A QC-log failure is a 503 with the reason, logged with its traceback."""
    log.error("QC log failure on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=503, content={"detail": f"QC log unavailable: {exc}"})


def _data_dir(station: Any, config: Any, data_dir: Path | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir)
    from_station = getattr(station, "data_dir", None)
    if from_station is not None:
        return Path(from_station)
    from_config = getattr(getattr(config, "storage", None), "data_dir", None)
    return Path(from_config) if from_config is not None else None


def _token(token: str | None, data_dir: Path | None, config: Any) -> str | None:
    """The explicit token, else the configured or stored one; None locks every write."""
    if token is not None:
        return token
    configured = getattr(getattr(config, "api", None), "token", None)
    if data_dir is None and configured is None:
        log.warning("no supervisor token and no data directory: every write is refused")
        return None
    found, created = load_or_create_token(data_dir or Path("."), configured)
    if created:
        log.warning(
            "supervisor token generated in %s: %s", token_path(data_dir or Path(".")), found
        )
    return found


def create_app(
    store: QCStore,
    station: StationView | None = None,
    config: Any | None = None,
    *,
    token: str | None = None,
    data_dir: Path | None = None,
    bus: EventBus | None = None,
    settings: ApiSettings | None = None,
) -> FastAPI:
    """Build the QC station API and supervisor page.

    ``store`` stays owned by the caller (the app never closes it). ``station`` is the
    running station (see :class:`~station.api.dependencies.LiveStation`), or None when
    only the log is served (state ``offline``). ``config`` is the station config; the
    API reads its ``[api]`` table (:class:`ApiSettings`) and workshop.

    ``token`` is the supervisor token for writes; by default it is the configured
    ``api.token`` or ``<data_dir>/supervisor.token`` (created if missing). The live
    event bus is ``bus``, else ``station.events``, else one of the app's own wired to
    the store. Locales and the page are loaded here, so a broken locale fails at
    startup.
    """
    locales = load_locales()
    pages = render_pages(locales)
    settings = settings or ApiSettings.from_config(config)
    data_dir = _data_dir(station, config, data_dir)
    own_bus = bus is None and getattr(station, "events", None) is None
    bus = bus or getattr(station, "events", None) or EventBus()
    detach = attach_store(bus, store) if own_bus else None
    app_metrics = Metrics(store, station, bus)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.started_mono_s = time.monotonic()
        app_metrics.start()
        log.info("QC API up (station %s)", "attached" if station is not None else "offline")
        try:
            yield
        finally:
            app_metrics.stop()
            if detach is not None:
                detach()
                bus.close()
            store.close_readers()
            log.info("QC API down")

    app = FastAPI(
        title="QC station",
        summary="Inline quality control of washable pleated masks: live counts, log, SPC.",
        version=API_VERSION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.store = store
    app.state.station = station
    app.state.config = config
    app.state.settings = settings
    app.state.locales = locales
    app.state.pages = pages
    app.state.bus = bus
    app.state.metrics = app_metrics
    app.state.token = _token(token, data_dir, config)
    app.state.images = ImageResolver(station, data_dir / "images" if data_dir else None)
    app.state.training = TrainingSetWriter(training_dir(data_dir)) if data_dir else None
    app.state.live_clients = 0

    app.add_exception_handler(StoreError, _store_unavailable)
    app.add_exception_handler(sqlite3.Error, _store_unavailable)
    app.add_middleware(
        ResponseCache, ttl_ms=settings.response_cache_ms, generation=lambda: store.writes
    )
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    for module in _ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app
