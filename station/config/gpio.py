"""GPIO section: the pins that talk to the photo-eye, ejector and stack light.

Pins are BCM numbers, as gpiozero uses. ``pin_factory = "mock"`` runs everything on
gpiozero's MockFactory (demo, tests); ``"auto"`` lets gpiozero pick lgpio on a Pi.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field, model_validator

from station.config.base import Section

BcmPin = int


class GpioConfig(Section):
    """Pin assignment and pulse shapes. See the wiring table in the README."""

    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "native"] = Field(
        default="mock", description="gpiozero pin factory; 'auto' follows GPIOZERO_PIN_FACTORY."
    )
    trigger_pin: BcmPin = Field(default=17, ge=0, le=27, description="Photo-eye input.")
    trigger_active_high: bool = Field(
        default=True, description="True: the photo-eye drives the pin high when a mask is there."
    )
    trigger_bounce_ms: float = Field(default=5.0, ge=0, le=500, description="Debounce time.")
    accept_pin: BcmPin = Field(default=22, ge=0, le=27, description="Accept pulse output.")
    reject_pin: BcmPin = Field(default=23, ge=0, le=27, description="Ejector (reject) output.")
    pulse_ms: float = Field(default=60.0, gt=0, le=2000, description="Accept/reject pulse width.")
    light_green_pin: BcmPin = Field(default=5, ge=0, le=27, description="Stack light: running.")
    light_amber_pin: BcmPin = Field(default=6, ge=0, le=27, description="Stack light: warning.")
    light_red_pin: BcmPin = Field(default=13, ge=0, le=27, description="Stack light: fault.")
    fault_pin: BcmPin = Field(default=19, ge=0, le=27, description="Fault output to the line PLC.")
    reject_confirm_pin: BcmPin | None = Field(
        default=None, ge=0, le=27, description="Optional input: ejector fired (e.g. reed switch)."
    )
    reject_confirm_window_ms: float = Field(
        default=250.0,
        gt=0,
        le=5000,
        description="With reject_confirm_pin: the ejector must confirm within this time "
        "after a reject pulse, otherwise the station faults (red light).",
    )
    encoder_pin: BcmPin | None = Field(
        default=None, ge=0, le=27, description="Optional belt encoder input (counts travel)."
    )

    @model_validator(mode="after")
    def _pins_unique(self) -> GpioConfig:
        used = {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name.endswith("_pin") and getattr(self, name) is not None
        }
        twice = [pin for pin, n in Counter(used.values()).items() if n > 1]
        if twice:
            pin = twice[0]
            names = ", ".join(n for n, p in used.items() if p == pin)
            raise ValueError(f"pin {pin} is used twice ({names})")
        return self
