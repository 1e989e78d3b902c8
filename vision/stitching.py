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
- **Seam row**: where that response, plus how much the row pulses along itself at
  stitch scale (needle holes, the breaks between stitches; more than the rows
  beside it), is strongest, per 10 mm chunk; a robust straight line through the
  chunks gives the row along the whole side (a seam wanders slowly; a chunk that
  jumps is a print line or a bar tack). The pulsing finds a thread of the cloth's
  colour along a print edge, which shows no thin-line relief, and outweighs a
  narrow print line parallel to the side, which does not pulse. The offset is the
  chunks' distance from the fitted edge (:mod:`vision.seam_row`).
- **Stitch length**: along the seam row, the colour distance to the thread is ~0 on
  each stitch whatever the print beneath and jumps at every needle hole, a signal
  with the stitch period and its harmonics; see
  :func:`vision.stitch_signal.pick_period`. The four sides' spectra are added for
  the mask's stitch length (one pass, one machine setting).
- **Gaps**: stretches of the seam row with no thin line, where a thread would show
  (:func:`vision.stitch_signal.thread_presence`), at least the spec's ``max_gap_mm`` long,
  unless the stretch still pulses at the seam's stitch period in step with the
  stitching around it (:class:`vision.stitch_signal.StitchPulses`: a thread of the
  cloth's colour along a print edge shows no relief, but its needle holes do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.edges import SIDES, BodyFrame
from vision.rectify import Rectified
from vision.seam_band import side_length
from vision.seam_measure import Measured, measure_rows
from vision.seam_row import (
    SideLine,
    fallback_line,
    locate_rows,
    perimeter,
)
from vision.spec import SeamSpec
from vision.stitch_signal import PulseParams, pick_period


@dataclass(frozen=True, slots=True)
class SeamParams:
    """How the seam is searched and measured; lengths in mm on the belt."""

    #: Rows closer to the edge than this are not searched (the edge's own step).
    band_start_mm: float = 1.3
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
    #: Weight of the seam row's along-row pulsing (needle holes, :func:`_stitch_energy`)
    #: added to its thin-line response when the row is searched.
    stitch_energy_weight: float = 0.5
    #: A chunk where some row pulses this much (grey levels, :func:`_stitch_energy`)…
    min_pulse_levels: float = 1.5
    #: …offers a second seam-row candidate among the rows within this distance of a
    #: row pulsing at least this share of its strongest (the row search's other
    #: candidate, :func:`vision.seam_row.locate_rows`).
    pulse_reach_mm: float = 0.4
    pulse_share: float = 0.5
    #: …on a side where more than this share of the pulsing chunks' rows are away
    #: from their pulsing (most of them: a motif here and there is not a seam).
    pulse_side_share: float = 0.5
    #: Scales of the along-row band-pass of that pulsing.
    stitch_fine_mm: float = 0.6
    stitch_coarse_mm: float = 1.8
    #: A chunk's seam row must be this many times stronger than its median row…
    min_chunk_snr: float = 2.0
    #: …and the seam is found if this share of the chunks lie on one line.
    min_chunk_share: float = 0.3
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
    #: Two, not three: a short stitch's third line lies beyond the sampling limit
    #: (0.4 cycles/px: under 1.5 mm at 0.2 mm/px) and counted as absent, so a period
    #: 1.5× too long, whose three lines all fall in range (its third on the stitch's
    #: second), outscored it (a 1.31 mm stitch read as 1.98 mm and accepted). With two
    #: lines every stitch of the search range is scored on lines it can show; a beat
    #: or a print period is still a lone line.
    pitch_harmonics: int = 2
    #: A line at one and a half times the chosen stitch frequency with at least this
    #: share of the power of the chosen line (or its double) means the stitch is twice
    #: as long: its fundamental is faint (:func:`vision.stitch_signal.pick_period`).
    #: Seams read half as long show 0.29–0.36 there (seed 919191), correctly read seams
    #: mostly under 0.13, a few flawed ones 0.22–0.9. 0: off.
    pitch_octave_share: float = 0.25
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
    #: Where a seam broke, the loose thread ends lie along the seam line and look like
    #: thread for a while: each may hide up to this much of the stitch-free stretch,
    #: so a visible bare stretch of ``max_gap_mm − 2 × loose_end_mm`` is a gap.
    loose_end_mm: float = 0.5
    #: Thread shorter than this between two bare stretches is a loose end, not
    #: stitching (a stitched run has several stitches).
    min_stitched_run_mm: float = 1.5
    #: A side whose seam row the chunk search could not find (busy print) is measured
    #: along the row of the spec's offset band where the thin-line response is
    #: strongest over the whole side; it counts as measured only if a thread is seen
    #: present along at least this share of it (otherwise: not measurable, rejected).
    min_fallback_thread_share: float = 0.6
    #: A stretch judged bare that still pulses at the stitch period, in step with the
    #: stitching on either side, is stitched (see :class:`StitchPulses`).
    pulses: PulseParams = field(default_factory=PulseParams)


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
    #: The seam row was not found by the chunk search and was taken at the strongest
    #: row of the spec's offset band (``found`` then says whether a thread was seen
    #: along it).
    fallback: bool = False
    #: Share of the side along which a thread was seen present.
    thread_share: float = 0.0
    #: How much of a gap loose thread ends may hide (both ends): a visible bare stretch
    #: of the spec's ``max_gap_mm`` less this is a gap (``SeamParams.loose_end_mm``).
    hidden_ends_mm: float = 0.0


def analyse_seams(
    rect: Rectified, body: BodyFrame, seam: SeamSpec, params: SeamParams
) -> dict[str, SeamSide]:
    """All four sides, each measured between its neighbours' seams.

    The four bands are processed side by side as one array (one thin-line filter,
    one chunk search, one batch of transforms): a few dozen array operations for the
    whole perimeter instead of a few dozen per side.
    """
    s = rect.mm_per_px
    per = perimeter(rect, body, seam, params)
    found, alternative = locate_rows(per, s, seam, params)
    fallback = [False] * len(SIDES)
    for i in range(len(SIDES)):
        if found[i] is None:
            found[i] = fallback_line(per, i, s, seam, params)
            fallback[i] = found[i] is not None
    nominal = seam.offset_mm.nominal
    offset = {
        side: (float(np.median(f[0][:, 1])) if f is not None and len(f[0]) else nominal)
        for side, f in zip(SIDES, found, strict=True)
    }
    # Columns measured on each side: between the neighbours' seams.
    spans = []
    for i, side in enumerate(SIDES):
        a, b = per.start[i], per.stop[i]
        t = per.t_mm[a:b]
        before, after = _NEIGHBOURS[side]
        t0 = offset[before] + params.end_margin_mm
        t1 = t[-1] - offset[after] - params.end_margin_mm
        j0, j1 = a + int(np.searchsorted(t, t0)), a + int(np.searchsorted(t, t1))
        spans.append((t0, t1, j0, j1))
    # Each side's row, then its second candidate (ids past the four sides): one pass.
    n = len(SIDES)
    col_list, row_list, side_list = [], [], []
    for k, line in enumerate([*found, *alternative]):
        _t0, _t1, j0, j1 = spans[k % n]
        if line is None or j1 - j0 < _MIN_SIDE_COLUMNS:
            continue
        cols = np.arange(j0, j1)
        _, icpt, slope = line
        col_list.append(cols)
        row_list.append(per.edge_row[cols] + (icpt + slope * per.t_mm[cols]) / s)
        side_list.append(np.full(len(cols), k))
    results: dict[str, SeamSide] = {}
    both: dict[int, Measured] = {}
    if col_list:
        both = measure_rows(
            per,
            np.concatenate(col_list),
            np.concatenate(row_list),
            np.concatenate(side_list),
            s,
            seam,
            params,
        )
    measured = {i: m for i, m in both.items() if i < n}
    other = {i - n: m for i, m in both.items() if i >= n}
    _choose_rows(found, alternative, fallback, offset, measured, other)
    for i, side in enumerate(SIDES):
        t0, t1, _j0, _j1 = spans[i]
        length = side_length(body, side)
        if i not in measured:
            results[side] = SeamSide(
                side,
                False,
                None,
                np.zeros((0, 2)),
                None,
                0.0,
                ((t0, t1),),
                max(t1 - t0, 0.0),
                (t0, t1),
                length,
            )
            continue
        pitch, score, power, gaps, max_gap, share = measured[i]
        offs, icpt, _ = found[i]  # type: ignore[misc]
        if fallback[i] and share < params.min_fallback_thread_share:
            # No seam row, and no thread along the likeliest one: not measurable.
            results[side] = SeamSide(
                side,
                False,
                None,
                np.zeros((0, 2)),
                None,
                0.0,
                ((t0, t1),),
                max(t1 - t0, 0.0),
                (t0, t1),
                length,
                None,
                True,
                share,
            )
            continue
        results[side] = SeamSide(
            side,
            True,
            offset[side],
            offs,
            pitch,
            score,
            tuple(gaps),
            max_gap,
            (t0, t1),
            length,
            power,
            fallback[i],
            share,
            2 * params.loose_end_mm,
        )
    return results


def _choose_rows(
    found: list[SideLine | None],
    alternative: list[SideLine | None],
    fallback: list[bool],
    offset: dict[str, float],
    measured: dict[int, Measured],
    other: dict[int, Measured],
) -> None:
    """Where the row search offered a second candidate (the row that pulses, see
    :func:`vision.seam_row.locate_rows`), keep the one whose stitch spectrum has the
    stronger harmonic series: the seam's needle holes make one, a stripe or a sliver
    of cloth does not, and neither does a print motif. Updates the lists in place.
    ``other`` holds the candidates' measurements, taken in the same pass as the first
    rows' (rare: where a stripe or a print edge runs along the seam)."""
    for i, m in other.items():
        if i not in measured or m[1] > measured[i][1]:
            found[i], fallback[i], measured[i] = alternative[i], False, m
            offset[SIDES[i]] = float(np.median(alternative[i][0][:, 1]))  # type: ignore[index]


#: Fewer measured columns than this on a side: too short to measure its seam.
_MIN_SIDE_COLUMNS = 8

_NEIGHBOURS = {
    "top": ("left", "right"),
    "bottom": ("left", "right"),
    "left": ("top", "bottom"),
    "right": ("top", "bottom"),
}


def mask_pitch(
    sides: dict[str, SeamSide], mm_per_px: float, seam: SeamSpec, params: SeamParams
) -> tuple[float | None, float]:
    """One stitch length for the mask: the sides' spectra added.

    The whole perimeter is sewn in one pass at one machine setting, so the sides
    are four looks at the same period; a short side alone is often too short to
    tell the stitch line from a beat with the pixel grid.
    """
    measured = [sd for sd in sides.values() if sd.found and sd.power is not None]
    # A fallback row (no seam row found by the chunk search: busy print) is the
    # likeliest row, not a seen seam: its spectrum may be the print's. It is used
    # only when no side's seam row was found.
    direct = [sd for sd in measured if not sd.fallback]
    spectra = [sd.power for sd in (direct or measured)]
    if not spectra:
        return None, 0.0
    nominal = seam.stitch_length_mm.nominal / mm_per_px
    period, score = pick_period(
        np.sum(spectra, axis=0),
        params.fft_size,
        params.pitch_min_ratio * nominal,
        params.pitch_max_ratio * nominal,
        params.pitch_harmonics,
        params.pitch_octave_share,
    )
    return (period * mm_per_px if np.isfinite(period) else None), score
