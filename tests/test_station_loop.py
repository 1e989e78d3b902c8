"""The inspection loop with gpiozero's MockFactory: fail-safe verdicts and the stack light.

The camera here is a small in-test source over one rendered frame, so each test
controls exactly when frames arrive; the full simulated line runs in the slow tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from station.actuator import InFlight
from station.camera.base import CameraSource, Frame, ReopeningSource
from station.config import load_config
from station.frames import FrameFeed
from station.gpio import Light, StationIO
from station.loop import Station, Versions
from station.runtime import build_simulated_runtime
from station.simulator import SimulatedLine
from vision.pipeline import InspectionContext, inspect_frame
from vision.spec import PrototypeSpec
from vision.synth import Renderer, SimCamera, sample_look, sample_mask
from vision.types import InspectionResult


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, InspectionContext]:
    renderer = Renderer(SimCamera())
    rng = np.random.default_rng(4)
    spec = PrototypeSpec()
    image, _ = renderer.render(
        [sample_mask(rng, spec, None, max_angle_deg=5)], sample_look(rng), rng
    )
    return image, InspectionContext.create(renderer.calibration, spec)


class StepSource(CameraSource):
    """Hands out the same image every ``period_s`` while ``running`` is set."""

    def __init__(self, image: np.ndarray, period_s: float = 0.05) -> None:
        super().__init__("step")
        self.image, self.period_s = image, period_s
        self.running = threading.Event()
        self.running.set()
        self._open, self._seq = False, 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def read(self, timeout_s: float) -> Frame | None:
        if not self.running.wait(min(timeout_s, self.period_s)):
            return None
        time.sleep(self.period_s)
        self._seq += 1
        return Frame(self.image, time.monotonic(), self._seq, source=self.name)


def make_station(
    image: np.ndarray,
    ctx: InspectionContext,
    inspector: Callable[[np.ndarray | None, InspectionContext], InspectionResult] = inspect_frame,
    gpio: dict[str, object] | None = None,
    **line: float,
) -> tuple[Station, StationIO, StepSource, list[InFlight]]:
    cfg = load_config(
        overrides={
            "gpio": gpio or {},
            "line": {
                "capture_delay_ms": 0.0,
                "eject_delay_ms": 400.0,
                "frame_wait_ms": 200.0,
                **line,
            },
            "camera": {"stall_timeout_s": 0.4, "backoff_initial_s": 0.05},
        }
    )
    io = StationIO(cfg.gpio, pin_factory=MockFactory())
    source = StepSource(image)
    feed = FrameFeed(ReopeningSource(source, stall_timeout_s=0.4, backoff_initial_s=0.05))
    settled: list[InFlight] = []
    station = Station(
        cfg,
        feed,
        io,
        ctx,
        record=lambda item, frame: settled.append(item),
        versions=Versions("spec", "cal"),
        inspector=inspector,
    )
    station.start()
    return station, io, source, settled


def run_one(station: Station, settled: list[InFlight]) -> InFlight:
    n = len(settled)
    station.trigger()
    deadline = time.monotonic() + 5
    while len(settled) == n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # let the pulse fire
    return settled[n]


def test_a_good_mask_is_accepted_and_pulses_accept(scene) -> None:
    image, ctx = scene
    station, io, _src, settled = make_station(image, ctx)
    try:
        item = run_one(station, settled)
    finally:
        station.stop()
        io.close()
    assert item.result is not None and item.result.verdict == "accept", item.result
    assert item.fired == "accept"


def test_settled_counts_a_trigger_from_its_edge_until_its_pulse_ends(scene) -> None:
    """`demo --masks N` and the soak stop on this: a trigger not yet tracked counts."""
    image, ctx = scene
    station, io, _src, settled = make_station(image, ctx)
    try:
        assert station.settled()
        station.trigger()
        assert not station.settled()  # queued, being taken or in flight: all the same
        deadline = time.monotonic() + 5
        while not station.settled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert station.settled()
        assert station.actuator.pulses_fired == 1 and len(settled) == 1
    finally:
        station.stop()
        io.close()


def test_slow_inspection_is_rejected_late(scene) -> None:
    image, ctx = scene

    def slow(img: np.ndarray | None, c: InspectionContext) -> InspectionResult:
        time.sleep(0.6)
        return inspect_frame(img, c)

    station, io, _src, settled = make_station(image, ctx, inspector=slow)
    try:
        item = run_one(station, settled)
    finally:
        station.stop()
        io.close()
    assert item.fired == "reject"
    assert item.result is not None and item.result.defect_codes == ["late"]
    assert station.actuator.late == 1


def test_exception_in_inspection_is_rejected_as_error(scene) -> None:
    image, ctx = scene

    def broken(img: np.ndarray | None, c: InspectionContext) -> InspectionResult:
        raise RuntimeError("model session failed")

    station, io, _src, settled = make_station(image, ctx, inspector=broken)
    try:
        item = run_one(station, settled)
    finally:
        station.stop()
        io.close()
    assert item.fired == "reject"
    assert item.result is not None and item.result.verdict == "error"
    assert "model session failed" in item.result.message


def test_camera_stall_turns_amber_with_fault_then_recovers(scene) -> None:
    image, ctx = scene
    station, io, src, settled = make_station(image, ctx)
    try:
        time.sleep(0.3)
        assert io.light is Light.GREEN and not io.fault.value
        src.running.clear()
        deadline = time.monotonic() + 3
        while io.light is not Light.AMBER and time.monotonic() < deadline:
            time.sleep(0.02)
        assert io.light is Light.AMBER and io.amber.value and io.fault.value
        assert station.status()["state"] == "warning"
        item = run_one(station, settled)  # a mask during the stall is rejected, not accepted
        assert item.fired == "reject" and item.result is not None
        assert item.result.defect_codes == ["camera"]
        src.running.set()
        deadline = time.monotonic() + 3
        while io.light is not Light.GREEN and time.monotonic() < deadline:
            time.sleep(0.02)
        assert io.light is Light.GREEN and not io.fault.value
        assert run_one(station, settled).fired == "accept"
    finally:
        station.stop()
        io.close()


def test_unconfirmed_reject_faults_red_until_the_ejector_answers(scene) -> None:
    image, ctx = scene

    def broken(img: np.ndarray | None, c: InspectionContext) -> InspectionResult:
        raise RuntimeError("forced reject")

    station, io, _src, settled = make_station(
        image,
        ctx,
        inspector=broken,
        gpio={"reject_confirm_pin": 24, "reject_confirm_window_ms": 100},
    )
    confirm = io.reject_confirm.pin
    try:
        assert run_one(station, settled).fired == "reject"  # nobody answers
        deadline = time.monotonic() + 2
        while station.state != "fault" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert station.state == "fault" and io.light is Light.RED and io.fault.value
        assert station.status()["ejector_faults"] == 1
        confirm.drive_low()  # the reed switch closes: the ejector works again
        confirm.drive_high()
        deadline = time.monotonic() + 2
        while station.state != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert io.light is Light.GREEN and not io.fault.value
    finally:
        station.stop()
        io.close()


def test_api_threads_run_below_the_inspection_priority() -> None:
    """The API server thread (and the threads it starts) is niced; its starter is not."""
    import os
    import threading

    from station.api.server import serve_lowered

    seen: dict[str, int] = {}

    class Server:
        def run(self) -> None:
            seen["server"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

            def child() -> None:
                seen["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

            worker = threading.Thread(target=child)
            worker.start()
            worker.join()

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=serve_lowered, args=(Server(), 7))
    thread.start()
    thread.join()
    want = min(base + 7, 19)
    assert seen == {"server": want, "worker": want}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_a_port_in_use_is_refused_at_start_naming_the_key(tmp_path: Path) -> None:
    """The station must not print a page address where another program answers."""
    import socket

    from station.config import ConfigError

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        threads_before = threading.active_count()
        cfg = load_config(overrides={"storage": {"data_dir": str(tmp_path)}, "api": {"port": port}})
        with pytest.raises(ConfigError, match=rf"api\.port: 127\.0\.0\.1:{port} is already in use"):
            build_simulated_runtime(cfg, SimulatedLine(cfg))
    assert threading.active_count() == threads_before
