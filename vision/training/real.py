"""Labelled frames from the station, turned into training bodies (no torch).

The station's label endpoint files each labelled inspection as its RAW camera
frame::

    <data_dir>/training/real/<label>/<inspection_id>.jpg
    <data_dir>/training/real/labels.jsonl   # {"id","label","verdict_was","defects_was",
                                            #  "labelled_by","ts_utc","image",
                                            #  "spec_version","calibration_version"}

The last line per id wins (a relabelled frame). Each frame is measured by the
station's own pipeline with the station's calibration, exactly as at run time, and
its body canvas joins the synthetic ones. A supervisor's label is for the whole
mask, with no position, so training treats it as multiple-instance learning:

- ``good``: every tile of the mask is a good tile;
- ``hole`` / ``stain``: a *bag* — at least one tile shows it. At each epoch the
  tile the current model finds most like the label is trained as that class; the
  other tiles of the mask are left out (they may or may not be clean);
- any other label (geometric defects, ``anomaly``) says nothing about holes or
  stains on a known tile, so the frame is skipped and counted.

One frame in ``val_every`` (by a hash of its id, stable across runs) is kept for
validation.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.belt_cue import belt_colour
from vision.calibration import Calibration
from vision.canvas import body_canvas
from vision.classify import CLASSES
from vision.spec import PrototypeSpec
from vision.tiles import TileWorkspace

LABELS_FILE = "labels.jsonl"


@dataclass(frozen=True)
class RealBody:
    """One labelled station frame, measured: its canvas or why there is none."""

    id: str
    label: str
    image: Path
    canvas: np.ndarray | None
    body_mm: tuple[float, float] | None
    reason: str = ""
    #: The belt beside the body (BGR, :func:`vision.belt_cue.belt_colour`), if measured.
    belt_bgr: tuple[float, float, float] | None = None


def read_labels(root: Path) -> dict[str, dict[str, Any]]:
    """The labels in force under ``root`` (``training/real``): last line per id wins."""
    path = Path(root) / LABELS_FILE
    latest: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return latest
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
        latest[str(entry["id"])] = entry
    return latest


def split_of(real_id: str, val_every: int = 5) -> str:
    """Stable train/val assignment of a real frame by a hash of its id."""
    return "val" if val_every and zlib.crc32(real_id.encode()) % val_every == 0 else "train"


def measure_real(
    root: Path,
    calibration: Calibration,
    spec: PrototypeSpec,
    work: TileWorkspace,
    progress: Callable[[int], None] | None = None,
) -> list[RealBody]:
    """Measure every labelled frame under ``root`` with the station's pipeline."""
    from vision.pipeline import InspectionContext, analyse_frame

    ctx = InspectionContext.create(calibration, spec, annotate=False)
    out = []
    for entry in read_labels(root).values():
        rid, label = str(entry["id"]), str(entry["label"])
        path = Path(root) / str(entry.get("image") or f"{label}/{rid}.jpg")
        body = RealBody(rid, label, path, None, None)
        if label not in CLASSES:
            body = RealBody(rid, label, path, None, None, f"label {label!r}: not a tile class")
        elif not path.is_file():
            body = RealBody(rid, label, path, None, None, "image missing")
        else:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            fa = analyse_frame(image, ctx)
            if fa.mask is None:
                why = fa.result.message or fa.result.verdict
                body = RealBody(rid, label, path, None, None, f"not measured: {why}")
            else:
                b, rect = fa.mask.body, fa.mask.rectified
                a = b.mask_to_rect_affine(rect)
                canvas = body_canvas(rect.image, a, b.width_mm, b.height_mm, work).copy()
                belt = belt_colour(rect.image, a, b.width_mm, b.height_mm)
                seen = (float(belt[0]), float(belt[1]), float(belt[2]))
                size = (b.width_mm, b.height_mm)
                body = RealBody(
                    rid, label, path, canvas, size, "", seen if np.isfinite(belt).all() else None
                )
        out.append(body)
        if progress:
            progress(1)
    return out
