"""Seam-row search cases of round 5 (tuning seeds 5005, 6006, 8008, 9009), on
constructed bands:

- a light sliver of cloth between the edge and a stripe, closer to the edge than any
  seam is searched, on a side whose edge row drifts along the band (residual
  rotation): the window is measured from each chunk's own edge;
- a print stripe parallel to the side with far more thin-line relief than the
  seam's thread, which has the cloth's colour and shows only by its needle holes: the
  row search offers the pulsing row as a second candidate, and its stitch spectrum
  is the more regular one (what :func:`vision.stitching.analyse_seams` compares).
"""

from __future__ import annotations

import numpy as np

from vision.seam_band import thin_line
from vision.seam_measure import measure_rows
from vision.seam_row import Perimeter, locate_rows, mm_to_px
from vision.spec import PrototypeSpec
from vision.stitching import SeamParams

SPEC = PrototypeSpec()
S = 0.2  # mm per pixel
LENGTH = round(190 / S)
ROWS = round(13.0 / S)


def _perimeter(band: np.ndarray, edge_row: np.ndarray) -> Perimeter:
    """The same band on all four sides."""
    image = np.concatenate([band] * 4, axis=1)
    t = np.arange(LENGTH) * S
    return Perimeter(
        image,
        thin_line(image, mm_to_px(SeamParams().reference_mm, S)),
        np.concatenate([edge_row] * 4),
        np.concatenate([t] * 4),
        tuple(k * LENGTH for k in range(4)),
        tuple((k + 1) * LENGTH for k in range(4)),
    )


def _band(edge_row: np.ndarray, paint: dict[tuple[float, float], int]) -> np.ndarray:
    """Belt above each column's edge row, cloth (200) below, and grey levels painted
    over depth ranges (mm from the edge); a little noise."""
    depth = (np.arange(ROWS)[:, None] - edge_row[None, :]) * S
    img = np.where(depth < 0, 30, 200).astype(np.int16)
    for (d0, d1), level in paint.items():
        img[(depth >= d0) & (depth < d1)] = level
    noisy = img + np.random.default_rng(5).integers(-2, 3, img.shape)
    return np.repeat(np.clip(noisy, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _needle_holes(band: np.ndarray, edge_row: np.ndarray, d_mm: float, level: int) -> None:
    """A row of needle holes every 2.5 mm (0.4 mm long) at ``d_mm`` from the edge."""
    x = np.arange(LENGTH) * S
    holes = np.flatnonzero((x % 2.5) < 0.4)
    rows = np.round(edge_row[holes] + d_mm / S).astype(int)
    for dr in (-1, 0):
        band[rows + dr, holes] = level


def test_sliver_nearer_the_edge_than_the_search_is_not_the_seam() -> None:
    """A bright 0.4 mm sliver 0.6 mm inside the edge (a thin line brighter than the
    belt and the cloth) outshines a faint thread at 5 mm; the edge row drifts by 8 px
    along the side. Searched from the lowest edge row of the perimeter, the chunks
    where the edge lies lower took the sliver (tuning ``s5005/0037``: seam read 0.5 mm
    from the edge)."""
    edge_row = np.linspace(10.0, 18.0, LENGTH)
    band = _band(edge_row, {(0.5, 0.9): 255, (4.9, 5.3): 175})
    _needle_holes(band, edge_row, 5.1, 120)
    main, _ = locate_rows(_perimeter(band, edge_row), S, SPEC.seam, SeamParams())
    assert all(f is not None and abs(f[1] + f[2] * 95.0 - 5.1) < 0.4 for f in main)


def test_pulsing_row_is_offered_and_its_spectrum_wins_over_a_wide_stripe() -> None:
    """A 1.4 mm dark stripe at 9.6 mm (a thin line to the 0.9 mm reference, 140 levels
    deep) and the seam at 5 mm in the cloth's colour, seen only by its needle holes
    (tuning ``s5005/0039``: seam read at 9.7 mm)."""
    edge_row = np.full(LENGTH, 10.0)
    band = _band(edge_row, {(8.9, 10.3): 60})
    _needle_holes(band, edge_row, 5.1, 170)
    per = _perimeter(band, edge_row)
    params = SeamParams()
    main, alternative = locate_rows(per, S, SPEC.seam, params)
    assert all(f is not None and abs(f[1] - 9.6) < 0.5 for f in main)
    assert all(a is not None and abs(a[1] - 5.1) < 0.4 for a in alternative)
    # Along each candidate row of the first side: the needle holes' harmonic series.
    cols = np.arange(round(10 / S), LENGTH - round(10 / S))
    scores = []
    for line in (main[0], alternative[0]):
        assert line is not None
        rows = edge_row[cols] + (line[1] + line[2] * per.t_mm[cols]) / S
        measured = measure_rows(per, cols, rows, np.zeros(len(cols), int), S, SPEC.seam, params)
        scores.append(measured[0][1])
        if line is alternative[0]:
            assert measured[0][0] is not None and abs(measured[0][0] - 2.5) < 0.1
    assert scores[1] > scores[0]
