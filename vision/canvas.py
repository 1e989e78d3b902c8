"""The classifier's canvas: the measured body cut from the rectified image, in mask mm.

    rectified image ─▶ the body's box (:func:`body_roi`) ─▶ halved by a 2×2 area
    average when the canvas is coarse (:func:`area_reduction`) ─▶ one bilinear affine
    warp onto the fixed canvas of the tiling (:func:`canvas_affine`), in place in the
    :class:`vision.tiles.TileWorkspace`.

Split from :mod:`vision.tiles`, which cuts this canvas into the model's batch.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.tiles import TileWorkspace

#: Pixels of rectified image kept around the body's bounding box before halving.
ROI_PAD_PX = 4


def canvas_affine(
    mask_to_rect: np.ndarray,
    body_w_mm: float,
    body_h_mm: float,
    cols: int,
    rows: int,
    roi_origin_px: tuple[int, int] = (0, 0),
    reduce: int = 2,
) -> np.ndarray:
    """2×3 map from a canvas pixel to the reduced rectified region.

    ``mask_to_rect`` is the 2×3 affine mask mm → rectified pixel
    (:meth:`vision.edges.BodyFrame.mask_to_rect_affine`). Canvas pixel ``c`` is
    centred at ``(c + 0.5)·W/cols`` mm; an ``r``×``r`` area-averaged pixel ``i`` of the
    region starting at rectified pixel ``o`` is centred at rectified
    ``o + r·i + (r − 1)/2`` (``reduce`` 1: the region as it is).
    """
    sx, sy = body_w_mm / cols, body_h_mm / rows
    canvas_to_mask = np.array([[sx, 0.0, 0.5 * sx], [0.0, sy, 0.5 * sy], [0.0, 0.0, 1.0]])
    ox, oy = roi_origin_px
    r, c = float(reduce), (reduce - 1) / 2
    rect_to_reduced = np.array([[1 / r, 0.0, -(ox + c) / r], [0.0, 1 / r, -(oy + c) / r]])
    m3 = np.vstack([np.asarray(mask_to_rect, np.float64), [0.0, 0.0, 1.0]])
    return rect_to_reduced @ m3 @ canvas_to_mask


def area_reduction(mask_to_rect: np.ndarray, mm_per_px: float) -> int:
    """2 when a canvas pixel spans two rectified pixels or more, else 1.

    A coarse canvas (0.5 mm/px from 0.2 mm/px) is first halved by an area average,
    against aliasing of the weave; a fine one (0.25 mm/px) is warped straight from
    the rectified image, where halving would throw away the detail it is there for.
    """
    px_per_mm = float(np.hypot(*np.asarray(mask_to_rect, np.float64)[:, 0]))
    return 2 if mm_per_px * px_per_mm >= 2.0 else 1


def body_roi(
    mask_to_rect: np.ndarray, body_w_mm: float, body_h_mm: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Even-sized ``(x0, y0, x1, y1)`` rectified-pixel box around the body, in the image."""
    corners = np.array([[0, 0, 1], [body_w_mm, 0, 1], [body_w_mm, body_h_mm, 1], [0, body_h_mm, 1]])
    px = corners @ np.asarray(mask_to_rect, np.float64).T
    h, w = shape
    x0 = max(int(np.floor(px[:, 0].min())) - ROI_PAD_PX, 0)
    y0 = max(int(np.floor(px[:, 1].min())) - ROI_PAD_PX, 0)
    x1 = min(int(np.ceil(px[:, 0].max())) + ROI_PAD_PX, w)
    y1 = min(int(np.ceil(px[:, 1].max())) + ROI_PAD_PX, h)
    x1 -= (x1 - x0) % 2
    y1 -= (y1 - y0) % 2
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError("body outside the rectified image")
    return x0, y0, x1, y1


def body_canvas(
    rect_image: np.ndarray,
    mask_to_rect: np.ndarray,
    body_w_mm: float,
    body_h_mm: float,
    work: TileWorkspace,
) -> np.ndarray:
    """Fill ``work.canvas`` with the body, axis-aligned in mask mm; returns it.

    A coarse canvas is made from the body's region halved by a 2×2 area average
    (against aliasing of the weave, and cheap), a fine one from the region as it is
    (:func:`area_reduction`); either is then warped once, bilinearly, onto the
    canvas. Training renders its data set through this very function, so the model
    sees at training exactly what it sees at the station.
    """
    g = work.grid
    x0, y0, x1, y1 = body_roi(mask_to_rect, body_w_mm, body_h_mm, rect_image.shape[:2])
    reduce = area_reduction(mask_to_rect, g.params.mm_per_px)
    if reduce == 1:
        src = rect_image[y0:y1, x0:x1]
    else:
        src = work.half_view((y1 - y0) // 2, (x1 - x0) // 2)
        cv2.resize(
            rect_image[y0:y1, x0:x1],
            (src.shape[1], src.shape[0]),
            dst=src,
            interpolation=cv2.INTER_AREA,
        )
    m = canvas_affine(mask_to_rect, body_w_mm, body_h_mm, g.cols, g.rows, (x0, y0), reduce)
    cv2.warpAffine(
        src,
        m,
        (g.cols, g.rows),
        dst=work.canvas,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return work.canvas
