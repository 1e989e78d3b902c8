"""Render a stress set for the seam check: a stripe edge runs right beside one side's seam.

    python scripts/print_edge_set.py --seed 7001 --n 60 --out /tmp/print_edge_7001
    qc-station eval --set /tmp/print_edge_7001 --json

Why: a thread whose colour lies between the cloth and a stripe beside it shows no
thin-line relief (it is lighter than one side and darker than the other), and
neither does the stripe's edge without a thread; only the needle holes tell them
apart. The random eval sets meet this only now and then (seeds 919191 ``0033``,
929292 ``0257``: a whole side read as one long gap), so this script lays it on
purpose: every mask is a sampled good mask re-printed with stripes parallel to one
side (chosen at random), a stripe edge 0.2–0.5 mm beside that side's seam on either
side of it, in a darker (70 %) or lighter print; 60 % of the threads take a colour
between the cloth's and the print's (the hard case), the rest keep their sampled
colour. Every odd frame has a seam gap (8–25 mm) on that side, the even frames are
good. Frames and ground truth are written in the format ``qc-station eval --set``
reads (``NNNN_kind.png`` + ``.json``, ``cameras/``); each truth also names the side
in ``print_edge``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from station.commands.evaluate import RANDOMIZED_SHARE, write_frame
from vision.spec import PrototypeSpec
from vision.synth import Renderer, SimCamera, sample_scene
from vision.synth.fabric import PLEAT_DEPTH_MM
from vision.synth.params import SIDES, MaskParams
from vision.synth.sampling import seam_gap


def stripe_beside_seam(m: MaskParams, side: str, rng: np.random.Generator) -> MaskParams:
    """``m`` printed with stripes parallel to ``side``, one stripe edge beside its seam."""
    period = float(rng.uniform(7.0, 16.0))
    duty = float(rng.uniform(0.3, 0.5))
    inner = bool(rng.random() < 0.5)  # the stripe inside the seam, or between it and the edge
    beside = float(rng.uniform(0.2, 0.5)) * (1.0 if inner else -1.0)
    offset = m.seam_offsets_mm[SIDES.index(side)]
    if side in ("left", "right"):
        angle, length = 0.0, m.width_mm
    else:
        angle, length = 90.0, m.height_mm
    near_start = side in ("left", "top")
    edge = offset + beside if near_start else length - offset - beside
    if side == "bottom":  # stripes are laid on the unfolded cloth: every fold hides some
        edge += PLEAT_DEPTH_MM * m.pleats
    # A band covers u in (0.5 - duty/2, 0.5 + duty/2) of each period (vision.synth.fabric).
    starts_here = inner == near_start
    u_edge = 0.5 - duty / 2 if starts_here else 0.5 + duty / 2
    fabric = np.asarray(m.fabric_bgr)
    darker = rng.random() < 0.7
    ink = np.clip(fabric * (rng.uniform(0.15, 0.6) if darker else rng.uniform(1.1, 1.4)), 0, 255)
    thread = m.thread_bgr
    if rng.random() < 0.6:
        t = rng.uniform(0.25, 0.75)
        thread = tuple(float(v) for v in t * fabric + (1 - t) * ink)
    return replace(
        m,
        print_kind="stripes",
        print_bgr=tuple(float(v) for v in ink),
        print_scale_mm=period,
        print_angle_deg=angle,
        print_duty=duty,
        print_phase_mm=edge - u_edge * period,
        thread_bgr=thread,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--n", type=int, default=60, help="frames (half good, half with a gap)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    out: Path = args.out
    (out / "cameras").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    spec = PrototypeSpec()
    default = Renderer(SimCamera())
    for i in tqdm(range(args.n), desc="render", unit="frame", file=sys.stderr):
        renderer = (
            Renderer(SimCamera.randomized(rng)) if rng.random() < RANDOMIZED_SHARE else default
        )
        side = str(rng.choice(SIDES))
        good = sample_scene(rng, "good", spec, camera=renderer.calibration)[0]
        mask = stripe_beside_seam(good, side, rng)
        kind = "good"
        if i % 2 == 1:
            kind = "seam_gap"
            mask = replace(mask, defects=(seam_gap(mask, rng, side),))
        extra = {"seed": args.seed, "print_edge": side}
        write_frame(out, i, kind, renderer, [mask], rng, spec, extra)
    manifest = {"seed": args.seed, "frames": args.n, "script": "scripts/print_edge_set.py"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
