"""The perimeter topstitch: where it runs, its stitch length and its gaps, per side.

Each side is resampled into a band in mask millimetres (rows: distance from the
fitted edge, columns: position along the side) straight from the rectified image, so
a seam parallel to the edge is a row of the band whatever the residual rotation.

- **Seam row**: a stitch row is a line of short thread dashes, i.e. texture *along*
  the side at the stitch period. The band is high-passed along the side and its
  energy summed per row: the seam is the row where that energy peaks. Prints parallel
  to the seam (stripes) carry no along-side texture; prints across it add the same
  energy to every row. Done per chunk, it gives the offset along the whole side.
- **Thread signal**: the seam row minus the rows ~1 mm either side keeps the thin
  thread and drops anything broader (print, pleats, shading, the pressed groove).
- **Stitch length**: the period of that signal, from its power spectrum (rows of
  the thread summed incoherently): the strongest line in the search band, or a
  sub-multiple of it if that is a real line too (a dash pattern has strong
  harmonics), interpolated between bins of a zero-padded transform.
- **Gaps**: thread presence along the seam row (a thin line darker or lighter than
  the cloth on both sides, averaged over one stitch); where it stays below a share
  of the side's median for at least the spec's ``max_gap_mm``, stitches are missing.

Nothing here depends on the thread's colour: only on a thin periodic line.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.edges import SIDES, BodyFrame
from vision.rectify import Rectified
from vision.spec import SeamSpec


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
    #: Rows either side of the seam line kept clear of the thin-line reference.
    line_halfwidth_mm: float = 0.6
    #: Rows either side of the seam line analysed for the stitch period (the thread).
    thread_halfwidth_mm: float = 0.2
    #: A seam row must be this many times stronger than the band's median row.
    min_row_snr: float = 3.0
    #: Chunks whose seam row is this weak are not used for the offset…
    min_chunk_snr: float = 2.0
    #: …nor those this far from the side's median offset (a bar tack, a cord).
    max_chunk_deviation_mm: float = 1.0
    #: Chunks further than this from the seam's line are not on the seam.
    max_row_residual_mm: float = 0.3
    #: FFT length of the stitch-period spectra (same grid for every side, so they add).
    fft_size: int = 16384
    #: Pitch search range, as multiples of the spec's nominal stitch length.
    pitch_min_ratio: float = 0.4
    pitch_max_ratio: float = 2.4
    #: Spectral lines (the stitch frequency and its multiples) that score a candidate.
    pitch_harmonics: int = 3
    #: Thread presence is averaged over this length along the seam…
    presence_window_mm: float = 0.8
    #: …and below this share of the side's median there is no thread.
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
    #: Stitch line power over the median of the search band: how clear the stitching is.
    regularity: float
    #: (t0, t1) of every stretch without stitches at least ``max_gap_mm`` long.
    gaps_mm: tuple[tuple[float, float], ...]
    max_gap_mm: float
    t_range_mm: tuple[float, float]
    length_mm: float
    #: Normalised power spectrum of the thread signal (``SeamParams.fft_size`` grid).
    power: np.ndarray | None = None


def side_length(body: BodyFrame, side: str) -> float:
    return body.width_mm if side in ("top", "bottom") else body.height_mm


def band_to_mask(body: BodyFrame, side: str, t0: float, d0: float, step: float) -> np.ndarray:
    """2×3 affine: band pixel (j along, i across) → mask mm (x, y)."""
    w, h = body.width_mm, body.height_mm
    if side == "top":
        return np.array([[step, 0, t0], [0, step, d0]])
    if side == "bottom":
        return np.array([[step, 0, t0], [0, -step, h - d0]])
    if side == "left":
        return np.array([[0, step, d0], [step, 0, t0]])
    return np.array([[0, -step, w - d0], [step, 0, t0]])


def side_point_mask(body: BodyFrame, side: str, t: float, d: float) -> tuple[float, float]:
    """Mask (x, y) of a point ``t`` along and ``d`` inside a side."""
    m = band_to_mask(body, side, 0.0, 0.0, 1.0)
    return float(m[0, 0] * t + m[0, 1] * d + m[0, 2]), float(m[1, 0] * t + m[1, 1] * d + m[1, 2])


def extract_band(
    rect: Rectified, body: BodyFrame, side: str, d0: float, d1: float
) -> np.ndarray:
    """The band of ``side`` from ``d0`` to ``d1`` mm inside the edge, full length.

    Colour (rows, cols, 3) float32: a thread can differ from the cloth in hue only.
    """
    s = rect.mm_per_px
    length = side_length(body, side)
    nt = int(length / s) + 1
    nd = int(round((d1 - d0) / s)) + 1
    b = np.vstack([band_to_mask(body, side, 0.0, d0, s), [0, 0, 1]])
    a = np.vstack([body.mask_to_rect_affine(rect), [0, 0, 1]])
    m = (a @ b)[:2].astype(np.float64)
    band = cv2.warpAffine(
        rect.image, m, (nt, nd), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return band.astype(np.float32)


def _px(mm: float, s: float) -> int:
    return max(int(round(mm / s)), 1)


def _row_peak(energy: np.ndarray) -> tuple[float, float]:
    """Sub-row position of the energy maximum and its ratio to the median."""
    e = np.convolve(energy, np.array([0.25, 0.5, 0.25], np.float32), mode="same")
    k = int(np.argmax(e[1:-1])) + 1
    y0, y1, y2 = e[k - 1], e[k], e[k + 1]
    den = y0 - 2 * y1 + y2
    off = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    snr = float(y1 / max(float(np.median(e)), 1e-6))
    return k + float(np.clip(off, -0.5, 0.5)), snr


def thin_line(band: np.ndarray, ref: int) -> np.ndarray:
    """Thin-line response of every row: how much darker *or* lighter than the cloth
    ``ref`` rows on *both* sides it is (≥ 0; rows within ``ref`` of the border are 0).

    A print edge crossing the seam at any angle is darker on one side only and gives
    nothing; a stripe wider than the reference distance gives nothing; the thread,
    whatever its colour against the cloth, does.
    """
    c = band[ref:-ref]
    a, b = band[: -2 * ref], band[2 * ref :]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    out = np.zeros_like(band)
    out[ref:-ref] = np.maximum(np.maximum(lo - c, c - hi), 0.0)
    return out


def _spectrum(rows: np.ndarray, size: int) -> np.ndarray:
    """Power spectrum of the rows (Hann window, zero-padded to ``size``), summed.

    Summing the rows' powers (not their signals) lets rows whose stitch modulation
    has opposite signs reinforce instead of cancelling.
    """
    n = rows.shape[1]
    z = (rows - rows.mean(axis=1, keepdims=True)) * np.hanning(n)[None, :]
    power = np.sum(np.abs(np.fft.rfft(z, size, axis=1)) ** 2, axis=0)
    return power / max(float(power.sum()), 1e-12)


def _pick_period(
    power: np.ndarray, size: int, lo_px: float, hi_px: float, harmonics: int
) -> tuple[float, float]:
    """Stitch period (px) from a power spectrum, and the harmonic score's prominence.

    Needle holes make the stitch signal pulse-like: a line at the stitch frequency
    *and* at its first multiples. A beat with the pixel grid or a print's period is
    a lone line. Each spectral peak in the search band is therefore scored by the
    geometric mean of the power at its first ``harmonics`` multiples (those below the
    sampling limit); the best-scored peak is the stitch frequency, interpolated
    between bins.
    """
    freq = np.arange(power.size) / size  # cycles per px
    band = (freq >= 1.0 / hi_px) & (freq <= 1.0 / lo_px)
    idx = np.flatnonzero(band)
    if idx.size < 3 or idx[0] < 1 or idx[-1] >= power.size - 1:
        return float("nan"), 0.0
    inner = power[1:-1]
    is_peak = np.zeros(power.size, bool)
    is_peak[1:-1] = (inner > power[:-2]) & (inner >= power[2:])
    cand = idx[is_peak[idx]]
    if cand.size == 0:
        return float("nan"), 0.0
    cand = cand[np.argsort(power[cand])[::-1][:24]]
    floor = max(float(np.median(power[idx])), 1e-12)
    limit = int(0.4 * size)  # harmonics above 0.4 cycles/px are blurred away
    best, best_score = int(cand[0]), -np.inf
    for c in cand:
        logs = []
        for m in range(1, harmonics + 1):
            j = m * int(c)
            if j >= min(limit, power.size - 2):
                break
            w = max(int(round(0.02 * j)), 1)
            logs.append(np.log(max(float(power[j - w : j + w + 1].max()), floor) / floor))
        score = float(np.mean(logs))
        if score > best_score:
            best, best_score = int(c), score
    f0 = (best + _parabola(power, best)) / size
    return 1.0 / f0, float(np.exp(best_score))


def _parabola(y: np.ndarray, k: int) -> float:
    y0, y1, y2 = y[k - 1], y[k], y[k + 1]
    den = y0 - 2 * y1 + y2
    return float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den < 0 else 0.0


def _thread_distance(raw: np.ndarray, rows: np.ndarray, half: int) -> np.ndarray:
    """Colour distance to the thread along the seam row (and the rows just beside).

    The thread covers most of the row, so its colour is the row's median. Along the
    row the distance is ~0 on each stitch whatever the print beneath, and jumps at
    every needle hole where cloth or the hole's shadow shows: a clean stitch-period
    signal, unlike the brightness, which prints modulate at their own period.
    """
    take = np.arange(len(rows))
    out = []
    for k in range(-half, half + 1):
        px = raw[np.clip(rows + k, 0, raw.shape[0] - 1), take]  # (n, 3)
        thread = np.median(px, axis=0)
        out.append(np.sqrt(np.sum((px - thread) ** 2, axis=1)))
    return np.asarray(out, np.float32)


def _visible(
    raw: np.ndarray, rows: np.ndarray, j0: int, ref: int, presence: np.ndarray,
    params: SeamParams,
) -> np.ndarray:
    """Where a missing thread would show: the cloth on *both* sides of the seam
    differs from the thread, in the same direction.

    A thread over a print of its own colour, or along a print edge, cannot be judged,
    stitched or not; such a stretch is not evidence of a gap (only when the thread
    normally stands out from the cloth: white on white disables the check).
    """
    take = np.arange(len(rows))
    core = raw[rows, j0 + take]
    above = raw[np.clip(rows - ref, 0, raw.shape[0] - 1), j0 + take]
    below = raw[np.clip(rows + ref, 0, raw.shape[0] - 1), j0 + take]
    threaded = presence >= 1.0
    if threaded.sum() < 10:
        return np.ones(len(rows), bool)
    thread_level = float(np.median(core[threaded]))
    da, db = above - thread_level, below - thread_level
    usual = float(np.median(0.5 * np.abs(da + db)[threaded]))
    if usual < params.min_thread_contrast_levels:
        return np.ones(len(rows), bool)
    need = params.visibility_share * usual
    return (np.abs(da) >= need) & (np.abs(db) >= need) & (np.sign(da) == np.sign(db))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True."""
    padded = np.concatenate([[False], mask, [False]])
    d = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(d[::2].tolist(), d[1::2].tolist(), strict=True))


