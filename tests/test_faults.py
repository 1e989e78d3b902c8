"""Faults injected into a running station: not one mask accepted while a fault lasts.

The whole runtime runs (``build_runtime``: QC log in a real SQLite file, image archive,
actuator, gpiozero ``MockFactory`` pins, the API through FastAPI's TestClient). Masks
arrive on the photo-eye ``MockPin``; the camera is a small source over rendered
frames (a good mask, or a defective one) whose failures the test switches on and
off. For each fault the accept output's recorded history must show no rising edge
while it lasts, the fault must show in ``/api/v1/status`` and ``/metrics``, and the
line must accept good masks again once it clears.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory
from helpers.line_faults import (
    BrokenDisk,
    FaultyCamera,
    JumpingClock,
    Line,
    fault_codes,
    metric,
    wait_until,
)

from station.actuator import InFlight
from station.api import create_app
from station.config import load_config, load_spec
from station.gpio import Light
from station.health import AlarmBoard, ClockMonitor
from station.runtime import build_runtime
from vision.calibration import Calibration
from vision.pipeline import InspectionContext
from vision.synth import Renderer, SimCamera, sample_look, sample_mask
from vision.types import InspectionResult

#: Belt timing of these tests: short, yet room for an inspection on a loaded machine.
EJECT_DELAY_MS = 1000.0
FRAME_WAIT_MS = 400.0
STALL_TIMEOUT_S = 0.5
#: How far from its deadline a pulse may rise here. The ejector's own ±10 ms is held by
#: tests/test_line_pulses.py; what these faults would cause is far larger (a busy log
#: held writes for SQLite's 5 s busy timeout, a clock step moves wall time by hours),
#: and this machine, shared, was seen to deschedule the actuator for 0.1 s.
PULSE_TOLERANCE_S = 0.25


@dataclass(frozen=True)
class Scene:
    good: np.ndarray
    defective: np.ndarray
    calibration: Calibration


@pytest.fixture(scope="module")
def scene() -> Scene:
    """A good mask and an ear-loop reject, rendered once by the simulator's renderer."""
    spec = load_spec(load_config().inspection.spec_path)
    renderer = Renderer(SimCamera())
    images = []
    for defect, seed in ((None, 4), ("ear_loop", 6)):
        rng = np.random.default_rng(seed)
        mask = sample_mask(rng, spec, defect, max_angle_deg=5)
        images.append(renderer.render([mask], sample_look(rng), rng)[0])
    return Scene(images[0], images[1], renderer.calibration)


@pytest.fixture
def line(tmp_path: Path, scene: Scene) -> Iterator[Line]:
    cfg = load_config(
        overrides={
            "storage": {"data_dir": str(tmp_path / "data"), "archive_accept_sample": 0.0},
            "line": {
                "capture_delay_ms": 0.0,
                "eject_delay_ms": EJECT_DELAY_MS,
                "frame_wait_ms": FRAME_WAIT_MS,
            },
            "camera": {"stall_timeout_s": STALL_TIMEOUT_S, "backoff_initial_s": 0.05},
        }
    )
    camera = FaultyCamera(scene.good)
    rt = build_runtime(
        cfg,
        calibration=scene.calibration,
        source=camera,
        pin_factory=MockFactory(),
        serve=False,
    )
    app = create_app(rt.store, station=rt, config=cfg, token="t" * 32, data_dir=rt.data_dir)
    try:
        with TestClient(app) as client:
            ln = Line(rt, camera, client)
            rt.station.actuator.on_fired.append(ln.fired.append)
            ln.t_clear_s = time.monotonic()
            rt.io.accept.pin.clear_states()
            rt.io.reject.pin.clear_states()
            wait_until(lambda: rt.station.feed.frames_read > 0, "the first frames")
            wait_until(lambda: rt.station.state == "running", "the station to run")
            first = ln.mask()
            assert first.fired == "accept", first.result  # the line works before the fault
            yield ln
    finally:
        camera.released.set()
        rt.close()


