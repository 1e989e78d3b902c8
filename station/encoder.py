"""Belt travel from an encoder, as a clock the actuator can time the ejector by.

With a constant-speed belt the ejector deadline is ``t0 + eject_delay_ms``. When the
belt's speed varies (or it stops), an encoder on the drive roller measures travel
instead: this clock advances by one nominal second per ``nominal_speed_mm_s`` mm of
belt, so ``eject_delay_ms`` keeps meaning "the time the mask takes at nominal speed"
and a stopped belt holds every deadline.
"""

from __future__ import annotations

import threading
from typing import Any

from gpiozero import DigitalInputDevice


class BeltClock:
    """Counts encoder pulses on a gpiozero input; calling it returns belt seconds.

    Args:
        pin: BCM pin of the encoder's pulse output.
        counts_per_mm: encoder pulses per millimetre of belt travel.
        nominal_speed_mm_s: the belt speed at which the line delays were configured.
        pin_factory: gpiozero pin factory (MockFactory in tests).
    """

    def __init__(
        self,
        pin: int,
        counts_per_mm: float,
        nominal_speed_mm_s: float,
        pin_factory: Any | None = None,
    ) -> None:
        if counts_per_mm <= 0 or nominal_speed_mm_s <= 0:
            raise ValueError("counts_per_mm and nominal_speed_mm_s must be positive")
        self._s_per_count = 1.0 / (counts_per_mm * nominal_speed_mm_s)
        self._lock = threading.Lock()
        self.counts = 0
        self.device = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
        self.device.when_activated = self._tick

    def _tick(self) -> None:
        with self._lock:
            self.counts += 1

    def __call__(self) -> float:
        with self._lock:
            return self.counts * self._s_per_count

    def close(self) -> None:
        self.device.close()
