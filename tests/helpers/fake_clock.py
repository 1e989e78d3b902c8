"""A monotonic clock for tests: it moves only when told to (or when ``sleep`` is called)."""

from __future__ import annotations


class FakeClock:
    """Monotonic clock that only moves when told to (or when ``sleep`` is called)."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s
        self.sleeps_s: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, duration_s: float) -> None:
        self.sleeps_s.append(duration_s)
        self.now_s += duration_s

    def advance(self, duration_s: float) -> None:
        self.now_s += duration_s
