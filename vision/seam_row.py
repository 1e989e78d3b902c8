"""Where the seam runs along each side: the perimeter bands and the seam row.

The four sides' bands are cut out of the rectified image and put side by side
(:class:`Perimeter`), so the thin-line filter and the chunk search run once for the
whole perimeter. :func:`locate_rows` finds the seam row per 10 mm chunk and a robust
straight line through the chunks; :func:`fallback_line` gives the likeliest row of
the spec's offset band where no seam row stands out (a busy print). What is measured
along that row (stitch length, gaps) is :mod:`vision.stitching`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision.edges import SIDES, BodyFrame
from vision.rectify import Rectified
from vision.seam_band import extract_band, thin_line
from vision.spec import SeamSpec
from vision.stitch_signal import line_fit, peaks_2d

if TYPE_CHECKING:
    from vision.stitching import SeamParams


def mm_to_px(mm: float, s: float) -> int:
    """Millimetres along a band to whole pixels at ``s`` mm/px (at least one)."""
    return max(round(mm / s), 1)


@dataclass(frozen=True, slots=True)
class Perimeter:
    """The four sides' bands side by side: one array, processed in one go."""

    image: np.ndarray  # (rows, cols, 3) uint8
    line: np.ndarray  # (rows, cols) thin-line response
    edge_row: np.ndarray  # (cols,)
    t_mm: np.ndarray  # (cols,)
    start: tuple[int, ...]  # first column of each side
    stop: tuple[int, ...]


def perimeter(rect: Rectified, body: BodyFrame, seam: SeamSpec, params: SeamParams) -> Perimeter:
    s = rect.mm_per_px
    ref = mm_to_px(params.reference_mm, s)
    d0 = params.band_start_mm - ref * s
    d1 = seam.offset_mm.hi + params.band_extra_mm + ref * s
    bands = [extract_band(rect, body, side, d0, d1) for side in SIDES]
    rows = max(b.image.shape[0] for b in bands)
    widths = np.cumsum([0] + [b.image.shape[1] for b in bands])
    # One copy of each band (most are views of the rectified image); shorter bands
    # are padded with their last row.
    image = np.empty((rows, int(widths[-1]), 3), np.uint8)
    for b, a, c in zip(bands, widths[:-1], widths[1:], strict=True):
        h = b.image.shape[0]
        image[:h, a:c] = b.image
        if h < rows:
            image[h:, a:c] = b.image[-1:]
    return Perimeter(
        image,
        thin_line(image, ref),
        np.concatenate([b.edge_row for b in bands]),
        np.concatenate([b.t_mm for b in bands]),
        tuple(int(v) for v in widths[:-1]),
        tuple(int(v) for v in widths[1:]),
    )


