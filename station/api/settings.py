"""The API's own settings, read from the station config's ``[api]`` table.

Every field has a default here, so the API also runs with an older config (or none,
in tests) and a new setting never needs code in two places to be optional.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

#: Three 8-hour shifts in local time: 06–14, 14–22, 22–06.
DEFAULT_SHIFT_START_HOURS: tuple[int, ...] = (6, 14, 22)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Limits and local conventions of the API.

    Attributes:
        max_body_bytes: larger request bodies are refused with 413 before any parsing.
        timezone: the workshop's time zone, for shifts.
        shift_start_hours: local hours at which shifts start, ascending.
        live_max_fps: frame rate cap of ``live.mjpg`` per client (the Pi's CPU is shared).
        max_live_clients: concurrent ``live.mjpg`` streams; more get 503.
        max_event_clients: concurrent SSE streams; more get 503.
        sse_keepalive_s: comment lines keep idle SSE connections (and proxies) open.
        cors_origins: origins allowed to call the API from a browser; none by default.
        response_cache_ms: how long identical polled GETs share one answer
            (:mod:`station.api.cache`); 0 turns the sharing off.
    """

    max_body_bytes: int = 64 * 1024
    timezone: str = "Europe/Paris"
    shift_start_hours: tuple[int, ...] = DEFAULT_SHIFT_START_HOURS
    live_max_fps: float = 2.0
    max_live_clients: int = 4
    max_event_clients: int = 32
    sse_keepalive_s: float = 15.0
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    response_cache_ms: float = 500.0

    def __post_init__(self) -> None:
        hours = self.shift_start_hours
        if not hours or list(hours) != sorted(set(hours)) or not all(0 <= h < 24 for h in hours):
            raise ValueError(f"shift_start_hours must be ascending hours 0-23, not {hours!r}")
        if self.max_body_bytes < 1024 or self.live_max_fps <= 0:
            raise ValueError("max_body_bytes must be >= 1024 and live_max_fps > 0")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_config(cls, config: Any) -> ApiSettings:
        """Settings from ``config.api`` (missing fields keep their defaults)."""
        api = getattr(config, "api", None)
        settings = cls()
        if api is None:
            return settings
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if hasattr(api, name):
                value = getattr(api, name)
                values[name] = tuple(value) if isinstance(value, list) else value
        settings = replace(settings, **values)
        try:
            settings.tz  # noqa: B018 - fail at startup, not on the first shift query
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"api.timezone: unknown time zone {settings.timezone!r}") from exc
        return settings
