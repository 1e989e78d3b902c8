"""``qc-station eval``: the measurement core against simulator ground truth.

Either evaluates a set rendered before (``--set DIR``) or renders one first
(``--seed N --n-good 100 --n-defect 15``, written to ``--set DIR`` or a temporary
folder): one PNG and one ground-truth JSON per frame, the calibrations of the
cameras used under ``cameras/``. A share of the frames (``--randomized-share``)
come from other simulated camera units (``SimCamera.randomized``: lens, focus,
mount tilt), each with its own exact calibration.

Prints the acceptance figures (:func:`vision.evaluate.format_report`); ``--json``
prints them as one JSON object instead. Exit 0 when every frame was evaluated.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from station.commands.inspect import read_image, result_record
from station.config import ConfigError, load_calibration, load_spec
from station.paths import DEFAULT_SPEC_PATH

#: Share of an eval set's frames rendered by randomized camera units.
RANDOMIZED_SHARE = 0.3

#: Defect kinds rendered --n-defect times each (hole/stain: the classifier's, kept
#: to check that geometry never accepts them silently, reported apart).
DEFECT_KINDS: tuple[str, ...] = (
    "dimension",
    "pleats",
    "ear_loop",
    "seam_gap",
    "seam_offset",
    "stitch_length",
    "partial",
    "multiple",
    "hole",
    "stain",
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station eval`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "eval",
        help="measure accuracy on a simulated set with ground truth",
        description="Render (or read) simulated frames with ground truth and score the "
        "inspection: defective accepted, false rejects, size error, recognition per code.",
    )
    p.add_argument("--set", dest="set_dir", type=Path, help="set folder (read, or written)")
    p.add_argument("--seed", type=int, help="render a new set with this seed first")
    p.add_argument("--n-good", type=int, default=100, help="good masks to render")
    p.add_argument("--n-defect", type=int, default=15, help="frames per defect kind")
    p.add_argument("--n-empty", type=int, default=10, help="empty-belt frames")
    p.add_argument(
        "--randomized-share",
        type=float,
        default=RANDOMIZED_SHARE,
        help=f"share of frames from randomized camera units (default {RANDOMIZED_SHARE})",
    )
    p.add_argument("--spec", type=Path, default=DEFAULT_SPEC_PATH, help="prototype spec TOML")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--results", type=Path, help="also write every frame's record (JSON lines)")
    p.add_argument(
        "--model",
        type=Path,
        help="also run this defect classifier (.onnx), as the station does; "
        "default: geometry only, the vision core's own figures",
    )
    p.set_defaults(handler=cmd_eval)


def render_set(
    out: Path, seed: int, n_good: int, n_defect: int, n_empty: int, share: float, spec: Any
) -> list[Path]:
    """Render the frames and their ground truth into ``out``; returns the PNG paths."""
    from tqdm import tqdm

    from vision.synth import Renderer, SimCamera, sample_scene

    kinds = ["good"] * n_good + [k for k in DEFECT_KINDS for _ in range(n_defect)]
    kinds += ["no_mask"] * n_empty
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(kinds))
    (out / "cameras").mkdir(parents=True, exist_ok=True)
    default = Renderer(SimCamera())
    paths = []
    for i, idx in enumerate(tqdm(order, desc="render", unit="frame", file=sys.stderr)):
        kind = kinds[idx]
        renderer = Renderer(SimCamera.randomized(rng)) if rng.random() < share else default
        masks = sample_scene(rng, kind, spec, camera=renderer.calibration)
        paths.append(write_frame(out, i, kind, renderer, masks, rng, spec, {"seed": seed}))
    manifest = {
        "seed": seed,
        "n_good": n_good,
        "n_defect": n_defect,
        "n_empty": n_empty,
        "randomized_share": share,
        "frames": len(paths),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return paths


def write_frame(
    out: Path,
    i: int,
    kind: str,
    renderer: Any,
    masks: list[Any],
    rng: np.random.Generator,
    spec: Any,
    extra: dict[str, Any],
) -> Path:
    """Render ``masks`` and write frame ``i`` as the set format wants it:
    ``NNNN_kind.png``, its ground truth ``NNNN_kind.json`` (plus ``extra``) and the
    camera's calibration under ``cameras/`` (once per camera). Returns the PNG path."""
    from vision.synth import sample_look

    cal = renderer.calibration
    cal_name = f"cameras/{cal.version}.json"
    if not (out / cal_name).exists():
        (out / cal_name).write_text(cal.to_json(), encoding="utf-8")
    image, truth = renderer.render(masks, sample_look(rng), rng, spec)
    name = f"{i:04d}_{kind}"
    cv2.imwrite(str(out / f"{name}.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    gt = truth.to_dict()
    gt.update({"kind": kind, "calibration": cal_name, **extra})
    (out / f"{name}.json").write_text(json.dumps(gt, default=float), encoding="utf-8")
    return out / f"{name}.png"


def evaluate_set(
    set_dir: Path, spec: Any, results: Path | None, classifier: Any | None = None
) -> dict[str, Any]:
    """Inspect every frame of a set with its own camera's calibration and score it."""
    from tqdm import tqdm

    from vision.evaluate import Case, score
    from vision.pipeline import InspectionContext, inspect_frame

    frames = sorted(p for p in set_dir.glob("*.png") if p.with_suffix(".json").is_file())
    if not frames:
        raise ConfigError(str(set_dir), ["no frames with ground truth (NNNN_kind.png + .json)"])
    contexts: dict[str, Any] = {}
    cases = []
    sink = results.open("w", encoding="utf-8") if results else None
    try:
        for path in tqdm(frames, desc="eval", unit="frame", file=sys.stderr):
            truth = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            cal_name = truth["calibration"]
            if cal_name not in contexts:
                cal = load_calibration(set_dir / cal_name)
                contexts[cal_name] = InspectionContext.create(
                    cal, spec, annotate=False, classifier=classifier
                )
            try:
                record = result_record(path, inspect_frame(read_image(path), contexts[cal_name]))
            except ValueError as err:
                record = {
                    "image": str(path),
                    "verdict": "error",
                    "message": str(err),
                    "defects": [{"code": "error", "message": str(err)}],
                }
            cases.append(Case(path.stem, record, truth))
            if sink:
                sink.write(json.dumps({**record, "truth_codes": truth["defect_codes"]}) + "\n")
    finally:
        if sink:
            sink.close()
    return score(cases).summary()


def cmd_eval(args: argparse.Namespace) -> int:
    from vision.evaluate import format_report

    spec = load_spec(args.spec)
    if args.seed is None and args.set_dir is None:
        raise ConfigError("eval", ["give --set DIR (a rendered set) or --seed N (render one)"])
    set_dir = args.set_dir
    if args.seed is not None:
        if set_dir is None:
            set_dir = Path(tempfile.mkdtemp(prefix=f"qc-eval-{args.seed}-"))
        set_dir.mkdir(parents=True, exist_ok=True)
        render_set(
            set_dir,
            args.seed,
            args.n_good,
            args.n_defect,
            args.n_empty,
            args.randomized_share,
            spec,
        )
        print(f"set written to {set_dir}", file=sys.stderr)
    classifier = None
    if args.model is not None:
        from station.model import load_classifier

        classifier = load_classifier(args.model)
    summary = evaluate_set(set_dir, spec, args.results, classifier)
    summary["set"] = str(set_dir)
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_report(summary))
    return 0
