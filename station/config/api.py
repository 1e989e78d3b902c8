"""API section: the local web page and JSON API for supervisors."""

from __future__ import annotations

from pydantic import Field, field_validator

from station.config.base import Section


class ApiConfig(Section):
    """Bind address of the supervisor page; reading is open on the LAN."""

    enabled: bool = Field(default=True, description="Serve the API and the page.")
    host: str = Field(default="127.0.0.1", description="Bind address (0.0.0.0: whole LAN).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port.")
    token: str | None = Field(
        default=None,
        min_length=16,
        description="Supervisor token for writes; None: generated in "
        "<data_dir>/supervisor.token (mode 0600) at first start and printed once.",
    )
    timezone: str = Field(default="Europe/Paris", description="Workshop time zone, for shifts.")
    shift_start_hours: list[int] = Field(
        default=[6, 14, 22], description="Local hours at which shifts start, ascending."
    )
    live_max_fps: float = Field(
        default=2.0, gt=0, le=15, description="Frame-rate cap of /api/v1/live.mjpg."
    )
    max_live_clients: int = Field(
        default=4, ge=1, le=32, description="Concurrent live.mjpg viewers."
    )
    max_event_clients: int = Field(default=32, ge=1, le=256, description="Concurrent SSE streams.")
    max_body_bytes: int = Field(
        default=65536, ge=1024, le=1048576, description="Larger request bodies get 413."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API; none by default.",
    )
    thread_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to the API's threads (Linux schedules threads apart; "
        "the threads the server starts inherit it): pages never take the CPU from a mask "
        "on its way to the ejector. 0: same priority as the inspection.",
    )
    response_cache_ms: float = Field(
        default=500.0,
        ge=0,
        le=10000,
        description="Identical polled GETs (status, counts, inspections, SPC, specs, "
        "batches, labels) within this many ms share one answer; any write starts afresh. "
        "0: off.",
    )

    @field_validator("shift_start_hours")
    @classmethod
    def _hours(cls, value: list[int]) -> list[int]:
        if not value or value != sorted(set(value)) or not all(0 <= h <= 23 for h in value):
            raise ValueError("must be distinct hours 0-23, ascending")
        return value
