"""``qc-station soak``: the whole station on the simulated belt for a simulated hour.

Leaks grow with work done — masks inspected, frames rendered, rows written, rows
exported, API requests — not with seconds on the wall clock. So a simulated hour is
the work of one hour of the default line (``simulator.belt_speed_mm_s`` 150 mm/s,
masks every 300 mm: 1,800 masks), run ``--scale`` times faster: the belt moves
``scale`` × faster and the simulated camera takes ``scale`` × more frames a second,
so each mask is seen as on the nominal line. Everything else is the real station
(``build_runtime``: SQLite WAL, image archive, MockFactory pins, outbox exported to
a JSONL file sink, the API polled like the supervisor page does).

Sampled over time: resident memory (``/proc/self/status``), open file descriptors
(``/proc/self/fd``), threads, the outbox backlog. The verdict is the slope of a line
fitted over the second half of the run (after warm-up): MiB of RSS and descriptors
per simulated hour, which must be ≈ 0.

A single RSS sample swings by tens of MiB with the frames, sprites and images that
happen to be alive at that instant, so the raw slope alone cannot tell a small leak
from noise. The report adds the slope's 95 % confidence interval and the slope of
the RSS *floor* (the lowest sample of each window of :data:`FLOOR_WINDOW_SAMPLES`):
transient buffers come and go, a leak lifts the floor.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import Any

from station.commands.soak_report import SoakReport, SoakSample, leaks
from station.commands.soak_stats import (
    fd_kinds,
    floor_slope,
    open_fds,
    rss_mib,
    second_half_slope,
    slope_ci95,
)
from station.config import load_config

#: The default line, whose hour the soak simulates.
NOMINAL_BELT_SPEED_MM_S = 150.0
NOMINAL_SPACING_MM = 300.0
NOMINAL_FRAME_RATE_FPS = 5.0
#: The simulated camera's fastest rate (the config's limit).
MAX_FRAME_RATE_FPS = 60.0
#: Distinct masks rendered, then fed in turn: a fresh sprite costs ~0.5 s of CPU, which
#: would cap the belt's speed; the station still inspects every frame (0: all fresh).
DEFAULT_SPRITE_POOL = 8
#: Longest the run may take per mask before it is called stuck, wall seconds.
STUCK_S_PER_MASK = 20.0
#: Time allowed at the end for the last pulses and the outbox to drain, seconds.
DRAIN_S = 10.0
#: How long threads may take to end after the station closed (anyio's idle workers get
#: their stop from the closing event loop and end a moment later), seconds.
THREAD_WIND_DOWN_S = 5.0
#: Share of the run's masks before the descriptor baseline is taken: what opens once
#: (a kept-alive API connection, the idle read connections) is not a leak.
WARMUP_SHARE = 0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def soak_overrides(
    data_dir: Path, masks: int, scale: float, seed: int, serve: bool, sprite_pool: int
) -> dict[str, Any]:
    """Station configuration for a soak: the demo's, sped up ``scale`` times."""
    return {
        "storage": {"data_dir": str(data_dir)},
        "simulator": {
            "seed": seed,
            "max_masks": masks,
            "belt_speed_mm_s": NOMINAL_BELT_SPEED_MM_S * scale,
            "mask_spacing_mm": NOMINAL_SPACING_MM,
            "frame_rate_fps": min(MAX_FRAME_RATE_FPS, NOMINAL_FRAME_RATE_FPS * scale),
            "sprite_pool": sprite_pool,
        },
        "export": {
            "sinks": [{"type": "file", "name": "soak", "path": str(data_dir / "out.jsonl")}]
        },
        "api": {"enabled": serve, "host": "127.0.0.1", "port": _free_port()},
    }


