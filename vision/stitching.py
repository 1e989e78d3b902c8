"""The perimeter topstitch: where it runs, its stitch length and its gaps, per side.

Each side is resampled into a colour band in mask millimetres (rows: distance from
the fitted edge, columns: position along the side) straight from the rectified
image, so a seam parallel to the edge is a row of the band whatever the residual
rotation. Nothing depends on the thread's colour, only on a thin periodic line.

- **Thin-line response**: how much a pixel is darker *or* lighter than the cloth
  ``reference_mm`` on *both* sides of it (per colour channel, best channel kept). A
  print edge crossing the seam at any angle is darker on one side only and gives
  nothing; a stripe wider than the reference distance gives nothing; the thread,
  lighter or darker than the cloth in any channel, does.
- **Seam row**: where that response is strongest, per 10 mm chunk; a robust straight
  line through the chunks gives the row along the whole side (a seam wanders
  slowly; a chunk that jumps is a print line or a bar tack). The offset is the
  chunks' distance from the fitted edge.
- **Stitch length**: along the seam row, the colour distance to the thread is ~0 on
  each stitch whatever the print beneath and jumps at every needle hole, a signal
  with the stitch period and its harmonics; see
  :func:`vision.stitch_signal.pick_period`. The four sides' spectra are added for
  the mask's stitch length (one pass, one machine setting).
- **Gaps**: stretches of the seam row with no thin line, where a thread would show
  (:func:`vision.stitch_signal.thread_presence`), at least the spec's ``max_gap_mm`` long.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.edges import SIDES, BodyFrame
from vision.rectify import Rectified
from vision.spec import SeamSpec
from vision.stitch_signal import bare_runs, peaks_2d, pick_period, spectrum, thread_presence


@dataclass(frozen=True, slots=True)
class SeamParams:
    """How the seam is searched and measured; lengths in mm on the belt."""

    #: Rows closer to the edge than this are not searched (the edge's own step).
    band_start_mm: float = 0.8
    #: The search reaches this far beyond the spec's largest offset.
    band_extra_mm: float = 4.0
    #: Along the side, skip this much beyond the crossing seams of the next sides.
    end_margin_mm: float = 1.5
    #: Length of the pieces the offset is measured on.
    chunk_mm: float = 10.0
    #: A thread is compared with the cloth this far on either side of it (beyond the
    #: thread, its shadow and the pressed groove).
    reference_mm: float = 0.9
    #: Detrending window along the side for the stitch-period signal.
    highpass_mm: float = 6.0
    #: Rows either side of the seam line analysed for the stitch period (the thread).
    thread_halfwidth_mm: float = 0.2
    #: A seam row must be this many times stronger than the band's median row…
    min_row_snr: float = 3.0
    #: …a chunk's row this many times (weaker chunks are not used for the offset)…
    min_chunk_snr: float = 2.0
    #: …and within this distance of the seam's line (a bar tack, a print line).
    max_row_residual_mm: float = 0.3
    #: Chunks reported for the offset profile: within this distance of the line.
    max_chunk_deviation_mm: float = 1.0
    #: FFT length of the stitch-period spectra (same grid for every side, so they add).
    fft_size: int = 8192
    #: Pitch search range, as multiples of the spec's nominal stitch length.
    pitch_min_ratio: float = 0.4
    pitch_max_ratio: float = 2.4
    #: Spectral lines (the stitch frequency and its multiples) that score a candidate.
    pitch_harmonics: int = 3
    #: Thread presence is averaged over this length along the seam…
    presence_window_mm: float = 0.8
    #: …and below this share of the contrast a thread would give there is none.
    gap_level: float = 0.35
    #: Where the cloth beside the seam is closer to the thread's colour than this
    #: share of the usual contrast, a missing thread could not be seen: no gap there…
    visibility_share: float = 0.4
    #: …unless the thread hardly stands out anyway (white on white: the check is off).
    min_thread_contrast_levels: float = 8.0
    #: A stretch without visible thread is a gap only if this share of it is seen
    #: bare (the rest hidden by print of the thread's colour).
    min_bare_share: float = 0.35
    #: Thread shorter than this between two bare stretches is a loose end, not
    #: stitching (a stitched run has several stitches).
    min_stitched_run_mm: float = 1.5


@dataclass(frozen=True, slots=True)
class SeamSide:
    """The seam along one side, in mask mm (``t`` along the side, ``d`` from the edge)."""

    side: str
    found: bool
    offset_mm: float | None
    #: (t, d) of each chunk whose seam row was found.
    offsets_mm: np.ndarray
    pitch_mm: float | None
    #: Harmonic score of the stitch line (geometric mean of its lines over the median).
    regularity: float
    #: (t0, t1) of every stretch without stitches at least ``max_gap_mm`` long.
    gaps_mm: tuple[tuple[float, float], ...]
    max_gap_mm: float
    t_range_mm: tuple[float, float]
    length_mm: float
    #: Normalised power spectrum of the stitch signal (``SeamParams.fft_size`` grid).
    power: np.ndarray | None = None


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


def extract_band(rect: Rectified, body: BodyFrame, side: str, d0: float, d1: float) -> np.ndarray:
    """The band of ``side`` from ``d0`` to ``d1`` mm inside the edge, full length (BGR)."""
    s = rect.mm_per_px
    nt = int(side_length(body, side) / s) + 1
    nd = int(round((d1 - d0) / s)) + 1
    b = np.vstack([band_to_mask(body.width_mm, body.height_mm, side, 0.0, d0, s), [0, 0, 1]])
    a = np.vstack([body.mask_to_rect_affine(rect), [0, 0, 1]])
    return cv2.warpAffine(
        rect.image, (a @ b)[:2], (nt, nd), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


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


def _px(mm: float, s: float) -> int:
    return max(int(round(mm / s)), 1)


@dataclass(frozen=True, slots=True)
class _Located:
    """Where the seam runs along one side (from the first pass)."""

    band: np.ndarray  # BGR uint8
    line: np.ndarray  # thin-line response, uint8
    d0_mm: float  # distance from the edge of band row 0
    rows: tuple[int, int]  # rows the seam may be on
    offsets: np.ndarray  # (t, d) per chunk
    intercept: float  # seam line d = intercept + slope·t (mm)
    slope: float


def _locate(
    rect: Rectified, body: BodyFrame, side: str, seam: SeamSpec, params: SeamParams
) -> _Located | None:
    """Band, thin-line response and the seam's line along a side; None: no seam."""
    s = rect.mm_per_px
    ref = _px(params.reference_mm, s)
    d0 = params.band_start_mm - ref * s
    band = extract_band(rect, body, side, d0, seam.offset_mm.hi + params.band_extra_mm + ref * s)
    line = thin_line(band, ref)
    length = side_length(body, side)
    nominal = seam.offset_mm.nominal
    j0 = int(np.ceil((nominal + params.end_margin_mm) / s))
    j1 = min(int((length - nominal - params.end_margin_mm) / s), line.shape[1])
    r0, r1 = ref, line.shape[0] - ref
    cw = _px(params.chunk_mm, s)
    nch = (j1 - j0) // cw
    if nch < 2:
        return None
    region = line[r0:r1, j0 : j0 + nch * cw]
    chunks = cv2.resize(region, (nch, r1 - r0), interpolation=cv2.INTER_AREA).astype(np.float32)
    whole = chunks.mean(axis=1, keepdims=True)
    row, snr = peaks_2d(whole)
    if snr[0] < params.min_row_snr:
        return None
    centre = d0 + (r0 + row[0]) * s
    rows, csnr = peaks_2d(chunks)
    t = (j0 + (np.arange(nch) + 0.5) * cw) * s
    d = d0 + (r0 + rows) * s
    offs = np.stack([t, d], axis=1)[csnr >= params.min_chunk_snr]
    slope, icpt = 0.0, float(np.median(offs[:, 1])) if len(offs) >= 3 else centre
    for _ in range(3):
        keep = np.abs(offs[:, 1] - (icpt + slope * offs[:, 0])) <= params.max_row_residual_mm
        if keep.sum() < 3:
            break
        slope, icpt = np.polyfit(offs[keep, 0], offs[keep, 1], 1)
    offs = offs[np.abs(offs[:, 1] - (icpt + slope * offs[:, 0])) <= params.max_chunk_deviation_mm]
    return _Located(band, line, d0, (r0, r1), offs, float(icpt), float(slope))


