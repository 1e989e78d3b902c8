"""Presence trigger: fires once per mask entering the band, ignores lighting drift."""

from __future__ import annotations

import numpy as np

from station.camera.base import Frame
from station.trigger import PresenceParams, PresenceTrigger


def lores(mask_rows: tuple[int, int] | None, belt: float = 40.0) -> np.ndarray:
    img = np.full((380, 507), belt, np.uint8)
    if mask_rows is not None:
        img[mask_rows[0] : mask_rows[1], 100:400] = 200
    return img


def test_one_fire_per_mask_with_its_frame_timestamp() -> None:
    fired: list[float] = []
    trig = PresenceTrigger(PresenceParams(), fired.append)
    # a mask slides down through the band (rows 19..49) over several frames
    seq = [None, None, (0, 10), (0, 30), (5, 60), (20, 90), (60, 150), (120, 220), None, None]
    for i, rows in enumerate(seq):
        trig.feed(Frame(None, 10.0 + i * 0.1, i, lores=lores(rows)))
    assert fired == [10.0 + 3 * 0.1]
    trig.feed(Frame(None, 12.0, 20, lores=lores((0, 40))))
    assert len(fired) == 2


def test_slow_lighting_drift_does_not_fire() -> None:
    fired: list[float] = []
    trig = PresenceTrigger(PresenceParams(), fired.append)
    for i in range(200):
        trig.feed(Frame(None, float(i), i, lores=lores(None, belt=40.0 + i * 0.3)))
    assert fired == []


def test_frames_without_lores_are_ignored() -> None:
    fired: list[float] = []
    PresenceTrigger(PresenceParams(), fired.append).feed(Frame(None, 0.0, 0))
    assert fired == []
