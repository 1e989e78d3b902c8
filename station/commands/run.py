"""``qc-station demo`` and ``qc-station run``: start the station and show a live line."""

from __future__ import annotations

import argparse
import ctypes
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from station.config import StationConfig, load_config, merge

if TYPE_CHECKING:
    from station.runtime import Runtime


def _summary(rt: Runtime, started_s: float) -> str:
    c = rt.store.counts()
    judged = c["accepted"] + c["rejected"]
    yield_pct = f"{100 * c['accepted'] / judged:.1f} %" if judged else "-"
    minutes = max((time.monotonic() - started_s) / 60, 1e-9)
    st = rt.status()
    p50 = st["latency_ms"]["p50"]
    return (
        f"[{st['state']}] total {c['total']} | acceptés {c['accepted']} | "
        f"rejetés {c['rejected']} | sans masque {c['no_mask']} | rendement {yield_pct} | "
        f"{c['total'] / minutes:.1f} masques/min | p50 {p50:.0f} ms"
        if p50 is not None
        else f"[{st['state']}] total {c['total']} | en attente du premier masque…"
    )


def _serve_forever(rt: Runtime, duration_s: float | None) -> int:
    """Print the live summary until Ctrl-C / SIGTERM / duration; then stop cleanly."""

    def _term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    started = time.monotonic()
    tty = sys.stdout.isatty()
    try:
        while duration_s is None or time.monotonic() - started < duration_s:
            time.sleep(1.0)
            line = _summary(rt, started)
            print(f"\r{line}\033[K" if tty else line, end="" if tty else "\n", flush=True)
            if rt.belt is not None and rt.belt.finished() and rt.station.settled():
                break
    except KeyboardInterrupt:
        pass
    finally:
        print("\narrêt : les masques encore sur le tapis sont traités…", flush=True)
        rt.close(keep_store=True)
        c = rt.store.counts()
        rt.store.close()
        print(
            f"arrêté. total {c['total']} | acceptés {c['accepted']} | rejetés {c['rejected']}"
            f" | sans masque {c['no_mask']} | journal : {rt.data_dir}",
            flush=True,
        )
    return 0


def demo_config(args: argparse.Namespace) -> StationConfig:
    """The embedded default, the user's file on top, then the demo's own switches."""
    overrides: dict[str, Any] = {"camera": {"source": "simulator"}, "gpio": {"pin_factory": "mock"}}
    if args.host is not None:
        overrides.setdefault("api", {})["host"] = args.host
    if args.port is not None:
        overrides.setdefault("api", {})["port"] = args.port
    if args.data_dir is not None:
        overrides["storage"] = {"data_dir": str(args.data_dir)}
    sim: dict[str, Any] = {}
    if args.seed is not None:
        sim["seed"] = args.seed
    if args.masks is not None:
        sim["max_masks"] = args.masks
    if sim:
        overrides["simulator"] = sim
    config = load_config(args.config, overrides)
    from station.simulator import line_timing_ms

    user_line = _file_table(args.config, "line")
    timing = {k: v for k, v in line_timing_ms(config).items() if k not in user_line}
    return load_config(args.config, merge(overrides, {"line": timing})) if timing else config


def _file_table(path: Any, table: str) -> dict[str, Any]:
    """The keys a config file sets in one table (to respect the user's explicit values)."""
    if path is None:
        return {}
    import tomllib

    with open(path, "rb") as f:
        return dict(tomllib.load(f).get(table, {}))


#: glibc ``mallopt`` parameters (malloc.h) and the values the station runs with.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
_MMAP_THRESHOLD_BYTES = 128 * 1024
_ARENA_MAX = 2


def tune_allocator() -> bool:
    """Give freed image buffers back to the system at once (glibc only; else a no-op).

    glibc raises its mmap threshold after the first large free, so later frame-sized
    buffers come from per-thread heap arenas that keep what is freed: a demo's RSS
    then sits ~100 MB above what it uses. A fixed threshold keeps every buffer of
    128 KiB or more on its own mapping (unmapped when freed), and two arenas bound
    what the many threads hold. Returns whether the settings were applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) and mallopt(_M_ARENA_MAX, _ARENA_MAX)
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from station.simulator import SimulatedLine

    tune_allocator()
    config = demo_config(args)
    line = SimulatedLine(config)
    line.start_feeder()  # renderer and first mask, while the station starts
    # Imported only now: its imports (~0.5 s) overlap the first mask's rendering.
    from station.runtime import build_simulated_runtime

    try:
        rt = build_simulated_runtime(config, line)
    except BaseException:
        line.stop()  # a refused start (bad model, busy port) leaves no rendering thread
        raise
    print(f"qc-station demo : tapis simulé, GPIO simulés, journal {rt.data_dir}")
    if rt.url:
        print(f"page superviseur : {rt.url}", flush=True)
    return _serve_forever(rt, args.duration_s)


def cmd_run(args: argparse.Namespace) -> int:
    tune_allocator()
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["storage"] = {"data_dir": str(args.data_dir)}
    config = load_config(args.config, overrides)
    if config.storage.data_dir is None:
        print("qc-station: storage.data_dir is required for `run`", file=sys.stderr)
        return 2
    if config.camera.source == "simulator":
        print("qc-station: camera.source = 'simulator' is for `qc-station demo`", file=sys.stderr)
        return 2
    from station.runtime import build_runtime

    rt = build_runtime(config)
    print(f"qc-station : ligne {config.station.station_id}, journal {rt.data_dir}")
    if rt.url:
        print(f"page superviseur : {rt.url}", flush=True)
    return _serve_forever(rt, None)
