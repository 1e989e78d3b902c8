"""The stitch-period check that keeps a faint but stitched stretch from being a gap,
and the mask pitch's choice of sides."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from vision.spec import SeamSpec
from vision.stitch_signal import PulseParams, StitchPulses, stitch_phasor
from vision.stitching import SeamParams, SeamSide, mask_pitch

PERIOD_PX = 12.4
N_PX = 900


def _needle_holes(n: int, period: float, phase_px: float = 0.0) -> np.ndarray:
    """A stitch row's luminance: bright thread, a dark dip at every needle hole."""
    x = np.arange(n, dtype=np.float64)
    d = (x - phase_px) % period
    d = np.minimum(d, period - d)
    return 100.0 - 40.0 * np.exp(-0.5 * (d / 1.0) ** 2)


def _noise(n: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sigma, n)


def test_phasor_is_strong_and_steady_on_stitches_weak_in_a_gap() -> None:
    row = _needle_holes(N_PX, PERIOD_PX) + _noise(N_PX, 1)
    row[400:500] = 100.0 + _noise(100, 2)  # no needle holes
    amp, phase = stitch_phasor(row, PERIOD_PX, round(2 * PERIOD_PX))
    sewn = slice(100, 300)
    assert np.median(amp[sewn]) > 5 * np.median(amp[430:470])
    spread = np.abs(np.angle(np.exp(1j * (phase[sewn] - phase[200]))))
    assert spread.max() < np.pi / 8


def _pulses(row: np.ndarray, cloth: np.ndarray) -> StitchPulses:
    p = StitchPulses.measure(row, cloth, PERIOD_PX, PulseParams())
    assert p is not None
    return p


def test_a_faint_but_stitched_stretch_is_not_a_gap() -> None:
    """Needle holes in step with the stitching on both sides: stitched."""
    row = _needle_holes(N_PX, PERIOD_PX) + _noise(N_PX, 3)
    cloth = 100.0 + _noise(N_PX, 4)
    assert _pulses(row, cloth).stitched(400, 440)


def test_a_gap_is_a_gap() -> None:
    row = _needle_holes(N_PX, PERIOD_PX) + _noise(N_PX, 5)
    row[380:470] = 100.0 + _noise(90, 6)
    cloth = 100.0 + _noise(N_PX, 7)
    assert not _pulses(row, cloth).stitched(392, 458)


def test_a_print_at_the_stitch_period_out_of_step_is_not_stitching() -> None:
    """Something periodic in the gap (a print, a loose thread), not in step with the
    stitches on either side, does not make the gap stitched."""
    row = _needle_holes(N_PX, PERIOD_PX) + _noise(N_PX, 8)
    row[380:470] = _needle_holes(90, PERIOD_PX, phase_px=PERIOD_PX / 2) + _noise(90, 9)
    cloth = 100.0 + _noise(N_PX, 10)
    assert not _pulses(row, cloth).stitched(392, 458)


def test_a_print_seen_beside_the_seam_too_is_not_stitching() -> None:
    """The same pulses on the cloth rows beside the seam are the print's."""
    row = _needle_holes(N_PX, PERIOD_PX) + _noise(N_PX, 11)
    cloth = 100.0 + _noise(N_PX, 12)
    cloth[380:470] = row[380:470]
    assert not _pulses(row, cloth).stitched(392, 458)


def _side(name: str, period_px: float, fallback: bool, fft: int) -> SeamSide:
    power = np.zeros(fft // 2 + 1)
    for k in (1, 2, 3):
        power[round(k * fft / period_px)] = 1.0
    return SeamSide(
        name, True, 5.0, np.zeros((0, 2)), None, 1.0, (), 0.0, (0.0, 1.0), 1.0,
        power / power.sum(), fallback, 1.0,
    )  # fmt: skip


def test_mask_pitch_leaves_out_fallback_rows_when_a_seam_row_was_found() -> None:
    params = SeamParams()
    fft = params.fft_size
    seam = SeamSpec()
    mm_per_px = 0.2
    sides = {
        "top": _side("top", 12.5, False, fft),
        "left": _side("left", 20.0, True, fft),  # a print's period on a fallback row
        "right": _side("right", 20.0, True, fft),
    }
    pitch, _ = mask_pitch(sides, mm_per_px, seam, params)
    assert pitch is not None and abs(pitch - 12.5 * mm_per_px) < 0.05
    only_fallback = {k: v for k, v in sides.items() if v.fallback}
    pitch, _ = mask_pitch(only_fallback, mm_per_px, seam, params)
    assert pitch is not None and abs(pitch - 20.0 * mm_per_px) < 0.1


def test_a_gap_defect_says_the_limit_it_was_held_to() -> None:
    """A 5.0 mm bare stretch is a gap because loose ends may hide 1 mm more of it: the
    defect says so, instead of "5.0 against < 6" on a rejected mask."""
    from vision.decide import DecideParams, seam_defects
    from vision.spec import PrototypeSpec

    spec = PrototypeSpec()
    hidden = 2 * SeamParams().loose_end_mm
    side = SeamSide(
        "bottom", True, 5.0, np.zeros((0, 2)), 2.5, 1.0, ((40.0, 45.0),), 5.0, (5.0, 195.0),
        200.0, None, False, 1.0, hidden,
    )  # fmt: skip
    (gap,) = seam_defects({"bottom": side}, None, 200.0, 95.0, spec, DecideParams())
    assert gap.code == "seam_gap" and gap.value == 5.0
    max_gap = spec.seam.max_gap_mm
    assert gap.limit == f"< {max_gap - hidden:g} vus, < {max_gap:g} sans point"
    assert f"jusqu'à {5.0 + hidden:.1f} mm" in gap.message
    bare = replace(side, hidden_ends_mm=0.0)
    (plain,) = seam_defects({"bottom": bare}, None, 200.0, 95.0, spec, DecideParams())
    assert plain.limit == f"< {max_gap:g}"
