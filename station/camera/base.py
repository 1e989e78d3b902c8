"""The one small interface every camera hides behind, and the frame it hands out.

The station never talks to picamera2, OpenCV or the file system directly: it asks a
:class:`CameraSource` for a :class:`Frame`. That keeps the inspection loop testable
on a laptop (folder replay, video files) and lets :class:`ReopeningSource` add
stall detection and reconnection once, for every kind of camera.

Clock: every ``timestamp_s`` is on the ``time.monotonic()`` clock, so that the
station can compare it with the moment a mask passed the trigger (``t0``).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import numpy as np

from station.camera.convert import make_lores

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class Frame:
    """One picture from a source, or the reason there is none.

    A corrupt frame is a ``Frame`` with ``error`` set and ``image=None``, never an
    exception: the station turns it into an ``error`` verdict for that mask and
    carries on with the next one.

    Attributes:
        image: BGR ``uint8`` array, H×W×3; ``None`` when the frame could not be decoded.
        timestamp_s: seconds on the ``time.monotonic()`` clock; the sensor timestamp
            converted to that clock where the device gives one.
        seq: sequence number from the source, increasing by one per frame handed out.
        lores: small grey (Y) ``uint8`` array, H×W, for cheap presence detection.
        error: why ``image`` is ``None``, e.g. ``"cannot decode frame.jpg"``.
        source: name of the source that produced the frame.
        path: the file the frame was read from, for replayed folders.
        render: set by a source that makes its pixels on demand (the simulator
            renders only the frames the station inspects: a frame nobody looks at
            costs no CPU and no 9 MB). Such a frame has ``image=None`` until
            :meth:`developed` is called.
    """

    image: np.ndarray | None
    timestamp_s: float
    seq: int
    lores: np.ndarray | None = None
    error: str | None = None
    source: str = ""
    path: str | None = None
    render: Callable[[], Frame] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the frame carries a usable image."""
        return self.image is not None and self.error is None

    def developed(self) -> Frame:
        """This frame with its pixels: itself, or the frame its source renders now.

        A render that fails gives a frame with ``error`` set (so the mask gets an
        ``error`` verdict and is rejected), never an exception.
        """
        if self.render is None:
            return self
        try:
            return self.render()
        except Exception as exc:  # a frame, not a crash, for every read
            logger.exception("rendering frame %d failed", self.seq)
            return Frame(
                None,
                self.timestamp_s,
                self.seq,
                error=f"frame render failed: {type(exc).__name__}: {exc}",
                source=self.source,
            )


class CameraSource(ABC):
    """A camera, video or folder that hands out :class:`Frame` objects on request.

    Sources may be pull-based (``read`` decodes or renders the next frame) or push
    based (``read`` waits for the next frame the device delivered). They are used
    from one thread; ``health``-style read-only queries may come from another.

    Args:
        name: human-readable name shown in logs, health and ``Frame.source``.
        clock: monotonic clock in seconds, injectable for tests.
    """

    name: str

    def __init__(self, name: str, *, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.clock = clock

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """True between a successful ``open()`` and ``close()``."""

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file; raises if it cannot be used."""

    @abstractmethod
    def read(self, timeout_s: float) -> Frame | None:
        """Return the next frame, or ``None`` if none arrived within ``timeout_s`` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def frame_of(self, image: np.ndarray, timestamp_s: float, seq: int, lores_px: int) -> Frame:
        """A frame of this source with its lores image ``lores_px`` wide (presence trigger)."""
        return Frame(
            image=image,
            timestamp_s=timestamp_s,
            seq=seq,
            lores=make_lores(image, lores_px),
            source=self.name,
        )

    def read_after(self, t_s: float, timeout_s: float) -> Frame | None:
        """Return the first frame whose ``timestamp_s`` is at or after ``t_s``.

        Cameras keep a queue of completed buffers, so a plain ``read`` right after the
        trigger may hand out a frame exposed *before* the mask arrived. The station
        asks for "the first frame at or after t0 + delay" instead. Older frames are
        dropped; a frame with an ``error`` but a recent timestamp is returned, because
        that mask still needs a verdict.

        Args:
            t_s: earliest acceptable timestamp, seconds on the ``time.monotonic()`` clock.
            timeout_s: how long to keep reading, in seconds.

        Returns:
            The frame, or ``None`` if the source delivered none in time.
        """
        deadline_s = self.clock() + timeout_s
        skipped = 0
        while True:
            remaining_s = deadline_s - self.clock()
            if remaining_s <= 0:
                break
            frame = self.read(remaining_s)
            if frame is None:
                break
            if frame.timestamp_s >= t_s:
                if skipped:
                    logger.debug(
                        "%s: skipped %d stale frame(s) before t=%.3f", self.name, skipped, t_s
                    )
                return frame
            skipped += 1
        logger.debug("%s: no frame at or after t=%.3f (skipped %d)", self.name, t_s, skipped)
        return None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, open={self.is_open})"


