"""The whole simulated line with MockFactory pins: pulses match verdicts and deadlines.

Masks with random defects ride the belt; the photo-eye, camera, inspection, QC log
and ejector all run for real. The pins' recorded histories must show one reject
pulse per rejected mask within ±10 ms of its deadline, and accept pulses only for
accepted ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from station.actuator import InFlight
from station.config import load_config
from station.runtime import build_simulated_runtime
from station.simulator import SimulatedLine, line_timing_ms

pytestmark = pytest.mark.slow

TOLERANCE_S = 0.010
N_MASKS = 8


def rising_edges(pin, t_clear: float) -> list[float]:
    t, out = t_clear, []
    for state in pin.states[1:]:
        t += state.timestamp
        if state.state:
            out.append(t)
    return out


def test_pulses_follow_verdicts_and_deadlines(tmp_path: Path) -> None:
    overrides = {
        "storage": {"data_dir": str(tmp_path)},
        "simulator": {"seed": 21, "defect_rate": 0.5, "max_masks": N_MASKS},
    }
    cfg = load_config(overrides=overrides)
    cfg = load_config(overrides={**overrides, "line": line_timing_ms(cfg)})
    line = SimulatedLine(cfg)
    rt = build_simulated_runtime(cfg, line, serve=False)
    fired: list[InFlight] = []
    rt.station.actuator.on_fired.append(fired.append)
    acc, rej = rt.io.accept.pin, rt.io.reject.pin
    t_clear = time.monotonic()
    acc.clear_states()
    rej.clear_states()
    try:
        deadline = time.monotonic() + 120
        while len(fired) < N_MASKS and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # the last pulse ends
    finally:
        rt.close(keep_store=True)
    assert len(fired) == N_MASKS
    verdicts = [i.result.verdict if i.result else None for i in fired]
    assert "accept" in verdicts and any(v != "accept" for v in verdicts), verdicts
    want_rej = [i.deadline_s for i in fired if i.fired == "reject"]
    want_acc = [i.deadline_s for i in fired if i.fired == "accept"]
    assert [i.fired == "accept" for i in fired] == [v == "accept" for v in verdicts]
    got_rej, got_acc = rising_edges(rej, t_clear), rising_edges(acc, t_clear)
    assert len(got_rej) == len(want_rej) and len(got_acc) == len(want_acc)
    for got, want in zip(got_rej + got_acc, want_rej + want_acc, strict=True):
        assert abs(got - want) <= TOLERANCE_S, f"pulse {1000 * (got - want):+.1f} ms off"
    counts = rt.store.counts()
    rt.store.close()
    assert counts["total"] == N_MASKS
    assert counts["accepted"] == len(want_acc)
