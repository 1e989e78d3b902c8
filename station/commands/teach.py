"""``qc-station teach``: golden samples in, a prototype spec TOML out.

Each image is inspected against the base spec (the shipped prototype unless
``--base``); what is measured on the masks that could be measured becomes the new
nominal: the mean width, height, seam offset (all sides) and stitch length, and the
most common pleat and ear-loop counts. Tolerances come from the base spec unless
given. Prints what was learned with its spread, warns when the samples disagree
(counts not unanimous, a spread that eats a large part of the tolerance, images that
could not be measured), and writes a spec that :func:`station.config.load_spec`
loads. Exit 0 written; 1 nothing measurable; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from station.commands.inspect import list_images, read_image
from station.config import ConfigError, load_calibration, load_spec
from station.paths import DEFAULT_SPEC_PATH

#: A spread (2σ) larger than this share of the tolerance is worth a warning.
SPREAD_WARN_SHARE = 0.5


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station teach`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "teach",
        help="learn a prototype spec from golden sample images",
        description="Measure golden samples and write their mean as a new prototype spec.",
    )
    p.add_argument("--calibration", required=True, type=Path, help="calibration JSON")
    p.add_argument("--out", required=True, type=Path, help="spec TOML to write")
    p.add_argument(
        "--base",
        type=Path,
        default=DEFAULT_SPEC_PATH,
        help="spec whose tolerances (and search ranges) are used",
    )
    p.add_argument("--name", help="spec name (default: the base's, suffixed -taught)")
    p.add_argument("--version", help="spec version (default: today's date)")
    for flag, what in (
        ("--width-tol", "body width"),
        ("--height-tol", "body height"),
        ("--offset-tol", "seam offset"),
        ("--stitch-tol", "stitch length"),
    ):
        p.add_argument(flag, type=float, help=f"tolerance of the {what}, mm (default: base)")
    p.add_argument("--max-gap", type=float, help="longest stitch-free stretch allowed, mm")
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="GOOD_IMAGES",
        help="images (or folders) of good masks",
    )
    p.set_defaults(handler=cmd_teach)


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def measure_samples(paths: list[Path], ctx: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Measurements of every measurable sample, and why the others were skipped."""
    from tqdm import tqdm

    from vision.pipeline import analyse_frame

    rows, skipped = [], []
    for path in tqdm(paths, desc="teach", unit="img", file=sys.stderr, disable=len(paths) < 5):
        try:
            image = read_image(path)
        except (ValueError, OSError) as err:
            skipped.append(f"{path}: {err}")
            continue
        fa = analyse_frame(image, ctx)
        if fa.mask is None:
            why = fa.result.message or ", ".join(fa.result.defect_codes) or fa.result.verdict
            skipped.append(f"{path}: not measurable ({why})")
            continue
        m = fa.result.measurements
        offsets = [sd.offset_mm for sd in fa.mask.seams.values() if sd.offset_mm is not None]
        rows.append(
            {
                "image": str(path),
                "width_mm": m.width_mm,
                "height_mm": m.height_mm,
                "pleats": m.pleats,
                "ear_loops": m.ear_loops,
                "stitch_length_mm": m.stitch_length_mm,
                "seam_offset_mm": float(np.mean(offsets)) if offsets else None,
            }
        )
    return rows, skipped


