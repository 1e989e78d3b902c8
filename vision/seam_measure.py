"""Measuring the seam along a known row of each side: stitch length and gaps.

Split out of :mod:`vision.stitching`, which finds the rows (with
:mod:`vision.seam_row`) and decides what each side reports; see there for the
methods. One call measures every side given at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision.edges import SIDES
from vision.seam_band import grouped_median_u8
from vision.seam_row import Perimeter, mm_to_px
from vision.spec import SeamSpec
from vision.stitch_signal import (
    StitchPulses,
    bare_runs,
    pick_period,
    row_spectra,
    thread_presence,
)

if TYPE_CHECKING:
    from vision.stitching import SeamParams


#: What :func:`measure_rows` gives per side: pitch (mm), harmonic score, power
#: spectrum, gaps (t0, t1), longest gap (mm), share of the side with thread seen.
Measured = tuple[float | None, float, np.ndarray, list[tuple[float, float]], float, float]


def measure_rows(
    per: Perimeter,
    cols: np.ndarray,
    rows: np.ndarray,
    side_of: np.ndarray,
    s: float,
    seam: SeamSpec,
    params: SeamParams,
) -> dict[int, Measured]:
    """Stitch length and gaps of every measured column of the perimeter at once.

    ``side_of`` names each column's line: ``i`` for side ``SIDES[i]``, and
    ``i + len(SIDES)`` for a second candidate row of that side, measured in the same
    pass as if in a call of its own (the whole seam's period that gap pulses use is
    taken within each set of lines).
    """
    img, line = per.image, per.line
    r_i = np.clip(np.round(rows).astype(np.intp), 1, img.shape[0] - 2)
    n_lines = int(side_of.max()) + 1 if len(side_of) else len(SIDES)
    # Stitch signal: colour distance to the thread along the thread's rows (each row
    # and side has its own thread colour: the median of that row).
    half = round(params.thread_halfwidth_mm / s)
    ref = mm_to_px(params.reference_mm, s)
    # Rows across the thread, then the cloth rows beside it (same treatment): a print
    # with its own period shows in both, the needle holes only in the first.
    offsets = np.concatenate([np.arange(-half, half + 1), [-ref, ref]])
    px = img[np.clip(r_i[None, :] + offsets[:, None], 0, img.shape[0] - 1), cols[None, :]]
    n_rows = len(offsets)
    # Group id of every sample (side, row, channel), built in int32 (half the traffic).
    rows_ch = np.arange(n_rows, dtype=np.int32)[:, None] * 3 + np.arange(3, dtype=np.int32)
    group = (side_of.astype(np.int32) * (n_rows * 3))[None, :, None] + rows_ch[:, None, :]
    colours = grouped_median_u8(px.ravel(), group.ravel(), n_lines * n_rows * 3)
    colours = colours.reshape(n_lines, n_rows, 3)
    diff = px.astype(np.float32) - colours[side_of].transpose(1, 0, 2)
    b, g, r = diff[..., 0], diff[..., 1], diff[..., 2]
    dist = np.sqrt(b * b + g * g + r * r)  # three plane products: no strided reduction
    sig = dist[: 2 * half + 1].sum(axis=0)
    lum = px[half].astype(np.float32).sum(axis=1)
    lum_beside = px[2 * half + 1].astype(np.float32).sum(axis=1)
    cloth = dist[2 * half + 1 :].sum(axis=0)
    # Gaps: thin line at the seam row against what a thread would give there.
    core = np.maximum(np.maximum(line[r_i - 1, cols], line[r_i, cols]), line[r_i + 1, cols])
    above = img[np.maximum(r_i - ref, 0), cols].astype(np.float32)
    below = img[np.minimum(r_i + ref, img.shape[0] - 1), cols].astype(np.float32)
    thread = colours[:, half]  # (sides, 3): the seam row's own colour

    out = {}
    nominal = seam.stitch_length_mm.nominal / s
    window = mm_to_px(params.presence_window_mm, s) | 1
    hp = mm_to_px(params.highpass_mm, s) | 1
    sides = [int(i) for i in np.unique(side_of)]
    spectra: dict[int, tuple[np.ndarray, float, float]] = {}
    signals = []
    for i in sides:
        sel = side_of == i
        # The thread rows' signal and the cloth's beside it, detrended together.
        pair = np.stack([sig[sel], cloth[sel]]).astype(np.float32)
        pair -= cv2.blur(pair, (hp, 1))
        signals += [pair[0], pair[1]]
    both = row_spectra(signals, params.fft_size)  # all sides in one transform call
    for k, i in enumerate(sides):
        # The print's own spectral lines, seen beside the thread, are taken out.
        power = np.maximum(both[2 * k] - both[2 * k + 1], 0)
        period, score = pick_period(
            power,
            params.fft_size,
            params.pitch_min_ratio * nominal,
            params.pitch_max_ratio * nominal,
            params.pitch_harmonics,
            params.pitch_octave_share,
        )
        spectra[i] = (power, period, score)
    seam_period: dict[int, float] = {}

    def pulses_of(i: int) -> StitchPulses | None:
        """Side ``i``'s needle-hole pulses, measured only when a stretch long enough
        to be a gap needs them (rare: most seams have none)."""
        lines = i // len(SIDES)  # first rows, or second candidates
        if lines not in seam_period:
            # At the whole seam's period (one machine setting; a side alone may lock
            # onto a print's period).
            summed = np.sum([v[0] for k, v in spectra.items() if k // len(SIDES) == lines], axis=0)
            seam_period[lines] = pick_period(
                summed,
                params.fft_size,
                params.pitch_min_ratio * nominal,
                params.pitch_max_ratio * nominal,
                params.pitch_harmonics,
                params.pitch_octave_share,
            )[0]
        sel = side_of == i
        # Luminance along the thread row and beside it (detrended): the needle holes.
        row = lum[sel] - cv2.blur(lum[sel][None, :], (hp, 1))[0]
        beside = lum_beside[sel] - cv2.blur(lum_beside[sel][None, :], (hp, 1))[0]
        return StitchPulses.measure(row, beside, seam_period[lines], params.pulses)

    for i in sides:
        sel = side_of == i
        power, period, score = spectra[i]
        presence, seen = thread_presence(
            core[sel],
            thread[i],
            above[sel],
            below[sel],
            window,
            params.visibility_share,
            params.min_thread_contrast_levels,
        )
        low = presence < params.gap_level
        bare = low & seen
        t = per.t_mm[cols[sel]]
        gaps: list[tuple[float, float]] = []
        max_gap = 0.0
        pulses: list[StitchPulses | None] = []
        for a, c in bare_runs(low | ~seen, mm_to_px(params.min_stitched_run_mm, s)):
            if bare[a:c].sum() < params.min_bare_share * (c - a):
                continue
            g0, g1 = float(t[a]), float(t[min(c, len(t) - 1)])
            if g1 - g0 >= seam.max_gap_mm - 2 * params.loose_end_mm:
                if not pulses:
                    pulses.append(pulses_of(i))
                if pulses[0] is not None and pulses[0].stitched(a, c):
                    continue  # the thread hardly stands out, but its stitches do
                gaps.append((g0, g1))
            max_gap = max(max_gap, g1 - g0)
        pitch = period * s if np.isfinite(period) else None
        share = float(np.count_nonzero(~low & seen)) / max(len(low), 1)
        out[i] = (pitch, score, power, gaps, max_gap, share)
    return out
