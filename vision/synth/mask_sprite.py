"""A mask rendered once in its own millimetre frame, ready to be placed anywhere.

Building the cloth, seam and loops is the expensive part of a frame; placing the
result on the belt is one affine map and one remap. The moving-belt demo therefore
builds a :class:`MaskSprite` once and composes it at a new position every frame.

The sprite is two 3-channel uint8 rasters over mask coordinates (origin at the
body's top-left corner, x along the width): ``colour`` is premultiplied B, G, R;
``aux`` holds what compositing needs, already in the form that makes compositing
one multiply-add per pixel — transmission (255 − alpha), drop shadow on the visible
belt (transmission × shadow) and body coverage (cloth of the body only, for the
ground-truth mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.spec import PrototypeSpec
from vision.synth.fabric import (
    body_sdf,
    coverage_from_sdf,
    edge_shading,
    fabric_colour,
    pleat_folds_mm,
)
from vision.synth.flaws import apply_stain, cut_hole
from vision.synth.grid import Grid, to_float_layer
from vision.synth.loops import TACK_SIZE_MM, LoopPath, cord_layers, footprint_mm, loop_paths
from vision.synth.params import MaskParams
from vision.synth.seam import ThreadLayers, draw_bar_tack, draw_seam
from vision.synth.truth import MaskTruth, spec_defects

#: Channels of :attr:`MaskSprite.aux`.
AUX_TRANSMISSION, AUX_SHADOW, AUX_BODY = 0, 1, 2
#: Drop shadow of the mask on the belt: offset (mm, in mask axes) and blur.
SHADOW_OFFSET_MM = (0.7, 1.1)
SHADOW_BLUR_MM = 1.6


@dataclass(frozen=True)
class Placement:
    """A sprite at a pose on the belt: body centre in belt mm, rotation in degrees."""

    sprite: MaskSprite
    center_mm: tuple[float, float]
    angle_deg: float


@dataclass(frozen=True)
class MaskSprite:
    """A pre-rendered mask: raster in mask mm plus its (placement-free) ground truth."""

    params: MaskParams
    grid: Grid
    colour: np.ndarray
    aux: np.ndarray
    truth: MaskTruth

    @property
    def alpha(self) -> np.ndarray:
        """Coverage of the whole mask (body, loops, tacks), uint8."""
        return 255 - self.aux[..., AUX_TRANSMISSION]

    @classmethod
    def build(
        cls,
        params: MaskParams,
        rng: np.random.Generator,
        mm_per_px: float = 0.1,
        spec: PrototypeSpec | None = None,
    ) -> MaskSprite:
        """Render ``params`` at ``mm_per_px`` (0.08–0.1 keeps threads sharp after remap).

        Each part draws from its own random stream, so changing one part (adding a
        hole, detaching a loop, moving one seam) leaves every other pixel identical.
        """
        spec = spec or PrototypeSpec()
        seeds = rng.integers(0, 2**63 - 1, size=6)
        r_fabric, r_pleat, r_seam, r_loop = (np.random.default_rng(int(s)) for s in seeds[:4])
        w, h = params.width_mm, params.height_mm
        grid = Grid.covering(*footprint_mm(params), mm_per_px)
        rows, cols = grid.window(-1.5, -1.5, w + 1.5, h + 1.5)
        bgrid = grid.sub(rows, cols)

        folds = pleat_folds_mm(h, params.pleats, r_pleat)
        sdf = body_sdf(bgrid, w, h, folds, r_pleat)
        coverage = coverage_from_sdf(sdf)
        colour = fabric_colour(bgrid, params, folds, r_fabric, shade=edge_shading(sdf))
        del sdf

        threads = ThreadLayers.empty(bgrid)
        seam = draw_seam(threads, bgrid, params, r_seam)
        for win in _seam_windows(bgrid, params):
            _apply_threads(colour[win], threads.window(win), params.thread_bgr, bgrid)
        for i, d in enumerate(params.defects):
            if d.kind == "stain":
                apply_stain(colour, bgrid, d, np.random.default_rng([int(seeds[4]), i]))
        for i, d in enumerate(params.defects):
            if d.kind == "hole":
                cut_hole(colour, coverage, bgrid, d, np.random.default_rng([int(seeds[4]), i]))
        cv2.multiply(colour, cv2.cvtColor(coverage, cv2.COLOR_GRAY2BGR), dst=colour)

        rgb = np.zeros((*grid.shape, 3), np.uint8)
        alpha = np.zeros(grid.shape, np.uint8)
        body = np.zeros(grid.shape, np.uint8)
        rgb[rows, cols] = cv2.convertScaleAbs(colour)
        alpha[rows, cols] = cv2.convertScaleAbs(coverage, alpha=255.0)
        body[rows, cols] = alpha[rows, cols]
        del colour, coverage, threads  # float layers (~40 MB) not needed past here

        paths = loop_paths(params, r_loop)
        for side_idx, path in enumerate(paths):
            if len(path.points_mm):
                cord_rng = np.random.default_rng([int(seeds[3]), 1 + side_idx])
                _composite_cord(rgb, alpha, grid, path, params, cord_rng)
        for side_idx, path in enumerate(paths):
            for end_idx, (centre, broken) in enumerate(path.tacks):
                tack_rng = np.random.default_rng([int(seeds[5]), side_idx, end_idx])
                _composite_tack(rgb, alpha, grid, centre, broken, params, tack_rng)
        transmission = cv2.bitwise_not(alpha)
        shadow = cv2.multiply(transmission, _drop_shadow(alpha, grid), scale=1.0 / 255.0)
        aux = cv2.merge([transmission, shadow, body])

        truth = MaskTruth(
            width_mm=w,
            height_mm=h,
            center_mm=params.center_mm,
            angle_deg=params.angle_deg,
            pleats=params.pleats,
            ear_loops=sum(s == "ok" for s in params.ear_loops),
            loop_states=tuple(params.ear_loops),  # type: ignore[arg-type]
            seam_offsets_mm=params.seam_offsets_mm,
            stitch_length_mm=params.stitch_length_mm,
            max_gap_mm=round(seam.max_gap_mm, 3),
            defects=spec_defects(params, spec, seam.max_gap_mm, seam.gaps),
        )
        return cls(params, grid, rgb, aux, truth)

    def placed(
        self, center_mm: tuple[float, float] | None = None, angle_deg: float | None = None
    ) -> Placement:
        """This sprite at a pose; defaults to the pose in its params."""
        return Placement(
            self,
            tuple(center_mm) if center_mm is not None else self.params.center_mm,  # type: ignore[arg-type]
            self.params.angle_deg if angle_deg is None else float(angle_deg),
        )


def _to_u8(x: np.ndarray) -> np.ndarray:
    """float (≥ 0) → uint8, rounded and saturated, in one pass."""
    return cv2.convertScaleAbs(x)


def _seam_windows(grid: Grid, params: MaskParams) -> list[tuple[slice, slice]]:
    """Non-overlapping frame of strips along the edges that contains the whole seam.

    Shading threads only there (instead of over the whole body) saves most of the
    sprite's cost; the strips reach 6 mm past the seam for shadows and loose ends.
    """
    depth = max(params.seam_offsets_mm) + 6.0 + 1.5
    rows, cols = grid.rows, grid.cols
    d = int(np.ceil(grid.px(depth)))
    if 2 * d >= min(rows, cols):
        return [(slice(0, rows), slice(0, cols))]
    return [
        (slice(0, d), slice(0, cols)),
        (slice(rows - d, rows), slice(0, cols)),
        (slice(d, rows - d), slice(0, d)),
        (slice(d, rows - d), slice(cols - d, cols)),
    ]


def _apply_threads(
    colour: np.ndarray, threads: ThreadLayers, thread_bgr: tuple[float, ...], grid: Grid
) -> None:
    """Shade the cloth (thread shadow, needle dimples, seam groove), then lay the thread."""
    t = to_float_layer(threads.thread)
    rows, cols = t.shape
    dx, dy = grid.px(0.12), grid.px(0.15)
    shifted = cv2.warpAffine(
        threads.thread, np.float32([[1, 0, dx], [0, 1, dy]]), (cols, rows), flags=cv2.INTER_LINEAR
    )
    shadow = to_float_layer(cv2.GaussianBlur(shifted, (0, 0), grid.px(0.15)))
    groove = cv2.GaussianBlur(to_float_layer(threads.groove), (0, 0), grid.px(0.4))
    shade = 1.0 - 0.35 * shadow - 0.35 * to_float_layer(threads.dimples) - 0.06 * groove
    colour *= shade[..., None]
    hl = to_float_layer(threads.highlight)
    tc = np.asarray(thread_bgr, np.float32)
    thread = (0.78 + 0.32 * hl)[..., None] * tc
    colour += t[..., None] * (thread - colour)


def _composite_cord(
    rgb: np.ndarray,
    alpha: np.ndarray,
    grid: Grid,
    path: LoopPath,
    params: MaskParams,
    rng: np.random.Generator,
) -> None:
    """Lay one elastic cord over the canvas, with its shadow on the cloth below."""
    pad = params.loop_width_mm + 2.0
    x0, y0 = path.points_mm.min(axis=0) - pad
    x1, y1 = path.points_mm.max(axis=0) + pad
    rows, cols = grid.window(x0, y0, x1, y1)
    sub = grid.sub(rows, cols)
    cov, bright = cord_layers(sub, path, params.loop_width_mm, rng)
    shift = np.float32([[1, 0, sub.px(0.5)], [0, 1, sub.px(0.7)]])
    shadow = cv2.GaussianBlur(cv2.warpAffine(cov, shift, (sub.cols, sub.rows)), (0, 0), sub.px(0.6))
    keep = (1.0 - 0.4 * shadow) * (1.0 - cov)
    cord = cv2.multiply(cv2.cvtColor(bright * cov, cv2.COLOR_GRAY2BGR), (*params.loop_bgr, 0.0))
    out = cv2.multiply(rgb[rows, cols], cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR), dtype=cv2.CV_32F)
    rgb[rows, cols] = cv2.convertScaleAbs(out + cord)
    alpha[rows, cols] = cv2.convertScaleAbs(alpha[rows, cols] * (1.0 - cov) + 255.0 * cov)


def _composite_tack(
    rgb: np.ndarray,
    alpha: np.ndarray,
    grid: Grid,
    centre: tuple[float, float],
    broken: bool,
    params: MaskParams,
    rng: np.random.Generator,
) -> None:
    """Sew a bar tack over whatever lies there (cloth and cord end)."""
    half = max(TACK_SIZE_MM) / 2 + 1.0
    rows, cols = grid.window(centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    sub = grid.sub(rows, cols)
    threads = ThreadLayers.empty(sub)
    draw_bar_tack(threads, sub, centre, TACK_SIZE_MM, rng, broken=broken)
    a = alpha[rows, cols].astype(np.float32) / 255.0
    colour = rgb[rows, cols].astype(np.float32) / np.maximum(a, 1e-3)[..., None]
    _apply_threads(colour, threads, params.thread_bgr, sub)
    new_alpha = np.maximum(a, to_float_layer(threads.thread))
    rgb[rows, cols] = _to_u8(colour * new_alpha[..., None])
    alpha[rows, cols] = _to_u8(new_alpha * 255.0)


def _drop_shadow(alpha_u8: np.ndarray, grid: Grid) -> np.ndarray:
    """Soft shadow of the whole mask on the belt, computed at quarter resolution."""
    small = cv2.resize(
        alpha_u8, (max(grid.cols // 4, 1), max(grid.rows // 4, 1)), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    s = grid.mm_per_px * 4
    m = np.float32([[1, 0, SHADOW_OFFSET_MM[0] / s], [0, 1, SHADOW_OFFSET_MM[1] / s]])
    small = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]))
    small = cv2.GaussianBlur(small, (0, 0), SHADOW_BLUR_MM / s)
    big = cv2.resize(small, (grid.cols, grid.rows), interpolation=cv2.INTER_LINEAR)
    return _to_u8(big)