def _bare_runs(no_thread: np.ndarray, min_run: int) -> list[tuple[int, int]]:
    """Stretches without thread; thread runs shorter than ``min_run`` between two
    bare stretches (loose ends, a curl of thread) count as bare."""
    bare = no_thread.copy()
    for a, b in _runs(~bare):
        if b - a < min_run and a > 0 and b < len(bare):
            bare[a:b] = True
    return _runs(bare)


@dataclass(frozen=True, slots=True)
class _Band:
    """One side's band and its filtered versions (computed once, measured twice)."""

    side: str
    length_mm: float
    d0_mm: float  # distance from the edge of band row 0
    search: tuple[int, int]  # rows the seam may be on
    raw: np.ndarray  # the band itself
    line: np.ndarray  # thin-line response
    lines: np.ndarray  # thin-line response per colour channel
    ref: int


def _prepare(
    rect: Rectified, body: BodyFrame, side: str, seam: SeamSpec, params: SeamParams
) -> _Band:
    s = rect.mm_per_px
    ref = _px(params.reference_mm, s)
    hw = _px(params.line_halfwidth_mm, s)
    margin = max(ref, hw)
    d0 = params.band_start_mm - margin * s
    d1 = seam.offset_mm.hi + params.band_extra_mm + margin * s
    band = extract_band(rect, body, side, d0, d1)
    lines = thin_line(band, ref)
    line = lines.max(axis=2)
    return _Band(side, side_length(body, side), d0, (margin, band.shape[0] - margin), band,
                 line, lines, ref)


