"""The body's four edges, fitted to a fraction of a pixel on the rectified image.

Width and height are what the prototype is approved on (± 3 mm), so they are not
read off a thresholded blob (whose size moves with exposure and the threshold) but
from the edges themselves: along each side, profiles across the edge are averaged
over ``group_mm``, the belt→cloth step is located at its steepest point (parabolic
interpolation of the gradient peak: unbiased for any symmetric blur, independent of
exposure and fabric colour), and a line is fitted to those points robustly, away
from the rounded corners and the ear-loop attachments. The corners are the lines'
intersections, so the size is that of the flat, sharp-cornered body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.rectify import Rectified

SIDES: tuple[str, ...] = ("top", "right", "bottom", "left")


class EdgeError(ValueError):
    """An edge could not be measured (too few clean profiles)."""


@dataclass(frozen=True, slots=True)
class EdgeParams:
    """How edges are searched and fitted; lengths in mm on the belt."""

    #: Half-width of the search window around the coarse edge.
    search_mm: float = 4.0
    #: Profiles averaged along the edge before locating the step.
    group_mm: float = 1.0
    #: Long sides: length skipped at each end (rounded corners, loop cords).
    corner_exclusion_mm: float = 8.0
    #: Short sides: length skipped at each end (ear-loop attachments and bar tacks).
    loop_zone_mm: float = 11.0
    #: The edge is the first gradient peak from the belt side reaching this share of
    #: the strongest one (and ``min_step_levels``), so a seam or a light print inside
    #: the body is never taken for it, and dark print along the edge is not skipped.
    first_peak_ratio: float = 0.06
    #: Weakest belt→cloth step (8-bit levels per 2 px) that counts as an edge.
    min_step_levels: float = 8.0
    #: Residuals beyond this many robust sigmas are outliers…
    outlier_sigmas: float = 3.5
    #: …but never below this (a perfectly straight edge has a near-zero sigma).
    min_outlier_mm: float = 0.15
    #: The side is placed at this quantile of its edge points, outwards (the outer
    #: extent: layers folded into pleats step the short sides inwards a little)…
    extent_quantile: float = 0.95
    #: …counting points within this distance of the fitted line.
    extent_window_mm: float = 1.0
    #: Fewer inliers than this share of the profiles: the side is not measurable.
    min_inlier_share: float = 0.35
    #: A cut edge is straight: its points never spread wider than this about the
    #: line, so two parallel edges (a print edge inside the cut edge) are two lines,
    #: not one line through both.
    max_band_mm: float = 1.0
    #: Straight line of points found outwards of the fitted one (the cut edge beyond
    #: dark print of the belt's shade, whose inner edge was taken): the side moves to
    #: it when at least this share of the profiles lies on it…
    outer_min_share: float = 0.15
    #: …spread over at least this share of the side's length.
    outer_min_span: float = 0.25
    #: The step sits at the belt end of the search window in this share of the
    #: profiles or more: the window never reached the belt (dark print along the edge
    #: kept the coarse outline inside); search again, shifted outwards…
    belt_end_share: float = 0.5
    #: …by this share of the search half-width.
    retry_shift_share: float = 0.5


@dataclass(frozen=True, slots=True)
class EdgeLine:
    """One side as ``e = a + b·t`` in rectified-local mm.

    Top and bottom: ``t = u`` (along), ``e = v``. Left and right: ``t = v``, ``e = u``.
    """

    side: str
    a_mm: float
    b: float
    rms_mm: float
    n_inliers: int
    n_profiles: int
    t_range_mm: tuple[float, float]

    def at(self, t_mm: np.ndarray | float) -> np.ndarray | float:
        return self.a_mm + self.b * np.asarray(t_mm)


@dataclass(frozen=True, slots=True)
class BodyFrame:
    """The measured body: corners, size and the mask coordinate frame.

    Mask coordinates (mm from the body's top-left corner, x along the top edge) are
    related to rectified-local mm by a rotation of ``skew_deg`` about ``corners[0]``.
    """

    corners_local_mm: np.ndarray  # (4, 2) TL, TR, BR, BL
    width_mm: float
    height_mm: float
    skew_deg: float
    lines: dict[str, EdgeLine] = field(default_factory=dict)

    def _rot(self) -> tuple[float, float]:
        a = np.deg2rad(self.skew_deg)
        return float(np.cos(a)), float(np.sin(a))

    def local_to_mask(self, pts_mm: np.ndarray) -> np.ndarray:
        c, s = self._rot()
        d = np.asarray(pts_mm, np.float64) - self.corners_local_mm[0]
        out = np.empty(d.shape, np.float64)
        out[..., 0] = c * d[..., 0] + s * d[..., 1]
        out[..., 1] = -s * d[..., 0] + c * d[..., 1]
        return out

    def mask_to_local(self, pts_mm: np.ndarray) -> np.ndarray:
        c, s = self._rot()
        q = np.asarray(pts_mm, np.float64)
        out = np.empty(q.shape, np.float64)
        out[..., 0] = self.corners_local_mm[0, 0] + c * q[..., 0] - s * q[..., 1]
        out[..., 1] = self.corners_local_mm[0, 1] + s * q[..., 0] + c * q[..., 1]
        return out

    def mask_to_rect_affine(self, rect: Rectified) -> np.ndarray:
        """2×3 affine: mask mm (x, y, 1) → rectified pixel (col, row)."""
        c, s = self._rot()
        k = 1.0 / rect.mm_per_px
        tl = self.corners_local_mm[0]
        return np.array(
            [
                [c * k, -s * k, (tl[0] - rect.u0_mm) * k],
                [s * k, c * k, (tl[1] - rect.v0_mm) * k],
            ]
        )


def _profiles(
    rect: Rectified, side: str, params: EdgeParams, shift_out_mm: float = 0.0
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Across-edge profiles, belt side first: (groups, across) float32.

    The window is centred ``shift_out_mm`` outwards of the coarse edge. Returns the
    profiles, the along-side centre of each group (local mm), the local coordinate
    of profile sample 0 and the signed step of one sample (mm).
    """
    s = rect.mm_per_px
    w, h = rect.pose.width_mm, rect.pose.height_mm
    n = max(round(params.search_mm / s), 3)
    g = max(round(params.group_mm / s), 1)
    horizontal = side in ("top", "bottom")
    if horizontal:
        t0, t1 = params.corner_exclusion_mm, w - params.corner_exclusion_mm
        e_nom = -shift_out_mm if side == "top" else h + shift_out_mm
        e_idx = round(rect.row(e_nom))
        a0, a1 = int(np.ceil(rect.col(t0))), int(np.floor(rect.col(t1)))
    else:
        t0, t1 = params.loop_zone_mm, h - params.loop_zone_mm
        e_nom = -shift_out_mm if side == "left" else w + shift_out_mm
        e_idx = round(rect.col(e_nom))
        a0, a1 = int(np.ceil(rect.row(t0))), int(np.floor(rect.row(t1)))
    rows, cols = rect.shape
    limit = rows if horizontal else cols
    lo, hi = max(e_idx - n, 0), min(e_idx + n + 1, limit)
    groups = (a1 - a0) // g
    if groups < 3 or hi - lo < 5:
        raise EdgeError(f"{side}: edge outside the rectified image")
    a1 = a0 + groups * g
    if horizontal:
        strip = rect.gray(slice(lo, hi), slice(a0, a1)).astype(np.float32)
        prof = cv2.resize(strip, (groups, hi - lo), interpolation=cv2.INTER_AREA).T
    else:
        strip = rect.gray(slice(a0, a1), slice(lo, hi)).astype(np.float32)
        prof = cv2.resize(strip, (hi - lo, groups), interpolation=cv2.INTER_AREA)
    t_centres = (rect.u0_mm if horizontal else rect.v0_mm) + (
        a0 + (np.arange(groups) + 0.5) * g - 0.5
    ) * s
    e_start = (rect.v0_mm if horizontal else rect.u0_mm) + lo * s
    if side in ("bottom", "right"):  # belt side first: reverse the across axis
        prof = prof[:, ::-1]
        return np.ascontiguousarray(prof), t_centres, e_start + (hi - lo - 1) * s, -s
    return np.ascontiguousarray(prof), t_centres, e_start, s


def _edge_positions(
    prof: np.ndarray, params: EdgeParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-sample position of the belt→cloth step in each profile, its validity, and
    whether it sits at the belt end of the window (no belt seen before it)."""
    d = prof[:, 2:] - prof[:, :-2]  # central difference at samples 1 … n-2
    dmax = d.max(axis=1)
    level = np.maximum(params.first_peak_ratio * dmax, params.min_step_levels)
    first = np.argmax(d >= level[:, None], axis=1)
    climb = 3
    idx = np.clip(first[:, None] + np.arange(climb)[None, :], 0, d.shape[1] - 1)
    k = idx[np.arange(len(idx)), np.argmax(np.take_along_axis(d, idx, axis=1), axis=1)]
    inner = (k >= 1) & (k <= d.shape[1] - 2)
    kc = np.clip(k, 1, d.shape[1] - 2)
    rows = np.arange(len(d))
    y0, y1, y2 = d[rows, kc - 1], d[rows, kc], d[rows, kc + 1]
    den = y0 - 2 * y1 + y2
    off = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    pos = kc + 1 + np.clip(off, -0.5, 0.5)
    valid = inner & (dmax >= params.min_step_levels)
    return pos, valid, k < 1


def _robust_line(
    t: np.ndarray, e: np.ndarray, valid: np.ndarray, params: EdgeParams
) -> tuple[float, float, np.ndarray]:
    """Line through the points, refitted without those beyond a few robust sigmas."""
    keep = valid.copy()
    a = b = 0.0
    for _ in range(5):
        n = int(keep.sum())
        if n < 3:
            break
        tk, ek = t[keep], e[keep]
        tm, em = float(tk.mean()), float(ek.mean())
        dt = tk - tm
        var = float(np.dot(dt, dt))
        b = float(np.dot(dt, ek - em)) / var if var > 0 else 0.0
        a = em - b * tm
        r = np.abs(e - (a + b * t))
        sigma = 1.4826 * float(np.partition(r[keep], n // 2)[n // 2])
        band = min(params.outlier_sigmas * sigma, params.max_band_mm)
        new = valid & (r <= max(band, params.min_outlier_mm))
        if np.array_equal(new, keep):
            break
        keep = new
    return a, b, keep


def _edge_points(
    rect: Rectified, side: str, params: EdgeParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge points along one side (along, across in local mm) and their validity.

    The coarse outline comes from the bright parts of the body, so dark print along
    a side leaves it inside the cut edge; when the step is found at the belt end of
    the window in most profiles, the belt was never reached and the window moves out.
    """
    prof, t, e0, de = _profiles(rect, side, params)
    pos, valid, at_belt_end = _edge_positions(prof, params)
    if np.mean(at_belt_end) >= params.belt_end_share:
        shift = params.retry_shift_share * params.search_mm
        prof, t2, e0, de = _profiles(rect, side, params, shift)
        if len(t2) == len(t):
            pos, valid, _ = _edge_positions(prof, params)
    return t, e0 + pos * de, valid


def _outer_line(
    t: np.ndarray,
    e: np.ndarray,
    valid: np.ndarray,
    a: float,
    b: float,
    outward: float,
    params: EdgeParams,
) -> tuple[float, float, np.ndarray] | None:
    """A straight line of edge points outwards of ``e = a + b·t``, if there is one.

    Nothing of the body lies beyond its cut edge, while a print edge of the belt's
    shade can lie inside it: when points beyond the fitted band form a straight line
    along enough of the side, that line is the cut edge.
    """
    beyond = valid & (outward * (e - (a + b * t)) > params.max_band_mm)
    n_min = max(3, params.outer_min_share * len(t))
    if beyond.sum() < n_min:
        return None
    a2, b2, keep2 = _robust_line(t, e, beyond, params)
    span = float(np.ptp(t[keep2])) if keep2.any() else 0.0
    if keep2.sum() < n_min or span < params.outer_min_span * float(np.ptp(t)):
        return None
    return a2, b2, keep2


def fit_edge(rect: Rectified, side: str, params: EdgeParams) -> EdgeLine:
    """Robust line through the belt→cloth step along one side."""
    t, e, valid = _edge_points(rect, side, params)
    outward = 1.0 if side in ("bottom", "right") else -1.0
    a, b, keep = _robust_line(t, e, valid, params)
    outer = _outer_line(t, e, valid, a, b, outward, params)
    if outer is not None:
        a, b, keep = outer
    n = int(keep.sum())
    if n < max(3, params.min_inlier_share * len(t)):
        raise EdgeError(f"{side}: only {n} of {len(t)} edge profiles are usable")
    rms = float(np.sqrt(np.mean((e[keep] - (a + b * t[keep])) ** 2)))
    # The body's size is its outer extent: where folded layers do not line up, the
    # side steps inwards between pleat bands, and a ruler rests on the outermost.
    r = outward * (e - (a + b * t))
    near = valid & (np.abs(r) <= params.extent_window_mm)
    if near.sum() >= 3:
        rn = r[near]
        k = min(int(params.extent_quantile * (rn.size - 1) + 0.5), rn.size - 1)
        a += outward * float(np.partition(rn, k)[k])
    return EdgeLine(side, a, b, rms, n, len(t), (float(t[0]), float(t[-1])))


def _intersect(h: EdgeLine, v: EdgeLine) -> np.ndarray:
    """Corner where a horizontal line (v = a + b·u) meets a vertical one (u = a + b·v)."""
    u = (v.a_mm + v.b * h.a_mm) / (1.0 - v.b * h.b)
    return np.array([u, h.a_mm + h.b * u])


def fit_body(rect: Rectified, params: EdgeParams) -> BodyFrame:
    """Fit all four sides; corners, width, height and the mask frame."""
    lines = {side: fit_edge(rect, side, params) for side in SIDES}
    top, right, bottom, left = (lines[s] for s in SIDES)
    corners = np.array(
        [
            _intersect(top, left),
            _intersect(top, right),
            _intersect(bottom, right),
            _intersect(bottom, left),
        ]
    )
    width = (np.linalg.norm(corners[1] - corners[0]) + np.linalg.norm(corners[2] - corners[3])) / 2
    height = (np.linalg.norm(corners[3] - corners[0]) + np.linalg.norm(corners[2] - corners[1])) / 2
    # Direction of the width axis: all four sides vote, weighted by their length².
    angles = np.array(
        [np.arctan(top.b), np.arctan(bottom.b), -np.arctan(left.b), -np.arctan(right.b)]
    )
    weights = np.array([width, width, height, height]) ** 2
    skew = float(np.degrees(np.sum(angles * weights) / np.sum(weights)))
    return BodyFrame(corners, float(width), float(height), skew, lines)
