"""Ground truth returned with every simulated frame.

Defect codes are not copied from what the sampler *intended*: they are derived from
the mask as drawn, compared with the prototype spec (a 210 mm wide mask is a
``dimension`` defect even if built by hand), plus the flaws actually drawn (holes,
stains, seam gaps at least the spec's ``max_gap_mm``). So a hand-written
:class:`MaskParams` gets a correct label too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vision.spec import PrototypeSpec
from vision.synth.params import SIDES, MaskParams
from vision.types import DEFECT_CODES


@dataclass(frozen=True)
class DefectTruth:
    """One reason the mask is defective, with where it is.

    ``x_mm``/``y_mm`` is the *centre* of the affected region and ``w_mm``/``h_mm`` its
    size, in mask coordinates (mm from the body's top-left corner, x along the width).
    Whole-mask defects (dimension, pleats, stitch length, partial) cover the body.
    """

    code: str
    x_mm: float
    y_mm: float
    w_mm: float
    h_mm: float
    detail: str = ""

    def box_mm(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the region in mask mm."""
        return (
            self.x_mm - self.w_mm / 2,
            self.y_mm - self.h_mm / 2,
            self.x_mm + self.w_mm / 2,
            self.y_mm + self.h_mm / 2,
        )


@dataclass
class MaskTruth:
    """Everything the station should measure on one mask."""

    width_mm: float
    height_mm: float
    center_mm: tuple[float, float]
    angle_deg: float
    pleats: int
    #: Loops sewn at both ends (what "ear_loops" counts on a good mask).
    ear_loops: int
    loop_states: tuple[str, str]
    #: Seam offset per side, in SIDES order (top, right, bottom, left).
    seam_offsets_mm: tuple[float, float, float, float]
    stitch_length_mm: float
    #: Longest stitch-free stretch along the seam, mm (≈ 0.4 mm on a good seam).
    max_gap_mm: float
    defects: list[DefectTruth] = field(default_factory=list)
    #: The body crosses the image border.
    partial: bool = False

    @property
    def defect_codes(self) -> list[str]:
        """Distinct codes, in DEFECT_CODES order; empty for a good mask."""
        have = {d.code for d in self.defects}
        return [c for c in DEFECT_CODES if c in have]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["defect_codes"] = self.defect_codes
        return d


@dataclass
class GroundTruth:
    """What is in a frame, for tests, evaluation and training labels.

    ``body_mask_px`` is 255 where a mask body (cloth only: no loops, no holes) covers
    the camera pixel, rendered through the same camera as the image.
    """

    masks: list[MaskTruth]
    body_mask_px: np.ndarray
    calibration_version: str
    belt_offset_mm: float = 0.0

    @property
    def no_mask(self) -> bool:
        return not self.masks

    @property
    def multiple(self) -> bool:
        return len(self.masks) > 1

    @property
    def partial(self) -> bool:
        return any(m.partial for m in self.masks)

    @property
    def defect_codes(self) -> list[str]:
        """Frame-level codes: every mask's codes plus ``multiple``."""
        have = {c for m in self.masks for c in m.defect_codes}
        if self.multiple:
            have.add("multiple")
        return [c for c in DEFECT_CODES if c in have]

    @property
    def expected_verdict(self) -> str:
        if self.no_mask:
            return "no_mask"
        return "reject" if self.defect_codes else "accept"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the pixel layer)."""
        return {
            "expected_verdict": self.expected_verdict,
            "defect_codes": self.defect_codes,
            "no_mask": self.no_mask,
            "multiple": self.multiple,
            "partial": self.partial,
            "calibration_version": self.calibration_version,
            "belt_offset_mm": self.belt_offset_mm,
            "masks": [m.to_dict() for m in self.masks],
        }


def spec_defects(
    params: MaskParams,
    spec: PrototypeSpec,
    max_gap_mm: float,
    gaps: list[tuple[str, float, float, float]],
) -> list[DefectTruth]:
    """Defects of the mask as drawn, judged against the spec (placement excluded)."""
    w, h = params.width_mm, params.height_mm
    body = (w / 2, h / 2, w, h)
    out: list[DefectTruth] = []
    if not (spec.body.width_mm.contains(w) and spec.body.height_mm.contains(h)):
        out.append(DefectTruth("dimension", *body, f"{w:.1f} x {h:.1f} mm"))
    if params.pleats != spec.body.pleats:
        out.append(DefectTruth("pleats", *body, f"{params.pleats} pleats"))
    # Loop region: from past the loop's reach (its drop shadow included) to the tacks.
    reach = params.loop_reach_mm + params.loop_width_mm + 6.0
    attached = sum(s == "ok" for s in params.ear_loops)
    if attached != spec.ear_loops.count:
        for side, state in zip(("left", "right"), params.ear_loops, strict=True):
            if state != "ok":
                x = (8.0 - reach) / 2 if side == "left" else w + (reach - 8.0) / 2
                out.append(DefectTruth("ear_loop", x, h / 2, reach + 8, h + 16, f"{side} {state}"))
    for side, offset in zip(SIDES, params.seam_offsets_mm, strict=True):
        if not spec.seam.offset_mm.contains(offset):
            depth = max(offset, spec.seam.offset_mm.nominal) + 2.0
            box = {
                "top": (w / 2, depth / 2, w, depth),
                "bottom": (w / 2, h - depth / 2, w, depth),
                "left": (depth / 2, h / 2, depth, h),
                "right": (w - depth / 2, h / 2, depth, h),
            }[side]
            out.append(DefectTruth("seam_offset", *box, f"{side} {offset:.1f} mm"))
    if not spec.seam.stitch_length_mm.contains(params.stitch_length_mm):
        out.append(DefectTruth("stitch_length", *body, f"{params.stitch_length_mm:.2f} mm"))
    if max_gap_mm >= spec.seam.max_gap_mm:
        for side, cx, cy, length in gaps:
            if length >= spec.seam.max_gap_mm:
                along = side in ("top", "bottom")
                size = (length + 4.0, 6.0) if along else (6.0, length + 4.0)
                out.append(DefectTruth("seam_gap", cx, cy, *size, f"{side} {length:.1f} mm"))
    for d in params.defects:
        if d.kind in ("hole", "stain"):
            size = d.size_mm * 1.5 + 3.0
            what = str(d.extra.get("shape", d.extra.get("tint", "")))
            out.append(DefectTruth(d.kind, d.x_mm, d.y_mm, size, size, what))
    return out
