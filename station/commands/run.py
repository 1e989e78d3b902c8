"""``qc-station demo`` and ``qc-station run``: start the station and show a live line."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from station.config import StationConfig, load_config, merge
from station.runtime import Runtime, build_runtime


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
            if rt.belt is not None and rt.belt.finished() and not rt.station.actuator.in_flight:
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


def cmd_demo(args: argparse.Namespace) -> int:
    from station.simulator import SimulatedLine

    config = demo_config(args)
    line = SimulatedLine(config)
    rt = build_runtime(
        config,
        calibration=line.calibration,
        source=line.camera,
        pin_factory=line.pin_factory,
        belt=line,
    )
    print(f"qc-station demo : tapis simulé, GPIO simulés, journal {rt.data_dir}")
    if rt.url:
        print(f"page superviseur : {rt.url}", flush=True)
    return _serve_forever(rt, args.duration_s)


def cmd_run(args: argparse.Namespace) -> int:
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
    rt = build_runtime(config)
    print(f"qc-station : ligne {config.station.station_id}, journal {rt.data_dir}")
    if rt.url:
        print(f"page superviseur : {rt.url}", flush=True)
    return _serve_forever(rt, None)
