"""Raspberry Pi camera (libcamera) through picamera2, with fixed exposure.

picamera2 only exists on Raspberry Pi OS (``sudo apt install python3-picamera2``;
it is not installable from PyPI with a working libcamera), so it is imported lazily
inside :meth:`Picamera2Source.open` and tests inject a fake through ``camera_factory``.

What only a real Pi can show (see ``PI_CHECK.md`` and ``python -m station.camera.pi_check``):
real libcamera buffers and their release, the clock domain of ``SensorTimestamp``,
how many frames fixed controls take to apply, the lores stride/padding on a real
sensor, and frame drops under CPU load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from station.camera.base import CameraSource, Clock, Frame

logger = logging.getLogger(__name__)

PICAMERA2_MISSING = (
    "picamera2 is not installed: on Raspberry Pi OS `sudo apt install python3-picamera2` "
    "and create the venv with --system-site-packages"
)

CameraFactory = Callable[[], Any]


def _default_factory(camera_num: int) -> CameraFactory:
    """Factory that imports picamera2 only when the camera is actually opened."""

    def factory() -> Any:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise RuntimeError(PICAMERA2_MISSING) from exc
        return Picamera2(camera_num)

    return factory


class Picamera2Source(CameraSource):
    """Pi camera source: BGR main stream, YUV420 lores stream, fixed exposure/gain/white balance.

    Auto exposure and auto white balance drift from one mask to the next (a white
    mask and a black mask would be exposed differently), which would move every
    colour and size threshold; so they are switched off and set from the arguments.

    Args:
        size_px: main stream (width, height) in pixels.
        lores_size_px: lores stream (width, height) in pixels, for presence detection.
        exposure_us: fixed exposure time in microseconds; must fit in one frame period.
        analogue_gain: fixed sensor analogue gain (1.0 = no gain).
        colour_gains: fixed white balance as (red gain, blue gain).
        frame_rate_fps: fixed frame rate in frames per second.
        buffer_count: number of libcamera buffers; more absorbs jitter, costs CMA memory.
        camera_num: index of the camera for ``Picamera2(camera_num)``.
        camera_factory: returns a Picamera2-like object; default imports picamera2.
        max_clock_skew_s: a ``SensorTimestamp`` further than this from ``clock()``
            (seconds) is not trusted and the read time is used instead.
        name: source name for logs and frames.
        clock: monotonic clock in seconds (must be ``time.monotonic`` on a real Pi).
    """

    def __init__(
        self,
        *,
        size_px: tuple[int, int] = (1280, 960),
        lores_size_px: tuple[int, int] = (320, 240),
        exposure_us: int = 4000,
        analogue_gain: float = 1.0,
        colour_gains: tuple[float, float] = (1.8, 1.5),
        frame_rate_fps: float = 30.0,
        buffer_count: int = 4,
        camera_num: int = 0,
        camera_factory: CameraFactory | None = None,
        max_clock_skew_s: float = 5.0,
        name: str = "picamera2",
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(name, clock=clock)
        if frame_rate_fps <= 0:
            raise ValueError(f"frame_rate_fps must be > 0, got {frame_rate_fps}")
        self.frame_duration_us = round(1_000_000 / frame_rate_fps)
        if not 0 < exposure_us <= self.frame_duration_us:
            raise ValueError(
                f"exposure_us={exposure_us} must be in (0, {self.frame_duration_us}] "
                f"to keep {frame_rate_fps} fps"
            )
        if lores_size_px[0] > size_px[0] or lores_size_px[1] > size_px[1]:
            raise ValueError("lores_size_px may not exceed size_px (a libcamera rule)")
        self.size_px = size_px
        self.lores_size_px = lores_size_px
        self.exposure_us = int(exposure_us)
        self.analogue_gain = float(analogue_gain)
        self.colour_gains = (float(colour_gains[0]), float(colour_gains[1]))
        self.frame_rate_fps = frame_rate_fps
        self.buffer_count = buffer_count
        self.max_clock_skew_s = max_clock_skew_s
        self._factory = camera_factory or _default_factory(camera_num)
        self._cam: Any = None
        self._pending_job: Any = None
        self._seq = 0
        self._lores_crop_px = lores_size_px
        self.last_metadata: Mapping[str, Any] = {}
        self.requests_outstanding = 0
        """Requests taken from picamera2 and not yet released; must be 0 between reads."""
        self.capture_failures = 0
        self.clock_fallbacks = 0
        self.timeouts = 0

    @property
    def controls(self) -> dict[str, Any]:
        """The fixed libcamera controls this source runs with."""
        return {
            "AeEnable": False,
            "AwbEnable": False,
            "ExposureTime": self.exposure_us,
            "AnalogueGain": self.analogue_gain,
            "ColourGains": self.colour_gains,
            # Min and max equal: the sensor runs at exactly this frame period.
            "FrameDurationLimits": (self.frame_duration_us, self.frame_duration_us),
        }

    @property
    def is_open(self) -> bool:
        return self._cam is not None

    def open(self) -> None:
        """Create, configure and start the camera; raises RuntimeError if picamera2 is missing."""
        if self._cam is not None:
            return
        cam = self._factory()
        try:
            config = cam.create_video_configuration(
                # "RGB888" is libcamera's name for 24-bit pixels stored B, G, R in memory:
                # exactly the BGR order OpenCV expects, so no conversion is needed.
                main={"size": tuple(self.size_px), "format": "RGB888"},
                lores={"size": tuple(self.lores_size_px), "format": "YUV420"},
                controls=self.controls,
                buffer_count=self.buffer_count,
            )
            cam.configure(config)
            self._lores_crop_px = self._configured_lores_size(cam)
            cam.start()
        except Exception:
            self._close_camera(cam)
            raise
        self._cam = cam
        logger.info(
            "%s: started %sx%s RGB888 + lores %sx%s YUV420, controls %s",
            self.name,
            *self.size_px,
            *self._lores_crop_px,
            self.controls,
        )

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        self._drop_pending_job(cam)
        self._close_camera(cam)

    def read(self, timeout_s: float) -> Frame | None:
        """Wait up to ``timeout_s`` seconds for the next completed request.

        A request that times out stays pending and is collected by the next ``read``,
        so its buffer is never lost to libcamera.
        """
        cam = self._cam
        if cam is None:
            raise RuntimeError(f"{self.name}: read() before open()")
        job = (
            self._pending_job if self._pending_job is not None else cam.capture_request(wait=False)
        )
        try:
            request = job.get_result(timeout=max(timeout_s, 0.0))
        except TimeoutError:
            self._pending_job = job
            self.timeouts += 1
            return None
        except Exception:
            self._pending_job = None  # a failed job never yields a request: do not wait on it again
            raise
        self._pending_job = None
        self.requests_outstanding += 1
        read_s = self.clock()
        metadata: Mapping[str, Any] = {}
        try:
            metadata = request.get_metadata()
            image = request.make_array("main")
            yuv = request.make_array("lores")
            # The YUV420 array is (h*3/2, stride): the first h rows are the Y plane,
            # each padded to the stride on the right.
            lores_w, lores_h = self._lores_crop_px
            lores = np.ascontiguousarray(yuv[:lores_h, :lores_w])
            error = None
        except Exception as exc:  # noqa: BLE001 - libcamera errors are recorded, never raised into the loop
            self.capture_failures += 1
            logger.error(
                "%s: could not copy request buffers (failure #%d): %r",
                self.name,
                self.capture_failures,
                exc,
            )
            image, lores, error = None, None, f"cannot read camera buffers: {exc}"
        finally:
            request.release()
            self.requests_outstanding -= 1
        self.last_metadata = metadata
        seq = self._seq
        self._seq += 1
        return Frame(
            image=image,
            timestamp_s=self._timestamp_s(metadata, read_s),
            seq=seq,
            lores=lores,
            error=error,
            source=self.name,
        )

    # -- internals --------------------------------------------------------------

    def _timestamp_s(self, metadata: Mapping[str, Any], read_s: float) -> float:
        """``SensorTimestamp`` (ns, CLOCK_MONOTONIC on the Pi) in seconds, else the read time."""
        sensor_ns = metadata.get("SensorTimestamp")
        if sensor_ns is None:
            return read_s
        sensor_s = int(sensor_ns) / 1e9
        if abs(sensor_s - read_s) > self.max_clock_skew_s:
            self.clock_fallbacks += 1
            if self.clock_fallbacks == 1 or self.clock_fallbacks % 1000 == 0:
                logger.warning(
                    "%s: SensorTimestamp %.3f s is %.3f s away from the monotonic clock; "
                    "using the read time instead (%d times)",
                    self.name,
                    sensor_s,
                    sensor_s - read_s,
                    self.clock_fallbacks,
                )
            return read_s
        return sensor_s

    def _configured_lores_size(self, cam: Any) -> tuple[int, int]:
        """Lores size picamera2 settled on (it may round it), else the requested one."""
        config = getattr(cam, "camera_config", None)
        try:
            width_px, height_px = config["lores"]["size"]  # type: ignore[index]
            return int(width_px), int(height_px)
        except (TypeError, KeyError, ValueError):
            return self.lores_size_px

    def _drop_pending_job(self, cam: Any) -> None:
        """Release the request a timed-out job may hold, or cancel the job."""
        job, self._pending_job = self._pending_job, None
        if job is None:
            return
        try:
            request = job.get_result(timeout=0)
        except TimeoutError:
            cancel = getattr(cam, "cancel_all_and_flush", None)
            if cancel is None:
                logger.warning("%s: closing with a capture still pending", self.name)
                return
            try:
                cancel()
            except Exception as exc:  # noqa: BLE001 - libcamera errors are recorded, never raised into the loop
                self.capture_failures += 1
                logger.error("%s: cancel_all_and_flush() failed: %r", self.name, exc)
            return
        except Exception as exc:  # noqa: BLE001 - libcamera errors are recorded, never raised into the loop
            logger.warning("%s: pending capture failed while closing: %r", self.name, exc)
            return
        request.release()

    def _close_camera(self, cam: Any) -> None:
        for step in ("stop", "close"):
            try:
                getattr(cam, step)()
            except Exception as exc:  # noqa: BLE001 - libcamera errors are recorded, never raised into the loop
                self.capture_failures += 1
                logger.error("%s: camera %s() failed: %r", self.name, step, exc)
