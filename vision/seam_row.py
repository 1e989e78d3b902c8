"""Where the seam runs along each side: the perimeter bands and the seam row.

The four sides' bands are cut out of the rectified image and put side by side
(:class:`Perimeter`), so the thin-line filter and the chunk search run once for the
whole perimeter. :func:`locate_rows` finds the seam row per 10 mm chunk and a robust
straight line through the chunks; :func:`fallback_line` gives the likeliest row of
the spec's offset band where no seam row stands out (a busy print). What is measured
along that row (stitch length, gaps) is :mod:`vision.stitching`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision.edges import SIDES, BodyFrame
from vision.rectify import Rectified
from vision.seam_band import extract_band, thin_line
from vision.spec import SeamSpec
from vision.stitch_signal import peaks_2d

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
) -> tuple[list[SideLine | None], list[SideLine | None]]:
    """Per side: chunk offsets (t, d) and the seam's line d = a + b·t (None: no seam),
    and a second candidate line where the row that pulses disagrees with it.

    The first is the row where thin-line relief plus pulsing is strongest. The second
    keeps, in every chunk where some row clearly pulses along itself (needle holes),
    only the rows near that pulsing: a light sliver of cloth between the edge and a
    stripe, or a print stripe parallel to the side, has more relief than a thread of
    nearly the cloth's colour but does not pulse. Pulsing alone is not trusted either
    (a print motif can pulse more than a seam whose thread differs from the cloth in
    hue only): :func:`vision.stitching.analyse_seams` keeps the candidate whose stitch
    spectrum is the more regular.
    """
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
        return [None] * len(SIDES), [None] * len(SIDES)
    st_idx = np.asarray(starts)
    # Chunk means of every row from one integral image (exact in int32): a tenth of
    # the time of a float cumulative sum along the rows.
    integral = cv2.integral(np.ascontiguousarray(per.line[first:last]), sdepth=cv2.CV_32S)
    cum_rows = integral[:, st_idx + cw] - integral[:, st_idx]
    chunks = (cum_rows[1:] - cum_rows[:-1]).astype(np.float32) / np.float32(cw)
    centre = st_idx + cw / 2
    cols = np.arange(per.line.shape[1])
    edge = np.interp(centre, cols, per.edge_row)
    # The rows searched span every side's edge row (the residual rotation moves it
    # along a side, and the four sides differ): each chunk's own search window is
    # measured from its own edge, or a light sliver of cloth between the edge and a
    # dark stripe, closer to the edge than ``band_start_mm``, could be taken for the
    # thread.
    depth_mm = (first + np.arange(chunks.shape[0])[:, None] - edge[None, :]) * s
    outside = (depth_mm < params.band_start_mm) | (
        depth_mm > seam.offset_mm.hi + params.band_extra_mm
    )
    chunks[outside] = 0.0
    t_centre = np.interp(centre, cols, per.t_mm)
    owner_arr = np.asarray(owner)
    if params.stitch_energy_weight <= 0:
        rows, snr = peaks_2d(chunks)
        offs = np.stack([t_centre, (first + rows - edge) * s], 1)
        return _side_lines(offs, snr >= params.min_chunk_snr, owner_arr, params), [None] * len(
            SIDES
        )
    energy = _stitch_energy(per, first, last, st_idx, cw, ref, s, params)
    energy[outside] = 0.0
    score = chunks + params.stitch_energy_weight * energy
    rows, snr = peaks_2d(score)
    offs = np.stack([t_centre, (first + rows - edge) * s], 1)
    main = _side_lines(offs, snr >= params.min_chunk_snr, owner_arr, params)
    # Rows away from every clearly pulsing row of their chunk are ruled out: first
    # only checked at each chunk's row found above (most seams: it pulses, and there
    # is nothing more to do).
    peak = energy.max(axis=0)
    pulsing = peak >= params.min_pulse_levels
    reach = mm_to_px(params.pulse_reach_mm, s)
    k = np.clip(np.round(rows).astype(np.intp), 0, energy.shape[0] - 1)
    around = np.clip(k[None, :] + np.arange(-reach, reach + 1)[:, None], 0, energy.shape[0] - 1)
    pulse_at_row = energy[around, np.arange(energy.shape[1])[None, :]].max(axis=0)
    moved = pulsing & (pulse_at_row < params.pulse_share * peak)
    # Only sides where most pulsing chunks put the seam elsewhere offer a second line.
    n_pulsing = np.bincount(owner_arr, pulsing, minlength=len(SIDES))
    n_moved = np.bincount(owner_arr, moved, minlength=len(SIDES))
    sides = [
        i for i in range(len(SIDES)) if n_moved[i] > params.pulse_side_share * n_pulsing[i] > 0
    ]
    if not sides:
        return main, [None] * len(SIDES)
    near = cv2.dilate(energy, np.ones((2 * reach + 1, 1), np.uint8))
    ruled_out = pulsing[None, :] & (near < params.pulse_share * peak[None, :])
    # A chunk's pulsing is its evidence here (the thread may have hardly any relief,
    # so its row need not stand out of the thin-line response).
    rows_p, _ = peaks_2d(np.where(ruled_out, np.float32(0.0), score))
    offs_p = np.stack([t_centre, (first + rows_p - edge) * s], 1)
    return main, _side_lines(offs_p, pulsing, owner_arr, params, sides)


#: Chunk offsets (t, d) of one side's seam and its line d = a + b·t.
SideLine = tuple[np.ndarray, float, float]


def _side_lines(
    offs_all: np.ndarray,
    good: np.ndarray,
    owner: np.ndarray,
    params: SeamParams,
    sides: list[int] | None = None,
) -> list[SideLine | None]:
    """Per side (of ``sides``; all by default), a robust straight line through the
    seam rows of the ``good`` chunks (None: too few chunks agree, or not asked).

    A side has a few dozen chunks at most: the fit runs on Python floats, because
    NumPy's per-call overhead on such arrays made the loop of fits per side cost a
    quarter of a millisecond per mask.
    """
    n_sides = len(SIDES)
    bounds = np.searchsorted(owner, np.arange(n_sides + 1)).tolist()
    t_all, d_all, ok_all = offs_all[:, 0].tolist(), offs_all[:, 1].tolist(), good.tolist()
    resid, dev = params.max_row_residual_mm, params.max_chunk_deviation_mm
    out: list[SideLine | None] = []
    for i in range(n_sides):
        a, b = bounds[i], bounds[i + 1]
        idx = [j for j in range(a, b) if ok_all[j]]
        if (sides is not None and i not in sides) or len(idx) < 3:
            out.append(None)
            continue
        t = [t_all[j] for j in idx]
        d = [d_all[j] for j in idx]
        slope, icpt = 0.0, statistics.median(d)
        n_keep = len(d)
        for _ in range(3):
            keep = [k for k in range(len(d)) if abs(d[k] - (icpt + slope * t[k])) <= resid]
            n_keep = len(keep)
            if n_keep < 3:
                break
            icpt, slope = _line_fit_py([t[k] for k in keep], [d[k] for k in keep])
        if n_keep < max(3, params.min_chunk_share * (b - a)):
            out.append(None)
            continue
        near = [j for j in idx if abs(d_all[j] - (icpt + slope * t_all[j])) <= dev]
        out.append((offs_all[near], icpt, slope))
    return out


def _line_fit_py(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b·x`` (intercept, slope) of a few points, in Python
    floats (:func:`vision.stitch_signal.line_fit` for arrays)."""
    n = len(x)
    xm, ym = sum(x) / n, sum(y) / n
    var = sum((v - xm) ** 2 for v in x)
    b = sum((u - xm) * (v - ym) for u, v in zip(x, y, strict=True)) / var if var > 0 else 0.0
    return ym - b * xm, b


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