def _measure(
    loc: _Located,
    side: str,
    length: float,
    s: float,
    seam: SeamSpec,
    params: SeamParams,
    ends_mm: tuple[float, float],
) -> SeamSide:
    """Stitch spectrum and gaps between the neighbouring seams."""
    t0 = ends_mm[0] + params.end_margin_mm
    t1 = ends_mm[1] - params.end_margin_mm
    j0, j1 = max(int(np.ceil(t0 / s)), 0), min(int(t1 / s) + 1, loc.line.shape[1])
    if j1 - j0 < 8:
        return SeamSide(side, False, None, loc.offsets, None, 0.0, ((t0, t1),),
                        max(t1 - t0, 0.0), (t0, t1), length)
    t_px = np.arange(j0, j1)
    rows = (loc.intercept + loc.slope * t_px * s - loc.d0_mm) / s
    r_i = np.clip(np.round(rows).astype(np.intp), loc.rows[0] + 1, loc.rows[1] - 2)
    band = loc.band[:, j0:j1].astype(np.float32)
    take = np.arange(len(t_px))

    # Stitch signal: colour distance to the thread along the thread's rows.
    half = _px(params.thread_halfwidth_mm, s)
    sig = np.zeros(len(t_px), np.float32)
    for k in range(-half, half + 1):
        px = band[r_i + k, take]
        sig += np.sqrt(np.sum((px - np.median(px, axis=0)) ** 2, axis=1))
    sig -= cv2.blur(sig[None, :], (_px(params.highpass_mm, s) | 1, 1))[0]
    power = spectrum(sig, params.fft_size)
    nominal = seam.stitch_length_mm.nominal / s
    period, regularity = pick_period(
        power, params.fft_size, params.pitch_min_ratio * nominal,
        params.pitch_max_ratio * nominal, params.pitch_harmonics,
    )
    pitch = period * s if np.isfinite(period) else None

    # Gaps: no thin line on the seam row where a thread would show.
    core = np.maximum(np.maximum(loc.line[r_i - 1, j0 + take], loc.line[r_i, j0 + take]),
                      loc.line[r_i + 1, j0 + take])
    ref = _px(params.reference_mm, s)
    above = band[np.maximum(r_i - ref, 0), take]
    below = band[np.minimum(r_i + ref, band.shape[0] - 1), take]
    presence, seen = thread_presence(
        core, band[r_i, take], above, below, _px(params.presence_window_mm, s) | 1,
        params.visibility_share, params.min_thread_contrast_levels,
    )
    low = presence < params.gap_level
    bare = low & seen
    gaps: list[tuple[float, float]] = []
    max_gap = 0.0
    for a, c in bare_runs(low | ~seen, _px(params.min_stitched_run_mm, s)):
        if bare[a:c].sum() < params.min_bare_share * (c - a):
            continue
        g0, g1 = (j0 + a) * s, (j0 + c) * s
        max_gap = max(max_gap, g1 - g0)
        if g1 - g0 >= seam.max_gap_mm:
            gaps.append((g0, g1))
    offset = float(np.median(loc.offsets[:, 1])) if len(loc.offsets) else loc.intercept
    return SeamSide(side, True, offset, loc.offsets, pitch, regularity, tuple(gaps), max_gap,
                    (t0, t1), length, power)