def learn(
    rows: list[dict[str, Any]], base: Any, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """The new spec as a mapping, the warnings, and the spread of each quantity."""
    warnings: list[str] = []
    spread: dict[str, Any] = {}
    tol = {
        "width_mm": args.width_tol if args.width_tol is not None else base.body.width_mm.tol,
        "height_mm": args.height_tol if args.height_tol is not None else base.body.height_mm.tol,
        "seam_offset_mm": args.offset_tol
        if args.offset_tol is not None
        else base.seam.offset_mm.tol,
        "stitch_length_mm": args.stitch_tol
        if args.stitch_tol is not None
        else base.seam.stitch_length_mm.tol,
    }
    nominal: dict[str, float] = {}
    for key in tol:
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            raise ValueError(f"{key}: measured on no sample")
        st = _stats(values)
        spread[key] = st
        nominal[key] = round(st["mean"], 2)
        if 2 * st["std"] > SPREAD_WARN_SHARE * tol[key]:
            warnings.append(
                f"{key}: samples spread ±{2 * st['std']:.2f} mm (2σ), more than "
                f"{SPREAD_WARN_SHARE:.0%} of the tolerance ±{tol[key]:g} mm"
            )
    counts = {}
    for key in ("pleats", "ear_loops"):
        c = Counter(r[key] for r in rows if r[key] is not None)
        value, n = c.most_common(1)[0]
        counts[key] = int(value)
        spread[key] = dict(c)
        if n != sum(c.values()):
            warnings.append(f"{key}: samples disagree {dict(c)}; using {value}")
    if tol["seam_offset_mm"] >= nominal["height_mm"] / 2 - nominal["seam_offset_mm"]:
        warnings.append("seam_offset_mm: tolerance reaches the body's middle")
    name = args.name or f"{base.spec.name}-taught"
    spec = {
        "spec": {
            "name": name,
            "version": args.version or datetime.now(UTC).strftime("%Y.%m.%d"),
            "description": f"Taught from {len(rows)} golden samples on "
            f"{datetime.now(UTC):%Y-%m-%d} (base {base.label})",
        },
        "body": {
            "width_mm": {"nominal": nominal["width_mm"], "tol": tol["width_mm"]},
            "height_mm": {"nominal": nominal["height_mm"], "tol": tol["height_mm"]},
            "pleats": counts["pleats"],
        },
        "seam": {
            "offset_mm": {"nominal": nominal["seam_offset_mm"], "tol": tol["seam_offset_mm"]},
            "stitch_length_mm": {
                "nominal": round(nominal["stitch_length_mm"], 2),
                "tol": tol["stitch_length_mm"],
            },
            "max_gap_mm": args.max_gap if args.max_gap is not None else base.seam.max_gap_mm,
            "sides": base.seam.sides,
        },
        "ear_loops": {"count": counts["ear_loops"]},
    }
    return spec, warnings, spread


def to_toml(spec: dict[str, Any], comment: str) -> str:
    """The spec as TOML in the shipped files' layout (tables, inline toleranced)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, float) else str(v)

    lines = [f"# {line}" for line in comment.splitlines()]
    for table, items in spec.items():
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {value(v)}" for k, v in items.items()]
    return "\n".join(lines) + "\n"


def cmd_teach(args: argparse.Namespace) -> int:
    from vision.pipeline import InspectionContext
    from vision.spec import PrototypeSpec

    calibration = load_calibration(args.calibration)
    base = load_spec(args.base)
    paths, _ = list_images(args.images)
    ctx = InspectionContext.create(calibration, base, annotate=False)
    rows, skipped = measure_samples(paths, ctx)
    for s in skipped:
        print(f"warning: skipped {s}", file=sys.stderr)
    if not rows:
        print("qc-station teach: no sample could be measured", file=sys.stderr)
        return 1
    try:
        spec, warnings, spread = learn(rows, base, args)
        PrototypeSpec.model_validate(spec)
    except ValueError as err:
        print(f"qc-station teach: cannot make a spec: {err}", file=sys.stderr)
        return 1
    print(f"learned from {len(rows)} of {len(paths)} samples:")
    for key in ("width_mm", "height_mm", "seam_offset_mm", "stitch_length_mm"):
        st = spread[key]
        print(
            f"  {key:17s} {st['mean']:8.2f}   spread σ {st['std']:.3f}  "
            f"[{st['min']:.2f} … {st['max']:.2f}]"
        )
    print(f"  pleats            {spec['body']['pleats']}   {spread['pleats']}")
    print(f"  ear_loops         {spec['ear_loops']['count']}   {spread['ear_loops']}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    text = to_toml(
        spec,
        f"Prototype spec taught by qc-station teach from {len(rows)} samples.\n"
        "Units are in the key names; every value carries its tolerance.",
    )
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ConfigError(str(args.out), [f"cannot write: {err}"]) from None
    load_spec(args.out)  # what was written loads
    print(f"written {args.out}")
    return 0
