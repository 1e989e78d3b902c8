"""Pulse timing and fail-safe settling, asserted on gpiozero MockPin histories."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from station.actuator import Actuator, InFlight
from station.config.gpio import GpioConfig
from station.gpio import StationIO
from vision.types import Defect, InspectionResult

EJECT_MS = 500.0
PULSE_MS = 40.0
GUARD_MS = 25.0
TOLERANCE_S = 0.010


@pytest.fixture(autouse=True)
def station_switch_interval():
    """Run with the interpreter switch interval the station itself sets."""
    from station.runtime import GIL_SWITCH_INTERVAL_S

    before = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    yield
    sys.setswitchinterval(before)


@pytest.fixture
def io() -> StationIO:
    station_io = StationIO(GpioConfig(pin_factory="mock"), pin_factory=MockFactory())
    yield station_io
    station_io.close()


def rising_edges(pin, t_clear: float) -> list[float]:
    """Absolute monotonic times of the pin's rising edges (MockPin stores deltas)."""
    t, out = t_clear, []
    for state in pin.states[1:]:
        t += state.timestamp
        if state.state:
            out.append(t)
    return out


def accept() -> InspectionResult:
    return InspectionResult(verdict="accept")


def reject() -> InspectionResult:
    return InspectionResult(verdict="reject", defects=[Defect("dimension", "largeur")])


def make(io: StationIO, recorded: list[InFlight], record_delay_s: float = 0.0) -> Actuator:
    def record(item: InFlight) -> None:
        time.sleep(record_delay_s)
        recorded.append(item)

    act = Actuator(io.pulse_start, io.pulse_end, record, EJECT_MS, PULSE_MS, GUARD_MS)
    act.start()
    return act


def test_pulses_fire_at_deadline_only_for_their_verdict(io: StationIO) -> None:
    recorded: list[InFlight] = []
    act = make(io, recorded)
    acc_pin, rej_pin = io.accept.pin, io.reject.pin
    t_clear = time.monotonic()
    acc_pin.clear_states()
    rej_pin.clear_states()
    verdicts = [accept(), reject(), reject(), accept(), reject(), accept()]
    items = []
    for res in verdicts:  # several masks in flight at once, 50 ms apart
        item = act.track(time.monotonic())
        items.append((item, res))
        time.sleep(0.05)
    for item, res in items:
        assert act.settle(item, res)
    act.stop(drain=True)
    want_rej = [i.deadline_s for i, r in items if r.verdict == "reject"]
    want_acc = [i.deadline_s for i, r in items if r.verdict == "accept"]
    got_rej, got_acc = rising_edges(rej_pin, t_clear), rising_edges(acc_pin, t_clear)
    assert len(got_rej) == len(want_rej) and len(got_acc) == len(want_acc)
    for got, want in zip(got_rej + got_acc, want_rej + want_acc, strict=True):
        assert abs(got - want) <= TOLERANCE_S, got - want
    assert [i.mask_id for i in recorded] == [i.mask_id for i, _ in items]
    assert not rej_pin.state and not acc_pin.state


def test_late_verdict_is_rejected_and_recorded_before_the_pulse(io: StationIO) -> None:
    recorded: list[InFlight] = []
    act = make(io, recorded)
    item = act.track(time.monotonic())
    time.sleep((EJECT_MS - GUARD_MS) / 1000 + 0.01)
    assert not act.settle(item, accept()), "an accept after the guard must not count"
    act.stop(drain=True)
    assert item.fired == "reject"
    assert item.result is not None and item.result.defect_codes == ["late"]
    assert recorded == [item] and act.late == 1


def test_failed_record_still_rejects(io: StationIO) -> None:
    def record(_item: InFlight) -> None:
        raise OSError("disk full")

    act = Actuator(io.pulse_start, io.pulse_end, record, EJECT_MS, PULSE_MS, GUARD_MS)
    act.start()
    item = act.track(time.monotonic())
    act.settle(item, accept())
    act.stop(drain=True)
    assert item.fired == "reject" and act.record_failures == 1


def test_worker_stuck_in_commit_gets_a_reject_on_time(io: StationIO) -> None:
    # The commit outlasts the deadline by a wide margin: with a margin of a few ms a
    # late-scheduled actuator thread (busy CI machine) saw the commit finished and
    # fired the worker's accept, and the test failed for the wrong reason.
    recorded: list[InFlight] = []
    act = make(io, recorded, record_delay_s=EJECT_MS / 1000 * 2)
    t_clear = time.monotonic()
    io.reject.pin.clear_states()
    item = act.track(time.monotonic())
    worker = threading.Thread(target=act.settle, args=(item, accept()))
    worker.start()
    worker.join()
    act.stop(drain=True)
    (edge,) = rising_edges(io.reject.pin, t_clear)
    assert abs(edge - item.deadline_s) <= TOLERANCE_S
    assert act.forced == 1


def test_encoder_belt_clock_holds_the_deadline_while_the_belt_stops(io: StationIO) -> None:
    from station.encoder import BeltClock

    factory = io.pin_factory
    belt = BeltClock(25, counts_per_mm=1.0, nominal_speed_mm_s=100.0, pin_factory=factory)
    enc = factory.pin(25)
    recorded: list[InFlight] = []
    act = Actuator(
        io.pulse_start, io.pulse_end, recorded.append, 500.0, PULSE_MS, GUARD_MS, belt_clock=belt
    )
    act.start()
    try:
        item = act.track(time.monotonic(), act.belt_position())
        assert act.settle(item, reject())

        def travel(mm: int) -> None:
            for _ in range(mm):
                enc.drive_low()
                enc.drive_high()

        travel(30)  # 0.3 belt-seconds of 0.5: not yet at the ejector
        time.sleep(0.6)  # the belt stops: time passes, the mask does not move
        assert item.fired is None
        travel(25)
        deadline = time.monotonic() + 1
        while item.fired is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert item.fired == "reject"
    finally:
        act.stop(drain=False)
        belt.close()
