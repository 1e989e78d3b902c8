"""One-dimensional signal helpers of the stitching check (pure NumPy, no images).

Kept apart from :mod:`vision.stitching` (which cuts the bands out of the rectified
image and decides where the seam runs) so that each can be read, and tested, alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


def parabola(y: np.ndarray, k: int) -> float:
    """Sub-sample offset (−0.5…0.5) of the maximum at ``k`` from a parabola through
    its neighbours; 0 when ``k`` is not a strict maximum."""
    y0, y1, y2 = float(y[k - 1]), float(y[k]), float(y[k + 1])
    den = y0 - 2 * y1 + y2
    return float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den < 0 else 0.0


def _median_rows(a: np.ndarray) -> np.ndarray:
    """Median of each column (a partition: much cheaper than ``np.median``)."""
    k = a.shape[0] // 2
    return np.partition(a, k, axis=0)[k]


def peaks_2d(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-row position of each column's maximum and its ratio to the column median.

    ``profiles`` is (rows, columns); a [¼ ½ ¼] smoothing along the rows first.
    """
    e = np.asarray(profiles, np.float32)
    sm = np.empty_like(e)
    sm[0], sm[-1] = e[0], e[-1]
    mid = sm[1:-1]
    np.add(e[:-2], e[2:], out=mid)
    mid *= 0.5
    mid += e[1:-1]
    mid *= 0.5
    k = np.argmax(sm[1:-1], axis=0) + 1
    cols = np.arange(sm.shape[1])
    y0, y1, y2 = sm[k - 1, cols], sm[k, cols], sm[k + 1, cols]
    den = y0 - 2 * y1 + y2
    off = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    snr = y1 / np.maximum(_median_rows(sm), 1e-6)
    return k + np.clip(off, -0.5, 0.5), snr


def median_u8(values: np.ndarray) -> float:
    """Median of uint8 values by counting (much cheaper than a partition)."""
    counts = np.bincount(values.ravel(), minlength=256)
    return float(np.searchsorted(np.cumsum(counts), (values.size + 1) / 2))


def line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b·x`` (intercept, slope), without ``polyfit``'s overhead."""
    xm, ym = float(x.mean()), float(y.mean())
    dx = x - xm
    var = float(np.dot(dx, dx))
    b = float(np.dot(dx, y - ym)) / var if var > 0 else 0.0
    return ym - b * xm, b


def spectrum(signal: np.ndarray, size: int) -> np.ndarray:
    """Normalised power spectrum (Hann window, zero-padded to ``size``) of a signal,
    or of each row of a 2-D array of signals (one transform call for all)."""
    n = signal.shape[-1]
    # Single precision: a spectrum is only compared with spectra, and a float32
    # transform takes two thirds of the time.
    z = (signal - signal.mean(axis=-1, keepdims=True)).astype(np.float32)
    z *= np.hanning(n).astype(np.float32)
    f = np.fft.rfft(z, size, axis=-1)
    power = f.real * f.real + f.imag * f.imag
    return power / np.maximum(power.sum(axis=-1, keepdims=True), 1e-12)


def row_spectra(signals: list[np.ndarray], size: int) -> np.ndarray:
    """:func:`spectrum` of signals of different lengths, as rows of one array: every
    signal windowed at its own length, all transformed in one call (the perimeter's
    eight stitch signals cost one call's overhead instead of four)."""
    buf = np.zeros((len(signals), size), np.float32)
    for row, sig in zip(buf, signals, strict=True):
        n = min(sig.shape[-1], size)
        z = (sig[:n] - sig[:n].mean()).astype(np.float32)
        z *= np.hanning(n).astype(np.float32)
        row[:n] = z
    f = np.fft.rfft(buf, axis=-1)
    power = f.real * f.real + f.imag * f.imag
    return power / np.maximum(power.sum(axis=-1, keepdims=True), 1e-12)


