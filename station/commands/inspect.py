"""``qc-station inspect``: image files or folders in, one JSON verdict per image out.

The file side of :func:`vision.pipeline.inspect_frame`: list the images (folders
sorted, non-images skipped), read each one, inspect it, print one JSON object per
image (stdout or ``--jsonl``), optionally write the annotated image. An unreadable
image is an ``error`` line and the run goes on: exit 0 whenever every image was
processed, rejects and errors included; 2 for bad arguments (missing calibration,
invalid spec).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from station.config import ConfigError, load_calibration, load_spec
from station.paths import DEFAULT_MODEL_PATH, DEFAULT_SPEC_PATH

#: Files picked up inside folders (case-insensitive); anything else is ignored.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station inspect`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "inspect",
        help="inspect image files or folders, one JSON object per image",
        description="Measure each mask against the prototype and check its stitching.",
    )
    p.add_argument("--calibration", required=True, type=Path, help="calibration JSON")
    p.add_argument(
        "--spec",
        type=Path,
        default=DEFAULT_SPEC_PATH,
        help="prototype spec TOML (default: the shipped adult prototype)",
    )
    p.add_argument("--jsonl", type=Path, help="write the JSON lines here instead of stdout")
    p.add_argument("--annotate", type=Path, metavar="DIR", help="write annotated images here")
    model = p.add_mutually_exclusive_group()
    model.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL_PATH,
        help="defect classifier .onnx, its card beside it (default: the shipped model)",
    )
    model.add_argument(
        "--no-model",
        action="store_true",
        help="geometry only: no hole/stain/anomaly check",
    )
    p.add_argument("--model-threads", type=int, default=1, help="onnxruntime threads (default 1)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    p.set_defaults(handler=cmd_inspect)


def list_images(paths: Sequence[Path]) -> tuple[list[Path], bool]:
    """Files to inspect, in order, and whether any folder was given.

    A path that is neither a folder nor an existing file is kept: it will be
    reported as an ``error`` line, like any unreadable image.
    """
    out: list[Path] = []
    folder = False
    for p in paths:
        if p.is_dir():
            folder = True
            out += sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            out.append(p)
    return out, folder


def read_image(path: Path) -> np.ndarray:
    """The image as stored (8 or 16 bit, grey or colour); ValueError if unreadable."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"not a readable image: {path}")
    return image


def result_record(path: Path, result: Any) -> dict[str, Any]:
    """The JSON object of one inspected image (the CLI contract's keys first)."""
    m = result.measurements
    record: dict[str, Any] = {
        "image": str(path),
        "verdict": result.verdict,
        "defects": [d.to_dict() for d in result.defects],
        "width_mm": m.width_mm,
        "height_mm": m.height_mm,
        "pleats": m.pleats,
        "ear_loops": m.ear_loops,
        "stitch_length_mm": m.stitch_length_mm,
        "seam_offset_mm": m.seam_offset_mm,
        "max_gap_mm": m.max_gap_mm,
        "angle_deg": m.angle_deg,
        "center_mm": list(m.center_mm) if m.center_mm is not None else None,
        "latency_ms": round(float(result.stage_ms.get("total", 0.0)), 2),
        "stage_ms": {k: round(float(v), 3) for k, v in result.stage_ms.items()},
    }
    if result.message:
        record["message"] = result.message
    return record


def error_record(path: Path, message: str) -> dict[str, Any]:
    return {
        "image": str(path),
        "verdict": "error",
        "defects": [{"code": "error", "message": message}],
        "message": message,
        "width_mm": None,
        "height_mm": None,
        "pleats": None,
        "ear_loops": None,
        "stitch_length_mm": None,
        "latency_ms": None,
    }


def _annotated_name(path: Path, used: set[str]) -> str:
    name = f"{path.stem}.jpg"
    i = 1
    while name in used:
        name = f"{path.stem}-{i}.jpg"
        i += 1
    used.add(name)
    return name


def iter_records(
    images: Sequence[Path], ctx: Any, annotate: Path | None, progress: bool
) -> Iterator[dict[str, Any]]:
    """Inspect each image; yield its record (never raises for a bad image)."""
    from tqdm import tqdm

    from vision.pipeline import inspect_frame

    used: set[str] = set()
    for path in tqdm(images, desc="inspect", unit="img", disable=not progress, file=sys.stderr):
        try:
            image = read_image(path)
        except (ValueError, OSError) as err:
            yield error_record(path, str(err))
            continue
        result = inspect_frame(image, ctx)
        record = result_record(path, result)
        if annotate is not None and result.overlay is not None:
            out = annotate / _annotated_name(path, used)
            if cv2.imwrite(str(out), result.overlay):
                record["annotated"] = str(out)
        yield record


def cmd_inspect(args: argparse.Namespace) -> int:
    from vision.pipeline import InspectionContext

    calibration = load_calibration(args.calibration)
    spec = load_spec(args.spec)
    images, folder = list_images(args.paths)
    if args.annotate is not None:
        try:
            args.annotate.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(str(args.annotate), [f"cannot create: {err}"]) from None
    classifier = None
    if not args.no_model:
        from station.model import load_classifier

        classifier = load_classifier(args.model, args.model_threads)
    ctx = InspectionContext.create(
        calibration, spec, annotate=args.annotate is not None, classifier=classifier
    )
    model_label = classifier.label if classifier is not None else "none"
    out: IO[str] = args.jsonl.open("w", encoding="utf-8") if args.jsonl else sys.stdout
    try:
        for record in iter_records(images, ctx, args.annotate, progress=folder):
            record["model"] = model_label
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if args.jsonl:
            out.close()
    return 0
