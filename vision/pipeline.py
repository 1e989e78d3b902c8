"""One frame in, one verdict out: the inspection pipeline.

    frame ─▶ normalise ─▶ find (8× nearest copy) ─▶ coarse pose ─▶ rectify (one remap
    of the mask region to a top-down mm grid) ─▶ edges (sub-pixel, width × height)
    ─▶ seams ─▶ pleats ─▶ ear loops ─▶ decide ─▶ overlay (now, or deferred)

The full frame is read twice, both times by a strided copy (the coarse find and,
when annotating, the overlay's half-size base); every measurement works on the
rectified region only. With ``defer_overlay`` (the station) the overlay is not
drawn here but by ``result.annotated()``, once someone needs it: the verdict does
not wait for a picture that only rejects, samples and the live view use.

Every input gets a verdict and nothing raises out of :func:`inspect_frame`: a frame
that cannot be measured is an ``error`` (which the station treats as a reject), an
empty belt is ``no_mask``. Each stage's latency is kept for the log and the
benchmark.

:func:`analyse_frame` returns the same result plus the measured mask
(:class:`MaskAnalysis`: the rectified image at a known mm/px, the body frame, seams,
pleats, loops) for the steps that need pixels, such as the defect classifier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from vision import overlay as ov
from vision.annotate import draw_safely
from vision.calibration import Calibration
from vision.classify import BodyClassifier, ClassifierResult
from vision.decide import (
    DecideParams,
    decide,
    dimension_defects,
    loop_defects,
    pleat_defects,
    seam_defects,
)
from vision.earloops import LoopParams, LoopSide, analyse_loops
from vision.edges import BodyFrame, EdgeError, EdgeParams, fit_body
from vision.measure import coarse_pose
from vision.pleats import PleatParams, PleatResult, count_pleats
from vision.rectify import Rectified, RectifyParams, rectify
from vision.segment import Segmentation, SegmentParams, downscale, find_masks
from vision.spec import PrototypeSpec
from vision.stitching import SeamParams, SeamSide, analyse_seams, mask_pitch
from vision.types import Defect, InspectionResult, Measurements


@dataclass(frozen=True)
class InspectionParams:
    """Every tuning of the pipeline, grouped by step (units in the field names)."""

    segment: SegmentParams = field(default_factory=SegmentParams)
    rectify: RectifyParams = field(default_factory=RectifyParams)
    edges: EdgeParams = field(default_factory=EdgeParams)
    seams: SeamParams = field(default_factory=SeamParams)
    pleats: PleatParams = field(default_factory=PleatParams)
    loops: LoopParams = field(default_factory=LoopParams)
    decide: DecideParams = field(default_factory=DecideParams)
    overlay: ov.OverlayParams = field(default_factory=ov.OverlayParams)


@dataclass(frozen=True)
class InspectionContext:
    """Everything the pipeline needs besides the frame; built once at start-up."""

    calibration: Calibration
    spec: PrototypeSpec
    params: InspectionParams = field(default_factory=InspectionParams)
    annotate: bool = True
    mm_per_px: float = 0.0
    #: With ``annotate``: leave the overlay undrawn, for ``result.annotated()`` to draw
    #: when someone looks (the station: rejects, samples, live view), so that drawing
    #: it is not on the way to the verdict.
    defer_overlay: bool = False
    #: The loaded defect classifier (``station.model.Classifier``), or None: geometry
    #: only. Passed in, never loaded here: the pipeline stays free of sessions and files.
    classifier: BodyClassifier | None = None

    @classmethod
    def create(
        cls,
        calibration: Calibration,
        spec: PrototypeSpec,
        annotate: bool = True,
        params: InspectionParams | None = None,
        classifier: BodyClassifier | None = None,
        defer_overlay: bool = False,
    ) -> InspectionContext:
        return cls(
            calibration=calibration,
            spec=spec,
            params=params or InspectionParams(),
            annotate=annotate,
            mm_per_px=calibration.mm_per_px(),
            defer_overlay=defer_overlay,
            classifier=classifier,
        )


@dataclass(frozen=True)
class MaskAnalysis:
    """The measured mask, for later steps that need its pixels (classifier tiles).

    ``rectified.image`` is the mask region top-down at ``rectified.mm_per_px``;
    :meth:`mask_to_rect_px` / :meth:`rect_px_to_mask` convert between its pixels and
    mask coordinates (mm from the body's top-left corner, x along the width).
    """

    rectified: Rectified
    body: BodyFrame
    seams: dict[str, SeamSide]
    pitch_mm: float | None
    pleats: PleatResult
    loops: dict[str, LoopSide]
    #: What the defect classifier found (None when no model runs or it failed).
    classified: ClassifierResult | None = None

    def mask_to_rect_px(self, pts_mm: np.ndarray) -> np.ndarray:
        return self.rectified.to_px(self.body.mask_to_local(pts_mm))

    def rect_px_to_mask(self, px: np.ndarray) -> np.ndarray:
        return self.body.local_to_mask(self.rectified.to_mm(px))

    def mask_to_belt(self, pts_mm: np.ndarray) -> np.ndarray:
        return self.rectified.pose.local_to_belt(self.body.mask_to_local(pts_mm))


@dataclass(frozen=True)
class FrameAnalysis:
    result: InspectionResult
    mask: MaskAnalysis | None = None


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
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"unsupported image shape {img.shape}")
    elif img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])
    w, h = expected_size
    if img.shape[1] != w or img.shape[0] != h:
        raise ValueError(
            f"frame is {img.shape[1]}x{img.shape[0]} px, calibration is for {w}x{h} px"
        )
    return img


def inspect_frame(image: np.ndarray | None, ctx: InspectionContext) -> InspectionResult:
    """Inspect one frame; never raises (a failure is an ``error`` verdict)."""
    return analyse_frame(image, ctx).result


def analyse_frame(image: np.ndarray | None, ctx: InspectionContext) -> FrameAnalysis:
    """:func:`inspect_frame` plus the measured mask; never raises."""
    stages: dict[str, float] = {}
    t_start = time.perf_counter()
    try:
        return _analyse(image, ctx, stages, t_start)
    except Exception as exc:  # noqa: BLE001 - a verdict for every frame is the contract
        stages["total"] = (time.perf_counter() - t_start) * 1000
        message = f"{type(exc).__name__}: {exc}"
        return FrameAnalysis(
            InspectionResult(
                verdict="error",
                defects=[Defect(code="error", message=message)],
                stage_ms=stages,
                message=message,
            )
        )


class _Clock:
    def __init__(self, stages: dict[str, float], start: float) -> None:
        self.stages, self.start, self.t = stages, start, start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = (now - self.t) * 1000
        self.t = now

    def total(self) -> None:
        self.stages["total"] = (time.perf_counter() - self.start) * 1000


def _analyse(
    image: np.ndarray | None, ctx: InspectionContext, stages: dict[str, float], t0: float
) -> FrameAnalysis:
    clock = _Clock(stages, t0)
    p = ctx.params
    img = normalise_frame(image, ctx.calibration.image_size)
    clock.lap("normalise")
    step = p.segment.downscale
    seg = find_masks(downscale(img, step), step, ctx.mm_per_px, p.segment)
    clock.lap("find")

    if seg.belt_level > p.segment.max_belt_level:
        msg = f"no dark belt in view (level {seg.belt_level:.0f}): over-exposed or covered"
        return _finish(
            img, ctx, clock, "error", [Defect("error", msg)], Measurements(), seg, None, msg
        )
    if not seg.blobs:
        return _finish(img, ctx, clock, "no_mask", [], Measurements(), seg, None, "no mask")
    defects: list[Defect] = []
    if len(seg.blobs) > 1:
        n = len(seg.blobs)
        defects.append(Defect("multiple", f"{n} masques dans l'image", value=float(n), limit="1"))
    if any(b.touches_border for b in seg.blobs):
        defects.append(Defect("partial", "masque coupé par le bord de l'image"))
    if defects:
        return _finish(img, ctx, clock, "reject", defects, Measurements(), seg, None, "")

    blob = seg.blobs[0]
    assert blob.body_contour_px is not None
    outline_inset = step * ctx.mm_per_px  # contour pixels lie half a pixel inside
    pose = coarse_pose(blob.body_contour_px, ctx.calibration, outline_inset)
    clock.lap("pose")
    rect = rectify(img, ctx.calibration, pose, p.rectify)
    clock.lap("rectify")
    try:
        body = fit_body(rect, p.edges)
    except EdgeError as err:
        defects = [Defect("error", f"bord du masque non mesurable : {err}")]
        return _finish(img, ctx, clock, "error", defects, Measurements(), seg, None, str(err))
    clock.lap("edges")
    seams = analyse_seams(rect, body, ctx.spec.seam, p.seams)
    pitch, _ = mask_pitch(seams, rect.mm_per_px, ctx.spec.seam, p.seams)
    clock.lap("seams")
    pleats = count_pleats(rect, body, ctx.spec, p.pleats)
    clock.lap("pleats")
    loops = analyse_loops(rect, body, p.loops)
    clock.lap("loops")

    m = _measurements(rect, body, seams, pitch, pleats, loops, ctx.spec)
    w, h = body.width_mm, body.height_mm
    defects = (
        dimension_defects(m, ctx.spec)
        + pleat_defects(pleats, w, h, ctx.spec)
        + loop_defects(loops, ctx.spec)
        + seam_defects(seams, pitch, w, h, ctx.spec, p.decide)
        + _foreign_defects(seg, p.segment)
    )
    classified = None
    if ctx.classifier is not None:
        classified, model_defects = _classify(ctx.classifier, rect, body)
        defects += model_defects
        clock.lap("classify")
    analysis = MaskAnalysis(rect, body, seams, pitch, pleats, loops, classified)
    return _finish(img, ctx, clock, decide(defects), defects, m, seg, analysis, "")


def _foreign_defects(seg: Segmentation, params: SegmentParams) -> list[Defect]:
    """One defect for the largest foreign object beside the mask (a tool, a hand…)."""
    if not seg.foreign:
        return []
    _, area_mm2 = seg.foreign[0]
    n = len(seg.foreign)
    return [
        Defect(
            "foreign",
            f"objet étranger sur le tapis ({n})" if n > 1 else "objet étranger sur le tapis",
            value=round(area_mm2, 1),
            limit=f"< {params.min_foreign_area_mm2:g} mm²",
        )
    ]


def _classify(
    classifier: BodyClassifier, rect: Rectified, body: BodyFrame
) -> tuple[ClassifierResult | None, list[Defect]]:
    """Holes, stains and anomalies on the measured body; a failing model rejects.

    A model that raises cannot vouch for the mask, so its failure is a ``model``
    defect (the mask is rejected, the reason recorded), never a silent pass.
    """
    try:
        found = classifier.classify(
            rect.image, body.mask_to_rect_affine(rect), body.width_mm, body.height_mm
        )
    except Exception as exc:  # noqa: BLE001 - fail safe: an unusable model rejects the mask
        return None, [Defect("model", f"classifieur en échec : {type(exc).__name__}: {exc}")]
    return found, list(found.defects)


def _measurements(
    rect: Rectified,
    body: BodyFrame,
    seams: dict[str, SeamSide],
    pitch: float | None,
    pleats: PleatResult,
    loops: dict[str, LoopSide],
    spec: PrototypeSpec,
) -> Measurements:
    centre_local = body.mask_to_local(np.array([body.width_mm / 2, body.height_mm / 2]))
    centre = rect.pose.local_to_belt(centre_local)
    offsets = [sd.offset_mm for sd in seams.values() if sd.offset_mm is not None]
    nominal = spec.seam.offset_mm.nominal
    worst = max(offsets, key=lambda v: abs(v - nominal)) if offsets else None
    gaps = [sd.max_gap_mm for sd in seams.values()]
    return Measurements(
        width_mm=round(body.width_mm, 2),
        height_mm=round(body.height_mm, 2),
        angle_deg=round(rect.pose.angle_deg + body.skew_deg, 2),
        center_mm=(round(float(centre[0]), 2), round(float(centre[1]), 2)),
        pleats=pleats.count,
        ear_loops=sum(side.state == "ok" for side in loops.values()),
        seam_offset_mm=None if worst is None else round(worst, 2),
        stitch_length_mm=None if pitch is None else round(pitch, 3),
        max_gap_mm=round(max(gaps), 2) if gaps else None,
    )


def _finish(
    img: np.ndarray,
    ctx: InspectionContext,
    clock: _Clock,
    verdict: str,
    defects: list[Defect],
    m: Measurements,
    seg: Segmentation,
    analysis: MaskAnalysis | None,
    message: str,
) -> FrameAnalysis:
    clock.lap("decide")
    overlay = draw = None
    if ctx.annotate:
        # A measured mask is drawn on its rectified image: a deferred drawing then
        # does not keep the whole frame (≈ 9 MB) alive with the result.
        frame = img if analysis is None else None
        draw = partial(draw_safely, frame, ctx.params.overlay, verdict, defects, m, seg, analysis)
        if not ctx.defer_overlay:
            overlay, draw = draw(), None
            clock.lap("overlay")
    clock.total()
    result = InspectionResult(
        verdict=verdict,  # type: ignore[arg-type]
        defects=defects,
        measurements=m,
        stage_ms=clock.stages,
        message=message,
        overlay=overlay,
        draw_overlay=draw,
    )
    return FrameAnalysis(result, analysis)
