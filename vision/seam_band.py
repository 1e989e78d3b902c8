"""Where the seams are looked for: each side's band in mask millimetres.

Geometry shared by the stitching check, the decisions and the overlay: which mask
point lies ``t`` mm along a side and ``d`` mm inside it, and the band of a side cut
straight out of the rectified image (no resampling: the residual rotation only
makes the edge row drift slowly along the band, which every use follows).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.edges import BodyFrame
from vision.rectify import Rectified


def side_length(body: BodyFrame, side: str) -> float:
    return body.width_mm if side in ("top", "bottom") else body.height_mm


def band_to_mask(w: float, h: float, side: str, t0: float, d0: float, step: float) -> np.ndarray:
    """2×3 affine: band pixel (j along, i across) → mask mm (x, y), body ``w``×``h``."""
    if side == "top":
        return np.array([[step, 0, t0], [0, step, d0]])
    if side == "bottom":
        return np.array([[step, 0, t0], [0, -step, h - d0]])
    if side == "left":
        return np.array([[0, step, d0], [step, 0, t0]])
    return np.array([[0, -step, w - d0], [step, 0, t0]])


def side_point_mask(w: float, h: float, side: str, t: float, d: float) -> tuple[float, float]:
    """Mask (x, y) of a point ``t`` along and ``d`` inside a side of a ``w``×``h`` body."""
    m = band_to_mask(w, h, side, 0.0, 0.0, 1.0)
    return float(m[0, 0] * t + m[0, 1] * d + m[0, 2]), float(m[1, 0] * t + m[1, 1] * d + m[1, 2])


@dataclass(frozen=True, slots=True)
class Band:
    """A side's band, cut straight out of the rectified image (no resampling).

    Row ``i`` of column ``j`` lies ``(i − edge_row[j]) · mm_per_px`` mm inside the
    fitted edge; column ``j`` is ``t_mm[j]`` along the side (mask mm). The residual
    rotation (a fraction of a degree) only makes the edge row drift slowly along
    the band, which every use below follows.
    """

    image: np.ndarray  # (rows, cols, 3) uint8, a view where possible (copied once, later)
    edge_row: np.ndarray  # (cols,) float
    t_mm: np.ndarray  # (cols,) float
    mm_per_px: float


def extract_band(rect: Rectified, body: BodyFrame, side: str, d0: float, d1: float) -> Band:
    """The band of ``side`` from ``d0`` to ``d1`` mm inside its edge, full length."""
    s = rect.mm_per_px
    line = body.lines[side]
    tl = body.corners_local_mm[0]
    horizontal = side in ("top", "bottom")
    length = side_length(body, side)
    along0 = tl[0] if horizontal else tl[1]
    origin = rect.u0_mm if horizontal else rect.v0_mm
    a0 = int(np.ceil((along0 - origin) / s))
    a1 = int(np.floor((along0 + length - origin) / s)) + 1
    idx = np.arange(a0, a1)
    along = origin + idx * s
    across0 = rect.v0_mm if horizontal else rect.u0_mm
    edge = (line.a_mm + line.b * along - across0) / s  # edge, in image rows/cols
    inward = 1.0 if side in ("top", "left") else -1.0
    near = edge + inward * d0 / s
    far = edge + inward * d1 / s
    lo = int(np.floor(min(near.min(), far.min())))
    hi = int(np.ceil(max(near.max(), far.max()))) + 1
    limit = rect.shape[0] if horizontal else rect.shape[1]
    lo_c, hi_c = max(lo, 0), min(hi, limit)
    img = (
        rect.image[lo_c:hi_c, a0:a1]
        if horizontal
        else rect.image[a0:a1, lo_c:hi_c].transpose(1, 0, 2)
    )
    if lo_c != lo or hi_c != hi:  # the band leaves the image: pad with its border
        img = cv2.copyMakeBorder(
            np.ascontiguousarray(img), lo_c - lo, hi - hi_c, 0, 0, cv2.BORDER_REPLICATE
        )
    if inward < 0:
        img = img[::-1]
        edge_row = (hi - 1) - edge
    else:
        edge_row = edge - lo
    return Band(img, edge_row, along - along0, s)


def thin_line(band: np.ndarray, ref: int) -> np.ndarray:
    """Thin-line response of every row (uint8, best colour channel; rows within
    ``ref`` of the band's border are 0). Saturating uint8 arithmetic does the
    clipping at zero for free."""
    out = np.zeros(band.shape[:2], np.uint8)
    c, a, b = band[ref:-ref], band[: -2 * ref], band[2 * ref :]
    lo, hi = cv2.min(a, b), cv2.max(a, b)
    resp = cv2.max(cv2.subtract(lo, c), cv2.subtract(c, hi))
    ch = cv2.split(resp)
    out[ref:-ref] = cv2.max(cv2.max(ch[0], ch[1]), ch[2])
    return out


def grouped_median_u8(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of uint8 ``values`` per group id (0 … n_groups−1), by counting."""
    counts = np.bincount(groups * 256 + values, minlength=n_groups * 256)
    cdf = np.cumsum(counts.reshape(n_groups, 256), axis=1)
    half = (cdf[:, -1:] + 1) / 2
    return np.argmax(cdf >= half, axis=1).astype(np.float32)
