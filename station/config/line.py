"""Line section: how a mask is triggered and when its verdict must reach the ejector.

Every deadline counts from ``t0``, the moment the mask crossed the trigger line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from station.config.base import Section


class PresenceConfig(Section):
    """Software trigger on the lores stream (``line.trigger = "presence"``)."""

    band_top_pct: float = Field(
        default=5.0, ge=0, le=95, description="Top of the watched band, % of image height."
    )
    band_height_pct: float = Field(
        default=8.0, gt=0, le=50, description="Height of the watched band, % of image height."
    )
    contrast_levels: float = Field(
        default=35.0, gt=0, le=255, description="Grey levels above the belt that count as fabric."
    )
    on_fraction: float = Field(
        default=0.08, gt=0, le=1, description="Share of the band covered by fabric to fire."
    )
    off_fraction: float = Field(
        default=0.02, ge=0, le=1, description="Share below which the band is empty again."
    )


class LineConfig(Section):
    """Belt timing between trigger, camera and ejector, and fail-safe margins."""

    trigger: Literal["photo_eye", "presence"] = Field(
        default="photo_eye", description="What fixes t0: a GPIO photo-eye or lores presence."
    )
    capture_delay_ms: float = Field(
        default=500.0, ge=0, le=10_000, description="From t0 to the frame to inspect."
    )
    eject_delay_ms: float = Field(
        default=1600.0, gt=0, le=60_000, description="From t0 to the mask reaching the ejector."
    )
    frame_wait_ms: float = Field(
        default=400.0,
        gt=0,
        le=10_000,
        description="How long after t0 + capture_delay to wait for a fresh frame before "
        "the mask is rejected as a camera fault.",
    )
    decision_guard_ms: float = Field(
        default=25.0,
        ge=1,
        le=1000,
        description="A verdict must be recorded this long before the ejector deadline, "
        "otherwise the mask is rejected as late.",
    )
    encoder_counts_per_mm: float | None = Field(
        default=None,
        gt=0,
        description="With gpio.encoder_pin: encoder pulses per mm of belt. The eject delay is "
        "then belt travel (eject_delay_ms at encoder_nominal_speed_mm_s), not time.",
    )
    encoder_nominal_speed_mm_s: float = Field(
        default=150.0, gt=0, description="Belt speed at which eject_delay_ms was measured."
    )
    presence: PresenceConfig = Field(
        default_factory=PresenceConfig, description="Presence trigger settings."
    )
    max_in_flight: int = Field(
        default=16, ge=1, le=256, description="Masks tracked between camera and ejector."
    )

    @model_validator(mode="after")
    def _order(self) -> LineConfig:
        if self.presence.off_fraction >= self.presence.on_fraction:
            raise ValueError("presence.off_fraction: must be below presence.on_fraction")
        if self.capture_delay_ms + self.decision_guard_ms >= self.eject_delay_ms:
            raise ValueError(
                "eject_delay_ms: must exceed capture_delay_ms + decision_guard_ms "
                f"({self.capture_delay_ms + self.decision_guard_ms:g} ms)"
            )
        return self
