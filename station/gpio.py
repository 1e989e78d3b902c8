"""The station's pins: photo-eye in, accept/reject pulses and stack light out.

Every device takes a gpiozero pin factory, as gpiozero's own devices do, so the same
code drives lgpio on a Pi and ``MockFactory`` in the demo and the tests (where
``MockPin.states`` keeps a timestamped history the tests assert on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from gpiozero import Device, DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from station.config.gpio import GpioConfig

log = logging.getLogger(__name__)


class Light(Enum):
    """Stack-light colours. Green: running; amber: a warning; red: a fault."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    OFF = "off"


def make_pin_factory(kind: str) -> Any | None:
    """The gpiozero pin factory named in the config.

    ``"auto"`` returns None so gpiozero picks its own default (``GPIOZERO_PIN_FACTORY``,
    then lgpio on a Pi, warning at each fallback).
    """
    if kind == "mock":
        return MockFactory()
    if kind == "auto":
        return None
    if kind == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if kind == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if kind == "native":
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    raise ValueError(f"gpio.pin_factory: unknown factory {kind!r}")


class StationIO:
    """All the station's GPIO devices, built from one :class:`GpioConfig`.

    Args:
        config: pin numbers (BCM), polarity, debounce (ms) and pulse width (ms).
        pin_factory: a gpiozero pin factory; None uses gpiozero's default.
        on_trigger: called with the monotonic time (s) of each photo-eye activation.
            It runs on gpiozero's callback thread, so it must only hand the event on.
    """

    def __init__(
        self,
        config: GpioConfig,
        pin_factory: Any | None = None,
        on_trigger: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.pin_factory = pin_factory if pin_factory is not None else Device.pin_factory
        pf = pin_factory
        self._lock = threading.Lock()
        self.trigger = DigitalInputDevice(
            config.trigger_pin,
            pull_up=not config.trigger_active_high,
            bounce_time=(config.trigger_bounce_ms / 1000.0) or None,
            pin_factory=pf,
        )
        self.accept = DigitalOutputDevice(config.accept_pin, pin_factory=pf)
        self.reject = DigitalOutputDevice(config.reject_pin, pin_factory=pf)
        self.green = DigitalOutputDevice(config.light_green_pin, pin_factory=pf)
        self.amber = DigitalOutputDevice(config.light_amber_pin, pin_factory=pf)
        self.red = DigitalOutputDevice(config.light_red_pin, pin_factory=pf)
        self.fault = DigitalOutputDevice(config.fault_pin, pin_factory=pf)
        self.reject_confirm = (
            DigitalInputDevice(config.reject_confirm_pin, pull_up=True, pin_factory=pf)
            if config.reject_confirm_pin is not None
            else None
        )
        self._on_trigger = on_trigger
        self.trigger.when_activated = self._trigger_edge
        self.light = Light.OFF

    def _trigger_edge(self) -> None:
        t0 = time.monotonic()
        if self._on_trigger is not None:
            self._on_trigger(t0)

    def set_on_trigger(self, callback: Callable[[float], None] | None) -> None:
        self._on_trigger = callback

    def set_light(self, light: Light, fault: bool = False) -> None:
        """Show one colour on the stack light and drive the fault output."""
        with self._lock:
            self.green.value = light is Light.GREEN
            self.amber.value = light is Light.AMBER
            self.red.value = light is Light.RED
            self.fault.value = fault
            self.light = light

    def pulse_start(self, reject: bool) -> None:
        """Raise the accept or reject output (the actuator lowers it after pulse_ms)."""
        (self.reject if reject else self.accept).on()

    def pulse_end(self, reject: bool) -> None:
        (self.reject if reject else self.accept).off()

    def close(self) -> None:
        for dev in (
            self.trigger,
            self.accept,
            self.reject,
            self.green,
            self.amber,
            self.red,
            self.fault,
            self.reject_confirm,
        ):
            if dev is not None:
                dev.close()

    def describe(self) -> dict[str, Any]:
        """Pin states for health and the page."""
        return {
            "pin_factory": type(self.pin_factory).__name__,
            "light": self.light.value,
            "fault": bool(self.fault.value),
            "trigger_pin": self.config.trigger_pin,
            "accept_pin": self.config.accept_pin,
            "reject_pin": self.config.reject_pin,
        }
