"""API section: the local web page and JSON API for supervisors."""

from __future__ import annotations

from pydantic import Field

from station.config.base import Section


class ApiConfig(Section):
    """Bind address of the supervisor page; reading is open on the LAN."""

    enabled: bool = Field(default=True, description="Serve the API and the page.")
    host: str = Field(default="127.0.0.1", description="Bind address (0.0.0.0: whole LAN).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port.")
