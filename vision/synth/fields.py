"""Smooth per-pixel fields kept at a fraction of their size and expanded band by band.

The renderer needs, for every camera pixel, the belt point it sees and the light's
gain. Both vary slowly across the image, so keeping them at full resolution (25 and
37 MB for a 2028 × 1520 frame) buys nothing: a field is sampled every ``step`` rows
and columns, widened to full width once, and a band of rows is interpolated only
when a frame strip is rendered. Samples sit exactly on pixel rows and columns
``0, step, 2·step, …`` (the last one at or past the image edge), so the linear
interpolation is exact wherever the field is affine and, for the lens distortion of
the simulated camera, off by well under 1e-3 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def sample_positions(size_px: int, step: int) -> np.ndarray:
    """Pixel positions ``0, step, …`` up to the first one at or past ``size_px - 1``."""
    count = -(-(size_px - 1) // step) + 1
    return np.arange(count, dtype=np.float64) * step


def _lerp_axis(coarse: np.ndarray, size_px: int, step: int, axis: int) -> np.ndarray:
    """Linear interpolation of samples taken every ``step`` pixels along ``axis``."""
    pos = np.arange(size_px)
    i = pos // step
    frac = ((pos % step) / step).astype(np.float32)
    last = coarse.shape[axis] - 1
    lo = np.take(coarse, np.minimum(i, last), axis=axis)
    hi = np.take(coarse, np.minimum(i + 1, last), axis=axis)
    shape = [1] * coarse.ndim
    shape[axis] = size_px
    return lo + (hi - lo) * frac.reshape(shape)


@dataclass(frozen=True)
class RowField:
    """A smooth (H, W, C) float32 field stored at every ``step``-th row, full width.

    Args:
        rows_data: (ceil((H-1)/step) + 1, W, C) float32 samples at rows 0, step, ….
        step: rows between samples.
        height_px: H, the full field's height.
    """

    rows_data: np.ndarray
    step: int
    height_px: int

    @classmethod
    def from_samples(cls, coarse: np.ndarray, width_px: int, height_px: int, step: int) -> RowField:
        """From samples on the grid of :func:`sample_positions` (rows × cols × C)."""
        if coarse.ndim == 2:
            coarse = coarse[..., None]
        wide = _lerp_axis(coarse.astype(np.float32), width_px, step, axis=1)
        return cls(np.ascontiguousarray(wide, np.float32), step, height_px)

    @property
    def nbytes(self) -> int:
        return int(self.rows_data.nbytes)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of the full field, (r1 - r0, W, C) float32.

        Rows at the same phase (``y % step``) share their weights, so the band is
        filled with one weighted sum per phase over consecutive sample rows.
        """
        data = self.rows_data
        last = data.shape[0] - 1
        out = np.empty((r1 - r0, *data.shape[1:]), np.float32)
        for phase in range(self.step):
            first = r0 + (phase - r0) % self.step  # first row of this phase in the band
            if first >= r1:
                continue
            n = len(range(first, r1, self.step))
            i0 = first // self.step
            frac = phase / self.step
            lo = data[i0 : i0 + n]
            if frac == 0.0:
                out[first - r0 :: self.step] = lo
                continue
            hi = data[min(i0 + 1, last) : min(i0 + 1, last) + n]
            out[first - r0 :: self.step] = cv2.addWeighted(lo, 1.0 - frac, hi, frac, 0.0)
        return out

    def full(self) -> np.ndarray:
        """The whole field (for callers that need it at once, e.g. tests)."""
        return self.rows(0, self.height_px)