def assert_recovered(line: Line, code: str) -> None:
    """After the fault: the alarm is cleared everywhere and good masks are accepted."""
    item = line.mask()
    assert item.fired == "accept", item.result
    wait_until(lambda: line.rt.station.state == "running", "the station to run again")
    status = line.status()
    assert code not in fault_codes(status), status["faults"]
    assert status["alarms"][code]["active"] is False and status["alarms"][code]["raised"] >= 1
    assert line.rt.io.light is Light.GREEN and not line.rt.io.fault.value
    assert metric(line.metrics(), "qc_alarm_active", code=code) == 0.0


def assert_pulses_on_deadlines(line: Line, items: list[InFlight]) -> None:
    """Every pulse rose at its mask's deadline: a late reject lets a mask through."""
    edges = line.rises("reject", 0.0) + line.rises("accept", 0.0)
    for item in items:
        assert item.fired_at_s is not None
        assert min(abs(e - item.deadline_s) for e in edges) <= PULSE_TOLERANCE_S, item


# -- camera ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["silent", pytest.param("hang", marks=pytest.mark.slow)])
def test_camera_stall_rejects_every_mask_until_frames_return(line: Line, mode: str) -> None:
    line.camera.released.clear()
    line.camera.mode = mode
    start_s = time.monotonic()
    wait_until(lambda: line.rt.station.state == "warning", "the stall to be noticed")
    during = line.masks(2)
    assert [i.fired for i in during] == ["reject", "reject"]
    assert all(i.result is not None and i.result.defect_codes == ["camera"] for i in during)
    assert line.rises("accept", start_s) == []
    status = line.status()
    assert status["alarms"]["camera"]["active"] and "camera" in fault_codes(status)
    assert line.rt.io.light is Light.AMBER and line.rt.io.fault.value
    text = line.metrics()
    assert metric(text, "qc_alarm_active", code="camera") == 1.0
    assert metric(text, "qc_camera_misses_total") >= 2
    assert metric(text, "qc_station_state", state="warning") == 1.0

    line.camera.mode = "ok"
    line.camera.released.set()  # a hung read returns its stale frame: it must be skipped
    wait_until(lambda: line.rt.station.state == "running", "frames to come back")
    assert_recovered(line, "camera")


# -- the inspection (the model session) --------------------------------------------------
def test_inspection_errors_reject_and_turn_red_until_the_session_works(line: Line) -> None:
    real = line.rt.station.inspector
    broken = threading.Event()
    broken.set()

    def session(image: np.ndarray | None, ctx: InspectionContext) -> InspectionResult:
        if broken.is_set():
            raise RuntimeError("onnxruntime: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION")
        return real(image, ctx)

    line.rt.station.inspector = session
    start_s = time.monotonic()
    during = line.masks(3)
    assert [i.fired for i in during] == ["reject"] * 3
    assert all(i.result is not None and i.result.verdict == "error" for i in during)
    assert "ONNXRuntimeError" in during[0].result.message
    assert line.rises("accept", start_s) == []
    wait_until(lambda: line.rt.station.state == "fault", "a failing session to be a fault")
    assert line.rt.io.light is Light.RED and line.rt.io.fault.value
    status = line.status()
    assert fault_codes(status)["inspection"] == "fault"
    assert status["errors"] == 3
    text = line.metrics()
    assert metric(text, "qc_alarm_active", code="inspection", severity="fault") == 1.0
    assert metric(text, "qc_inspection_errors_total") == 3
    assert metric(text, "qc_inspections_total", verdict="error") == 3

    broken.clear()
    assert_recovered(line, "inspection")


@pytest.mark.slow
def test_a_hung_session_is_rejected_late(line: Line) -> None:
    real = line.rt.station.inspector

    def hung(image: np.ndarray | None, ctx: InspectionContext) -> InspectionResult:
        time.sleep(EJECT_DELAY_MS / 1000)
        return real(image, ctx)

    line.rt.station.inspector = hung
    start_s = time.monotonic()
    item = line.mask()
    assert item.fired == "reject" and item.result is not None
    assert item.result.defect_codes == ["late"]
    assert line.rises("accept", start_s) == []
    assert line.status()["late"] == 1
    assert metric(line.metrics(), "qc_late_decisions_total") == 1
    time.sleep(EJECT_DELAY_MS / 1000)  # the hung call ends
    line.rt.station.inspector = real
    assert line.mask().fired == "accept"


