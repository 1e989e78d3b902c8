"""The simulated belt: photo-eye edges on a gpiozero MockPin, and honest camera frames."""

from __future__ import annotations

import time

import numpy as np
from gpiozero import DigitalInputDevice

from station.config import load_config
from station.simulator import SimulatedLine, line_timing_ms


def make_line(**sim: object) -> SimulatedLine:
    cfg = load_config(overrides={"simulator": {"belt_speed_mm_s": 600.0, **sim}})
    return SimulatedLine(cfg)


def test_photo_eye_pulses_once_per_mask_at_belt_spacing() -> None:
    line = make_line(max_masks=3, mask_spacing_mm=240.0, seed=1)
    eye = DigitalInputDevice(17, pin_factory=line.pin_factory)  # the station's trigger input
    edges: list[float] = []
    eye.when_activated = lambda: edges.append(time.monotonic())
    line.start()
    try:
        deadline = time.monotonic() + 20
        while len(edges) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        line.stop()
        eye.close()
    assert len(edges) == 3
    period = 240.0 / 600.0
    gaps = np.diff(edges)
    # Never closer than the belt spacing allows (rotation changes the leading edge a
    # little); a renderer behind schedule may leave longer gaps, never shorter ones.
    assert np.all(gaps > period - 0.08), gaps


def test_camera_frames_are_stamped_when_sampled_and_show_the_mask() -> None:
    line = make_line(max_masks=1, seed=2)
    cam = line.camera
    cam.open()
    before = time.monotonic()
    frame = cam.read(timeout_s=2.0)
    cam.close()
    assert frame is not None and frame.image is not None
    assert before <= frame.timestamp_s <= time.monotonic()
    assert frame.image.shape == (1520, 2028, 3) and frame.image.dtype == np.uint8
    assert frame.lores is not None and frame.lores.ndim == 2


def test_same_seed_same_masks() -> None:
    a, b = make_line(seed=5), make_line(seed=5)
    ma, mb = a._new_mask(0, 0.0), b._new_mask(0, 0.0)
    assert ma.params == mb.params and ma.defect == mb.defect
    assert np.array_equal(ma.sprite.colour, mb.sprite.colour)


def test_line_timing_puts_the_mask_under_the_camera() -> None:
    cfg = load_config()
    t = line_timing_ms(cfg)
    assert 0 < t["capture_delay_ms"] < t["eject_delay_ms"]
    sim = cfg.simulator
    # at the capture target a level mask's centre is within a few cm of the image centre
    half = 47.5
    centre_mm = -sim.trigger_distance_mm - half + sim.belt_speed_mm_s * t["capture_delay_ms"] / 1000
    assert -60 < centre_mm < 10