def pick_period(
    power: np.ndarray,
    size: int,
    lo_px: float,
    hi_px: float,
    harmonics: int,
    octave_share: float = 0.0,
) -> tuple[float, float]:
    """Stitch period (px) from a power spectrum, and its harmonic score.

    Needle holes make the stitch signal pulse-like: a line at the stitch frequency
    *and* at its first multiples. A beat with the pixel grid or a print's period is
    a lone line. Each spectral peak in the search band is therefore scored by the
    geometric mean of the power at its first ``harmonics`` multiples (those below the
    sampling limit); the best-scored peak is the stitch frequency, interpolated
    between bins.

    Octave check (``octave_share`` > 0): a stitch whose fundamental is faint (light
    thread on light cloth, where the cloth beside the seam pulses at the stitch
    period too and is subtracted) shows its second and third multiples. Its second
    then scores best and the stitch reads half its length. A signal that repeats
    every ``p`` px has no power at ``1.5/p``, so that line decides between the two
    (:func:`_octave`).
    """
    # Bins k of the search band, frequency k / size cycles per px in 1/hi … 1/lo.
    k0 = max(int(np.ceil(size / hi_px)), 0) if hi_px > 0 else 0
    k1 = min(int(np.floor(size / lo_px)), power.size - 1) if lo_px > 0 else power.size - 1
    idx = np.arange(k0, k1 + 1)
    if idx.size < 3 or idx[0] < 1 or idx[-1] >= power.size - 1:
        return float("nan"), 0.0
    seg = power[idx[0] - 1 : idx[-1] + 2]
    is_peak = (seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])
    cand = idx[is_peak]
    if cand.size == 0:
        return float("nan"), 0.0
    cand = cand[np.argsort(power[cand])[::-1][:24]]
    floor = max(float(np.partition(power[idx], idx.size // 2)[idx.size // 2]), 1e-12)
    limit = min(int(0.4 * size), power.size - 4)  # beyond 0.4 cycles/px: blurred away
    # Power around each bin (±3 bins: the zero-padded line's width and the harmonic's
    # placement error), then every candidate's first multiples at once.
    wide = cv2.dilate(power.astype(np.float32)[None, :], np.ones((1, 7), np.uint8))[0]
    mult = cand[:, None] * np.arange(1, harmonics + 1)[None, :]
    inside = mult < limit
    logs = np.log(np.maximum(wide[np.minimum(mult, limit)], floor) / floor)
    # Multiples beyond the sampling limit count as absent (the floor), so a candidate
    # is never favoured for having fewer lines to show.
    scores = (logs * inside).sum(axis=1) / harmonics
    best = int(cand[int(np.argmax(scores))])
    best_score = float(scores.max())
    f0 = (best + parabola(power, best)) / size
    if octave_share > 0:
        f0 *= _octave(wide, best, k0, limit, octave_share)
    return 1.0 / f0, float(np.exp(best_score))


def _octave(wide: np.ndarray, best: int, k0: int, limit: int, share: float) -> float:
    """0.5 when the stitch is twice the chosen period (the octave check), else 1.

    The pair in question is a long stitch (frequency ``l``) and one half as long
    (``best = 2 l``). Only the long one can have power at ``l`` and ``3 l``, its
    fundamental and its third line. The long one is right when its third line holds
    ``share`` of the stronger of the two chosen lines (a faint chosen line must not
    make noise count) and its fundamental is fainter than that third line (the
    premise: a faint fundamental). Strong lines at both ``l`` and ``3 l`` mean
    something else repeating every long period (a fold, a print, the renderer's
    beats: up to 1.3 and 0.9 of the stitch line on correctly read seams).

    The converse error (a short stitch read twice as long because its own second
    line is lost to the blur, seed 929292 ``0166``) was tried the same way (the
    chosen line under 0.15 of its double, no third line) and not kept: five good
    seams of the tuning sets have that shape and read half as long.
    """
    half, three_halves = round(best / 2), round(1.5 * best)
    if half >= k0 and three_halves < limit:
        strongest = max(wide[best], wide[2 * best] if 2 * best < limit else 0.0)
        third = wide[three_halves]
        if third >= share * strongest and wide[half] <= third:
            return 0.5
    return 1.0


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True."""
    padded = np.concatenate([[False], mask, [False]])
    d = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(d[::2].tolist(), d[1::2].tolist(), strict=True))


def bare_runs(no_thread: np.ndarray, min_run: int) -> list[tuple[int, int]]:
    """Stretches without thread; thread runs shorter than ``min_run`` between two
    bare stretches (a loose end, a curl of thread) count as bare."""
    bare = no_thread.copy()
    for a, b in runs(~bare):
        if b - a < min_run and a > 0 and b < len(bare):
            bare[a:b] = True
    return runs(bare)


def thread_presence(
    line: np.ndarray,
    thread: np.ndarray,
    above: np.ndarray,
    below: np.ndarray,
    window: int,
    share: float,
    min_contrast: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Thread presence along the seam row (0 none … 1 full) and where it can be judged.

    ``line`` is the thin-line response per column; ``thread`` the thread's colour
    (the seam row's median: stitches cover most of it); ``above``/``below`` are
    (columns, channels): the cloth on both sides of the seam. At each column the
    response a thread *would* give is the contrast between its colour and the cloth
    on both sides (same direction, best channel); presence is the observed response
    over that, so a thread over a dark print counts as fully there even though it
    stands out less than over plain cloth. Where the cloth on both sides is within
    ``share`` of the usual contrast of the thread's colour (a print of the thread's
    colour, a print edge) a missing thread could not be seen: not judged. If the
    thread hardly stands out anywhere (white on white), every column is judged.
    """
    da, db = above - thread, below - thread
    both = np.where(np.sign(da) == np.sign(db), np.minimum(np.abs(da), np.abs(db)), 0.0)
    expected = both.max(axis=1).astype(np.float32)
    usual = float(np.partition(expected, expected.size // 2)[expected.size // 2])
    k = np.ones((1, window), np.float32) / window
    obs = cv2.filter2D(line.astype(np.float32)[None, :], -1, k, borderType=cv2.BORDER_REPLICATE)[0]
    exp = cv2.filter2D(expected[None, :], -1, k, borderType=cv2.BORDER_REPLICATE)[0]
    typical = max(float(np.partition(obs, obs.size // 2)[obs.size // 2]), 1e-6)
    if usual < min_contrast:
        return np.clip(obs / typical, 0.0, 1.0), np.ones(len(line), bool)
    # A thread shows at least as much as it usually does (its relief and shadow, not
    # only its colour), and more where its colour stands out from the cloth.
    ratio = np.clip(obs / np.maximum(exp, typical), 0.0, 1.0)
    return ratio, exp >= share * usual


def stitch_phasor(
    signal: np.ndarray, period_px: float, window_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """Local amplitude and phase of ``signal`` at the stitch frequency (a sliding
    matched filter).

    Along a sewn stretch the stitch signal pulses at every needle hole, so its
    component at ``1 / period_px`` is strong and its phase (against the column index)
    stays put; along a stretch without stitches it is the cloth's noise. The signal
    is demodulated at the stitch frequency and averaged over ``window_px`` (Hann
    weights: two periods see the pulses and are short enough to see a gap's middle).
    """
    n = np.arange(len(signal), dtype=np.float64)
    phase = 2.0 * np.pi * n / period_px
    s = signal.astype(np.float64) - float(np.mean(signal))
    w = np.hanning(max(window_px, 3) + 2)[1:-1]
    w = (w / w.sum()).astype(np.float32)[None, :]
    re = cv2.filter2D((s * np.cos(phase)).astype(np.float32)[None, :], -1, w)[0]
    im = cv2.filter2D((s * np.sin(phase)).astype(np.float32)[None, :], -1, w)[0]
    return 2.0 * np.hypot(re, im), np.arctan2(im, re)


@dataclass(frozen=True, slots=True)
class PulseParams:
    """When a stretch pulses like stitching (:class:`StitchPulses`)."""

    #: Amplitude at the stitch period, at least this share of the side's median…
    amplitude_share: float = 0.5
    #: …and this many times the amplitude of the cloth rows beside the seam at the
    #: same period (a print with the stitch's period is not stitching)…
    over_cloth: float = 2.0
    #: …in step with the stitches on either side (phase at the stitch period)…
    max_phase_rad: float = np.pi / 4
    #: …along this share of the stretch (its middle: the window leaks its ends).
    share: float = 0.9
    #: Window of the amplitude, in stitch periods.
    window_periods: float = 2.0


@dataclass(frozen=True, slots=True)
class StitchPulses:
    """The seam row's pulses at the stitch period, to tell a bare-looking stretch that
    is still stitched from a gap.

    A thread of nearly the cloth's colour (along a print edge, on a print of its
    colour) gives little thin-line response, but its needle holes still pulse at the
    stitch period, *in step* with the stitches on either side (the machine advances
    the cloth evenly). In a gap there are no needle holes; loose thread ends and print
    motifs may vary at any period, but not in step with the stitching.
    """

    amplitude: np.ndarray
    phase: np.ndarray
    cloth: np.ndarray
    typical: float
    window: int
    params: PulseParams = field(default_factory=PulseParams)

    @classmethod
    def measure(
        cls, row: np.ndarray, cloth: np.ndarray, period: float, params: PulseParams
    ) -> StitchPulses | None:
        """``row``/``cloth``: detrended luminance along the seam row and beside it.
        None when the period is unknown or the side too short to judge."""
        if not np.isfinite(period) or len(row) < 4 * period:
            return None
        window = max(round(params.window_periods * period), 3)
        amp, phase = stitch_phasor(row, period, window)
        cloth_amp, _ = stitch_phasor(cloth, period, window)
        return cls(amp, phase, cloth_amp, float(np.median(amp)), window, params)

    def stitched(self, a: int, c: int) -> bool:
        """Whether columns ``a:c`` pulse like the stitching on either side of them."""
        p = self.params
        edge = min(self.window // 2, (c - a) // 3)  # the window leaks the ends' stitches
        inner = slice(a + edge, c - edge)
        n = len(self.amplitude)
        # The stitching's phase, seen clear of the stretch (beyond loose thread ends
        # and the window's own reach).
        ref = np.r_[
            max(a - 3 * self.window, 0) : max(a - self.window, 0),
            min(c + self.window, n) : min(c + 3 * self.window, n),
        ]
        ref = ref[self.amplitude[ref] >= p.amplitude_share * self.typical]
        if ref.size < self.window // 2:
            return False
        ref_phase = np.angle(np.exp(1j * self.phase[ref]).mean())
        amp = self.amplitude[inner]
        in_step = np.abs(np.angle(np.exp(1j * (self.phase[inner] - ref_phase)))) <= p.max_phase_rad
        pulsing = (
            (amp >= p.amplitude_share * self.typical)
            & (amp >= p.over_cloth * self.cloth[inner])
            & in_step
        )
        return bool(pulsing.size) and float(pulsing.mean()) >= p.share
