"""Machine health the supervisor needs, and the station's alarm board.

- :func:`disk_usage` and :func:`cpu_temperature_c`: the machine's own figures.
- :class:`AlarmBoard`: every fault the station detects while it runs (camera stalled,
  inspection raising, QC log not writing, archive not writing, wall clock jumping) is
  raised and cleared here by the part of the station that sees it. One board feeds
  ``/api/v1/status``, the Prometheus metrics and the stack light, so they always
  agree, and a fault that clears shows as cleared everywhere at once.
- :class:`ClockMonitor`: deadlines run on ``time.monotonic()``, but the QC log's
  timestamps are wall-clock UTC; a Pi without a real-time clock steps its wall clock
  when NTP syncs. The monitor notices the step so that the log's timestamps around
  it can be read with care.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

#: Where Raspberry Pi OS (and most Linux boards) expose the SoC temperature.
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")

Severity = Literal["fault", "warning"]

#: A wall clock that moved this much more (or less) than the monotonic clock is a jump.
CLOCK_JUMP_THRESHOLD_S = 2.0
#: How long a clock jump stays visible in health after it happened, seconds.
CLOCK_JUMP_HOLD_S = 60.0


def disk_usage(path: Path) -> dict[str, float]:
    """Free and total space of the filesystem holding ``path``, in MiB."""
    usage = shutil.disk_usage(path)
    return {
        "free_mb": round(usage.free / 2**20, 1),
        "total_mb": round(usage.total / 2**20, 1),
        "used_pct": round(100 * (usage.total - usage.free) / usage.total, 1),
    }


def cpu_temperature_c(zone: Path = THERMAL_ZONE) -> float | None:
    """SoC temperature in °C, or None where the machine does not expose one."""
    try:
        return round(int(zone.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


@dataclass
class Alarm:
    """One kind of fault and its history since the station started.

    Attributes:
        code: stable identifier (the page translates ``fault.<code>``).
        severity: ``fault`` (the line is not inspected properly: red light) or
            ``warning`` (look soon).
        active: True while the fault lasts.
        raised: how many times it became active.
        events: how many occurrences were reported (e.g. masks hit by it).
        message: the last occurrence's description.
        since_s: monotonic time it became active (None while cleared).
        cleared_s: monotonic time it last cleared (None if it never did).
    """

    code: str
    severity: Severity
    active: bool = False
    raised: int = 0
    events: int = 0
    message: str | None = None
    since_s: float | None = None
    cleared_s: float | None = None


class AlarmBoard:
    """Thread-safe set of alarms, raised and cleared by whoever detects them.

    Args:
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._alarms: dict[str, Alarm] = {}

    def raise_alarm(self, code: str, message: str, severity: Severity = "fault") -> None:
        """Report one occurrence of ``code``; logs only when it becomes active."""
        with self._lock:
            alarm = self._alarms.setdefault(code, Alarm(code, severity))
            alarm.severity = severity
            alarm.events += 1
            alarm.message = message
            if alarm.active:
                return
            alarm.active = True
            alarm.raised += 1
            alarm.since_s = self._clock()
        log.error("alarm %s raised: %s", code, message)

    def clear(self, code: str) -> None:
        """``code`` is healthy again (no-op if it was not active)."""
        with self._lock:
            alarm = self._alarms.get(code)
            if alarm is None or not alarm.active:
                return
            alarm.active = False
            alarm.since_s = None
            alarm.cleared_s = self._clock()
        log.warning("alarm %s cleared", code)

    def is_active(self, code: str) -> bool:
        with self._lock:
            alarm = self._alarms.get(code)
            return alarm is not None and alarm.active

    def active(self, severity: Severity | None = None) -> list[str]:
        """Codes of the active alarms (of one severity if given), sorted."""
        with self._lock:
            return sorted(
                a.code
                for a in self._alarms.values()
                if a.active and (severity is None or a.severity == severity)
            )

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-ready copy for ``/api/v1/status`` (``since_s`` made an age)."""
        now = self._clock()
        with self._lock:
            out = {}
            for code, alarm in sorted(self._alarms.items()):
                d = asdict(alarm)
                d["active_for_s"] = None if alarm.since_s is None else round(now - alarm.since_s, 3)
                d["cleared_ago_s"] = (
                    None if alarm.cleared_s is None else round(now - alarm.cleared_s, 3)
                )
                del d["since_s"], d["cleared_s"], d["code"]
                out[code] = d
            return out


class ClockMonitor:
    """Raises the ``clock`` warning when the wall clock steps against the monotonic one.

    Call :meth:`check` periodically (the station's health thread does, every 0.1 s).
    The offset ``wall - monotonic`` is constant while both clocks run; NTP slewing
    moves it by milliseconds, a step by seconds or hours. The warning clears
    ``hold_s`` after the last step; the station's decisions never depend on the wall
    clock, so a step is reported, not acted on.

    Args:
        alarms: the board to raise ``clock`` on.
        threshold_s: offset change that counts as a jump, seconds.
        hold_s: how long the warning stays after a jump, seconds.
        wall: wall clock in seconds since the epoch (injectable for tests).
        mono: monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        alarms: AlarmBoard,
        threshold_s: float = CLOCK_JUMP_THRESHOLD_S,
        hold_s: float = CLOCK_JUMP_HOLD_S,
        wall: Callable[[], float] | None = None,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alarms = alarms
        self.threshold_s = threshold_s
        self.hold_s = hold_s
        # Looked up at each call, so the clock the rest of the process sees is the one read.
        self.wall = wall if wall is not None else lambda: time.time()
        self.mono = mono
        self._offset_s = self.wall() - self.mono()
        self._last_jump_mono_s: float | None = None
        self.jumps = 0
        self.last_jump_s: float | None = None

    def check(self) -> float:
        """Look once; returns the step seen now in seconds (0.0 when none)."""
        now_mono = self.mono()
        offset = self.wall() - now_mono
        step = offset - self._offset_s
        self._offset_s = offset
        if abs(step) >= self.threshold_s:
            self.jumps += 1
            self.last_jump_s = step
            self._last_jump_mono_s = now_mono
            self.alarms.raise_alarm(
                "clock", f"wall clock jumped {step:+.1f} s (deadlines unaffected)", "warning"
            )
            return step
        if self._last_jump_mono_s is not None and now_mono - self._last_jump_mono_s > self.hold_s:
            self._last_jump_mono_s = None
            self.alarms.clear("clock")
        return 0.0