def locate_rows(
    per: Perimeter, s: float, seam: SeamSpec, params: SeamParams
) -> list[tuple[np.ndarray, float, float] | None]:
    """Per side: chunk offsets (t, d) and the seam's line d = a + b·t; None: no seam."""
    ref = mm_to_px(params.reference_mm, s)
    nominal = seam.offset_mm.nominal
    cw = mm_to_px(params.chunk_mm, s)
    first = int(np.floor(per.edge_row.min() + params.band_start_mm / s))
    last = int(np.ceil(per.edge_row.max() + (seam.offset_mm.hi + params.band_extra_mm) / s))
    first, last = max(first, ref), min(last, per.line.shape[0] - ref)
    starts, owner = [], []
    for i, (a, b) in enumerate(zip(per.start, per.stop, strict=True)):
        t = per.t_mm[a:b]
        j0 = a + int(np.searchsorted(t, nominal + params.end_margin_mm))
        j1 = a + int(np.searchsorted(t, t[-1] - nominal - params.end_margin_mm))
        n = max((j1 - j0) // cw, 0)
        starts += [j0 + k * cw for k in range(n)]
        owner += [i] * n
    if not starts:
        return [None] * len(SIDES)
    st_idx = np.asarray(starts)
    # Chunk means of every row from one integral image (exact in int32): a tenth of
    # the time of a float cumulative sum along the rows.
    integral = cv2.integral(np.ascontiguousarray(per.line[first:last]), sdepth=cv2.CV_32S)
    cum_rows = integral[:, st_idx + cw] - integral[:, st_idx]
    chunks = (cum_rows[1:] - cum_rows[:-1]).astype(np.float32) / np.float32(cw)
    if params.stitch_energy_weight > 0:
        chunks = chunks + params.stitch_energy_weight * _stitch_energy(
            per, first, last, st_idx, cw, ref, s, params
        )
    rows, snr = peaks_2d(chunks)
    centre = st_idx + cw / 2
    cols = np.arange(per.line.shape[1])
    edge = np.interp(centre, cols, per.edge_row)
    offs_all = np.stack([np.interp(centre, cols, per.t_mm), (first + rows - edge) * s], 1)
    good = snr >= params.min_chunk_snr
    owner_arr = np.asarray(owner)
    out: list[tuple[np.ndarray, float, float] | None] = []
    for i in range(len(SIDES)):
        n_side = int((owner_arr == i).sum())
        offs = offs_all[(owner_arr == i) & good]
        if len(offs) < 3:
            out.append(None)
            continue
        slope, icpt = 0.0, float(np.median(offs[:, 1]))
        keep = np.ones(len(offs), bool)
        for _ in range(3):
            keep = np.abs(offs[:, 1] - (icpt + slope * offs[:, 0])) <= params.max_row_residual_mm
            if keep.sum() < 3:
                break
            icpt, slope = line_fit(offs[keep, 0], offs[keep, 1])
        if keep.sum() < max(3, params.min_chunk_share * n_side):
            out.append(None)
            continue
        near = np.abs(offs[:, 1] - (icpt + slope * offs[:, 0])) <= params.max_chunk_deviation_mm
        out.append((offs[near], icpt, slope))
    return out


def _stitch_energy(
    per: Perimeter,
    first: int,
    last: int,
    starts: np.ndarray,
    cw: int,
    ref: int,
    s: float,
    params: SeamParams,
) -> np.ndarray:
    """Per chunk and row: how much the row varies along itself at stitch scale, more
    than the rows ``ref`` away on either side (rows, chunks).

    Needle holes and the gaps between stitches make the seam row pulse along its
    length whatever the thread's colour against the cloth; a print edge parallel to
    the side does not vary along it, and a print motif varies over many rows alike.
    """
    gray = cv2.cvtColor(per.image[first - ref : last + ref], cv2.COLOR_BGR2GRAY)
    # Band-pass along the rows (box filters, exact in uint8): stitch-scale detail.
    fine = cv2.blur(gray, (mm_to_px(params.stitch_fine_mm, s) | 1, 1))
    coarse = cv2.blur(gray, (mm_to_px(params.stitch_coarse_mm, s) | 1, 1))
    integral = cv2.integral(cv2.absdiff(fine, coarse), sdepth=cv2.CV_32S)
    cum = integral[:, starts + cw] - integral[:, starts]
    energy = (cum[1:] - cum[:-1]).astype(np.float32) / np.float32(cw)  # first-ref … last+ref
    mid = energy[ref:-ref]
    side = np.maximum(energy[: -2 * ref], energy[2 * ref :])
    return np.maximum(mid - side, 0.0)


def fallback_line(
    per: Perimeter, i: int, s: float, seam: SeamSpec, params: SeamParams
) -> tuple[np.ndarray, float, float] | None:
    """The row of the spec's offset band with the strongest thin-line response over
    side ``i`` (the chunk search found no seam row there): its chunks (t, d) and the
    line d = a + 0·t. None when the band is outside the image."""
    a, b = per.start[i], per.stop[i]
    t = per.t_mm[a:b]
    nominal = seam.offset_mm.nominal
    j0 = a + int(np.searchsorted(t, nominal + params.end_margin_mm))
    j1 = a + int(np.searchsorted(t, t[-1] - nominal - params.end_margin_mm))
    if j1 - j0 < 8:
        return None
    cols = np.arange(j0, j1)
    d = np.arange(seam.offset_mm.lo, seam.offset_mm.hi + s / 2, s, dtype=np.float32)
    rows = np.round(per.edge_row[cols][None, :] + d[:, None] / s).astype(np.intp)
    if rows.min() < 0 or rows.max() >= per.line.shape[0]:
        return None
    response = per.line[rows, cols[None, :]].astype(np.float32).mean(axis=1)
    best = float(d[int(np.argmax(response))])
    step = mm_to_px(params.chunk_mm, s)
    tc = per.t_mm[cols[step // 2 :: step]]
    return np.stack([tc, np.full_like(tc, best)], 1), best, 0.0