def _measure(
    b: _Band, s: float, seam: SeamSpec, params: SeamParams, ends_mm: tuple[float, float]
) -> SeamSide:
    t0 = ends_mm[0] + params.end_margin_mm
    t1 = ends_mm[1] - params.end_margin_mm
    j0, j1 = max(int(np.ceil(t0 / s)), 0), min(int(np.floor(t1 / s)) + 1, b.raw.shape[1])
    empty = SeamSide(b.side, False, None, np.zeros((0, 2)), None, 0.0, ((t0, t1),),
                     max(t1 - t0, 0.0), (t0, t1), b.length_mm)
    cw = _px(params.chunk_mm, s)
    if j1 - j0 < 2 * cw:
        return empty
    r0, r1 = b.search
    line = b.line[r0:r1, j0:j1]
    row, snr = _row_peak(line.mean(axis=1))
    if snr < params.min_row_snr:
        return empty
    # Offset per chunk; chunks far from the side's seam (a bar tack, a cord lying
    # across) are dropped.
    nch = (j1 - j0) // cw
    chunks = line[:, : nch * cw].reshape(line.shape[0], nch, cw).mean(axis=2)
    offsets = []
    for c in range(nch):
        r, csnr = _row_peak(chunks[:, c])
        if csnr >= params.min_chunk_snr:
            offsets.append(((j0 + (c + 0.5) * cw) * s, b.d0_mm + (r0 + r) * s))
    offs = np.asarray(offsets, np.float64).reshape(-1, 2)
    centre = b.d0_mm + (r0 + row) * s
    if len(offs):
        offs = offs[np.abs(offs[:, 1] - centre) <= params.max_chunk_deviation_mm]

    # The seam row along the side: a robust straight line through the chunks (a
    # seam wanders slowly; a chunk that jumps is a print line or a tack).
    t_px = np.arange(j0, j1)
    rows = np.full(t_px.shape, float(r0 + row))
    if len(offs) >= 3:
        slope, icpt = 0.0, float(np.median(offs[:, 1]))
        for _ in range(3):
            keep = np.abs(offs[:, 1] - (icpt + slope * offs[:, 0])) <= params.max_row_residual_mm
            if keep.sum() < 3:
                break
            slope, icpt = np.polyfit(offs[keep, 0], offs[keep, 1], 1)
        rows = (icpt + slope * t_px * s - b.d0_mm) / s
    hw = _px(params.line_halfwidth_mm, s)
    r_i = np.clip(np.round(rows).astype(np.int64), r0, r1 - 1)
    take = np.arange(len(t_px))

    # Stitch length: rows across the thread, detrended along the seam; each row is
    # analysed on its own and the powers added, because the stitch modulation
    # changes sign across the thread (highlight in the middle, holes at the edges).
    sig = _thread_distance(b.raw[:, j0:j1], r_i, _px(params.thread_halfwidth_mm, s))
    sig = sig - cv2.blur(sig, (_px(params.highpass_mm, s) | 1, 1))
    nominal = seam.stitch_length_mm.nominal
    power = _spectrum(sig, params.fft_size)
    period_px, regularity = _pick_period(
        power, params.fft_size, params.pitch_min_ratio * nominal / s,
        params.pitch_max_ratio * nominal / s, params.pitch_harmonics,
    )
    pitch = period_px * s if np.isfinite(period_px) else None

    # Gaps: no thin line along the seam row.
    core = np.max(np.stack([b.line[r_i + k, j0 + take] for k in (-1, 0, 1)]), axis=0)
    window = _px(params.presence_window_mm, s) | 1
    smooth = cv2.blur(core[None, :].astype(np.float32), (window, 1))[0]
    presence = smooth / max(float(np.median(smooth)), 1e-6)
    visible = np.zeros(len(r_i), bool)
    for ch in range(b.raw.shape[2]):
        visible |= _visible(b.raw[:, :, ch], r_i, j0, b.ref, presence, params)
    bare = (presence < params.gap_level) & visible
    gaps: list[tuple[float, float]] = []
    max_gap = 0.0
    # A gap runs between two pieces of thread that can be seen; stretches where a
    # thread could not be seen (print of its colour) count only if the stretch is
    # mostly seen bare.
    no_thread = (presence < params.gap_level) | ~visible
    for a, c in _bare_runs(no_thread, _px(params.min_stitched_run_mm, s)):
        if bare[a:c].sum() < params.min_bare_share * (c - a):
            continue
        g0, g1 = (j0 + a) * s, (j0 + c) * s
        max_gap = max(max_gap, g1 - g0)
        if g1 - g0 >= seam.max_gap_mm:
            gaps.append((g0, g1))
    offset = float(np.median(offs[:, 1])) if len(offs) else centre
    return SeamSide(b.side, True, offset, offs, pitch, regularity, tuple(gaps), max_gap,
                    (t0, t1), b.length_mm, power)


