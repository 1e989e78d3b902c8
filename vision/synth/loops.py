"""Elastic ear loops: where the cord lies and how it looks.

A loop is sewn at the top and bottom corner of a short side and, with the mask
lying flat, forms an oval reaching ``loop_reach_mm`` beyond the side. A detached
loop is still sewn at one end and its free end lies loose outside the body; a
missing loop may leave a torn bar tack behind. Every loop stays inside
:func:`footprint_mm`, which the sampler uses to keep a "good" mask fully in view.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.synth.grid import DRAW_SHIFT, Grid, smoothstep, to_float_layer
from vision.synth.params import MaskParams

#: Bar tack size across (x) and along (y) the mask side, mm.
TACK_SIZE_MM = (1.8, 5.0)


@dataclass(frozen=True)
class LoopPath:
    """One cord as a polyline in mask mm, and the bar tacks that hold it."""

    side: str
    points_mm: np.ndarray
    #: (centre, broken) of each bar tack on this side.
    tacks: tuple[tuple[tuple[float, float], bool], ...]


def footprint_mm(params: MaskParams) -> tuple[float, float, float, float]:
    """Box (x0, y0, x1, y1) in mask mm that the body and both loops always stay inside."""
    reach = params.loop_reach_mm + params.loop_width_mm
    return (-reach - 1.0, -8.0, params.width_mm + reach + 1.0, params.height_mm + 8.0)


def loop_paths(params: MaskParams, rng: np.random.Generator) -> list[LoopPath]:
    """Cord paths for the left and right loops according to their states."""
    out = []
    for side, state, edge, s in (
        ("left", params.ear_loops[0], 0.0, -1.0),
        ("right", params.ear_loops[1], params.width_mm, 1.0),
    ):
        # Draw every random number whatever the state, so that changing one loop's
        # state never changes the other loop or the rest of the mask.
        ax = rng.uniform(1.5, 3.0)
        y_a = rng.uniform(4.5, 7.0)
        y_b = params.height_mm - rng.uniform(4.5, 7.0)
        jit = rng.uniform(-1.0, 1.0, 8)
        wobble = rng.uniform(0.0, 2 * np.pi, 2)
        tack_x = edge - s * (ax + 0.4)
        a = np.array([edge - s * ax, y_a])
        b = np.array([edge - s * ax, y_b])
        reach = params.loop_reach_mm
        e1 = (reach + 0.25 * ax) / 0.75
        top_tack = ((float(tack_x), float(y_a)), False)
        bot_tack = ((float(tack_x), float(y_b)), False)
        if state == "missing":
            tacks = ((top_tack[0], True), (bot_tack[0], True)) if jit[7] > 0 else ()
            out.append(LoopPath(side, np.zeros((0, 2)), tacks))
            continue
        if state == "ok":
            ctrl = np.array(
                [
                    a,
                    [edge + s * e1 * (1 + 0.08 * jit[0]), y_a + 4.0 * jit[1] - 2.0],
                    [edge + s * e1 * (1 + 0.08 * jit[2]), y_b + 4.0 * jit[3] + 2.0],
                    b,
                ]
            )
            tacks = (top_tack, bot_tack)
        else:
            # Sewn at one end only: the cord leaves that corner and ends loose.
            fixed, loose_y = (b, y_a) if state == "detached_top" else (a, y_b)
            toward = 1.0 if state == "detached_top" else -1.0  # from fixed end towards free end
            free = np.array(
                [
                    edge + s * reach * (0.35 + 0.25 * (jit[4] + 1)),
                    loose_y + toward * (8.0 + 6.0 * (jit[5] + 1)),
                ]
            )
            ctrl = np.array(
                [
                    fixed,
                    [edge + s * e1 * (0.9 + 0.1 * jit[0]), fixed[1] + 3.0 * jit[1]],
                    [edge + s * e1 * (0.8 + 0.1 * jit[2]), (fixed[1] + free[1]) / 2 + 4 * jit[3]],
                    free,
                ]
            )
            broken = state == "detached_top"
            tacks = ((top_tack[0], broken), (bot_tack[0], not broken))
        pts = _bezier(ctrl, 160)
        pts = _wobble(pts, 0.5, wobble)
        x0, y0, x1, y1 = footprint_mm(params)
        pts[:, 0] = np.clip(pts[:, 0], x0 + params.loop_width_mm, x1 - params.loop_width_mm)
        pts[:, 1] = np.clip(pts[:, 1], y0 + params.loop_width_mm, y1 - params.loop_width_mm)
        out.append(LoopPath(side, pts, tacks))
    return out


def _bezier(ctrl: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2, p3 = ctrl
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _wobble(pts: np.ndarray, amp_mm: float, phase: np.ndarray) -> np.ndarray:
    """Small sideways waves (elastic never lies perfectly smooth), zero at the ends."""
    d = np.gradient(pts, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    t = np.linspace(0.0, 1.0, len(pts))
    w = amp_mm * np.sin(np.pi * t) * (np.sin(7 * t + phase[0]) + 0.5 * np.sin(17 * t + phase[1]))
    return pts + normal * w[:, None]


def cord_layers(
    grid: Grid, path: LoopPath, width_mm: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (0–1) and brightness (≈0.6–1.1) of a cord on ``grid``, float32.

    The cord is round-ish: brighter along its middle, darker at the edges; knitted
    elastic shows fine ribs across its length.
    """
    cov = np.zeros(grid.shape, np.uint8)
    mid = np.zeros(grid.shape, np.uint8)
    ribs = np.zeros(grid.shape, np.uint8)
    poly = grid.to_draw(path.points_mm).reshape(-1, 1, 2)
    thick = max(round(grid.px(width_mm)), 1)
    cv2.polylines(cov, [poly], False, 255, thick, cv2.LINE_AA, DRAW_SHIFT)
    cv2.polylines(mid, [poly], False, 128, max(int(thick * 0.7), 1), cv2.LINE_AA, DRAW_SHIFT)
    cv2.polylines(mid, [poly], False, 255, max(int(thick * 0.35), 1), cv2.LINE_AA, DRAW_SHIFT)
    # Ribs: short lines across the cord every ~0.7 mm of its length.
    pts = path.points_mm
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.arange(0.0, arc[-1], 0.7) + rng.uniform(0.0, 0.7)
    at = at[at < arc[-1]]
    xs = np.interp(at, arc, pts[:, 0])
    ys = np.interp(at, arc, pts[:, 1])
    tx = np.interp(at, arc, np.gradient(pts[:, 0]))
    ty = np.interp(at, arc, np.gradient(pts[:, 1]))
    norm = np.maximum(np.hypot(tx, ty), 1e-9)
    nx, ny = -ty / norm * width_mm * 0.45, tx / norm * width_mm * 0.45
    a = grid.to_draw(np.stack([xs - nx, ys - ny], axis=1))
    b = grid.to_draw(np.stack([xs + nx, ys + ny], axis=1))
    for p, q in zip(a, b, strict=True):
        cv2.line(ribs, tuple(p), tuple(q), 255, 1, cv2.LINE_AA, DRAW_SHIFT)
    sigma = max(grid.px(width_mm) * 0.12, 0.5)
    shade = cv2.GaussianBlur(to_float_layer(mid), (0, 0), sigma)
    bright = 0.68 + 0.38 * smoothstep(0.0, 0.8, shade) - 0.12 * to_float_layer(ribs)
    bright += rng.normal(0.0, 0.03, grid.shape).astype(np.float32)
    return to_float_layer(cov), bright.astype(np.float32)
