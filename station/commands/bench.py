"""``qc-station bench``: inspection latency on simulated 2028×1520 frames.

Renders a mix of frames (good masks and every defect kind, default camera), then
times :func:`vision.pipeline.inspect_frame` on each, per stage, interleaved with one
``cv2.cvtColor(BGR→GRAY)`` of the same frame — the floor: the cheapest full-frame
operation there is, measured in the same run so that the ratio holds on any machine
and under any load. Prints p50 and p99 of the whole pipeline and of each stage, and
the ratio of the pipeline's p50 to the floor's; ``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import Any

import cv2
import numpy as np

from station.config import load_spec
from station.paths import DEFAULT_SPEC_PATH

#: Scene kinds cycled through for the benchmark frames (mostly measured masks).
BENCH_KINDS: tuple[str, ...] = (
    "good",
    "good",
    "good",
    "dimension",
    "pleats",
    "ear_loop",
    "seam_gap",
    "seam_offset",
    "stitch_length",
    "hole",
    "stain",
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station bench`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "bench",
        help="inspection latency per stage on simulated frames, against a cvtColor floor",
    )
    p.add_argument("--frames", type=int, default=22, help="distinct frames rendered")
    p.add_argument("--repeat", type=int, default=10, help="passes over the frames")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    p.add_argument("--no-annotate", action="store_true", help="time without the overlay")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_bench)


def render_frames(n: int, seed: int, spec: Any) -> tuple[list[np.ndarray], Any]:
    from tqdm import tqdm

    from vision.synth import Renderer, SimCamera, sample_look, sample_scene

    renderer = Renderer(SimCamera())
    rng = np.random.default_rng(seed)
    frames = []
    for i in tqdm(range(n), desc="render", unit="frame", file=sys.stderr):
        masks = sample_scene(rng, BENCH_KINDS[i % len(BENCH_KINDS)], spec)
        frames.append(renderer.render(masks, sample_look(rng), rng, spec)[0])
    return frames, renderer.calibration


def _pct(v: list[float], q: float) -> float:
    return round(float(np.percentile(v, q)), 3)


def run_bench(frames: list[np.ndarray], ctx: Any, repeat: int) -> dict[str, Any]:
    """Time the pipeline and the floor, interleaved, over ``repeat`` passes."""
    from vision.pipeline import inspect_frame

    for f in frames[:3]:  # warm-up: imports, caches, allocator
        inspect_frame(f, ctx)
    total: list[float] = []
    floor: list[float] = []
    stages: dict[str, list[float]] = {}
    gc.collect()
    for _ in range(repeat):
        for f in frames:
            t0 = time.perf_counter()
            cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
            floor.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            result = inspect_frame(f, ctx)
            total.append((time.perf_counter() - t0) * 1000)
            for name, ms in result.stage_ms.items():
                if name != "total":
                    stages.setdefault(name, []).append(ms)
    p50, p99, f50 = _pct(total, 50), _pct(total, 99), _pct(floor, 50)
    return {
        "frames": len(frames),
        "runs": len(total),
        "pipeline_p50_ms": p50,
        "pipeline_p99_ms": p99,
        "floor_ms": f50,
        "floor_p99_ms": _pct(floor, 99),
        "ratio_p50_to_floor": round(p50 / f50, 2) if f50 > 0 else None,
        "ratio_p99_to_p50": round(p99 / p50, 2) if p50 > 0 else None,
        "stages": {k: {"p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99)} for k, v in stages.items()},
        "cv2_threads": cv2.getNumThreads(),
    }


def cmd_bench(args: argparse.Namespace) -> int:
    from vision.pipeline import InspectionContext

    spec = load_spec(DEFAULT_SPEC_PATH)
    frames, calibration = render_frames(args.frames, args.seed, spec)
    ctx = InspectionContext.create(calibration, spec, annotate=not args.no_annotate)
    report = run_bench(frames, ctx, args.repeat)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"frames {report['frames']} × {args.repeat} passes, 2028×1520, "
        f"cv2 threads {report['cv2_threads']}"
    )
    print(
        f"pipeline  p50 {report['pipeline_p50_ms']:.2f} ms   p99 {report['pipeline_p99_ms']:.2f} ms"
        f"   (p99/p50 {report['ratio_p99_to_p50']})"
    )
    print(f"floor     p50 {report['floor_ms']:.3f} ms (cv2.cvtColor BGR→GRAY of the same frame)")
    print(f"ratio     pipeline p50 / floor = {report['ratio_p50_to_floor']}")
    for name, s in report["stages"].items():
        print(f"  {name:10s} p50 {s['p50_ms']:7.3f} ms   p99 {s['p99_ms']:7.3f} ms")
    return 0