_NEIGHBOURS = {
    "top": ("left", "right"),
    "bottom": ("left", "right"),
    "left": ("top", "bottom"),
    "right": ("top", "bottom"),
}


def analyse_seams(
    rect: Rectified, body: BodyFrame, seam: SeamSpec, params: SeamParams
) -> dict[str, SeamSide]:
    """All four sides; a second pass trims each side at its neighbours' seams."""
    s = rect.mm_per_px
    bands = {side: _prepare(rect, body, side, seam, params) for side in SIDES}
    nominal = seam.offset_mm.nominal
    first = {
        side: _measure(b, s, seam, params, (nominal, b.length_mm - nominal))
        for side, b in bands.items()
    }
    out = {}
    for side, b in bands.items():
        before, after = _NEIGHBOURS[side]
        lo = first[before].offset_mm if first[before].offset_mm is not None else nominal
        hi = first[after].offset_mm if first[after].offset_mm is not None else nominal
        out[side] = _measure(b, s, seam, params, (lo, b.length_mm - hi))
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
    total = np.sum(spectra, axis=0)
    nominal = seam.stitch_length_mm.nominal / mm_per_px
    period, prominence = _pick_period(
        total, params.fft_size, params.pitch_min_ratio * nominal,
        params.pitch_max_ratio * nominal, params.pitch_harmonics,
    )
    return (period * mm_per_px if np.isfinite(period) else None), prominence
