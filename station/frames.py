"""The camera thread: keeps the last few frames so a trigger can pick the right one.

The trigger fixes ``t0``; the frame to inspect is the first one captured at or after
``t0 + capture_delay``. Frames are matched by their own timestamps, never by arrival
order, so a stale buffered frame (which picamera2 can hand back) is never used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from station.camera.base import CameraSource, Frame

log = logging.getLogger(__name__)

#: Frames kept by default: 0.6 s at the simulator's 5 fps, 27 MB at 2028 × 1520.
#: The worker asks for a mask's frame as soon as its trigger is handled, so it
#: misses the ring only if it is more than two frame periods behind.
DEFAULT_RING_FRAMES = 3


class FrameFeed:
    """Reads a camera source on its own thread into a small ring of recent frames.

    Args:
        source: any camera source (simulator, Picamera2, OpenCV, folder replay),
            ideally wrapped in a ``ReopeningSource`` so stalls are survived.
        ring_size: frames kept; enough to cover the capture delay's jitter. Each
            2028 × 1520 frame is 9 MB, so the ring is most of the station's own
            memory: the worker asks for its frame as soon as the target time has
            passed, so it needs only the last few.
        on_frame: optional callback for every frame (live preview, presence trigger).
    """

    def __init__(
        self,
        source: CameraSource,
        ring_size: int = DEFAULT_RING_FRAMES,
        on_frame: Callable[[Frame], None] | None = None,
        read_timeout_s: float = 0.5,
    ) -> None:
        self.source = source
        self._ring: deque[Frame] = deque(maxlen=ring_size)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_frame = on_frame
        self._read_timeout_s = read_timeout_s
        self.frames_read = 0
        self.last_frame_mono_s: float | None = None

    def start(self) -> None:
        self.source.open()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.source.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.source.read(self._read_timeout_s)
            except Exception:
                log.exception("camera read failed")
                time.sleep(self._read_timeout_s)
                continue
            if frame is None:
                continue
            with self._cond:
                self._ring.append(frame)
                self.frames_read += 1
                self.last_frame_mono_s = time.monotonic()
                self._cond.notify_all()
            if self._on_frame is not None:
                try:
                    self._on_frame(frame)
                except Exception:
                    log.exception("frame callback failed")

    def latest(self) -> Frame | None:
        with self._cond:
            return self._ring[-1] if self._ring else None

    def wait_frame_at_or_after(self, t_s: float, timeout_s: float) -> Frame | None:
        """The first frame whose timestamp is at or after ``t_s``; None on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for frame in self._ring:
                    if frame.timestamp_s >= t_s:
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(remaining)
