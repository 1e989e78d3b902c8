"""The station's HTTP API and supervisor page.

``create_app(store, station=None, config=None)`` builds the FastAPI app; the station
runs it with uvicorn on the address it chooses.
"""

from .app import API_VERSION, create_app
from .dependencies import StationView

__all__ = ["API_VERSION", "StationView", "create_app"]
