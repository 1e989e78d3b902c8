"""Benchmarks of a running ``qc-station demo``: load, memory, cold start, throughput.

Each sub-command starts its own demo as a subprocess on a free loopback port with a
fresh data directory, drives it over HTTP only (as a browser or a monitoring system
would), reads the figures from the API and the demo's own QC log, and stops it.
Figures are printed as JSON. These are benchmarks, not tests: the machine is shared,
so they are read as ratios within one run. ``docs/PERFORMANCE.md`` gives the figures.

    python scripts/load.py load --clients 50 --seconds 60
    python scripts/load.py memory --seconds 120
    python scripts/load.py cold-start --runs 5
    python scripts/load.py throughput --seconds 300 --belt-speed-mm-s 450

Traffic goes to 127.0.0.1 only, and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# The sibling module, however this file is loaded (run as a script, or by path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_clients import (
    KEEPALIVE_S,
    POLLED_PATHS,
    REQUEST_TIMEOUT_S,
    ClientStats,
    _page,
    drive_clients,
)

#: Read by tests/test_load.py through this module.
__all__ = ["POLLED_PATHS"]

#: Seconds to wait for a starting demo's API.
STARTUP_TIMEOUT_S = 60.0
#: Seconds a stopping demo gets before it is killed.
STOP_TIMEOUT_S = 30.0
#: Seconds between two memory samples.
MEMORY_SAMPLE_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    """A ``qc-station demo`` subprocess and where to reach it."""

    proc: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    spawned_mono_s: float

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'qc.sqlite3'}?mode=ro", uri=True)


@contextmanager
def run_demo(config_toml: str = "", seed: int = 0, wait: bool = True) -> Iterator[Demo]:
    """Start a demo (with an optional extra TOML config) and stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="qc-bench-") as tmp:
        data = Path(tmp) / "data"
        args = [sys.executable, "-m", "station.cli", "demo", "--data-dir", str(data)]
        port = free_port()
        args += ["--port", str(port), "--seed", str(seed)]
        if config_toml:
            cfg = Path(tmp) / "bench.toml"
            cfg.write_text(config_toml)
            args += ["--config", str(cfg)]
        spawned = time.monotonic()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        demo = Demo(proc, f"http://127.0.0.1:{port}", data, spawned)
        try:
            if wait:
                wait_ready(demo)
            yield demo
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(demo: Demo) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if demo.proc.poll() is not None:
            raise RuntimeError(f"demo exited with {demo.proc.returncode}")
        try:
            if httpx.get(f"{demo.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError("demo did not start")


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, MB (MiB)."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def latencies(demo: Demo, windows: list[tuple[float, float]]) -> dict[str, Any]:
    """Inspection figures of the masks triggered in the windows, from the demo's QC log."""
    rows: list[Any] = []
    with demo.db() as db:
        for since_mono_s, until_mono_s in windows:
            rows += db.execute(
                "SELECT latency_ms, stage_ms_json, defects_json FROM inspections"
                " WHERE t0_mono_s >= ? AND t0_mono_s < ?",
                (since_mono_s, until_mono_s),
            ).fetchall()
    pipeline = [json.loads(s).get("total") for _, s, _ in rows]
    pipeline_ms = [p for p in pipeline if p is not None]
    decision_ms = [lat for lat, _, _ in rows if lat is not None]
    late = sum('"late"' in (d or "") for _, _, d in rows)
    return {
        "masks": len(rows),
        "pipeline_p50_ms": percentile(pipeline_ms, 50),
        "pipeline_p99_ms": percentile(pipeline_ms, 99),
        "capture_to_decision_p50_ms": percentile(decision_ms, 50),
        "capture_to_decision_p99_ms": percentile(decision_ms, 99),
        "late_rows": late,
    }


def status(demo: Demo) -> dict[str, Any]:
    return httpx.get(f"{demo.base_url}/api/v1/status", timeout=REQUEST_TIMEOUT_S).json()


def _status_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    keys = ("inspected", "late", "forced_rejects", "camera_misses", "errors", "record_failures")
    return {k: int(after.get(k, 0) or 0) - int(before.get(k, 0) or 0) for k in keys}


def _wait_first_masks(demo: Demo, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if status(demo).get("inspected", 0) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} masks inspected after {timeout_s:.0f} s")


# -- sub-commands -----------------------------------------------------------------------
def cmd_load(args: argparse.Namespace) -> dict[str, Any]:
    """Same demo, same length: windows without clients, each followed by one with them.

    With ``rounds`` > 1 the pair repeats and the masks of all windows of a kind are
    pooled: with ~30 masks a window, one window's p99 is its slowest mask.
    """
    # The default cap of open event streams (32) is below the benchmark's 50 clients.
    config = f"[api]\nmax_event_clients = {args.clients + 8}\n"
    rounds = max(1, int(getattr(args, "rounds", 1)))
    nice = int(getattr(args, "client_nice", 0))
    profile = str(getattr(args, "profile", "stress"))
    stats = ClientStats()
    idle_windows: list[tuple[float, float]] = []
    load_windows: list[tuple[float, float]] = []
    idle_delta: dict[str, int] = {}
    load_delta: dict[str, int] = {}
    settling = 0
    with run_demo(config, seed=args.seed) as demo:
        _wait_first_masks(demo, 2, STARTUP_TIMEOUT_S)
        if nice:
            # The supervisors' pages run on tablets and PCs, not on the station: here
            # they share its 2 cores, so they yield them to it as remote clients would.
            os.nice(nice)
        for _ in range(rounds):
            s0, t0 = status(demo), time.monotonic()
            time.sleep(args.seconds)
            s1, t1 = status(demo), time.monotonic()
            if profile == "control":
                busy_cores(CONTROL_PROCESSES, args.seconds)
            else:
                stats.add(
                    asyncio.run(drive_clients(demo.base_url, args.clients, args.seconds, profile))
                )
            s2, t2 = status(demo), time.monotonic()
            time.sleep(args.settle_s)  # masks triggered under load reach their ejector
            s3 = status(demo)
            idle_windows.append((t0, t1))
            load_windows.append((t1, t2))
            _add(idle_delta, _status_delta(s0, s1))
            _add(load_delta, _status_delta(s1, s3))
            settling += _status_delta(s2, s3)["inspected"]
        idle, loaded = latencies(demo, idle_windows), latencies(demo, load_windows)
    ratio = {
        k: round(loaded[k] / idle[k], 3) if idle[k] and loaded[k] else None
        for k in ("pipeline_p99_ms", "capture_to_decision_p99_ms")
    }
    return {
        "clients": args.clients,
        "client_nice": nice,
        "profile": profile,
        "seconds": args.seconds,
        "rounds": rounds,
        "requests": stats.requests,
        "request_failures": stats.failures,
        "sse_events_received": stats.sse_events,
        "errors": stats.errors,
        "without_load": {**idle, **idle_delta},
        "with_load": {**loaded, **load_delta},
        "p99_ratio_with_to_without": ratio,
        "late_decisions_under_load": load_delta["late"],
        "ignored_masks_settling": settling,
    }


#: Busy processes of the ``control`` profile: one per core of the development machine.
CONTROL_PROCESSES = 2


def busy_cores(processes: int, seconds: float) -> None:
    """The control for ``load``: no HTTP at all, only ``processes`` busy loops at
    niceness 19 for ``seconds``. What they do to the inspection's p99 is what any
    lowest-priority work on the station's own cores does (shared caches, memory
    bandwidth, the scheduler's time slices), not what the API costs."""
    code = (
        "import os, time\n"
        "os.nice(19)\n"
        f"end = time.monotonic() + {float(seconds)}\n"
        "n = 0\n"
        "while time.monotonic() < end:\n"
        "    n += sum(range(1000))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    for proc in procs:
        proc.wait()


def _add(total: dict[str, int], delta: dict[str, int]) -> None:
    for key, value in delta.items():
        total[key] = total.get(key, 0) + value


def cmd_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS (VmHWM) of a demo with one supervisor page open the whole time."""
    with run_demo(seed=args.seed) as demo:
        pid = demo.proc.pid
        samples: list[dict[str, float]] = []

        async def watch() -> None:
            stop_at = time.monotonic() + args.seconds
            page = ClientStats()
            limits = httpx.Limits(keepalive_expiry=KEEPALIVE_S)
            async with httpx.AsyncClient(
                base_url=demo.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
            ) as c:
                task = asyncio.ensure_future(_page(c, page, stop_at))
                while time.monotonic() < stop_at:
                    samples.append(proc_memory_mb(pid))
                    await asyncio.sleep(MEMORY_SAMPLE_S)
                await task

        asyncio.run(watch())
        final = proc_memory_mb(pid)
        inspected = status(demo).get("inspected", 0)
    rss = [s["VmRSS"] for s in samples]
    return {
        "seconds": args.seconds,
        "masks_inspected": inspected,
        "peak_rss_mb": round(final["VmHWM"], 1),
        "rss_median_mb": round(percentile(rss, 50) or 0, 1),
        "rss_max_sampled_mb": round(max(rss), 1),
        "rss_final_mb": round(final["VmRSS"], 1),
        "rss_anon_final_mb": round(final.get("RssAnon", 0), 1),
        "rss_file_final_mb": round(final.get("RssFile", 0), 1),
    }


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)): utime and stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _first_row(demo: Demo) -> tuple[float, float] | None:
    """(seen at, t0 of the first record) on the monotonic clock, once it exists."""
    path = demo.data_dir / "qc.sqlite3"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(path, timeout=0.05) as db:
            row = db.execute("SELECT t0_mono_s FROM inspections ORDER BY seq LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    return (time.monotonic(), float(row[0])) if row else None


def cmd_cold_start(args: argparse.Namespace) -> dict[str, Any]:
    """Process start to the first inspection in the QC log, over several starts."""
    runs = []
    for i in range(args.runs):
        with run_demo(seed=args.seed + i, wait=False) as demo:
            deadline = demo.spawned_mono_s + STARTUP_TIMEOUT_S
            first = None
            api_up = None
            while first is None and time.monotonic() < deadline:
                if api_up is None:
                    try:
                        httpx.get(f"{demo.base_url}/healthz", timeout=0.2)
                        api_up = time.monotonic()
                    except httpx.TransportError:
                        pass
                first = _first_row(demo)
                time.sleep(0.01)
            if first is None:
                raise RuntimeError("no inspection recorded")
            cpu_s = proc_cpu_s(demo.proc.pid)
            runs.append(
                {
                    "first_inspection_s": round(first[0] - demo.spawned_mono_s, 3),
                    "cpu_s_until_then": round(cpu_s, 2),
                    "load_average_1min": os.getloadavg()[0],
                    "first_trigger_s": round(first[1] - demo.spawned_mono_s, 3),
                    "api_up_s": round(api_up - demo.spawned_mono_s, 3) if api_up else None,
                }
            )
    firsts = [r["first_inspection_s"] for r in runs]
    return {
        "runs": runs,
        "first_inspection_median_s": percentile(firsts, 50),
        "first_inspection_max_s": max(firsts),
    }


def cmd_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Masks per second the station keeps up with, and whether in-flight masks pile up."""
    config = (
        "[simulator]\n"
        f"belt_speed_mm_s = {args.belt_speed_mm_s}\n"
        f"mask_spacing_mm = {args.mask_spacing_mm}\n"
        f"frame_rate_fps = {args.fps}\n"
        f"sprite_pool = {args.sprite_pool}\n"
    )
    with run_demo(config, seed=args.seed) as demo:
        _wait_first_masks(demo, 3, STARTUP_TIMEOUT_S)
        start, t_start = status(demo), time.monotonic()
        in_flight: list[int] = []
        while time.monotonic() - t_start < args.seconds:
            time.sleep(args.sample_s)
            in_flight.append(int(status(demo).get("in_flight", 0)))
        end, t_end = status(demo), time.monotonic()
        window = latencies(demo, [(t_start, t_end)])
    delta = _status_delta(start, end)
    half = len(in_flight) // 2
    return {
        "belt_speed_mm_s": args.belt_speed_mm_s,
        "mask_spacing_mm": args.mask_spacing_mm,
        "fps": args.fps,
        "offered_masks_per_s": round(args.belt_speed_mm_s / args.mask_spacing_mm, 3),
        "inspected_masks_per_s": round(delta["inspected"] / (t_end - t_start), 3),
        **delta,
        **window,
        "in_flight_max": max(in_flight, default=0),
        "in_flight_mean_first_half": round(sum(in_flight[:half]) / max(half, 1), 2),
        "in_flight_mean_second_half": round(
            sum(in_flight[half:]) / max(len(in_flight) - half, 1), 2
        ),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="demo seed")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load", help="N clients polling the API and holding SSE streams")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=60.0, help="each window: idle, then load")
    p.add_argument("--settle-s", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=1, help="idle/load window pairs, pooled")
    p.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="niceness of the clients (19: they stand in for remote pages and yield the "
        "station's cores; 0: they compete with it)",
    )
    p.add_argument(
        "--profile",
        choices=("stress", "page", "control"),
        default="stress",
        help="stress: every GET endpoint each second (default); page: what an open "
        "supervisor page asks (status every 5 s, thumbnails of rejects, SPC); control: "
        "no clients, two busy loops at niceness 19 (what any background work costs)",
    )
    p.set_defaults(run=cmd_load)
    p = sub.add_parser("memory", help="peak RSS with the supervisor page open")
    p.add_argument("--seconds", type=float, default=120.0)
    p.set_defaults(run=cmd_memory)
    p = sub.add_parser("cold-start", help="process start to the first inspection")
    p.add_argument("--runs", type=int, default=5)
    p.set_defaults(run=cmd_cold_start)
    p = sub.add_parser("throughput", help="masks per second sustained")
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--belt-speed-mm-s", type=float, default=450.0)
    p.add_argument("--mask-spacing-mm", type=float, default=300.0)
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--sprite-pool", type=int, default=6)
    p.add_argument("--sample-s", type=float, default=1.0)
    p.set_defaults(run=cmd_throughput)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = args.run(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
