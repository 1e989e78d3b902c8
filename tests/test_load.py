"""The load benchmark's short version: a real demo, real HTTP clients on loopback.

``scripts/load.py load`` is the benchmark (50 clients, 60 s; figures in
docs/PERFORMANCE.md). This runs its code path with 10 clients for 10 s and checks
what must hold on any machine: no request fails, every client's event stream
delivers the masks inspected meanwhile, and no decision comes late. Latency ratios
are not asserted: they are measured, not tested.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "load.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qc_load_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_ten_clients_for_ten_seconds_no_request_fails() -> None:
    load = load_script()
    args = argparse.Namespace(
        clients=10, seconds=10.0, settle_s=3.0, seed=3, rounds=1, client_nice=0
    )
    result = load.cmd_load(args)
    assert result["request_failures"] == 0, result["errors"]
    assert result["requests"] > 10 * len(load.POLLED_PATHS)
    assert result["with_load"]["masks"] >= 1, result
    # Every open stream saw the masks recorded while it was open (the window's first
    # and last masks may fall outside a stream's lifetime).
    assert result["sse_events_received"] >= 10 * (result["with_load"]["masks"] - 2)
    assert result["late_decisions_under_load"] == 0, result


def test_page_clients_do_what_an_open_page_does() -> None:
    """The ``page`` profile: every client loads the page's start-up data (eight GETs),
    holds its stream and hears every mask; nothing fails, nothing comes late."""
    load = load_script()
    args = argparse.Namespace(
        clients=5, seconds=10.0, settle_s=3.0, seed=3, rounds=1, client_nice=0, profile="page"
    )
    result = load.cmd_load(args)
    assert result["profile"] == "page"
    assert result["request_failures"] == 0, result["errors"]
    assert result["requests"] >= 5 * 9  # 8 start-up GETs and the event stream each
    assert result["with_load"]["masks"] >= 1, result
    assert result["sse_events_received"] >= 5 * (result["with_load"]["masks"] - 2)
    assert result["late_decisions_under_load"] == 0, result


def test_control_profile_runs_niced_busy_loops_for_the_window() -> None:
    """The control's busy loops start and stop with the window they stand in for."""
    load = load_script()
    t0 = time.monotonic()
    load.busy_cores(1, 1.0)
    assert 0.9 < time.monotonic() - t0 < 5.0


def test_memory_and_process_readings_are_real() -> None:
    """The /proc readings the benchmarks rely on, on this very process."""
    load = load_script()
    mem = load.proc_memory_mb(os.getpid())
    assert 10 < mem["VmRSS"] <= mem["VmHWM"]
    assert load.proc_cpu_s(os.getpid()) > 0
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert load.percentile([], 99) is None
