"""The supervisors' image of one inspection: the overlay, drawn when someone looks.

The pipeline hands the station a ``partial`` of :func:`draw_safely` instead of a
picture (``InspectionResult.draw_overlay``): rejects, samples and the live view draw
it, off the way to the verdict. A measured mask is drawn on its rectified image, as
it was measured; anything else on a half-size copy of the frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vision import overlay as ov
from vision.segment import Segmentation
from vision.stitching import SIDES
from vision.types import Defect, Measurements

if TYPE_CHECKING:
    from vision.pipeline import MaskAnalysis


def draw_safely(
    img: np.ndarray | None,
    params: ov.OverlayParams,
    verdict: str,
    defects: list[Defect],
    m: Measurements,
    seg: Segmentation,
    analysis: MaskAnalysis | None,
) -> np.ndarray:
    """:func:`draw`, or a plainer image saying why it failed; never raises.

    A deferred overlay is drawn after the verdict, by the station's recorder: an
    exception there would cost the mask its row in the QC log. So a failure gives
    the coarse copy of the frame with the verdict, the measurements and the error.
    """
    try:
        return draw(img, params, verdict, defects, m, seg, analysis)
    except Exception as exc:  # noqa: BLE001 - the reason is drawn on the image instead
        canvas = seg.coarse.copy()
        ov.draw_summary(canvas, verdict, m, defects)
        ov.draw_failure(canvas, f"overlay: {type(exc).__name__}: {exc}")
        return canvas


def draw(
    img: np.ndarray | None,
    params: ov.OverlayParams,
    verdict: str,
    defects: list[Defect],
    m: Measurements,
    seg: Segmentation,
    analysis: MaskAnalysis | None,
) -> np.ndarray:
    """The supervisors' image.

    A measured mask is shown top-down, as measured: the rectified image (fixed mm per
    pixel, the mask straight) with its outline, seams and defects. Anything else
    (empty belt, mask cut by the border, several masks) is shown on a half-size copy
    of the frame with what was found outlined (``img``: needed only then).
    """
    if analysis is None:
        if img is None:
            raise ValueError("an unmeasured mask's overlay needs the frame")
        canvas = ov.base_image(img, params)
        ov.draw_blobs(canvas, [b.contour_px for b in seg.blobs], params.scale)
    else:
        canvas = analysis.rectified.image.copy()
        lines = []
        w, h = analysis.body.width_mm, analysis.body.height_mm
        for side in SIDES:
            sd = analysis.seams[side]
            if sd.offset_mm is None:
                continue
            t = np.array(sd.t_range_mm)
            d = sd.offset_mm
            pts = {
                "top": np.stack([t, np.full_like(t, d)], 1),
                "bottom": np.stack([t, np.full_like(t, h - d)], 1),
                "left": np.stack([np.full_like(t, d), t], 1),
                "right": np.stack([np.full_like(t, w - d), t], 1),
            }[side]
            lines.append(pts)
        ov.draw_mask(canvas, verdict, analysis.mask_to_rect_px, w, h, lines, defects, params)
    ov.draw_summary(canvas, verdict, m, defects)
    return canvas