HealthState = Literal["ok", "stalled", "reopening", "closed"]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Snapshot of a :class:`ReopeningSource` for the status page and logs.

    Attributes:
        state: "ok" (frames arriving), "stalled" (no frame lately, not yet given up),
            "reopening" (inner source closed, waiting to reopen) or "closed".
        fps: frames per second over the last ``fps_window_s`` seconds.
        frames: frames delivered since the wrapper was created.
        failures: exceptions from the inner source plus stalls that forced a reopen.
        reopens: successful reopenings of the inner source.
        last_frame_age_s: seconds since the last frame; ``None`` before the first one.
        last_error: text of the most recent failure, ``None`` if there was none.
    """

    state: HealthState
    fps: float
    frames: int
    failures: int
    reopens: int
    last_frame_age_s: float | None
    last_error: str | None


class ReopeningSource(CameraSource):
    """Wrap a source so that a stalled or failing camera is closed and reopened.

    A ribbon cable that slips, a USB camera that resets or an RTSP stream that drops
    must not stop the line controller: ``read`` never raises because of the camera,
    it returns ``None`` while the camera is down and reopens it in the background of
    later ``read`` calls, waiting ``backoff_initial_s``, then twice as long after each
    failed attempt up to ``backoff_max_s`` (no jitter: one camera, one process). The
    backoff resets when a frame arrives. Frames with an ``error`` count as arrivals:
    the device is alive, only that frame is bad.

    Args:
        inner: the source to supervise.
        stall_timeout_s: seconds without a frame (``None`` or exceptions from ``read``)
            before the inner source is closed and reopened.
        backoff_initial_s: seconds to wait before the first reopen attempt.
        backoff_max_s: upper bound for the wait between attempts, in seconds.
        fps_window_s: length of the sliding window used for ``health().fps``, seconds.
        clock: monotonic clock in seconds, injectable for tests.
        sleep: sleeping function taking seconds, injectable for tests.
        name: defaults to the inner source's name.
    """

    def __init__(
        self,
        inner: CameraSource,
        *,
        stall_timeout_s: float = 2.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        fps_window_s: float = 2.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        name: str | None = None,
    ) -> None:
        if stall_timeout_s <= 0 or backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need stall_timeout_s > 0 and 0 < backoff_initial_s <= backoff_max_s")
        super().__init__(name or inner.name, clock=clock)
        self.inner = inner
        self.stall_timeout_s = stall_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.fps_window_s = fps_window_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._open = False
        self._inner_up = False
        self._state: HealthState = "closed"
        self._backoff_s = backoff_initial_s
        self._next_attempt_s = 0.0
        self._last_progress_s = 0.0
        self._last_frame_s: float | None = None
        self._arrivals_s: deque[float] = deque()
        self._frames = 0
        self._failures = 0
        self._reopens = 0
        self._last_error: str | None = None
        self._warned_closed = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Open the inner source; a failure is logged and retried by ``read``, not raised."""
        with self._lock:
            self._open = True
            self._warned_closed = False
            self._backoff_s = self.backoff_initial_s
            self._last_progress_s = self.clock()
        if self._try_open_inner(is_reopen=False):
            return
        with self._lock:
            self._schedule_reopen_locked()

    def close(self) -> None:
        with self._lock:
            self._open = False
            self._state = "closed"
        self._close_inner()

    def read(self, timeout_s: float) -> Frame | None:
        """Next frame from the inner source, or ``None`` while it is stalled or down."""
        if not self._open:
            if not self._warned_closed:
                logger.warning("%s: read() on a closed source returns None", self.name)
                self._warned_closed = True
            return None
        start_s = self.clock()
        if not self._inner_up:
            wait_s = self._next_attempt_s - start_s
            if wait_s > 0:
                self._sleep(min(wait_s, max(timeout_s, 0.0)))
                if self._next_attempt_s - self.clock() > 0:
                    return None
            if not self._try_open_inner(is_reopen=True):
                with self._lock:
                    self._schedule_reopen_locked()
                return None
        remaining_s = max(timeout_s - (self.clock() - start_s), 0.0)
        try:
            frame = self.inner.read(remaining_s)
        except Exception as exc:  # noqa: BLE001 - a camera fault must become health, not a crash
            self._record_failure(f"read failed: {exc!r}")
            frame = None
            # Use up the caller's timeout, as a read that found nothing would: a device
            # that fails instantly must not turn the caller's loop into a busy loop.
            self._sleep(max(timeout_s - (self.clock() - start_s), 0.0))
        now_s = self.clock()
        if frame is not None:
            with self._lock:
                self._frames += 1
                self._state = "ok"
                self._backoff_s = self.backoff_initial_s
                self._last_progress_s = now_s
                self._last_frame_s = now_s
                self._arrivals_s.append(now_s)
                self._trim_locked(now_s)
            return frame
        stalled_for_s = now_s - self._last_progress_s
        if stalled_for_s >= self.stall_timeout_s:
            self._record_failure(f"no frame for {stalled_for_s:.1f} s")
            self._close_inner()
            with self._lock:
                self._schedule_reopen_locked()
        else:
            with self._lock:
                self._state = "stalled"
        return None

    def health(self) -> SourceHealth:
        """Current state, rates and counters; safe to call from another thread."""
        now_s = self.clock()
        with self._lock:
            self._trim_locked(now_s)
            arrivals = list(self._arrivals_s)
            age_s = None if self._last_frame_s is None else now_s - self._last_frame_s
            return SourceHealth(
                state=self._state,
                fps=_rate_hz(arrivals),
                frames=self._frames,
                failures=self._failures,
                reopens=self._reopens,
                last_frame_age_s=age_s,
                last_error=self._last_error,
            )

    # -- internals --------------------------------------------------------------

    def _try_open_inner(self, *, is_reopen: bool) -> bool:
        try:
            self.inner.open()
        except Exception as exc:  # noqa: BLE001 - a camera fault must become health, not a crash
            self._record_failure(f"open failed: {exc!r}")
            return False
        with self._lock:
            self._inner_up = True
            self._last_progress_s = self.clock()
            if self._state != "ok":
                self._state = "stalled" if is_reopen else "ok"
            if is_reopen:
                self._reopens += 1
        if is_reopen:
            logger.warning("%s: camera reopened (reopen #%d)", self.name, self._reopens)
        return True

    def _close_inner(self) -> None:
        self._inner_up = False
        try:
            self.inner.close()
        except Exception as exc:  # noqa: BLE001 - a camera fault must become health, not a crash
            self._record_failure(f"close failed: {exc!r}")

    def _schedule_reopen_locked(self) -> None:
        delay_s = self._backoff_s
        self._next_attempt_s = self.clock() + delay_s
        self._backoff_s = min(self._backoff_s * 2.0, self.backoff_max_s)
        self._state = "reopening"
        logger.warning("%s: reopening the camera in %.2f s", self.name, delay_s)

    def _record_failure(self, text: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = text
            count = self._failures
        logger.error("%s: %s (failure #%d)", self.name, text, count)

    def _trim_locked(self, now_s: float) -> None:
        while self._arrivals_s and self._arrivals_s[0] < now_s - self.fps_window_s:
            self._arrivals_s.popleft()


def _rate_hz(times_s: list[float]) -> float:
    """Frames per second from arrival times: intervals over the span they cover."""
    if len(times_s) < 2:
        return 0.0
    span_s = times_s[-1] - times_s[0]
    return (len(times_s) - 1) / span_s if span_s > 0 else 0.0
