"""Software presence trigger on the lores stream: t0 without a photo-eye.

A band of the small grey image across the belt, near where masks enter, is watched
for fabric: masks are brighter than the belt. The belt's own level is learnt while
the band is empty, so slow lighting drift does not fire the trigger; hysteresis keeps
one mask from firing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from station.camera.base import Frame


@dataclass(frozen=True)
class PresenceParams:
    """Where to look and how much fabric counts as a mask.

    Attributes:
        band_top_pct: top of the watched band, % of the image height from the top
            (the edge where masks enter).
        band_height_pct: height of the band, % of the image height.
        contrast_levels: grey levels above the learnt belt level that count as fabric.
        on_fraction: share of the band's pixels that must be fabric to fire.
        off_fraction: share below which the band is empty again (re-arms the trigger).
        belt_learning_rate: weight of each empty frame in the belt-level average.
    """

    band_top_pct: float = 5.0
    band_height_pct: float = 8.0
    contrast_levels: float = 35.0
    on_fraction: float = 0.08
    off_fraction: float = 0.02
    belt_learning_rate: float = 0.05


class PresenceTrigger:
    """Calls ``fire(t0)`` once per mask entering the band, with the frame's timestamp."""

    def __init__(self, params: PresenceParams, fire: Callable[[float], None]) -> None:
        self.params = params
        self._fire = fire
        self._belt_level: float | None = None
        self._present = False
        self.fired = 0
        self.last_fraction = 0.0

    def _band(self, lores: np.ndarray) -> np.ndarray:
        h = lores.shape[0]
        top = round(h * self.params.band_top_pct / 100)
        height = max(1, round(h * self.params.band_height_pct / 100))
        return lores[top : top + height]

    def feed(self, frame: Frame) -> None:
        """Look at one frame's lores image (frames without one are ignored)."""
        if frame.lores is None:
            return
        band = self._band(frame.lores).astype(np.float32)
        p = self.params
        if self._belt_level is None:
            self._belt_level = float(np.median(band))
        fraction = float(np.mean(band > self._belt_level + p.contrast_levels))
        self.last_fraction = fraction
        if not self._present and fraction >= p.on_fraction:
            self._present = True
            self.fired += 1
            self._fire(frame.timestamp_s)
        elif self._present and fraction <= p.off_fraction:
            self._present = False
        if not self._present and fraction <= p.off_fraction:
            level = float(np.median(band))
            self._belt_level += p.belt_learning_rate * (level - self._belt_level)
