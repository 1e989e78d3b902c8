"""The simulated belt: photo-eye edges on a gpiozero MockPin, and honest camera frames."""

from __future__ import annotations

import time

import numpy as np
from gpiozero import DigitalInputDevice

from station.camera.base import Frame
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


def test_frames_after_the_first_are_rendered_only_when_developed() -> None:
    """Photo-eye trigger: a frame nobody inspects costs neither CPU nor 9 MB."""
    line = make_line(max_masks=1, seed=2, frame_rate_fps=50.0)
    cam = line.camera
    cam.open()
    try:
        first = cam.read(timeout_s=2.0)
        pending = [cam.read(timeout_s=2.0) for _ in range(3)]
    finally:
        cam.close()
    assert first is not None and first.image is not None  # builds the renderer at once
    assert all(f is not None and f.image is None and f.render is not None for f in pending)
    seqs = [f.seq for f in pending]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    frame = pending[1]
    developed = frame.developed()
    assert developed.ok and developed.image.shape == (1520, 2028, 3)
    assert developed.lores is not None
    assert (developed.timestamp_s, developed.seq) == (frame.timestamp_s, frame.seq)
    # The same pixels whenever (and however often) it is developed.
    assert np.array_equal(frame.developed().image, developed.image)


def test_a_frame_developed_late_shows_the_belt_as_it_was_when_sampled() -> None:
    """The belt drops a sprite once its mask has left the view; a frame sampled while
    the mask was in view must still show it when developed after that."""
    line = make_line(max_masks=1, seed=4, belt_speed_mm_s=20.0)
    cam = line.camera
    cam.open()
    try:
        cam.read(timeout_s=2.0)  # the first frame is rendered at once (builds the renderer)
        line.masks.append(line._new_mask(0, 0.0))
        mask = line.masks[0]
        # The mask's centre under the camera now (the belt barely moves at 20 mm/s).
        mask.enter_s = time.monotonic() - (0.0 - line.spawn_y_mm) / line.speed
        stub = cam.read(timeout_s=2.0)
    finally:
        cam.close()
    assert stub is not None and stub.image is None
    mask.sprite = None  # what the belt thread does once the mask is out of view
    shown = stub.developed()
    line.masks.clear()
    empty = line.render_at(stub.timestamp_s, np.random.default_rng(0))
    assert shown.ok
    differs = np.abs(shown.image.astype(np.int16) - empty).max(axis=2) > 40
    assert differs.mean() > 0.05  # a mask covers a good part of the view


def test_presence_trigger_gets_every_frame_rendered() -> None:
    cfg = load_config(overrides={"line": {"trigger": "presence"}, "simulator": {"seed": 2}})
    cam = SimulatedLine(cfg).camera
    cam.open()
    try:
        frames = [cam.read(timeout_s=2.0) for _ in range(2)]
    finally:
        cam.close()
    assert all(f is not None and f.image is not None and f.lores is not None for f in frames)


def test_a_frame_whose_render_fails_is_an_error_frame_not_an_exception() -> None:
    def boom() -> Frame:
        raise MemoryError("no room for the frame")

    frame = Frame(image=None, timestamp_s=1.0, seq=7, source="simulator", render=boom)
    out = frame.developed()
    assert out.image is None and not out.ok and (out.seq, out.timestamp_s) == (7, 1.0)
    assert out.error is not None and "MemoryError" in out.error


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