_NEIGHBOURS = {
    "top": ("left", "right"),
    "bottom": ("left", "right"),
    "left": ("top", "bottom"),
    "right": ("top", "bottom"),
}


def analyse_seams(
    rect: Rectified, body: BodyFrame, seam: SeamSpec, params: SeamParams
) -> dict[str, SeamSide]:
    """All four sides, each measured between its neighbours' seams."""
    s = rect.mm_per_px
    located = {side: _locate(rect, body, side, seam, params) for side in SIDES}
    nominal = seam.offset_mm.nominal

    def offset(side: str) -> float:
        loc = located[side]
        if loc is None or len(loc.offsets) == 0:
            return nominal
        return float(np.median(loc.offsets[:, 1]))

    out = {}
    for side in SIDES:
        length = side_length(body, side)
        before, after = _NEIGHBOURS[side]
        ends = (offset(before), length - offset(after))
        loc = located[side]
        if loc is None:
            t0, t1 = ends[0] + params.end_margin_mm, ends[1] - params.end_margin_mm
            out[side] = SeamSide(side, False, None, np.zeros((0, 2)), None, 0.0, ((t0, t1),),
                                 t1 - t0, (t0, t1), length)
        else:
            out[side] = _measure(loc, side, length, s, seam, params, ends)
    return out


def mask_pitch(
    sides: dict[str, SeamSide], mm_per_px: float, seam: SeamSpec, params: SeamParams
) -> tuple[float | None, float]:
    """One stitch length for the mask: the sides' spectra added.

    The whole perimeter is sewn in one pass at one machine setting, so the sides
    are four looks at the same period; a short side alone is often too short to
    tell the stitch line from a beat with the pixel grid.
    """
    spectra = [sd.power for sd in sides.values() if sd.found and sd.power is not None]
    if not spectra:
        return None, 0.0
    nominal = seam.stitch_length_mm.nominal / mm_per_px
    period, score = pick_period(
        np.sum(spectra, axis=0), params.fft_size, params.pitch_min_ratio * nominal,
        params.pitch_max_ratio * nominal, params.pitch_harmonics,
    )
    return (period * mm_per_px if np.isfinite(period) else None), score
