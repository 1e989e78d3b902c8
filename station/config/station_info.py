"""Identity section: which station and workshop the records come from."""

from __future__ import annotations

from pydantic import Field

from station.config.base import Section


class StationInfo(Section):
    """Names carried by every QC record so central systems can tell stations apart."""

    station_id: str = Field(
        default="station-1",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Unique per workshop; used in MQTT topics and exports.",
    )
    workshop: str = Field(
        default="atelier-demo",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Workshop identifier.",
    )
