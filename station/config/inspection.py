"""Inspection section: the prototype spec and calibration the vision core uses."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from station.config.base import Section
from station.paths import DEFAULT_SPEC_PATH


class InspectionConfig(Section):
    """Which prototype and calibration to measure against.

    With the simulator the calibration is the simulated camera's own; a real line
    must name the file written by ``qc-station calibrate``.
    """

    spec_path: Path = Field(default=DEFAULT_SPEC_PATH, description="Prototype spec (TOML).")
    calibration_path: Path | None = Field(
        default=None, description="Calibration JSON from `qc-station calibrate`."
    )
    annotate: bool = Field(default=True, description="Draw the supervisor overlay.")

    @field_validator("spec_path", "calibration_path")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        try:
            found = value is None or value.is_file()
        except OSError as err:  # e.g. a name too long for the file system
            raise ValueError(f"unusable path: {err.strerror}") from None
        if not found:
            raise ValueError(f"file not found: {value}")
        return value