def run_soak(
    sim_minutes: float,
    data_dir: Path,
    *,
    scale: float = 4.0,
    sample_s: float = 5.0,
    seed: int = 0,
    poll_api: bool = True,
    sprite_pool: int = DEFAULT_SPRITE_POOL,
    progress: Callable[[SoakSample], None] | None = None,
) -> SoakReport:
    """Run the station until a simulated ``sim_minutes`` of masks went through it."""
    from station.runtime import build_simulated_runtime
    from station.simulator import SimulatedLine, line_timing_ms
    from station.store.outbox import Outbox

    masks = max(1, round(sim_minutes * 60 * NOMINAL_BELT_SPEED_MM_S / NOMINAL_SPACING_MM))
    overrides = soak_overrides(data_dir, masks, scale, seed, poll_api, sprite_pool)
    cfg = load_config(overrides=overrides)
    cfg = load_config(overrides={**overrides, "line": line_timing_ms(cfg)})
    belt = SimulatedLine(cfg)
    threads_start = threading.active_count()
    names_start = {t.name for t in threading.enumerate()}
    rt = build_simulated_runtime(cfg, belt, serve=poll_api)
    actuator = rt.station.actuator
    outbox = Outbox(rt.store)
    api = _ApiPoller(rt.url) if poll_api and rt.url else None
    samples: list[SoakSample] = []
    started = time.monotonic()
    warm_masks = max(1, round(WARMUP_SHARE * masks))
    kinds_start: dict[str, int] | None = None

    def sample() -> SoakSample:
        s = SoakSample(
            wall_s=round(time.monotonic() - started, 2),
            sim_s=round(actuator.pulses_fired * NOMINAL_SPACING_MM / NOMINAL_BELT_SPEED_MM_S, 1),
            masks=actuator.pulses_fired,
            rss_mib=round(rss_mib(), 1),
            fds=open_fds(),
            threads=threading.active_count(),
            outbox_rows=outbox.stats().count,
            outbox_pending=outbox.pending_count("soak"),
            in_flight=len(rt.station.actuator.in_flight),
            record_backlog=rt.recorder.backlog_rows(),
            read_connections=rt.store.read_connections,
        )
        samples.append(s)
        if progress is not None:
            progress(s)
        return s

    try:
        deadline = started + masks * STUCK_S_PER_MASK
        next_sample = started
        while actuator.pulses_fired < masks:
            # Two masks under the photo-eye at once make one edge: the belt may finish
            # with fewer triggers than masks fed.
            if belt.finished() and rt.station.settled():
                break
            if time.monotonic() > deadline:
                waited_s = time.monotonic() - started
                raise RuntimeError(
                    f"soak stuck: {actuator.pulses_fired} of {masks} masks after {waited_s:.0f} s"
                )
            if api is not None:
                api.poll()
            if time.monotonic() >= next_sample:
                if kinds_start is None and actuator.pulses_fired >= warm_masks:
                    kinds_start = fd_kinds()
                sample()
                next_sample += sample_s
            time.sleep(min(0.5, sample_s))
        drain_end = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_end and outbox.pending_count("soak"):
            time.sleep(0.2)
        kinds_end = fd_kinds()
        last = sample()
        counts = rt.store.counts()
        frames = rt.station.feed.frames_read
        status = rt.status()
    finally:
        rt.close(keep_store=True)
    wind_down_end = time.monotonic() + THREAD_WIND_DOWN_S
    while threading.active_count() > threads_start and time.monotonic() < wind_down_end:
        time.sleep(0.05)
    with (data_dir / "out.jsonl").open(encoding="utf-8") as fh:
        exported = [json.loads(line)["id"] for line in fh]
    readers_at_rest = rt.store.read_connections  # every thread that reads has stopped
    rt.store.close()
    xs = [s.sim_s / 3600 for s in samples]
    rss = [s.rss_mib for s in samples]
    warm = [s for s in samples if s.masks >= warm_masks] or [last]
    rss_fit = slope_ci95(xs, rss)
    return SoakReport(
        sim_minutes=sim_minutes,
        scale=scale,
        masks_fed=belt.fed,
        masks=actuator.pulses_fired,
        frames=frames,
        wall_s=round(time.monotonic() - started, 1),
        verdicts={k: counts[k] for k in ("total", "accepted", "rejected", "errors", "no_mask")},
        late=int(status["late"]),
        record_failures=int(status["record_failures"]),
        api_requests=api.requests if api else 0,
        api_failures=api.failures if api else 0,
        api_errors=api.errors if api else [],
        rss_start_mib=samples[0].rss_mib,
        rss_end_mib=last.rss_mib,
        rss_max_mib=max(s.rss_mib for s in samples),
        rss_slope_mib_per_sim_h=round(rss_fit[0], 2),
        rss_slope_ci95_mib_per_sim_h=(round(rss_fit[1], 2), round(rss_fit[2], 2)),
        rss_floor_slope_mib_per_sim_h=round(floor_slope(xs, rss), 2),
        fds_first=samples[0].fds,
        fds_start=warm[0].fds_net,
        fds_end=last.fds_net,
        fds_max=max(s.fds_net for s in warm),
        read_connections_max=max(s.read_connections for s in samples),
        read_connections_end=readers_at_rest,
        fd_kinds_start=kinds_start if kinds_start is not None else kinds_end,
        fd_kinds_end=kinds_end,
        fd_slope_per_sim_h=round(second_half_slope(xs, [float(s.fds_net) for s in samples]), 2),
        threads_start=threads_start,
        threads_end=threading.active_count(),
        threads_left=sorted(t.name for t in threading.enumerate() if t.name not in names_start),
        outbox_max_rows=max(s.outbox_rows for s in samples),
        outbox_end_rows=last.outbox_rows,
        outbox_end_pending=last.outbox_pending,
        exported_lines=len(exported),
        exported_ids=len(set(exported)),
        records=counts["total"],
        samples=samples,
    )


