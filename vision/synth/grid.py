"""A raster laid over a plane in millimetres, and small raster helpers.

Every texture of the simulator (mask sprite, belt, chessboard) is drawn in plane
millimetres on such a grid and reaches the camera only through ``cv2.remap``, so the
one convention that matters lives here: pixel *centre* ``(col, row)`` is at
``(x0_mm + col · mm_per_px, y0_mm + row · mm_per_px)`` — the same centre convention
as OpenCV's remap and drawing functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Fixed-point bits for sub-pixel drawing with cv2.line / cv2.fillPoly.
DRAW_SHIFT = 4


@dataclass(frozen=True)
class Grid:
    """Pixel grid over a plane: origin (centre of pixel 0, 0) in mm, scale and size."""

    x0_mm: float
    y0_mm: float
    mm_per_px: float
    cols: int
    rows: int

    @classmethod
    def covering(
        cls, x0_mm: float, y0_mm: float, x1_mm: float, y1_mm: float, mm_per_px: float
    ) -> Grid:
        """Smallest grid covering the box, origin snapped to a multiple of the scale.

        Snapping keeps sub-grids of different sprites aligned with each other, so a
        change in one part of a mask does not resample the rest at a new phase.
        """
        gx0 = np.floor(x0_mm / mm_per_px) * mm_per_px
        gy0 = np.floor(y0_mm / mm_per_px) * mm_per_px
        cols = int(np.ceil((x1_mm - gx0) / mm_per_px)) + 1
        rows = int(np.ceil((y1_mm - gy0) / mm_per_px)) + 1
        return cls(float(gx0), float(gy0), mm_per_px, cols, rows)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def xs(self) -> np.ndarray:
        """x in mm of every column's centre (float32)."""
        return (self.x0_mm + np.arange(self.cols) * self.mm_per_px).astype(np.float32)

    def ys(self) -> np.ndarray:
        """y in mm of every row's centre (float32)."""
        return (self.y0_mm + np.arange(self.rows) * self.mm_per_px).astype(np.float32)

    def to_px(self, pts_mm: np.ndarray) -> np.ndarray:
        """Plane mm (..., 2) → fractional (col, row) pixel coordinates."""
        pts = np.asarray(pts_mm, np.float64)
        return (pts - (self.x0_mm, self.y0_mm)) / self.mm_per_px

    def to_draw(self, pts_mm: np.ndarray) -> np.ndarray:
        """Plane mm (..., 2) → int32 fixed-point points for OpenCV drawing with DRAW_SHIFT."""
        return np.round(self.to_px(pts_mm) * (1 << DRAW_SHIFT)).astype(np.int32)

    def px(self, length_mm: float) -> float:
        return length_mm / self.mm_per_px

    def window(self, x0_mm: float, y0_mm: float, x1_mm: float, y1_mm: float) -> tuple[slice, slice]:
        """(row slice, col slice) of the part of this grid covering a box, clipped."""
        c0 = max(int(np.floor((x0_mm - self.x0_mm) / self.mm_per_px)), 0)
        r0 = max(int(np.floor((y0_mm - self.y0_mm) / self.mm_per_px)), 0)
        c1 = min(int(np.ceil((x1_mm - self.x0_mm) / self.mm_per_px)) + 1, self.cols)
        r1 = min(int(np.ceil((y1_mm - self.y0_mm) / self.mm_per_px)) + 1, self.rows)
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    def sub(self, rows: slice, cols: slice) -> Grid:
        """The grid of a window returned by :meth:`window`."""
        return Grid(
            self.x0_mm + cols.start * self.mm_per_px,
            self.y0_mm + rows.start * self.mm_per_px,
            self.mm_per_px,
            cols.stop - cols.start,
            rows.stop - rows.start,
        )


def smooth_noise(
    shape: tuple[int, int],
    cell_px: float | tuple[float, float],
    rng: np.random.Generator,
    wrap: bool = False,
) -> np.ndarray:
    """Unit-variance smooth random field with features of about ``cell_px`` pixels.

    Drawn on a coarse lattice and enlarged with bicubic interpolation, which is two
    orders of magnitude cheaper than blurring full-resolution noise. ``wrap=True``
    makes the field exactly periodic (for belt textures that scroll); it then needs
    an integer ``cell_px`` that divides both sides of ``shape``. A (rows, cols) pair
    of cell sizes gives stretched features (wrinkles that run along the pleats).
    """
    rows, cols = shape
    if isinstance(cell_px, tuple):
        cell_r, cell_c = (max(float(c), 1.0) for c in cell_px)
        cr = int(np.ceil(rows / cell_r)) + 1
        cc = int(np.ceil(cols / cell_c)) + 1
        coarse = rng.standard_normal((cr, cc)).astype(np.float32)
        big = cv2.resize(
            coarse,
            (round(cc * cell_c), round(cr * cell_r)),
            interpolation=cv2.INTER_CUBIC,
        )
        out = big[:rows, :cols]
    elif wrap:
        cell = round(cell_px)
        if cell < 1 or rows % cell or cols % cell:
            raise ValueError(f"wrap: cell {cell_px} must divide shape {shape}")
        coarse = rng.standard_normal((rows // cell, cols // cell)).astype(np.float32)
        pad = 2
        padded = np.pad(coarse, pad, mode="wrap")
        big = cv2.resize(
            padded,
            (padded.shape[1] * cell, padded.shape[0] * cell),
            interpolation=cv2.INTER_CUBIC,
        )
        out = big[pad * cell : pad * cell + rows, pad * cell : pad * cell + cols]
    else:
        cell = max(float(cell_px), 1.0)
        cr = int(np.ceil(rows / cell)) + 1
        cc = int(np.ceil(cols / cell)) + 1
        coarse = rng.standard_normal((cr, cc)).astype(np.float32)
        big = cv2.resize(
            coarse, (round(cc * cell), round(cr * cell)), interpolation=cv2.INTER_CUBIC
        )
        out = big[:rows, :cols]
    std = float(out.std()) or 1.0
    return ((out - out.mean()) / std).astype(np.float32)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at edge0 to 1 at edge1 (either order), as float32."""
    t = np.subtract(x, edge0, dtype=np.float32)  # in place from here: layers are large
    t *= np.float32(1.0 / (edge1 - edge0))
    np.clip(t, 0.0, 1.0, out=t)
    s = np.multiply(t, np.float32(-2.0))
    s += np.float32(3.0)
    t *= t
    t *= s
    return t


def to_float_layer(layer_u8: np.ndarray) -> np.ndarray:
    """uint8 coverage 0–255 → float32 0–1."""
    return layer_u8.astype(np.float32) * np.float32(1.0 / 255.0)
