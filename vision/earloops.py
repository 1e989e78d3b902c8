"""Ear loops: thin cords beyond each short side, sewn at its top and bottom corners.

A loop is a cord a few millimetres wide lying on the belt beyond a short side. Its
colour is anything (white, skin, black elastic on a black belt), so it is found as
a *thin structure that differs from the belt* in either direction: the morphological
top-hat (lighter than its surroundings) and black-hat (darker, which also catches
the cord's own shadow), against the belt's own texture level measured in the same
zone. A loop is attached where the cord leaves the body: just outside the side,
near the top corner and near the bottom corner. A cord reaching both attachments
is a loop; one reaching a single attachment is a detached loop (its other end came
unsewn); nothing is a missing loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.edges import BodyFrame
from vision.rectify import Rectified


@dataclass(frozen=True, slots=True)
class LoopParams:
    """Where cords are looked for and what counts as one; lengths in mm."""

    #: The zone starts this far outside the short side (clear of its edge)…
    edge_clear_mm: float = 3.5
    #: …and reaches this far (within the rectified image's loop margin).
    reach_mm: float = 19.0
    #: Zones are analysed at this scale (cords are ~3 mm wide).
    zone_mm_per_px: float = 0.4
    #: Structuring element of the top-hat / black-hat: wider than a cord.
    hat_mm: float = 7.0
    #: The response is averaged over this (Gaussian sigma: a fraction of a cord's
    #: width, so it is not blurred away)…
    response_blur_mm: float = 0.4
    #: …and kept in 1/this of a level (uint8, saturating: only weak cords matter).
    response_gain: int = 4
    #: Response above the belt's median by this many robust sigmas…
    min_sigmas: float = 5.0
    #: …and by at least this much (8-bit levels).
    min_levels: float = 5.0
    #: A cord piece shorter than this (its longest extent) is lint or noise.
    min_cord_mm: float = 12.0
    #: Attachments are looked for in this band just outside the side…
    attach_depth_mm: float = 4.0
    #: …within this distance of the top or bottom corner.
    attach_zone_mm: float = 30.0


@dataclass(frozen=True, slots=True)
class LoopSide:
    """One short side's loop: "ok", "detached" or "missing"."""

    side: str  # "left" (x = 0) or "right" (x = width)
    state: str
    attached_top: bool
    attached_bottom: bool
    #: Box (x0, y0, x1, y1) in mask mm of the cords found (or the zone if none).
    box_mm: tuple[float, float, float, float]


