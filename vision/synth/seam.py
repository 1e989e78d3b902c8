"""The perimeter topstitch and the bar tacks, drawn as individual threads.

The stitching check measures stitch pitch and looks for gaps, so the seam must be
made of separate dashes, not a dashed-line texture: each stitch runs from needle hole
to needle hole, the holes show as small dimples, and the thread is rounded (a
highlight along it, a shadow beside it). Needle positions are anchored to absolute
mask coordinates along each side, so moving one side's seam or cutting a gap leaves
every other stitch exactly where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.synth.grid import DRAW_SHIFT, Grid
from vision.synth.params import SIDES, DefectParams, MaskParams

#: Thread hidden in the cloth at each needle hole: visible stitch = pitch − this.
NEEDLE_GAP_MM = 0.4
#: Stitches shorter than this at a side's end are not sewn (the machine pivots).
MIN_STITCH_MM = 0.8
#: Size of the per-side table of needle jitter (indexed by needle number).
_JITTER_TABLE = 1024


@dataclass
class ThreadLayers:
    """uint8 coverage layers (0–255) the sprite turns into thread and its shading."""

    thread: np.ndarray
    highlight: np.ndarray
    dimples: np.ndarray
    groove: np.ndarray

    def window(self, win: tuple[slice, slice]) -> ThreadLayers:
        """Views of all layers over one window."""
        return ThreadLayers(
            self.thread[win], self.highlight[win], self.dimples[win], self.groove[win]
        )

    @classmethod
    def empty(cls, grid: Grid) -> ThreadLayers:
        z = np.zeros(grid.shape, np.uint8)
        return cls(z, z.copy(), z.copy(), z.copy())


@dataclass
class SeamTruth:
    """What was actually sewn: longest stitch-free stretch and where each gap is."""

    max_gap_mm: float = 0.0
    #: (side, centre x, centre y, length) of every stretch of ≥ 3 mm without stitches.
    gaps: list[tuple[str, float, float, float]] = field(default_factory=list)
    stitch_count: int = 0


def seam_sides_mm(params: MaskParams) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Start and end point (mask mm) of the seam along each side."""
    top, right, bottom, left = params.seam_offsets_mm
    w, h = params.width_mm, params.height_mm
    tl, tr = np.array([left, top]), np.array([w - right, top])
    br, bl = np.array([w - right, h - bottom]), np.array([left, h - bottom])
    return {"top": (tl, tr), "right": (tr, br), "bottom": (bl, br), "left": (tl, bl)}


def draw_seam(
    layers: ThreadLayers, grid: Grid, params: MaskParams, rng: np.random.Generator
) -> SeamTruth:
    """Draw all four sides' stitches into ``layers``; return what was sewn."""
    truth = SeamTruth()
    pitch = max(params.stitch_length_mm, 0.5)
    gaps = [d for d in params.defects if d.kind == "seam_gap"]
    sides = seam_sides_mm(params)
    corners = np.array([sides["top"][0], sides["top"][1], sides["right"][1], sides["left"][1]])
    groove_pts = grid.to_draw(corners).reshape(-1, 1, 2)
    cv2.polylines(
        layers.groove, [groove_pts], True, 255, max(int(grid.px(1.2)), 1), cv2.LINE_AA, DRAW_SHIFT
    )
    base = int(rng.integers(0, 2**63 - 1))
    for side_idx, side in enumerate(SIDES):
        # One stream per side, and jitter looked up by the needle's absolute index:
        # moving a corner or cutting a gap never shifts any other stitch.
        side_rng = np.random.default_rng([base, side_idx])
        start, end = sides[side]
        axis = 0 if side in ("top", "bottom") else 1
        lo, hi = float(start[axis]), float(end[axis])
        phase = side_rng.uniform(0.0, pitch)
        along_jitter = side_rng.normal(0.0, 0.07, _JITTER_TABLE)
        across_jitter = side_rng.normal(0.0, 0.05, _JITTER_TABLE)
        k = np.arange(
            int(np.floor((lo - phase) / pitch)) - 1, int(np.ceil((hi - phase) / pitch)) + 2
        )
        holes = phase + pitch * k + along_jitter[k % _JITTER_TABLE]
        across = across_jitter[k % _JITTER_TABLE]
        cut = _gap_intervals(gaps, side)
        dashes: list[tuple[float, float]] = []
        for i in range(holes.size - 1):
            a = max(holes[i] + NEEDLE_GAP_MM / 2, lo)
            b = min(holes[i + 1] - NEEDLE_GAP_MM / 2, hi)
            if b - a < MIN_STITCH_MM - NEEDLE_GAP_MM or any(a < g1 and b > g0 for g0, g1 in cut):
                continue
            dashes.append((a, b))
            p0 = _along(start, axis, a, across[i])
            p1 = _along(start, axis, b, across[i + 1])
            _thread(layers, grid, p0, p1, params.thread_width_mm)
            if holes[i] > lo and holes[i] < hi:
                _dimple(layers, grid, _along(start, axis, holes[i], across[i]))
        truth.stitch_count += len(dashes)
        _record_gaps(truth, side, start, axis, lo, hi, dashes)
        for gap_idx, (g0, g1) in enumerate(cut):
            tail_rng = np.random.default_rng([base, 10 + side_idx, gap_idx])
            for t, sign in ((g0, -1.0), (g1, 1.0)):
                if lo < t < hi:
                    p = _along(start, axis, t, 0.0)
                    _loose_end(layers, grid, p, axis, sign, params, tail_rng)
    return truth


