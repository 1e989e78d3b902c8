"""Holes, tears and stains: the flaws only the classifier can see.

Each flaw is drawn in a small window around it, so adding one to a mask touches
nothing else (the tests rely on that: a flaw must change the image only where the
ground truth says it is).
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.synth.grid import DRAW_SHIFT, Grid, smooth_noise, smoothstep, to_float_layer
from vision.synth.params import DefectParams


def cut_hole(
    colour: np.ndarray,
    coverage: np.ndarray,
    grid: Grid,
    defect: DefectParams,
    rng: np.random.Generator,
) -> None:
    """Remove cloth (coverage → 0) for a hole or a tear, in place, with frayed edges.

    ``extra["shape"]`` is "hole" (a ragged round opening of diameter ``size_mm``) or
    "tear" (a jagged slit ``size_mm`` long, 1–2.5 mm open). Loose fibres cross the
    edge and the cloth around it is fluffed up, so it catches a little more light.
    """
    size = max(defect.size_mm, 0.5)
    half = size / 2 + 2.5
    rows, cols = grid.window(
        defect.x_mm - half, defect.y_mm - half, defect.x_mm + half, defect.y_mm + half
    )
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return
    sub = grid.sub(rows, cols)
    centre = np.array([defect.x_mm, defect.y_mm])
    if defect.extra.get("shape", "hole") == "tear":
        outline = _tear_outline(centre, size, defect.extra, rng)
    else:
        theta = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)
        radius = np.full(theta.shape, size / 2)
        for k in (2, 3, 5, 7):
            radius *= 1.0 + rng.uniform(0.02, 0.1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        radius *= 1.0 + rng.normal(0.0, 0.03, theta.size)
        outline = centre + np.stack([np.cos(theta), np.sin(theta)], axis=1) * radius[:, None]
    hole_u8 = np.zeros(sub.shape, np.uint8)
    cv2.fillPoly(hole_u8, [sub.to_draw(outline).reshape(-1, 1, 2)], 255, cv2.LINE_AA, DRAW_SHIFT)
    hole = to_float_layer(hole_u8)
    fibres_u8 = np.zeros(sub.shape, np.uint8)
    thick = max(round(sub.px(0.12)), 1)
    for idx in rng.choice(len(outline), size=min(len(outline), 24), replace=False):
        p = outline[idx]
        inward = centre - p
        inward /= max(float(np.linalg.norm(inward)), 1e-9)
        ang = rng.normal(0.0, 0.5)
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        q = p + rot @ inward * rng.uniform(0.3, 1.2)
        seg = sub.to_draw(np.array([p - inward * 0.3, q]))
        cv2.line(fibres_u8, tuple(seg[0]), tuple(seg[1]), 200, thick, cv2.LINE_AA, DRAW_SHIFT)
    fibres = to_float_layer(fibres_u8)
    ring = np.clip(cv2.GaussianBlur(hole, (0, 0), sub.px(0.6)) - hole, 0.0, 1.0)
    window = colour[rows, cols]
    window *= (1.0 + 0.5 * ring)[..., None]
    window *= (1.0 + 0.1 * fibres)[..., None]
    cov = coverage[rows, cols]
    coverage[rows, cols] = np.maximum(cov * (1.0 - hole), np.minimum(cov, fibres * hole * 0.7))


def _tear_outline(
    centre: np.ndarray, length: float, extra: dict, rng: np.random.Generator
) -> np.ndarray:
    """Jagged lens-shaped slit along a random direction."""
    ang = np.deg2rad(float(extra.get("angle_deg", rng.uniform(0, 180))))
    u = np.array([np.cos(ang), np.sin(ang)])
    n = np.array([-u[1], u[0]])
    t = np.linspace(0.0, 1.0, 40)
    open_mm = rng.uniform(1.0, 2.5)
    width = open_mm / 2 * np.sin(np.pi * t) ** 0.6
    path = np.cumsum(rng.normal(0.0, 0.15, t.size))
    path -= np.linspace(path[0], path[-1], t.size)
    upper = width * (1.0 + rng.normal(0.0, 0.2, t.size))
    lower = width * (1.0 + rng.normal(0.0, 0.2, t.size))
    along = (t - 0.5) * length
    side_a = centre + along[:, None] * u + (path + upper)[:, None] * n
    side_b = centre + along[:, None] * u + (path - lower)[:, None] * n
    return np.concatenate([side_a, side_b[::-1]])


def apply_stain(
    colour: np.ndarray, grid: Grid, defect: DefectParams, rng: np.random.Generator
) -> None:
    """Darken/tint the cloth under a soft irregular blob, in place.

    Oil and grease darken and yellow the cloth; ink tints it; coffee tints it with
    a darker rim where the liquid dried. The blob edge is soft (a few mm) because
    liquids wick along the threads.
    """
    size = max(defect.size_mm, 1.0)
    tint = str(defect.extra.get("tint", "oil"))
    half = size * 0.75 + 2.0
    rows, cols = grid.window(
        defect.x_mm - half, defect.y_mm - half, defect.x_mm + half, defect.y_mm + half
    )
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return
    sub = grid.sub(rows, cols)
    dx = sub.xs() - defect.x_mm
    dy = sub.ys() - defect.y_mm
    theta = np.arctan2(dy[:, None], dx[None, :])
    radius = np.full(theta.shape, size / 2, np.float32)
    for k in (2, 3, 5):
        radius *= 1.0 + rng.uniform(0.03, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    dist = np.sqrt(np.add.outer(dy**2, dx**2))
    soft = max(size * 0.12, 0.6)
    blob = smoothstep(0.0, 1.0, (radius - dist) / soft + 0.5)
    blob *= 1.0 + 0.15 * smooth_noise(blob.shape, sub.px(1.5), rng)
    blob = np.clip(blob, 0.0, 1.0)
    mult = {
        "oil": (0.52, 0.6, 0.66),
        "grease": (0.55, 0.56, 0.58),
        "ink": (0.72, 0.42, 0.35),
        "red": (0.45, 0.42, 0.82),
        "coffee": (0.58, 0.7, 0.84),
    }.get(tint, (0.55, 0.6, 0.66))
    strength = blob[..., None] * (1.0 - np.asarray(mult, np.float32))
    if tint == "coffee":
        rim = np.exp(-(((dist - radius) / (soft * 0.6)) ** 2)).astype(np.float32)
        strength = strength * (1.0 + 0.6 * rim[..., None])
    colour[rows, cols] *= np.clip(1.0 - strength, 0.05, 1.0)