class _ApiPoller:
    """What an open supervisor page asks for, about once a second."""

    def __init__(self, url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=5.0)
        self.requests = 0
        self.failures = 0
        #: What the failures were, each kind once: a count alone cannot be diagnosed.
        self.errors: list[str] = []
        self._next = 0.0

    def poll(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + 1.0
        for path in ("/api/v1/status", "/api/v1/counts", "/metrics", "/api/v1/inspections"):
            self.requests += 1
            try:
                status = self.client.get(path).status_code
                error = None if status == 200 else f"{path}: HTTP {status}"
            except Exception as exc:  # noqa: BLE001 - a failed request is counted, the soak goes on
                error = f"{path}: {type(exc).__name__}: {exc}"
            if error is not None:
                self.failures += 1
                if error not in self.errors:
                    self.errors.append(error)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station soak`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "soak", help="run the station on the simulated belt for a simulated hour; watch for leaks"
    )
    p.add_argument("--sim-minutes", type=float, default=60.0, help="simulated minutes of belt")
    p.add_argument("--scale", type=float, default=4.0, help="belt and camera speed-up")
    p.add_argument("--sample-s", type=float, default=5.0, help="wall seconds between samples")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    p.add_argument(
        "--sprite-pool",
        type=int,
        default=DEFAULT_SPRITE_POOL,
        help="distinct masks rendered then reused (0: a fresh one per mask)",
    )
    p.add_argument("--data-dir", type=Path, help="QC log and images (default: a temp dir)")
    p.add_argument("--no-api", action="store_true", help="do not serve and poll the API")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=cmd_soak)


def cmd_soak(args: argparse.Namespace) -> int:
    import tempfile

    from station.commands.run import tune_allocator

    tune_allocator()  # as `demo` and `run` do: the soak measures the station as deployed

    def show(s: SoakSample) -> None:
        print(
            f"{s.wall_s:7.0f} s wall  {s.sim_s / 60:6.1f} sim min  {s.masks:5d} masks  "
            f"RSS {s.rss_mib:7.1f} MiB  fds {s.fds:4d}  threads {s.threads:3d}  "
            f"outbox {s.outbox_rows:4d} ({s.outbox_pending} pending)",
            file=sys.stderr,
            flush=True,
        )

    # The station's own messages (the generated supervisor token) go to stderr:
    # stdout carries the report alone, so `--json` output parses.
    with tempfile.TemporaryDirectory(prefix="qc-soak-") as tmp, redirect_stdout(sys.stderr):
        report = run_soak(
            args.sim_minutes,
            args.data_dir or Path(tmp),
            scale=args.scale,
            sample_s=args.sample_s,
            seed=args.seed,
            poll_api=not args.no_api,
            sprite_pool=args.sprite_pool,
            progress=show,
        )
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        summary = {k: v for k, v in asdict(report).items() if k != "samples"}
        for key, value in summary.items():
            print(f"{key:28s} {value}")
    found = leaks(report)
    print("leaks: " + ("; ".join(found) if found else "none"), file=sys.stderr)
    return 1 if found else 0
