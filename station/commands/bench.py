"""``qc-station bench``: inspection latency on simulated 2028×1520 frames.

Renders a mix of frames (good masks and every defect kind, default camera), then
times :func:`vision.pipeline.inspect_frame` on each, per stage, interleaved with one
``cv2.cvtColor(BGR→GRAY)`` of the same frame — the floor: the cheapest full-frame
operation there is, measured in the same run, in the same process and with the same
OpenCV thread count, so that the ratio holds on any machine and under any load. The
order of the two alternates from pass to pass, so neither always finds the frame
already in the cache.

The pipeline is timed as the station runs it: up to the verdict, with the overlay
deferred (the station draws it only for rejects, sampled accepts and the live view,
after the verdict). The overlay's own cost is drawn and reported apart for every
frame; ``--inline-overlay`` times it inside the pipeline instead, as
``qc-station inspect --annotate`` runs it. Prints p50 and p99 of the whole pipeline
and of each stage, and their ratios to the floor's p50; ``--json`` prints one object.

Wall-clock time is what the budget is about, but on a loaded machine a run of
≈ 20 ms is preempted many times where a 1 ms floor rarely is, so the wall-clock
ratio then measures the load. The CPU time of both (the process's, all threads) is
reported too: the work done, stable under load.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from station.config import load_spec
from station.paths import DEFAULT_MODEL_PATH, DEFAULT_SPEC_PATH

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

#: Frames inspected before timing starts (imports, caches, allocator).
WARMUP_FRAMES = 3


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station bench`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "bench",
        help="inspection latency per stage on simulated frames, against a cvtColor floor",
    )
    p.add_argument("--frames", type=int, default=22, help="distinct frames rendered")
    p.add_argument("--repeat", type=int, default=10, help="passes over the frames")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    p.add_argument("--no-annotate", action="store_true", help="no overlay at all")
    p.add_argument(
        "--inline-overlay",
        action="store_true",
        help="draw the overlay inside the pipeline (as `inspect --annotate`), not after",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="cv2.setNumThreads for the pipeline and the floor alike (default: OpenCV's)",
    )
    model = p.add_mutually_exclusive_group()
    model.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL_PATH,
        help="defect classifier run as the `classify` stage (default: the shipped model)",
    )
    model.add_argument("--no-model", action="store_true", help="geometry only")
    p.add_argument(
        "--model-threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)"
    )
    p.add_argument(
        "--no-remap-mirror",
        action="store_true",
        help="never sample the remap backwards (RectifyParams.mirror_max_rise = 0),"
        " to compare on a new machine",
    )
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


def _stats(v: list[float], floor_ms: float) -> dict[str, float | None]:
    p50 = _pct(v, 50)
    return {
        "p50_ms": p50,
        "p99_ms": _pct(v, 99),
        "ratio_p50_to_floor": round(p50 / floor_ms, 2) if floor_ms > 0 else None,
    }


def _time_ms(fn: Any, *args: Any) -> tuple[Any, float, float]:
    """Result, wall-clock ms and CPU ms (all the process's threads) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def _floor(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def run_bench(frames: list[np.ndarray], ctx: Any, repeat: int) -> dict[str, Any]:
    """Time the pipeline and the floor, interleaved, over ``repeat`` passes.

    A deferred overlay (``ctx.defer_overlay``) is drawn after each timed run and
    reported as ``overlay_deferred``, outside the pipeline's figures.
    """
    from vision.pipeline import inspect_frame

    for f in frames[:WARMUP_FRAMES]:
        inspect_frame(f, ctx).annotated()
    total: list[float] = []
    floor: list[float] = []
    total_cpu: list[float] = []
    floor_cpu: list[float] = []
    deferred: list[float] = []
    stages: dict[str, list[float]] = {}
    gc.collect()
    gc_before = sum(s["collections"] for s in gc.get_stats())
    for i in range(repeat):
        for f in frames:
            if i % 2 == 0:
                _, ms, cpu = _time_ms(_floor, f)
                floor.append(ms)
                floor_cpu.append(cpu)
            result, ms, cpu = _time_ms(inspect_frame, f, ctx)
            total.append(ms)
            total_cpu.append(cpu)
            if i % 2 == 1:
                _, ms, cpu = _time_ms(_floor, f)
                floor.append(ms)
                floor_cpu.append(cpu)
            for name, stage_ms in result.stage_ms.items():
                if name != "total":
                    stages.setdefault(name, []).append(stage_ms)
            if result.draw_overlay is not None:
                deferred.append(_time_ms(result.annotated)[1])
    gc_runs = sum(s["collections"] for s in gc.get_stats()) - gc_before
    p50, p99, f50 = _pct(total, 50), _pct(total, 99), _pct(floor, 50)
    # Each frame's own median over the passes: how much of p99 ÷ p50 the frames' content
    # makes (a slow frame stays slow), apart from the machine's noise (which does not).
    per_frame = np.median(np.asarray(total).reshape(repeat, len(frames)), axis=0)
    c50, fc50 = _pct(total_cpu, 50), _pct(floor_cpu, 50)
    report: dict[str, Any] = {
        "frames": len(frames),
        "runs": len(total),
        "pipeline_p50_ms": p50,
        "pipeline_p99_ms": p99,
        "floor_ms": f50,
        "floor_p99_ms": _pct(floor, 99),
        "ratio_p50_to_floor": round(p50 / f50, 2) if f50 > 0 else None,
        "ratio_p99_to_p50": round(p99 / p50, 2) if p50 > 0 else None,
        "frame_median_ms": {
            "min": round(float(per_frame.min()), 3),
            "max": round(float(per_frame.max()), 3),
        },
        "ratio_slowest_frame_to_p50": round(float(per_frame.max()) / p50, 2) if p50 > 0 else None,
        # CPU time (the process's, all threads): the work, without the time spent
        # waiting for other processes; on a shared machine this ratio is the stable one.
        "pipeline_cpu_p50_ms": c50,
        "pipeline_cpu_p99_ms": _pct(total_cpu, 99),
        "floor_cpu_ms": fc50,
        "ratio_cpu_p50_to_floor": round(c50 / fc50, 2) if fc50 > 0 else None,
        "stages": {k: _stats(v, f50) for k, v in stages.items()},
        "overlay_deferred": _stats(deferred, f50) if deferred else None,
        "cv2_threads": cv2.getNumThreads(),
        "gc_collections": gc_runs,
    }
    return report


def _classifier_report(model: Path, threads: int, report: dict[str, Any]) -> dict[str, Any]:
    """The classify stage's share, and the same network in onnxruntime vs PyTorch eager."""
    from station.model import bench_classifier

    b = bench_classifier(model, threads=threads)
    stage = report["stages"].get("classify", {}).get("p50_ms")
    share = None
    if stage is not None and report["pipeline_p50_ms"]:
        share = round(100 * stage / report["pipeline_p50_ms"], 1)
    return {
        "model": b["model"]["label"],
        "precision": b["model"]["precision"],
        "tiles": b["tiles"],
        "threads": b["threads"],
        "stage_p50_ms": stage,
        "share_of_pipeline_pct": share,
        "ort_ms": round(b["ort_ms"], 3),
        "torch_eager_fp32_ms": None
        if b["torch_eager_fp32_ms"] is None
        else round(b["torch_eager_fp32_ms"], 3),
        "speedup": b["speedup"],
        **({"torch_note": b["torch_note"]} if "torch_note" in b else {}),
    }


def cmd_bench(args: argparse.Namespace) -> int:
    from vision.pipeline import InspectionContext, InspectionParams
    from vision.rectify import RectifyParams

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    spec = load_spec(DEFAULT_SPEC_PATH)
    frames, calibration = render_frames(args.frames, args.seed, spec)
    classifier = None
    if not args.no_model:
        from station.model import load_classifier

        classifier = load_classifier(args.model, args.model_threads)
    ctx = InspectionContext.create(
        calibration,
        spec,
        annotate=not args.no_annotate,
        defer_overlay=not args.inline_overlay,
        classifier=classifier,
        params=InspectionParams(rectify=RectifyParams(mirror_max_rise=0.0))
        if args.no_remap_mirror
        else None,
    )
    report = run_bench(frames, ctx, args.repeat)
    report["remap_mirror_max_rise"] = ctx.params.rectify.mirror_max_rise
    report["classifier"] = None
    if classifier is not None:
        report["classifier"] = _classifier_report(args.model, args.model_threads, report)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"frames {report['frames']} × {args.repeat} passes, 2028×1520, "
        f"cv2 threads {report['cv2_threads']}, gc collections {report['gc_collections']}"
    )
    print(
        f"pipeline  p50 {report['pipeline_p50_ms']:.2f} ms   p99 {report['pipeline_p99_ms']:.2f} ms"
        f"   (p99/p50 {report['ratio_p99_to_p50']})"
    )
    print(
        f"frames    medians {report['frame_median_ms']['min']:.2f}–"
        f"{report['frame_median_ms']['max']:.2f} ms (slowest frame ÷ p50"
        f" {report['ratio_slowest_frame_to_p50']}: the content's share of p99 ÷ p50)"
    )
    print(f"floor     p50 {report['floor_ms']:.3f} ms (cv2.cvtColor BGR→GRAY of the same frame)")
    print(f"ratio     pipeline p50 / floor = {report['ratio_p50_to_floor']}")
    print(
        f"cpu time  pipeline p50 {report['pipeline_cpu_p50_ms']:.2f} ms, floor "
        f"{report['floor_cpu_ms']:.3f} ms, ratio {report['ratio_cpu_p50_to_floor']}"
    )
    c = report["classifier"]
    if c is not None:
        torch_ms = c["torch_eager_fp32_ms"]
        vs_torch = (
            f"PyTorch eager fp32 {torch_ms:.2f} ms, onnxruntime ×{c['speedup']} faster"
            if torch_ms is not None
            else c.get("torch_note", "")
        )
        print(
            f"classifier {c['model']} ({c['precision']}, {c['tiles']} tiles,"
            f" {c['threads']} thread):"
            f" {c['share_of_pipeline_pct']} % of the pipeline; session {c['ort_ms']:.2f} ms; "
            + vs_torch
        )
    rows = list(report["stages"].items())
    if report["overlay_deferred"] is not None:
        rows.append(("overlay, deferred (not in the pipeline)", report["overlay_deferred"]))
    for name, s in rows:
        print(
            f"  {name:10s} p50 {s['p50_ms']:7.3f} ms   p99 {s['p99_ms']:7.3f} ms"
            f"   ×floor {s['ratio_p50_to_floor']}"
        )
    return 0
