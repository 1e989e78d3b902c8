"""Camera section: which frame source feeds the station and how it is driven."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from station.config.base import Section


class CameraConfig(Section):
    """Frame source. ``simulator`` renders a belt; the others read real images.

    Exposure, gain and white balance are fixed (not automatic) on the Pi camera,
    because auto exposure drifts from one mask to the next and moves the edges the
    measurement relies on.
    """

    source: Literal["simulator", "picamera2", "opencv", "folder"] = Field(
        default="simulator", description="Frame source kind."
    )
    width_px: int = Field(default=2028, ge=64, le=8192, description="Main stream width.")
    height_px: int = Field(default=1520, ge=48, le=8192, description="Main stream height.")
    lores_width_px: int = Field(default=507, ge=32, le=2048, description="Presence stream width.")
    lores_height_px: int = Field(default=380, ge=24, le=2048, description="Presence stream height.")
    frame_rate_fps: float = Field(default=10.0, gt=0, le=120, description="Capture frame rate.")
    exposure_us: int = Field(default=4000, ge=10, le=1_000_000, description="Fixed exposure time.")
    analogue_gain: float = Field(default=1.5, ge=1.0, le=16.0, description="Fixed sensor gain.")
    colour_gains: tuple[float, float] = Field(
        default=(1.8, 1.6), description="Fixed white balance (red gain, blue gain)."
    )
    device: str = Field(
        default="0",
        description="opencv source: device index, /dev/videoN, a video file or an rtsp:// URL.",
    )
    folder: Path | None = Field(default=None, description="folder source: images to replay.")
    loop: bool = Field(default=True, description="folder/opencv file: start again at the end.")
    stall_timeout_s: float = Field(
        default=2.0, gt=0, description="No frame for this long: the camera is stalled."
    )
    backoff_initial_s: float = Field(default=0.5, gt=0, description="First reopen delay.")
    backoff_max_s: float = Field(default=10.0, gt=0, description="Longest reopen delay.")

    @model_validator(mode="after")
    def _source_needs(self) -> CameraConfig:
        if self.source == "folder":
            if self.folder is None:
                raise ValueError("folder: required when source = 'folder'")
            try:
                is_dir = self.folder.is_dir()
            except OSError as err:  # e.g. a name too long for the file system
                raise ValueError(f"folder: unusable path: {err.strerror}") from None
            if not is_dir:
                raise ValueError(f"folder: {self.folder} is not a directory")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s: must be at least backoff_initial_s")
        return self
