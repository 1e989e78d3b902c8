"""``qc-station dataset``: render the defect classifier's training set from the simulator.

Each mask is rendered once as a full camera frame, measured by the station's own
pipeline and kept as its canvas (the body at the classifier's scale); see
:mod:`vision.training.dataset` for the folder format and the randomisation. An
interrupted run resumes when started again with the same arguments.

    qc-station dataset --out data/classifier --n 2500 --seed 0 --jobs 2
    qc-station dataset --out data/classifier-test --n 800 --seed 90001 --split test
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from station.config import load_spec
from station.paths import DEFAULT_SPEC_PATH


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station dataset`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "dataset",
        help="render the classifier's training set from the simulator",
        description="Render N simulated masks (good, holes, stains, a few geometric "
        "defects) with strong randomisation, measure each with the station's pipeline "
        "and keep the rectified body for training.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, required=True, help="number of masks to render")
    p.add_argument("--seed", type=int, default=0, help="set seed (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--split",
        choices=("train", "test"),
        default="train",
        help="train: every 5th mask is validation; test: a held-out evaluation set",
    )
    p.add_argument("--spec", type=Path, default=DEFAULT_SPEC_PATH, help="prototype spec TOML")
    p.add_argument(
        "--canvas-mm-per-px",
        type=float,
        help="scale of the stored bodies, mm per pixel (default 0.5; 0.25 keeps the "
        "weave, 4x the pixels); tiles stay 16 mm",
    )
    p.set_defaults(handler=cmd_dataset)


def cmd_dataset(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vision.tiles import TileParams
    from vision.training.dataset import SynthParams, read_index, render_dataset

    scale = args.canvas_mm_per_px or TileParams().mm_per_px
    if args.n <= 0:
        print("qc-station dataset: --n must be positive", file=sys.stderr)
        return 2
    spec = load_spec(args.spec)
    if not 0.1 <= scale <= 1.0:
        print("qc-station dataset: --canvas-mm-per-px must be within 0.1-1.0", file=sys.stderr)
        return 2
    params = SynthParams(
        split=args.split,
        val_every=0 if args.split == "test" else 5,
        tiles=TileParams.at_scale(scale),
    )
    done_before = sum(1 for m in read_index(args.out) if m["id"] < args.n)
    counts: Counter[str] = Counter()
    bar = tqdm(total=args.n, initial=done_before, desc="render", unit="mask", file=sys.stderr)
    try:
        for meta in render_dataset(args.out, args.n, args.seed, params, spec, args.jobs):
            counts[meta["kind"] if meta["status"] == "ok" else "unmeasured"] += 1
            bar.update(1)
    except ValueError as err:
        print(f"qc-station dataset: {err}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(
        f"{args.out}: {done_before + sum(counts.values())} masks ({summary or 'all done before'})"
    )
    return 0