def _zone(
    rect: Rectified, body: BodyFrame, side: str, params: LoopParams
) -> tuple[np.ndarray, np.ndarray]:
    """Zone beyond a short side in mask coordinates, and its 2×3 zone px → mask mm map.

    Zone pixel (j, i): ``j`` = distance outward from the side, ``i`` = mask y.
    """
    s = params.zone_mm_per_px
    margin = -rect.v0_mm  # the rectified image's belt margin beyond the long sides
    y0, y1 = -margin, body.height_mm + margin
    nx = round((params.reach_mm - params.edge_clear_mm) / s)
    ny = round((y1 - y0) / s)
    sign = -1.0 if side == "left" else 1.0
    x_start = (0.0 if side == "left" else body.width_mm) + sign * params.edge_clear_mm
    zone_to_mask = np.array([[sign * s, 0.0, x_start], [0.0, s, y0]])
    a = np.vstack([body.mask_to_rect_affine(rect), [0, 0, 1]])
    m = (a @ np.vstack([zone_to_mask, [0, 0, 1]]))[:2]
    zone = cv2.warpAffine(
        rect.image,
        m,
        (nx, ny),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return cv2.cvtColor(zone, cv2.COLOR_BGR2GRAY), zone_to_mask


def _stats_u8(values: np.ndarray) -> tuple[float, float]:
    """Median and robust sigma (from the interquartile range) of uint8 values."""
    cdf = np.cumsum(np.bincount(values.ravel(), minlength=256))
    n = cdf[-1]
    q1, med, q3 = np.searchsorted(cdf, [0.25 * n, 0.5 * n, 0.75 * n])
    return float(med), float(q3 - q1) / 1.349


def cord_mask(zone: np.ndarray, params: LoopParams) -> np.ndarray:
    """Pixels of thin structures that stand out from the belt, either way (uint8 0/1).

    Hysteresis: pixels above ``min_sigmas`` seed a cord, which then grows through
    pixels above half that, so a dim cord is kept whole rather than in crumbs.
    Pixels outside the camera's view (exact black from the rectifier) are ignored.
    """
    outside = zone == 0
    work = zone
    if outside.any():
        work = zone.copy()
        work[outside] = np.uint8(_stats_u8(zone[~outside])[0]) if (~outside).any() else 0
    k = max(round(params.hat_mm / params.zone_mm_per_px) | 1, 3)
    se = np.ones((k, k), np.uint8)  # square: separable, and wider than any cord
    top = cv2.morphologyEx(work, cv2.MORPH_TOPHAT, se)
    black = cv2.morphologyEx(work, cv2.MORPH_BLACKHAT, se)
    # Averaged across the cord's width, in fixed point: a dark cord on a dark belt
    # differs by a few levels only, which whole-level rounding would flatten.
    sigma_px = params.response_blur_mm / params.zone_mm_per_px
    hats = cv2.max(top, black).astype(np.float32)
    gain = float(params.response_gain)
    resp = cv2.GaussianBlur(hats, (0, 0), sigma_px)
    resp = cv2.convertScaleAbs(resp, alpha=gain)
    if outside.any():
        resp[cv2.dilate(outside.astype(np.uint8), se) > 0] = 0
    med, sigma = _stats_u8(resp)
    strong = med + max(params.min_sigmas * sigma, gain * params.min_levels)
    weak = med + max(0.5 * params.min_sigmas * sigma, 0.5 * gain * params.min_levels)
    low = (resp > weak).astype(np.uint8)
    n, labels = cv2.connectedComponents(low, connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[labels[resp > strong]] = True
    seeded[0] = False
    return seeded[labels].astype(np.uint8)


def analyse_side(rect: Rectified, body: BodyFrame, side: str, params: LoopParams) -> LoopSide:
    zone, to_mask = _zone(rect, body, side, params)
    mask = cord_mask(zone, params)
    s = params.zone_mm_per_px
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    depth = max(round(params.attach_depth_mm / s), 1)
    y0 = to_mask[1, 2]
    top_rows = round((params.attach_zone_mm - y0) / s)
    bottom_rows = round((body.height_mm - params.attach_zone_mm - y0) / s)
    min_len = params.min_cord_mm / s
    top = bottom = False
    found = []
    for i in range(1, n):
        x, y, w, h, _area = (int(v) for v in stats[i])
        if max(w, h) < min_len:
            continue
        near = labels[:, :depth] == i
        rows = np.flatnonzero(near.any(axis=1))
        t = bool(rows.size and rows.min() < top_rows)
        b = bool(rows.size and rows.max() > bottom_rows)
        if not (t or b):
            continue
        top |= t
        bottom |= b
        found.append((x, y, x + w, y + h))
    if found:
        xs = [v for f in found for v in (f[0], f[2])]
        ys = [v for f in found for v in (f[1], f[3])]
        corners = np.array([[min(xs), min(ys), 1.0], [max(xs), max(ys), 1.0]]) @ to_mask.T
    else:
        corners = np.array([[0, 0, 1.0], [zone.shape[1], zone.shape[0], 1.0]]) @ to_mask.T
    box = (
        float(corners[:, 0].min()),
        float(corners[:, 1].min()),
        float(corners[:, 0].max()),
        float(corners[:, 1].max()),
    )
    state = "ok" if top and bottom else ("detached" if top or bottom else "missing")
    return LoopSide(side, state, top, bottom, box)


def analyse_loops(rect: Rectified, body: BodyFrame, params: LoopParams) -> dict[str, LoopSide]:
    return {side: analyse_side(rect, body, side, params) for side in ("left", "right")}