# -- the image archive ------------------------------------------------------------------
@pytest.mark.parametrize(
    "errno_code",
    [errno.ENOSPC, pytest.param(errno.EROFS, marks=pytest.mark.slow)],
    ids=["full", "read-only"],
)
def test_archive_disk_full_or_read_only_rejects_until_it_writes(
    line: Line, scene: Scene, errno_code: int
) -> None:
    archive = line.rt.archive
    disk = BrokenDisk(errno_code, archive.statvfs)
    archive.opener, archive.statvfs = disk.opener, disk.statvfs
    start_s = time.monotonic()
    during = line.masks(2)  # good masks; none of them sampled for the archive
    line.camera.image = scene.defective
    during.append(line.mask())
    line.camera.image = scene.good
    assert [i.fired for i in during] == ["reject"] * 3
    assert all(i.result is not None and "archive" in i.result.defect_codes for i in during[:2])
    assert line.rises("accept", start_s) == []
    rows = [line.rt.store.get(i.mask_id) for i in during]
    assert all(r is not None and r["verdict"] == "reject" for r in rows)
    assert all(r["image_raw_path"] is None for r in rows)  # nothing half-written either
    assert not list(archive.root.rglob("*.tmp"))
    wait_until(lambda: line.rt.station.state == "fault", "the archive fault")
    status = line.status()
    assert status["archive"]["failing"] and fault_codes(status)["archive"] == "fault"
    # The kernel's words: from the failed write, or from statvfs before any write.
    message = status["alarms"]["archive"]["message"]
    said = (os.strerror(errno_code), "no space" if errno_code == errno.ENOSPC else "read-only")
    assert any(words in message for words in said), message
    text = line.metrics()
    assert metric(text, "qc_archive_failing") == 1.0
    assert metric(text, "qc_archive_rejects_total") == 2
    assert metric(text, "qc_alarm_active", code="archive") == 1.0

    archive.opener, archive.statvfs = open, disk.real_statvfs
    assert_recovered(line, "archive")
    assert not archive.failing and archive.health().files >= 2  # the probe's images


# -- the QC log -------------------------------------------------------------------------
def test_locked_database_rejects_on_time_then_writes_the_held_rows(line: Line) -> None:
    other = sqlite3.connect(line.rt.store.path, isolation_level=None, timeout=0)
    other.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    start_s = time.monotonic()
    try:
        during = line.masks(3)
        assert [i.fired for i in during] == ["reject"] * 3
        assert line.rises("accept", start_s) == []
        assert_pulses_on_deadlines(line, during)
        # A mask rejected at its deadline may still be handing its row over: wait.
        wait_until(lambda: line.rt.recorder.backlog_rows() == 3, "three held rows")
        wait_until(lambda: line.rt.station.alarms.is_active("record"), "the record fault")
        status = line.status()  # the API still reads the log (WAL)
        assert fault_codes(status)["record"] == "fault"
        assert status["recording"]["backlog_rows"] == 3
        assert line.rt.station.state == "fault" or line.rt.io.light is Light.RED
        text = line.metrics()
        assert metric(text, "qc_record_backlog_rows") == 3
        assert metric(text, "qc_alarm_active", code="record") == 1.0
        assert metric(text, "qc_record_failures_total") == 3
        assert all(line.rt.store.get(i.mask_id) is None for i in during)
    finally:
        other.execute("ROLLBACK")
        other.close()
    wait_until(lambda: line.rt.recorder.backlog_rows() == 0, "the held rows to be written")
    rows = [line.rt.store.get(i.mask_id) for i in during]
    assert all(r is not None and r["verdict"] == "reject" for r in rows), rows
    assert all("late" in [d["code"] for d in r["defects"]] for r in rows if r is not None)
    assert line.status()["recording"]["written_late"] == 3
    assert_recovered(line, "record")


