"""Find masks on the belt, on a downscaled copy of the frame.

The belt is dark and masks are light or mid-coloured fabric, so the brightest channel
separates them. Working on a nearest-neighbour 8× copy (one cheap strided read of
the frame) keeps this step far below the cost of one full-frame colour conversion;
the pose it gives is good to about a millimetre, which is all the rectifier needs,
and every later step only touches the mask's region through the rectifier.

The decision between "no mask", "one mask", "several masks" and "a mask cut by the
border" is made here, on the body (ear loops removed by an opening): a loop that
reaches the border does not make a mask partial, a body that does always does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class SegmentParams:
    """Tuning of the mask finder; sizes in mm so they hold for any camera scale."""

    #: Nearest-neighbour reduction of the frame for the find (≈1.2 mm per pixel).
    downscale: int = 8
    #: The belt's level is this quantile of the coarse frame's brightness (a mask
    #: covers at most ~40 % of the view).
    belt_quantile: float = 0.2
    #: A belt brighter than this (8-bit, 20th percentile of the frame) is not the dark
    #: belt the station needs: over-exposed, lights or camera failing.
    max_belt_level: float = 140.0
    #: Fabric must be at least this much brighter than the belt (8-bit levels).
    min_contrast_levels: float = 30.0
    #: A body (loops removed) at least this large is a mask; smaller bright things are
    #: lint, threads or a loop whose mask is out of view.
    min_body_area_mm2: float = 2500.0
    #: A bright region this large that touches the border is a mask cut by the border.
    min_partial_area_mm2: float = 600.0
    #: Opening size that erases ear loops (≈3 mm cords) and keeps the body.
    loop_removal_mm: float = 9.0
    #: Dark print lines narrower than this are bridged (closing).
    bridge_mm: float = 9.0
    #: Dark holes in the cloth (black print) smaller than this are filled; the belt
    #: enclosed by an ear loop is larger and stays out of the body.
    max_hole_mm2: float = 900.0
    #: A body this close to the frame edge (coarse pixels) is partial.
    border_margin_px: int = 1
    #: A bright region apart from any mask at least this large is a foreign object
    #: (a tool, a hand, a detached part): the mask beside it is not passed, since the
    #: object may be hiding a defect or may end up in the accepted bin. Lint, threads
    #: and belt specks are far smaller.
    min_foreign_area_mm2: float = 300.0


@dataclass(frozen=True, slots=True)
class Blob:
    """One mask: its whole outline and its body without loops, in full-frame pixels.

    Coordinates are full-resolution pixel coordinates (float): coarse pixel ``i`` of
    a nearest-neighbour ``k``× copy is full-resolution pixel ``k·i``.
    """

    contour_px: np.ndarray
    body_contour_px: np.ndarray | None
    body_area_mm2: float
    touches_border: bool
    bbox_px: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Segmentation:
    """All masks found, largest first, the threshold used, and the coarse copy."""

    blobs: list[Blob]
    threshold: float
    belt_level: float
    coarse: np.ndarray  # BGR uint8, the downscaled frame (reused by the overlay)
    step: int
    #: Bright regions apart from every mask, too small to be one (full-frame
    #: ``(x, y, w, h)`` px, area mm²), largest first.
    foreign: list[tuple[tuple[int, int, int, int], float]] = field(default_factory=list)


def downscale(image: np.ndarray, step: int) -> np.ndarray:
    """Nearest-neighbour ``step``× copy: one strided read of the frame, no filtering."""
    h, w = image.shape[:2]
    return cv2.resize(image, (w // step, h // step), interpolation=cv2.INTER_NEAREST)


def brightness(bgr: np.ndarray) -> np.ndarray:
    """Brightest channel, so saturated blue or red cloth is as bright as grey cloth."""
    b, g, r = cv2.split(bgr)
    return cv2.max(cv2.max(b, g), r)


def find_masks(
    coarse: np.ndarray, step: int, mm_per_px: float, params: SegmentParams
) -> Segmentation:
    """Masks on the coarse copy, with their loop-free bodies.

    ``mm_per_px`` is the approximate full-resolution scale (from the calibration),
    used only to turn the mm thresholds into pixels. Cloth printed with black ink
    can be as dark as the belt, so the bright parts are first bridged (closing) and
    their small holes filled before the loops are erased (opening); the belt a loop
    encloses is much larger than any hole and stays out.
    """
    value = brightness(coarse)
    hist = cv2.calcHist([value], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist) / max(hist.sum(), 1.0)
    belt_level = float(np.searchsorted(cdf, params.belt_quantile))
    # Not Otsu: it splits light cloth from its own mid-dark print; anything clearly
    # brighter than the belt is cloth (or a loop, lint: sorted out by size below).
    threshold = belt_level + params.min_contrast_levels
    fg = cv2.threshold(value, threshold, 1, cv2.THRESH_BINARY)[1]

    px_mm = mm_per_px * step
    loop_k = _odd(params.loop_removal_mm / px_mm)
    close_k = _odd(params.bridge_mm / px_mm)
    min_body_px = params.min_body_area_mm2 / px_mm**2
    min_partial_px = params.min_partial_area_mm2 / px_mm**2
    solid = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((close_k, close_k), np.uint8))
    _fill_small_holes(solid, params.max_hole_mm2 / px_mm**2)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (loop_k, loop_k))
    bodies = cv2.morphologyEx(solid, cv2.MORPH_OPEN, kernel)

    sh, sw = fg.shape
    m = params.border_margin_px
    blobs: list[Blob] = []
    claimed = np.zeros_like(fg)
    contours, _ = cv2.findContours(bodies, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for c in contours:
        area = float(cv2.contourArea(c))
        x, y, bw, bh = cv2.boundingRect(c)
        touches = x <= m or y <= m or x + bw - 1 >= sw - 1 - m or y + bh - 1 >= sh - 1 - m
        if area < (min_partial_px if touches else min_body_px):
            continue
        cv2.drawContours(claimed, [c], -1, 1, -1)
        pts = c.reshape(-1, 2).astype(np.float64)
        blobs.append(
            Blob(
                pts * step,
                pts * step,
                area * px_mm**2,
                bool(touches),
                (x * step, y * step, bw * step, bh * step),
            )
        )
    min_foreign_px = params.min_foreign_area_mm2 / px_mm**2
    foreign: list[tuple[tuple[int, int, int, int], float]] = []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < min(min_partial_px, min_foreign_px):
            continue
        if claimed[y : y + bh, x : x + bw][labels[y : y + bh, x : x + bw] == i].any():
            continue  # a mask, its loops and anything touching it
        touches = x <= m or y <= m or x + bw - 1 >= sw - 1 - m or y + bh - 1 >= sh - 1 - m
        if not touches or area < min_partial_px:
            # Apart from every mask and too small to be one: a foreign object.
            if area >= min_foreign_px:
                box = (x * step, y * step, bw * step, bh * step)
                foreign.append((box, area * px_mm**2))
            continue
        # A sliver of cloth at the border, too thin to survive the opening, is still
        # a mask cut by the border.
        region = (labels[y : y + bh, x : x + bw] == i).astype(np.uint8)
        outline = _largest_contour(region)
        if outline is None:
            continue
        pts = (outline + np.array([x, y], np.float64)) * step
        blobs.append(Blob(pts, None, 0.0, True, (x * step, y * step, bw * step, bh * step)))
    blobs.sort(key=lambda b: b.body_area_mm2, reverse=True)
    foreign.sort(key=lambda f: f[1], reverse=True)
    return Segmentation(blobs, threshold, belt_level, coarse, step, foreign)


def _odd(size_px: float) -> int:
    return max(3, round(size_px) | 1)


def _fill_small_holes(binary: np.ndarray, max_area_px: float) -> None:
    """Fill, in place, the holes of a binary region smaller than ``max_area_px``."""
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return
    holes = [
        c
        for c, h in zip(contours, hierarchy[0], strict=True)
        if h[3] >= 0 and cv2.contourArea(c) < max_area_px
    ]
    if holes:
        cv2.drawContours(binary, holes, -1, 1, -1)


def _largest_contour(binary: np.ndarray) -> np.ndarray | None:
    """Outer contour of the largest region, as float (N, 2) in ``binary``'s pixels."""
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    return max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
