"""Masks in flight between camera and ejector, and the pulses timed to the belt.

Each triggered mask gets a deadline: the moment it reaches the ejector
(``t0 + eject_delay``). Whoever settles a mask first wins, under the mask's lock:

- the inspection worker, if its verdict is recorded before ``deadline - guard``;
- otherwise this thread, which records the mask as rejected ``late``.

The verdict is committed to the QC log *before* its pulse fires, so a pulse that
fired always has its row. If the log cannot be written in time, the pulse still
fires at the deadline and it is a reject: a mask is never accepted by default.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from vision.types import Defect, InspectionResult

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """One mask on its way from the trigger line to the ejector.

    ``t0_s`` is the trigger time (monotonic clock); ``deadline_s`` is on the actuator's
    belt clock: the same clock by default, belt travel with an encoder.
    """

    t0_s: float
    deadline_s: float
    mask_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Recipe in force when the mask was triggered: its row carries these, even if a
    #: batch change happens while it is on the belt.
    spec_label: str | None = None
    batch_id: str | None = None
    result: InspectionResult | None = None
    settled_by: str | None = None  # "inspection" | "late" | "forced"
    recorded: bool = False
    fired: str | None = None  # "accept" | "reject"
    fired_at_s: float | None = None

    @property
    def reject(self) -> bool:
        return self.result is None or self.result.verdict != "accept"


RecordFn = Callable[[InFlight], None]

#: With an encoder the belt clock can outrun time: poll it this often, seconds.
_ENCODER_POLL_S = 0.001


def late_result(message: str) -> InspectionResult:
    return InspectionResult(
        verdict="reject",
        defects=[Defect(code="late", message=message)],
        message=message,
    )


class Actuator:
    """Tracks masks in order and fires accept/reject pulses at their deadlines.

    Args:
        pulse_start / pulse_end: raise / lower the accept (False) or reject (True) output.
        record: commits one settled mask to the QC log; may raise (then the mask is
            still rejected, and the failure is counted).
        eject_delay_ms: belt travel time from the trigger line to the ejector.
        pulse_ms: output pulse width.
        guard_ms: a verdict must be recorded this long before the deadline.
        clock: monotonic clock in seconds (injectable for tests).
        belt_clock: belt travel expressed in seconds at nominal speed (an encoder's
            counts, see :class:`station.encoder.BeltClock`); None means the belt runs
            at a constant speed and deadlines are plain time. With an encoder a stopped
            belt holds its masks' deadlines, and pulses still last ``pulse_ms`` of real time.
    """

    def __init__(
        self,
        pulse_start: Callable[[bool], None],
        pulse_end: Callable[[bool], None],
        record: RecordFn,
        eject_delay_ms: float,
        pulse_ms: float,
        guard_ms: float,
        max_in_flight: int = 16,
        clock: Callable[[], float] = time.monotonic,
        belt_clock: Callable[[], float] | None = None,
    ) -> None:
        self._pulse_start = pulse_start
        self._pulse_end = pulse_end
        self._record = record
        self.eject_delay_s = eject_delay_ms / 1000.0
        self.pulse_s = pulse_ms / 1000.0
        self.guard_s = guard_ms / 1000.0
        self.max_in_flight = max_in_flight
        self._time = clock
        self._clock = belt_clock or clock
        self._poll_s = _ENCODER_POLL_S if belt_clock is not None else None
        self._timers: list[threading.Timer] = []
        self._events: list[tuple[float, int, str, InFlight]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.in_flight: list[InFlight] = []
        #: Pulses fired since start: counted here, so that a reader attached after the
        #: first mask (the station starts the belt before its web page) misses none.
        self.pulses_fired = 0
        self.late = 0
        self.forced = 0
        self.record_failures = 0
        self.overflows = 0
        #: Called (on this thread, right after the pulse starts) for every fired mask.
        self.on_fired: list[Callable[[InFlight], None]] = []

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="actuator", daemon=True)
        self._thread.start()

    def stop(self, drain: bool = True) -> None:
        """Stop; with ``drain`` first settle and fire every mask still in flight."""
        if drain:
            end = self._time() + self.eject_delay_s + self.pulse_s + 1.0
            while self._time() < end:
                with self._cond:
                    if not self._events and not self.in_flight:
                        break
                time.sleep(0.01)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for timer in self._timers:  # let pulses already started end cleanly
            timer.join(timeout=self.pulse_s + 1)
        # Never leave an output energised: end any pulse still scheduled.
        with self._cond:
            pending = [item for _, _, action, item in self._events if action == "pulse_end"]
            self._events.clear()
        for item in pending:
            self._do_pulse_end(item)

    # -- API for the trigger and the inspection worker -------------------------------
    def belt_position(self) -> float:
        """Now, on the belt clock (take it at the trigger edge and pass it to track)."""
        return self._clock()

    def track(
        self,
        t0_s: float,
        belt_t0: float | None = None,
        *,
        spec_label: str | None = None,
        batch_id: str | None = None,
    ) -> InFlight:
        """Register a triggered mask; its deadline counts from its trigger instant.

        ``belt_t0`` is :meth:`belt_position` taken at the trigger edge; it defaults to
        ``t0_s``, which is right when the belt clock is the monotonic clock.
        """
        start = t0_s if belt_t0 is None else belt_t0
        item = InFlight(
            t0_s=t0_s,
            deadline_s=start + self.eject_delay_s,
            spec_label=spec_label,
            batch_id=batch_id,
        )
        with self._cond:
            if len(self.in_flight) >= self.max_in_flight:
                self.overflows += 1
                log.warning("more than %d masks in flight", self.max_in_flight)
            self.in_flight.append(item)
            self._push(item.deadline_s - self.guard_s, "settle", item)
            self._push(item.deadline_s, "fire", item)
        return item

    def settle(self, item: InFlight, result: InspectionResult) -> bool:
        """Record the worker's verdict if it is still in time; False means it was late."""
        if not item.lock.acquire(timeout=max(0.0, item.deadline_s - self._clock())):
            return False
        try:
            if item.settled_by is not None or self._clock() > item.deadline_s - self.guard_s:
                return False
            item.result = result
            item.settled_by = "inspection"
            self._commit(item)
            return True
        finally:
            item.lock.release()

    # -- internals -------------------------------------------------------------------
    def _push(self, at_s: float, action: str, item: InFlight) -> None:
        heapq.heappush(self._events, (at_s, next(self._seq), action, item))
        self._cond.notify_all()

    def _commit(self, item: InFlight) -> None:
        try:
            self._record(item)
            item.recorded = True
        except Exception:
            self.record_failures += 1
            log.exception("could not record mask %s; it will be rejected", item.mask_id)
            if item.result is None or item.result.verdict == "accept":
                item.result = late_result("QC log write failed")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (
                    not self._events or self._events[0][0] > self._clock() + 0.002
                ):
                    timeout = (self._events[0][0] - self._clock()) if self._events else 0.5
                    if self._poll_s is not None:  # belt clock: it may run faster than time
                        timeout = min(timeout, self._poll_s + 0.002)
                    self._cond.wait(max(0.0005, min(timeout - 0.002, 0.5)))
                if self._stop:
                    return
                at_s, _, action, item = heapq.heappop(self._events)
            while self._clock() < at_s:  # last ~2 ms: short sleeps for pulse accuracy
                time.sleep(0.0002)
            try:
                getattr(self, f"_do_{action}")(item)
            except Exception:
                log.exception("actuator action %s failed", action)

    def _do_settle(self, item: InFlight) -> None:
        if not item.lock.acquire(timeout=max(0.0, item.deadline_s - self._clock())):
            return  # the worker is mid-commit; _do_fire rejects if it never finishes
        try:
            if item.settled_by is None:
                self.late += 1
                item.result = late_result("inspection not ready before the ejector deadline")
                item.settled_by = "late"
                self._commit(item)
        finally:
            item.lock.release()

    def _do_fire(self, item: InFlight) -> None:
        if item.lock.acquire(blocking=False):
            try:
                reject = item.reject if item.settled_by is not None else True
                if item.settled_by is None:
                    item.settled_by = "forced"
            finally:
                item.lock.release()
        else:
            reject = True
            self.forced += 1
            log.warning("mask %s still being recorded at its deadline: rejected", item.mask_id)
        self._pulse_start(reject)
        item.fired = "reject" if reject else "accept"
        item.fired_at_s = self._time()
        self.pulses_fired += 1
        for callback in self.on_fired:
            try:
                callback(item)
            except Exception:
                log.exception("on_fired callback failed")
        if self._poll_s is None:
            with self._cond:
                self._push(item.fired_at_s + self.pulse_s, "pulse_end", item)
        else:  # the pulse is real time even if the belt stops
            timer = threading.Timer(self.pulse_s, self._do_pulse_end, (item,))
            timer.daemon = True
            timer.start()
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]

    def _do_pulse_end(self, item: InFlight) -> None:
        self._pulse_end(item.fired == "reject")
        with self._cond:
            if item in self.in_flight:
                self.in_flight.remove(item)
