"""One frame in, one verdict out: the inspection pipeline.

Every input gets a verdict and nothing raises out of :func:`inspect_frame`: a frame
that cannot be measured is an ``error`` (which the station treats as a reject), an
empty belt is ``no_mask``. Each stage's latency is kept for the log and benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vision.calibration import Calibration
from vision.decide import decide, dimension_defects
from vision.measure import body_pose
from vision.overlay import draw_overlay
from vision.segment import SegmentParams, find_masks
from vision.spec import PrototypeSpec
from vision.types import Defect, InspectionResult, Measurements


@dataclass(frozen=True)
class InspectionContext:
    """Everything the pipeline needs besides the frame; built once at start-up."""

    calibration: Calibration
    spec: PrototypeSpec
    segment: SegmentParams = field(default_factory=SegmentParams)
    annotate: bool = True
    mm_per_px: float = 0.0

    @classmethod
    def create(
        cls, calibration: Calibration, spec: PrototypeSpec, annotate: bool = True
    ) -> InspectionContext:
        return cls(
            calibration=calibration,
            spec=spec,
            annotate=annotate,
            mm_per_px=calibration.mm_per_px(),
        )


def normalise_frame(image: np.ndarray | None, expected_size: tuple[int, int]) -> np.ndarray:
    """A BGR uint8 frame of the calibrated size, or ValueError saying what is wrong."""
    if image is None:
        raise ValueError("no image")
    img = np.asarray(image)
    if img.size == 0:
        raise ValueError("empty image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"unsupported image shape {img.shape}")
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    w, h = expected_size
    if img.shape[1] != w or img.shape[0] != h:
        raise ValueError(
            f"frame is {img.shape[1]}x{img.shape[0]} px, calibration is for {w}x{h} px"
        )
    return img


def inspect_frame(image: np.ndarray | None, ctx: InspectionContext) -> InspectionResult:
    """Inspect one frame; never raises (a failure is an ``error`` verdict)."""
    stages: dict[str, float] = {}
    t_start = time.perf_counter()
    try:
        return _inspect(image, ctx, stages, t_start)
    except Exception as exc:
        stages["total"] = (time.perf_counter() - t_start) * 1000
        return InspectionResult(
            verdict="error",
            defects=[Defect(code="error", message=f"{type(exc).__name__}: {exc}")],
            stage_ms=stages,
            message=f"{type(exc).__name__}: {exc}",
        )


def _inspect(
    image: np.ndarray | None, ctx: InspectionContext, stages: dict[str, float], t_start: float
) -> InspectionResult:
    t = t_start

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        stages[name] = (now - t) * 1000
        t = now

    img = normalise_frame(image, ctx.calibration.image_size)
    lap("normalise")
    seg = find_masks(img, ctx.mm_per_px, ctx.segment)
    lap("segment")
    if not seg.blobs:
        stages["total"] = (time.perf_counter() - t_start) * 1000
        return InspectionResult(verdict="no_mask", stage_ms=stages, message="no mask on the belt")

    blob = seg.blobs[0]
    defects: list[Defect] = []
    measurements = Measurements()
    outline = blob.body_contour_px if blob.body_contour_px is not None else blob.contour_px
    if len(seg.blobs) > 1:
        defects.append(
            Defect(
                code="multiple",
                message=f"{len(seg.blobs)} masques dans l'image",
                value=float(len(seg.blobs)),
            )
        )
    if blob.touches_border:
        defects.append(Defect(code="partial", message="masque coupé par le bord de l'image"))
    if not blob.touches_border and blob.body_contour_px is not None:
        pose = body_pose(blob.body_contour_px, ctx.calibration)
        measurements.width_mm = round(pose.width_mm, 2)
        measurements.height_mm = round(pose.height_mm, 2)
        measurements.angle_deg = round(pose.angle_deg, 2)
        measurements.center_mm = (round(pose.center_mm[0], 2), round(pose.center_mm[1], 2))
        outline = pose.corners_px
        lap("measure")
        defects += dimension_defects(measurements, ctx.spec)
    verdict = decide(defects)
    lap("decide")
    overlay = draw_overlay(img, verdict, measurements, defects, outline) if ctx.annotate else None
    if overlay is not None:
        lap("overlay")
    stages["total"] = (time.perf_counter() - t_start) * 1000
    return InspectionResult(
        verdict=verdict,
        defects=defects,
        measurements=measurements,
        stage_ms=stages,
        overlay=overlay,
    )