def _gap_intervals(gaps: list[DefectParams], side: str) -> list[tuple[float, float]]:
    out = []
    for g in gaps:
        if g.extra.get("side") != side:
            continue
        centre = g.x_mm if side in ("top", "bottom") else g.y_mm
        out.append((centre - g.size_mm / 2, centre + g.size_mm / 2))
    return out


def _along(start: np.ndarray, axis: int, t: float, across: float) -> np.ndarray:
    p = np.array(start, np.float64)
    p[axis] = t
    p[1 - axis] += across
    return p


def _record_gaps(
    truth: SeamTruth,
    side: str,
    start: np.ndarray,
    axis: int,
    lo: float,
    hi: float,
    dashes: list[tuple[float, float]],
) -> None:
    """Stitch-free stretches along one side (ends of the side included)."""
    edges = [lo, *[v for d in dashes for v in d], hi]
    for i in range(0, len(edges) - 1, 2):
        a, b = edges[i], edges[i + 1]
        length = b - a
        truth.max_gap_mm = max(truth.max_gap_mm, length)
        if length >= 3.0:
            c = _along(start, axis, (a + b) / 2, 0.0)
            truth.gaps.append((side, float(c[0]), float(c[1]), float(length)))


def _thread(
    layers: ThreadLayers, grid: Grid, p0_mm: np.ndarray, p1_mm: np.ndarray, width_mm: float
) -> None:
    """One visible stitch: a rounded thread with a highlight on its lit side."""
    d = p1_mm - p0_mm
    length = float(np.hypot(*d))
    if length <= 1e-6:
        return
    u = d / length
    inset = min(width_mm / 2, length / 2 - 1e-3)
    a, b = p0_mm + u * inset, p1_mm - u * inset
    pts = grid.to_draw(np.array([a, b]))
    thick = max(round(grid.px(width_mm)), 1)
    cv2.line(layers.thread, tuple(pts[0]), tuple(pts[1]), 255, thick, cv2.LINE_AA, DRAW_SHIFT)
    shrink = min(0.25, length / 3)
    shift = np.array([-0.3, -0.3]) * width_mm * 0.5
    h = grid.to_draw(np.array([a + u * shrink + shift, b - u * shrink + shift]))
    cv2.line(
        layers.highlight, tuple(h[0]), tuple(h[1]), 255, max(thick // 3, 1), cv2.LINE_AA, DRAW_SHIFT
    )


def _dimple(layers: ThreadLayers, grid: Grid, p_mm: np.ndarray) -> None:
    c = grid.to_draw(p_mm)
    r = max(round(grid.px(0.2) * (1 << DRAW_SHIFT)), 1)
    cv2.circle(layers.dimples, (int(c[0]), int(c[1])), r, 255, -1, cv2.LINE_AA, DRAW_SHIFT)


def _loose_end(
    layers: ThreadLayers,
    grid: Grid,
    p_mm: np.ndarray,
    axis: int,
    sign: float,
    params: MaskParams,
    rng: np.random.Generator,
) -> None:
    """A short curled thread tail where a seam broke."""
    n = 8
    length = rng.uniform(1.5, 4.0)
    into_gap = -sign  # the tail lies over the stretch that lost its stitches
    heading = (0.0 if into_gap > 0 else np.pi) if axis == 0 else np.pi / 2 * into_gap
    heading += rng.normal(0.0, 0.6)
    pts = [np.array(p_mm, np.float64)]
    for _ in range(n):
        heading += rng.normal(0.0, 0.5)
        step = length / n * np.array([np.cos(heading), np.sin(heading)])
        pts.append(pts[-1] + step)
    poly = grid.to_draw(np.array(pts)).reshape(-1, 1, 2)
    thick = max(round(grid.px(params.thread_width_mm * 0.8)), 1)
    cv2.polylines(layers.thread, [poly], False, 255, thick, cv2.LINE_AA, DRAW_SHIFT)


def draw_bar_tack(
    layers: ThreadLayers,
    grid: Grid,
    centre_mm: tuple[float, float],
    size_mm: tuple[float, float],
    rng: np.random.Generator,
    broken: bool = False,
) -> None:
    """A bar tack: a dense zigzag of thread holding a loop end (ragged if torn out)."""
    cx, cy = centre_mm
    w, h = size_mm
    step = 0.28
    n = max(int(h / step), 2)
    ys = cy - h / 2 + step * np.arange(n + 1) + rng.normal(0.0, 0.03, n + 1)
    xs = np.where(np.arange(n + 1) % 2 == 0, cx - w / 2, cx + w / 2) + rng.normal(0.0, 0.08, n + 1)
    pts = np.stack([xs, ys], axis=1)
    thick = max(round(grid.px(0.3)), 1)
    for i in range(n):
        if broken and rng.random() < 0.55:
            continue
        seg = grid.to_draw(pts[i : i + 2])
        cv2.line(layers.thread, tuple(seg[0]), tuple(seg[1]), 255, thick, cv2.LINE_AA, DRAW_SHIFT)
        if i % 3 == 0:
            cv2.line(
                layers.highlight, tuple(seg[0]), tuple(seg[1]), 160, 1, cv2.LINE_AA, DRAW_SHIFT
            )
    for _, y in ((0, cy - h / 2), (1, cy + h / 2)):
        _dimple(layers, grid, np.array([cx, y]))
