"""USB/V4L2 cameras, video files and network streams through ``cv2.VideoCapture``.

Useful for a workshop without a Pi camera (a USB webcam), for replaying a recorded
run (a video file, optionally looped) and for an IP camera (RTSP/HTTP URL).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from station.camera.base import CameraSource, Clock, Frame
from station.camera.convert import to_bgr8

logger = logging.getLogger(__name__)

CaptureFactory = Callable[..., Any]


def _normalise_target(target: int | str | os.PathLike[str]) -> int | str:
    """A digit string is a device index ("0" → 0); paths become strings."""
    if isinstance(target, int):
        return target
    text = os.fspath(target)
    return int(text) if text.isdigit() else text


class OpenCVSource(CameraSource):
    """Frames from ``cv2.VideoCapture``: device index or ``/dev/videoN``, video file or URL.

    ``cv2.VideoCapture.read`` blocks and has no timeout of its own: for URLs the
    open and read timeouts are passed to the FFmpeg backend (``open_timeout_ms``,
    ``read_timeout_ms``); for local devices ``timeout_s`` of :meth:`read` is not
    enforced. A failed grab returns ``None`` so that :class:`ReopeningSource` sees
    a stall and reconnects. Timestamps are ``clock()`` at the end of the read: the
    file position of a video is not a wall time.

    Args:
        target: device index (``0``), device path (``"/dev/video0"``), video file or URL.
        width_px: requested capture width in pixels (devices only; ``None`` = default).
        height_px: requested capture height in pixels (devices only).
        fps: requested device frame rate in frames per second.
        loop: for video files, start again at the first frame after the last one.
        lores_width_px: width of the grey thumbnail in ``Frame.lores``, in pixels.
        open_timeout_ms: connection timeout for URLs, in milliseconds.
        read_timeout_ms: per-frame read timeout for URLs, in milliseconds.
        api_preference: OpenCV backend (``cv2.CAP_ANY``, ``cv2.CAP_V4L2``, ...).
        capture_factory: ``(target, api_preference, params) -> VideoCapture``, for tests.
        name: source name; defaults to the target.
        clock: monotonic clock in seconds.
    """

    def __init__(
        self,
        target: int | str | os.PathLike[str],
        *,
        width_px: int | None = None,
        height_px: int | None = None,
        fps: float | None = None,
        loop: bool = False,
        lores_width_px: int = 320,
        open_timeout_ms: int = 5000,
        read_timeout_ms: int = 5000,
        api_preference: int = cv2.CAP_ANY,
        capture_factory: CaptureFactory | None = None,
        name: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.target = _normalise_target(target)
        super().__init__(name or f"opencv:{self.target}", clock=clock)
        self.width_px = width_px
        self.height_px = height_px
        self.fps = fps
        self.loop = loop
        self.lores_width_px = lores_width_px
        self.open_timeout_ms = open_timeout_ms
        self.read_timeout_ms = read_timeout_ms
        self.api_preference = api_preference
        self._factory: CaptureFactory = capture_factory or cv2.VideoCapture
        self._cap: Any = None
        self._seq = 0
        self.grab_failures = 0

    @property
    def kind(self) -> str:
        """ "device", "url" or "file": decides looping and which settings apply."""
        if isinstance(self.target, int) or self.target.startswith("/dev/"):
            return "device"
        if "://" in self.target:
            return "url"
        return "file"

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def open(self) -> None:
        """Open the capture; raises OSError if OpenCV cannot open the target."""
        if self._cap is not None:
            return
        kind = self.kind
        if kind == "file" and not Path(self.target).is_file():  # type: ignore[arg-type]
            raise FileNotFoundError(f"{self.name}: no video file {self.target}")
        params: list[int] = []
        if kind == "url":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                self.open_timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                self.read_timeout_ms,
            ]
        cap = self._factory(self.target, self.api_preference, params)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"{self.name}: OpenCV cannot open {self.target!r}")
        if kind == "device":
            self._apply_device_settings(cap)
        self._cap = cap
        logger.info("%s: opened %s via %s", self.name, kind, _backend_name(cap))

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def read(self, timeout_s: float) -> Frame | None:
        """Next frame, or ``None`` after a failed grab or at the end of a non-looping file."""
        cap = self._cap
        if cap is None:
            raise RuntimeError(f"{self.name}: read() before open()")
        ok, image = cap.read()
        if (not ok or image is None) and self.loop and self.kind == "file":
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
        if not ok or image is None:
            self.grab_failures += 1
            if self.kind != "file":
                logger.warning("%s: grab failed (%d so far)", self.name, self.grab_failures)
            return None
        now_s = self.clock()
        seq = self._seq
        self._seq += 1
        try:
            bgr = to_bgr8(image)
        except ValueError as exc:
            logger.error("%s: frame %d unusable: %s", self.name, seq, exc)
            return Frame(None, now_s, seq, error=f"cannot convert frame: {exc}", source=self.name)
        return self.frame_of(bgr, now_s, seq, self.lores_width_px)

    def _apply_device_settings(self, cap: Any) -> None:
        wanted = {
            cv2.CAP_PROP_FRAME_WIDTH: self.width_px,
            cv2.CAP_PROP_FRAME_HEIGHT: self.height_px,
            cv2.CAP_PROP_FPS: self.fps,
        }
        for prop, value in wanted.items():
            if value is None:
                continue
            cap.set(prop, float(value))
            actual = cap.get(prop)
            if abs(actual - float(value)) > 0.5:
                logger.warning(
                    "%s: asked property %d = %s, device gives %s", self.name, prop, value, actual
                )
        # Keep the driver queue short so a read returns a recent frame, not an old one.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)


def _backend_name(cap: Any) -> str:
    try:
        return str(cap.getBackendName())
    except (AttributeError, cv2.error):
        return "unknown backend"