# -- the wall clock ---------------------------------------------------------------------
def test_wall_clock_jumps_change_no_decision_and_show_as_a_warning(
    line: Line, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = JumpingClock(monkeypatch)
    before = line.rt.store.get(line.fired[0].mask_id)
    assert before is not None
    items = []
    for n, jump_s in enumerate((3600.0, -7200.0), 1):  # NTP stepping a Pi without RTC, back
        clock.jump(jump_s)
        wait_until(lambda n=n: line.rt.station.clock_monitor.jumps == n, "the jump")
        items.append(line.mask())
        line.camera.image = scene.defective
        items.append(line.mask())
        line.camera.image = scene.good
    # Deadlines run on the monotonic clock: verdicts and pulses are what they would be.
    assert [i.fired for i in items] == ["accept", "reject", "accept", "reject"]
    assert_pulses_on_deadlines(line, items)
    status = line.status()
    assert fault_codes(status)["clock"] == "warning" and status["clock_jumps"] == 2
    assert line.rt.io.light is Light.GREEN  # a warning: the line is inspected properly
    assert metric(line.metrics(), "qc_clock_jumps_total") == 2
    assert metric(line.metrics(), "qc_alarm_active", code="clock", severity="warning") == 1.0
    # The log's timestamps follow the wall clock (its order is seq, not ts_utc); a
    # supervisor can still change batch although "now" is before the open batch began.
    last = line.rt.store.get(items[-1].mask_id)
    assert last is not None and last["ts_utc"] < before["ts_utc"]
    first = line.rt.start_batch(order_number="before-the-jump")
    clock.jump(-600.0)
    second = line.rt.start_batch(order_number="after-the-jump")
    current = line.rt.store.current_batch()
    assert current is not None and current.id == second.id != first.id
    assert line.rt.store.get_batch(first.id).closed_utc == second.started_utc
    line.rt.station.clock_monitor.hold_s = 0.0  # the warning lapses once the clock is steady
    monkeypatch.undo()
    wait_until(lambda: not line.rt.station.alarms.is_active("clock"), "the clock warning to lapse")
    assert_recovered(line, "clock")


# -- the pieces, without a line -------------------------------------------------------------
def test_clock_monitor_reports_steps_not_drift() -> None:
    mono, wall = [0.0], [1_000_000.0]
    board = AlarmBoard(clock=lambda: mono[0])
    monitor = ClockMonitor(board, hold_s=60.0, wall=lambda: wall[0], mono=lambda: mono[0])
    for _ in range(10):  # NTP slewing: a few milliseconds a second
        mono[0] += 1.0
        wall[0] += 1.003
        assert monitor.check() == 0.0
    wall[0] -= 3600.0
    assert monitor.check() == pytest.approx(-3600.0)
    assert board.active("warning") == ["clock"] and monitor.jumps == 1
    mono[0] += 61.0
    wall[0] += 61.0
    monitor.check()
    assert board.active() == [] and board.snapshot()["clock"]["raised"] == 1


def test_a_write_to_a_locked_log_gives_up_in_time(tmp_path: Path) -> None:
    from station.store import InspectionRecord, QCStore, StoreBusyError

    wait_s = 0.2
    with QCStore(tmp_path / "qc.sqlite3") as store:
        other = sqlite3.connect(store.path, isolation_level=None, timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(StoreBusyError):
            store.record(InspectionRecord("accept", "st", "ws"), timeout_s=wait_s)
        waited_s = time.monotonic() - started
        other.execute("ROLLBACK")
        other.close()
        store.record(InspectionRecord("accept", "st", "ws"), timeout_s=wait_s)
        assert store.counts()["total"] == 1
    # Bounded by the caller, not by the connection's 5 s busy timeout.
    assert waited_s < store._busy_timeout_ms / 1000 / 2
