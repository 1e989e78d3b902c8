"""Picamera2Source and the on-Pi check against a fake Picamera2.

The Picamera2Source tests use a fake that implements picamera2's documented surface
(create_video_configuration, configure, start, stop, close, capture_request(wait=False)
-> job.get_result(timeout) -> request.make_array/get_metadata/release). What they do
NOT cover without a Pi:

* real libcamera buffers (DMA/CMA memory; what a held or leaked request does to the
  camera: with real buffers a leak starves the pipeline after buffer_count frames);
* the true clock domain of SensorTimestamp (assumed CLOCK_MONOTONIC nanoseconds;
  picamera2's own ``flush`` logic compares it with ``time.monotonic_ns()``) and
  whether it marks the start of exposure or of read-out;
* the control latency of fixed exposure: how many frames pass after ``start()``
  before ExposureTime / AnalogueGain / ColourGains / FrameDurationLimits apply, and
  how the sensor quantises them (exposure to whole lines, gain to register steps);
* lores YUV420 stride/padding and size rounding on real sensors (the fake pads
  rows by 64 bytes; the real ISP's alignment differs per sensor and Pi model);
* dropped frames and timeouts under CPU load, and picamera2's Job API on the
  installed Raspberry Pi OS version.

station/camera/PI_CHECK.md and ``python -m station.camera.pi_check`` check those on
the hardware.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from helpers.fake_clock import FakeClock
from helpers.fake_picamera2 import FakePicamera2

from station.camera import (
    PICAMERA2_MISSING,
    Frame,
    Picamera2Source,
    ReopeningSource,
)
from station.camera.pi_check import run_check

# -- Picamera2Source against a fake Picamera2 -----------------------------------------
#
# What these tests cannot show is listed in the module docstring (needs a real Pi).


def _pi_source(cam: FakePicamera2, clock: FakeClock | None = None, **kw: Any) -> Picamera2Source:
    clock = clock or FakeClock()
    return Picamera2Source(camera_factory=lambda: cam, clock=clock.__call__, **kw)


def test_picamera2_configures_main_lores_and_fixed_controls() -> None:
    cam = FakePicamera2()
    source = _pi_source(
        cam,
        size_px=(640, 480),
        lores_size_px=(160, 120),
        exposure_us=4000,
        analogue_gain=2.0,
        colour_gains=(1.8, 1.5),
        frame_rate_fps=25.0,
        buffer_count=3,
    )
    with source:
        assert cam.calls == ["configure", "start"]
        frame = source.read(1.0)
    assert cam.created["main"] == {"size": (640, 480), "format": "RGB888"}
    assert cam.created["lores"] == {"size": (160, 120), "format": "YUV420"}
    assert cam.created["buffer_count"] == 3
    assert cam.created["controls"] == {
        "AeEnable": False,
        "AwbEnable": False,
        "ExposureTime": 4000,
        "AnalogueGain": 2.0,
        "ColourGains": (1.8, 1.5),
        "FrameDurationLimits": (40000, 40000),
    }
    assert frame.image.shape == (480, 640, 3)
    assert frame.lores.shape == (120, 160) and np.all(frame.lores == 100)  # Y plane, no padding
    assert cam.calls[-2:] == ["stop", "close"]
    assert source.last_metadata["ExposureTime"] == 3990


def test_picamera2_rejects_exposure_longer_than_frame() -> None:
    with pytest.raises(ValueError, match="exposure_us"):
        Picamera2Source(exposure_us=50_000, frame_rate_fps=30.0, camera_factory=FakePicamera2)


def test_picamera2_releases_every_request_even_when_make_array_raises() -> None:
    cam = FakePicamera2()
    cam.broken = {1}
    with _pi_source(cam) as source:
        frames = [source.read(1.0) for _ in range(3)]
        assert source.capture_failures == 1
        assert source.requests_outstanding == 0
    assert [f.ok for f in frames] == [True, False, True]
    assert frames[1].image is None and "buffer mapping failed" in frames[1].error
    assert [f.seq for f in frames] == [0, 1, 2]
    assert [r.released for r in cam.requests] == [1, 1, 1]
    assert cam.outstanding == 0


def test_picamera2_timestamps_from_sensor_timestamp_with_fallback() -> None:
    clock = FakeClock(start_s=500.0)
    cam = FakePicamera2()
    cam.sensor_timestamps_ns = [499_950_000_000, 499_983_333_333, 10_000_000_000]
    with _pi_source(cam, clock) as source:
        first, second, far_off, missing = (source.read(1.0) for _ in range(4))
    assert first.timestamp_s == pytest.approx(499.95)
    assert second.timestamp_s == pytest.approx(499.983333333)
    assert far_off.timestamp_s == 500.0 and source.clock_fallbacks == 1  # not the monotonic clock
    assert missing.timestamp_s == 500.0


def test_picamera2_timeout_keeps_the_pending_request_for_the_next_read() -> None:
    cam = FakePicamera2()
    cam.stalls = 2
    with _pi_source(cam) as source:
        assert source.read(0.1) is None
        assert source.read(0.1) is None
        assert source.timeouts == 2 and cam.jobs == 1  # no second job queued meanwhile
        assert source.read(0.1) is not None
        cam.stalls = 1
        assert source.read(0.1) is None
    assert cam.outstanding == 0 and all(r.released == 1 for r in cam.requests)


def test_picamera2_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    source = Picamera2Source()
    with pytest.raises(RuntimeError) as err:
        source.open()
    assert str(err.value) == PICAMERA2_MISSING
    assert "sudo apt install python3-picamera2" in str(err.value)
    assert "--system-site-packages" in str(err.value)
    assert not source.is_open


def test_picamera2_read_after_and_reopening_wrapper() -> None:
    clock = FakeClock(start_s=100.0)
    cam = FakePicamera2()
    cam.sensor_timestamps_ns = [99_900_000_000, 99_950_000_000, 100_010_000_000]
    source = ReopeningSource(_pi_source(cam, clock), clock=clock.__call__, sleep=clock.sleep)
    with source:
        frame = source.read_after(100.0, timeout_s=1.0)
    assert frame is not None and frame.seq == 2 and frame.timestamp_s == pytest.approx(100.01)
    assert cam.outstanding == 0


def test_pi_check_passes_on_a_well_behaved_fake() -> None:
    clock = FakeClock(start_s=10.0)
    cam = FakePicamera2()
    cam.sensor_timestamps_ns = [int((10.0 + i / 30) * 1e9) for i in range(200)]

    class TickingSource(Picamera2Source):
        def read(self, timeout_s: float) -> Frame | None:
            clock.advance(1 / 30)
            return super().read(timeout_s)

    source = TickingSource(
        camera_factory=lambda: cam,
        clock=clock.__call__,
        exposure_us=4000,
        analogue_gain=2.0,
        size_px=(320, 240),
        lores_size_px=(160, 120),
    )
    report = run_check(source, frames=20)
    assert report.problems == []
    assert report.frames == 20 and report.fps == pytest.approx(30.0)
    assert report.lores_shape == (120, 160)
