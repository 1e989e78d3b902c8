"""Simulator section: the rendered belt that drives the demo and the tests."""

from __future__ import annotations

from pydantic import Field

from station.config.base import Section


class SimulatorConfig(Section):
    """A virtual conveyor: masks spaced along a belt, a photo-eye, and a camera."""

    seed: int = Field(default=0, description="Seed: the same seed renders the same masks.")
    belt_speed_mm_s: float = Field(default=150.0, gt=0, le=2000, description="Belt speed.")
    mask_spacing_mm: float = Field(
        default=300.0, gt=100, le=5000, description="Distance between mask centres on the belt."
    )
    defect_rate: float = Field(
        default=0.3, ge=0, le=1, description="Share of masks rendered with a defect."
    )
    empty_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of trigger events with no mask (a glove)."
    )
    trigger_distance_mm: float = Field(
        default=160.0,
        gt=0,
        description="Photo-eye line upstream of the image centre, along the belt.",
    )
    eject_distance_mm: float = Field(
        default=250.0, gt=0, description="Ejector downstream of the image centre, along the belt."
    )
    frame_rate_fps: float = Field(
        default=5.0, gt=0, le=60, description="Simulated camera rate (rendering costs CPU)."
    )
    max_angle_deg: float = Field(default=8.0, ge=0, le=45, description="Mask rotation on belt.")
    max_masks: int | None = Field(
        default=None, ge=1, description="Stop feeding after this many masks (None: forever)."
    )
    sprite_pool: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Render only this many distinct masks and feed them in turn (0: every "
        "mask is new). For throughput runs, where rendering would otherwise be the limit.",
    )
