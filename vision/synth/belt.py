"""The conveyor belt: dark matte rubber with grain, a fabric impression and dust.

The texture is generated in belt millimetres and is exactly periodic, so a moving
belt (``belt_offset_mm``) scrolls it with ``BORDER_WRAP`` instead of regenerating it.
It depends only on the look's belt fields and ``belt_seed``: the same belt comes back
frame after frame, as on a real line.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.synth.grid import DRAW_SHIFT, Grid, smooth_noise
from vision.synth.params import LookParams

#: Belt texture resolution: rubber detail is coarser than cloth detail.
BELT_MM_PER_PX = 0.2
#: Texture sides are multiples of this (keeps every noise octave periodic).
_TILE = 64


#: Fixed-point scale of :attr:`BeltTexture.lum` (uint8 = relative brightness × this).
LUM_SCALE = 64.0


@dataclass(frozen=True)
class BeltTexture:
    """Relative belt brightness × :data:`LUM_SCALE` (uint8) over a periodic grid in belt mm.

    One 8-bit channel because remapping bytes is the cheapest way through a frame;
    the colour is applied after the remap, and the belt's low levels are dithered by
    sensor noise later anyway.
    """

    grid: Grid
    lum: np.ndarray


def belt_key(look: LookParams) -> tuple[int, float, float]:
    """Fields of the look the texture depends on (cache key)."""
    return (
        int(look.belt_seed),
        round(float(look.belt_texture), 4),
        round(float(look.belt_specks), 3),
    )


def make_belt_texture(
    bounds_mm: tuple[float, float, float, float], look: LookParams
) -> BeltTexture:
    """Generate the belt over ``bounds_mm`` (x0, y0, x1, y1), rounded up to whole tiles."""
    x0, y0, x1, y1 = bounds_mm
    s = BELT_MM_PER_PX
    cols = int(np.ceil((x1 - x0) / s / _TILE)) * _TILE
    rows = int(np.ceil((y1 - y0) / s / _TILE)) * _TILE
    grid = Grid(x0, y0, s, cols, rows)
    rng = np.random.default_rng([0xBE17, int(look.belt_seed)])
    t = float(look.belt_texture)
    lum = np.ones((rows, cols), np.float32)
    lum += t * 0.15 * smooth_noise((rows, cols), 64, rng, wrap=True)
    lum += t * 0.15 * smooth_noise((rows, cols), 16, rng, wrap=True)
    grain = rng.standard_normal((rows, cols)).astype(np.float32)
    grain = np.pad(grain, 4, mode="wrap")
    grain = cv2.GaussianBlur(grain, (0, 0), 0.7)[4:-4, 4:-4]
    lum += t * 0.9 * grain
    # Fabric impression of the belt carcass: a faint square weave, 1.6 mm period.
    i = np.cos(2 * np.pi * np.arange(rows, dtype=np.float32) / 8)
    j = np.cos(2 * np.pi * np.arange(cols, dtype=np.float32) / 8)
    lum += 0.012 * np.add.outer(i, j)
    # Wear lines along the travel direction.
    streaks = smooth_noise((1, cols), 3, rng)[0] * (rng.random(cols) < 0.3)
    lum += t * 0.25 * np.convolve(streaks, np.ones(3) / 3, mode="same").astype(np.float32)[None, :]
    _specks(lum, grid, look, rng)
    lum = np.clip(lum, 0.3, 255.0 / LUM_SCALE)
    return BeltTexture(grid, cv2.convertScaleAbs(lum, alpha=LUM_SCALE))


def _specks(lum: np.ndarray, grid: Grid, look: LookParams, rng: np.random.Generator) -> None:
    """Dust dots and lint fibres: small, so they never look like a mask."""
    area_cm2 = grid.cols * grid.rows * grid.mm_per_px**2 / 100.0
    n = int(rng.poisson(max(look.belt_specks, 0.0) * area_cm2 / 100.0))
    for _ in range(n):
        p = np.array([rng.uniform(0, grid.cols), rng.uniform(0, grid.rows)]) * grid.mm_per_px
        p += (grid.x0_mm, grid.y0_mm)
        bright = rng.choice([0.5, 1.8, 2.6, 3.5], p=[0.25, 0.35, 0.25, 0.15])
        if rng.random() < 0.6:
            c = grid.to_draw(p)
            r = int(grid.px(rng.uniform(0.1, 0.45)) * (1 << DRAW_SHIFT))
            cv2.circle(
                lum, (int(c[0]), int(c[1])), max(r, 1), float(bright), -1, cv2.LINE_AA, DRAW_SHIFT
            )
        else:
            heading = rng.uniform(0, 2 * np.pi)
            pts = [p]
            for _ in range(6):
                heading += rng.normal(0.0, 0.5)
                pts.append(
                    pts[-1] + rng.uniform(0.3, 0.7) * np.array([np.cos(heading), np.sin(heading)])
                )
            poly = grid.to_draw(np.array(pts)).reshape(-1, 1, 2)
            cv2.polylines(lum, [poly], False, float(min(bright, 2.2)), 1, cv2.LINE_AA, DRAW_SHIFT)


def belt_map(belt_mm: np.ndarray, texture: BeltTexture, offset_mm: float) -> np.ndarray:
    """Camera pixel → texture pixel map (CV_32FC2) for a belt moved by ``offset_mm`` along +Y."""
    g = texture.grid
    s = 1.0 / g.mm_per_px
    m = np.float32([[s, 0, -g.x0_mm * s], [0, s, -(g.y0_mm + offset_mm) * s]])
    return cv2.transform(belt_mm, m)
