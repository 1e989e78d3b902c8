"""Fault injection on a running station: a camera that stalls, a disk that fills up,
a wall clock that jumps, and the line a test drives (photo-eye pin, API, pin histories).

Shared by tests/test_faults.py (one fault at a time, controlled frames) and
tests/test_faults_line.py (faults while the simulated belt runs).
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import station.store.qcstore as qcstore_module
import station.store.records as records_module
import station.store.timeutil as timeutil_module
from station.actuator import InFlight
from station.camera.base import CameraSource, Frame
from station.runtime import Runtime

#: Period of the faulty camera's frames, seconds.
FRAME_PERIOD_S = 0.05
#: How long to wait for one mask's pulse, or for health to change, seconds.
WAIT_S = 8.0


class FaultyCamera(CameraSource):
    """Frames every ``FRAME_PERIOD_S``; ``mode`` switches in a stall.

    - ``ok``: a fresh frame, stamped when taken, showing ``image``.
    - ``silent``: the device answers but delivers nothing (``read`` returns None).
    - ``hang``: ``read`` blocks (a driver stuck in a syscall); when released it hands
      back the frame it was exposing when it hung — stale, older than the triggers.
    """

    def __init__(self, image: np.ndarray) -> None:
        super().__init__("faulty")
        self.image = image
        self.mode = "ok"
        self.released = threading.Event()
        self._open = False
        self._seq = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def read(self, timeout_s: float) -> Frame | None:
        if self.mode == "silent":
            time.sleep(timeout_s)
            return None
        if self.mode == "hang":
            hung_at_s = time.monotonic()
            self.released.wait()
            return self._frame(hung_at_s)
        time.sleep(FRAME_PERIOD_S)
        return self._frame(time.monotonic())

    def _frame(self, stamp_s: float) -> Frame:
        self._seq += 1
        return Frame(self.image, stamp_s, self._seq, source=self.name)


@dataclass
class Line:
    """A running station, its camera, the photo-eye pin and the API client."""

    rt: Runtime
    camera: FaultyCamera
    client: TestClient
    fired: list[InFlight] = field(default_factory=list)
    t_clear_s: float = 0.0

    def mask(self) -> InFlight:
        """One mask past the photo-eye; returns it once its pulse has ended."""
        n = len(self.fired)
        pin = self.rt.io.trigger.pin
        pin.drive_high()
        time.sleep(0.02)
        pin.drive_low()
        wait_until(lambda: len(self.fired) > n, "the mask's pulse")
        time.sleep(self.rt.config.gpio.pulse_ms / 1000 + 0.05)
        return self.fired[n]

    def masks(self, n: int) -> list[InFlight]:
        return [self.mask() for _ in range(n)]

    def status(self) -> dict[str, Any]:
        response = self.client.get("/api/v1/status")
        assert response.status_code == 200
        return response.json()

    def metrics(self) -> str:
        response = self.client.get("/metrics")
        assert response.status_code == 200
        return response.text

    def rises(self, which: str, since_s: float) -> list[float]:
        """Rising edges of the accept or reject output after ``since_s`` (monotonic)."""
        pin = (self.rt.io.accept if which == "accept" else self.rt.io.reject).pin
        t, out = self.t_clear_s, []
        for state in list(pin.states)[1:]:
            t += state.timestamp
            if state.state and t >= since_s:
                out.append(t)
        return out


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def fault_codes(status: dict[str, Any]) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in status["faults"]}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0.0 when the series is absent)."""
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return 0.0


@dataclass
class BrokenDisk:
    """The archive's filesystem as the kernel reports a full or read-only one."""

    errno_code: int
    real_statvfs: Callable[[Path], os.statvfs_result]

    def opener(self, path: Path, mode: str) -> Any:
        raise OSError(self.errno_code, os.strerror(self.errno_code), str(path))

    def statvfs(self, path: Path) -> os.statvfs_result:
        st = self.real_statvfs(path)
        fields = list(st)
        if self.errno_code == errno.ENOSPC:
            fields[4] = 0  # f_bavail
        else:
            fields[8] |= os.ST_RDONLY  # f_flag
        return os.statvfs_result(fields)


class JumpingClock:
    """Shifts what the station reads as wall-clock time (``time.time``, ``datetime.now``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset_s = 0.0
        real_time = time.time
        clock = self

        class ShiftedDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return datetime.now(tz) + timedelta(seconds=clock.offset_s)

        def shifted_utc_now_iso() -> str:
            return timeutil_module.format_utc(ShiftedDatetime.now(UTC))

        monkeypatch.setattr(time, "time", lambda: real_time() + clock.offset_s)
        for module in (records_module, qcstore_module):
            monkeypatch.setattr(module, "datetime", ShiftedDatetime)
        monkeypatch.setattr(qcstore_module, "utc_now_iso", shifted_utc_now_iso)

    def jump(self, seconds: float) -> None:
        self.offset_s += seconds
