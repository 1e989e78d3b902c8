"""The station's HTTP API and supervisor page.

``create_app(store, station=None, config=None, *, token=None, ...)`` builds the
FastAPI app; the station runs it with uvicorn on the address it chooses.
:class:`LiveStation` is what the API uses from the running station.
"""

from .app import API_VERSION, create_app
from .dependencies import LiveStation, StationView
from .settings import ApiSettings

__all__ = ["API_VERSION", "ApiSettings", "LiveStation", "StationView", "create_app"]
