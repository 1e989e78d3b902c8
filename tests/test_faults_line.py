"""Faults while the simulated belt runs: no mask triggered during a fault is accepted.

The demo's line (rendered masks with random defects, photo-eye and camera on the
simulator's clock, MockFactory pins) runs through the real runtime. One fault after
another is switched on for a few masks — the QC log locked by another connection, the
archive's disk full, the model session raising — then off. Every mask whose trigger
and ejection fell inside a fault is rejected, no accept pulse rises while it lasts, and after each
one the line accepts good masks again.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers.line_faults import BrokenDisk, wait_until

from station.actuator import InFlight
from station.config import load_config
from station.runtime import Runtime, build_simulated_runtime
from station.simulator import SimulatedLine, line_timing_ms
from vision.pipeline import InspectionContext
from vision.types import InspectionResult

pytestmark = pytest.mark.slow

#: Masks triggered while each fault lasts.
MASKS_PER_FAULT = 3
#: Masks a fault-free line needs, at most, to accept one again (30 % defect rate).
MASKS_TO_RECOVER = 12
#: Wall time allowed per mask on a loaded machine, seconds.
WAIT_PER_MASK_S = 15.0


@contextmanager
def locked_log(rt: Runtime) -> Iterator[None]:
    other = sqlite3.connect(rt.store.path, isolation_level=None, timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def full_disk(rt: Runtime) -> Iterator[None]:
    disk = BrokenDisk(errno.ENOSPC, rt.archive.statvfs)
    rt.archive.opener, rt.archive.statvfs = disk.opener, disk.statvfs
    try:
        yield
    finally:
        rt.archive.opener, rt.archive.statvfs = open, disk.real_statvfs


@contextmanager
def failing_session(rt: Runtime) -> Iterator[None]:
    real = rt.station.inspector

    def session(image: np.ndarray | None, ctx: InspectionContext) -> InspectionResult:
        raise RuntimeError("onnxruntime: session run failed")

    rt.station.inspector = session
    try:
        yield
    finally:
        rt.station.inspector = real


FAULTS: dict[str, Callable[[Runtime], contextmanager]] = {  # type: ignore[type-arg]
    "record": locked_log,
    "archive": full_disk,
    "inspection": failing_session,
}


def accept_rises(rt: Runtime, t_clear_s: float) -> list[float]:
    t, out = t_clear_s, []
    for state in list(rt.io.accept.pin.states)[1:]:
        t += state.timestamp
        if state.state:
            out.append(t)
    return out


def test_no_mask_triggered_during_a_fault_is_accepted(tmp_path: Path) -> None:
    overrides = {
        "storage": {"data_dir": str(tmp_path)},
        "simulator": {"seed": 31, "defect_rate": 0.3, "sprite_pool": 6},
    }
    cfg = load_config(overrides=overrides)
    cfg = load_config(overrides={**overrides, "line": line_timing_ms(cfg)})
    belt = SimulatedLine(cfg)
    rt = build_simulated_runtime(cfg, belt, serve=False)
    fired: list[InFlight] = []
    rt.station.actuator.on_fired.append(fired.append)
    t_clear_s = time.monotonic()
    rt.io.accept.pin.clear_states()
    eject_s = cfg.line.eject_delay_ms / 1000
    windows: dict[str, tuple[float, float]] = {}
    try:

        def accepted_after(t_s: float) -> bool:
            return any(i.fired == "accept" and i.t0_s >= t_s for i in list(fired))

        wait_until(lambda: accepted_after(0.0), "a first accept", MASKS_TO_RECOVER * 3)
        for code, inject in FAULTS.items():
            start_s = time.monotonic()
            with inject(rt):
                wait_until(
                    lambda s=start_s: sum(i.t0_s >= s for i in list(fired)) >= MASKS_PER_FAULT,
                    f"masks under the {code} fault",
                    MASKS_PER_FAULT * WAIT_PER_MASK_S,
                )
                wait_until(lambda c=code: rt.station.alarms.is_active(c), f"the {code} alarm", 5.0)
                assert rt.status()["alarms"][code]["active"]
            end_s = time.monotonic()
            windows[code] = (start_s, end_s)
            wait_until(
                lambda e=end_s: accepted_after(e),
                f"an accept after the {code} fault",
                MASKS_TO_RECOVER * WAIT_PER_MASK_S,
            )
            assert not rt.station.alarms.is_active(code)
        rises = accept_rises(rt, t_clear_s)  # before close: closing releases the pins
    finally:
        rt.close(keep_store=True)
    for code, (start_s, end_s) in windows.items():
        # Masks decided wholly inside the fault: triggered after it began, at the
        # ejector before it ended (a mask triggered just before the end may be decided
        # after it, and rightly accepted).
        during = [i for i in fired if start_s <= i.t0_s and i.t0_s + eject_s <= end_s]
        assert len(during) >= MASKS_PER_FAULT
        accepted = [(i.mask_id, i.settled_by, i.result) for i in during if i.fired != "reject"]
        assert not accepted, (code, accepted)
        # On the pin: no accept pulse for any mask that reached the trigger in the fault.
        assert not [t for t in rises if start_s + eject_s < t < end_s], code
    rows = [rt.store.get(i.mask_id) for i in fired]
    rt.store.close()
    assert all(r is not None for r in rows), "a fired mask has no row (held rows are written)"
    by_id = {r["id"]: r["verdict"] for r in rows if r is not None}
    mismatched = [
        (i.fired, i.settled_by, by_id[i.mask_id])
        for i in fired
        if (by_id[i.mask_id] == "accept") != (i.fired == "accept")
    ]
    assert not mismatched, "the log must say what the ejector did"
