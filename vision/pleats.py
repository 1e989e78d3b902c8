"""Pleat count from the folds' creases, across the height of the body.

Each pleat is a fold line running the full width of the body. Where the cloth folds
over, the light finds a thin dark crease (and usually a shadow on the layer below):
a *narrow* valley in brightness across the height, in every column. Three
measurements keep the print out of it:

* **Cloth, not ink.** Each row is first replaced by its running maximum over
  ``print_feature_mm`` along the width. A crease darkens the whole row, so it
  survives; ink motifs narrower than that (dots, flowers, the vertical bands of a
  check) are replaced by the cloth beside them, so a fold cutting through a row of
  dots is seen as a crease on the cloth, not as a dark band.
* **Valleys, not steps.** The depth of a row is measured against a *mix* of the
  rows ``valley_mm`` above and below, ``1 − I / (α·I↑ + (1 − α)·I↓)``, with one
  ``α`` for all colour channels chosen to make the deepest channel as shallow as
  possible. A print edge or the edge of a wide horizontal stripe, however blurred,
  is such a mix of its two sides and gives nothing; where both sides have the same
  colour this is the depth against the darker one. A fold lying on a two-colour
  stripe edge (folds cut the print, so this is common) darkens the mix of the two
  print colours by the same share in every channel and is still a valley; measured
  against either side alone it was lost. (Normalising by a local mean instead
  makes a valley at the inner foot of every wide dark band: regularly spaced
  "creases" on every striped print.)
* **Grey, not colour.** A fold's shading darkens every colour channel by the same
  share, unlike a coloured print line, so valleys whose depth differs between
  channels are dropped.

The profile is taken in chunks across the width (the folds are not perfectly
straight) and the chunks are combined by their median, so a motif or a stain that
makes a valley in one chunk does not make a pleat.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.edges import BodyFrame
from vision.rectify import Rectified
from vision.robust import median
from vision.spec import PrototypeSpec


@dataclass(frozen=True, slots=True)
class PleatParams:
    """Where and how folds are looked for; lengths in mm."""

    #: Columns this far from the short sides are skipped (seams, tacks, loops).
    side_margin_mm: float = 12.0
    #: Rows this far beyond the spec's largest seam offset are skipped (the seams).
    seam_margin_mm: float = 3.0
    #: Width of the column chunks whose median makes the profile.
    chunk_mm: float = 16.0
    #: A crease is darker than the cloth this far above and below it.
    valley_mm: float = 0.6
    #: Ink motifs up to this size along the width (dots, flowers, vertical bands)
    #: are replaced by the cloth beside them (running maximum along each row).
    print_feature_mm: float = 8.0
    #: Tolerance on a fold's straightness between chunks.
    straightness_mm: float = 0.6
    #: A fold's shading darkens all colour channels alike; a valley deeper in one
    #: channel than this many times another is print, not a fold. (Loose: the
    #: per-channel running maxima of the cloth make the channels' depths differ
    #: more than the shading alone does.)
    max_channel_ratio: float = 3.0
    #: A crease darkens the cloth by at least this share of its brightness…
    min_depth: float = 0.035
    #: …and stands this many robust sigmas above the profile's noise (the profile
    #: is a median over chunks of averaged rows: its noise is small and measured on
    #: each mask, so this, not ``min_depth``, is what usually decides).
    min_sigmas: float = 4.0
    #: Flank mixes tried for a row's reference (0…1 in this many steps).
    mix_steps: int = 7
    #: Two folds are at least this far apart.
    min_spacing_mm: float = 5.0


@dataclass(frozen=True, slots=True)
class PleatResult:
    count: int
    #: Mask y (mm) of each fold found, and its relative depth.
    folds_mm: tuple[float, ...]
    depths: tuple[float, ...]
    #: The valley profile (for diagnostics): mask y of sample 0 and the step.
    y0_mm: float
    step_mm: float
    profile: np.ndarray


def fold_profile(
    rect: Rectified, body: BodyFrame, spec: PrototypeSpec, params: PleatParams
) -> tuple[np.ndarray, float, float]:
    """Relative valley depth against mask y: median over width chunks, per channel,
    kept only where the channels agree (shading is grey, print is colour)."""
    s = rect.mm_per_px
    margin = spec.seam.offset_mm.hi + params.seam_margin_mm
    y0, y1 = margin, body.height_mm - margin
    x0, x1 = params.side_margin_mm, body.width_mm - params.side_margin_mm
    ys = np.arange(y0, y1, s)
    n_chunks = max(int((x1 - x0) // params.chunk_mm), 1)
    edges_x = np.linspace(x0, x1, n_chunks + 1)
    d = max(round(params.valley_mm / s), 1)
    wobble = max(round(params.straightness_mm / s), 0)
    rows_img, cols_img = rect.shape
    # Chunk centres and the local rows of the profile's samples in each chunk: the
    # chunks are narrow, so the residual rotation only shifts each one.
    xc = 0.5 * (edges_x[:-1] + edges_x[1:])
    grid = np.stack(np.broadcast_arrays(xc[:, None], ys[None, :]), axis=-1)
    v = body.mask_to_local(grid)[..., 1]  # (chunks, n)
    ends = body.mask_to_local(np.array([[edges_x[0], ys[0]], [edges_x[-1], ys[0]]]))
    c0, c1 = round(float(rect.col(ends[0, 0]))), round(float(rect.col(ends[1, 0])))
    r0 = int(np.floor(rect.row(v.min()))) - 2
    r1 = int(np.ceil(rect.row(v.max()))) + 3
    if c0 < 0 or c1 > cols_img or r0 < 0 or r1 > rows_img or c1 - c0 < n_chunks:
        return np.zeros(len(ys), np.float32), y0, s
    cw = (c1 - c0) // n_chunks
    block = rect.image[r0:r1, c0 : c0 + n_chunks * cw]
    kx = round(params.print_feature_mm / s)
    if kx > 1:
        # Cloth brightness: a crease darkens whole rows and survives, ink does not.
        block = cv2.dilate(block, np.ones((1, kx), np.uint8))
    means = cv2.resize(block, (n_chunks, r1 - r0), interpolation=cv2.INTER_AREA)
    means = means.astype(np.float32)  # (rows, chunks, 3)
    # Linear interpolation of every chunk's column at its own rows, all at once.
    rows = np.clip(rect.row(v) - r0, 0, r1 - r0 - 1.001)  # (chunks, n)
    i0 = rows.astype(np.intp)
    f = (rows - i0)[..., None].astype(np.float32)
    k = np.arange(n_chunks)[:, None]
    prof = means[i0, k] * (1 - f) + means[i0 + 1, k] * f  # (chunks, n, channels)
    flat = np.ascontiguousarray(prof.transpose(0, 2, 1)).reshape(-1, len(ys))
    valley = np.zeros_like(flat)
    valley.reshape(n_chunks, 3, len(ys))[:, :, d:-d] = _mix_valley(
        flat.reshape(n_chunks, 3, len(ys)), d, params.mix_steps
    )
    if wobble:
        valley = cv2.dilate(valley, np.ones((1, 2 * wobble + 1), np.uint8))
    k_mid = n_chunks // 2
    per_channel = np.partition(valley.reshape(n_chunks, 3, len(ys)), k_mid, axis=0)[k_mid]
    lo, hi = per_channel.min(axis=0), per_channel.max(axis=0)
    # A fold's shading darkens all channels alike; a coloured print line does not.
    # Print valleys come back negative: they count in the noise, never as a fold.
    grey = hi <= params.max_channel_ratio * np.maximum(lo, 1e-6)
    return np.where(grey, lo, -lo), y0, s


def _mix_valley(prof: np.ndarray, d: int, steps: int) -> np.ndarray:
    """Per-channel valley depth of each row against the flanks ``d`` rows away.

    ``prof`` is (chunks, channels, rows). The reference of a row is a mix of its two
    flanks, ``α·I↑ + (1 − α)·I↓`` with one ``α`` (``steps`` values in 0…1) for all
    channels, chosen so that the deepest channel is as shallow as possible. A
    blurred two-colour edge (stripe, check) *is* such a mix, so it gives nothing; a
    crease darkens that mix by the same share in every channel. Where the flanks
    have the same colour this is the depth against the darker flank (the measure
    without mixing). Returns (chunks, channels, rows − 2d), ≥ 0.
    """
    up, dn, mid = prof[..., : -2 * d], prof[..., 2 * d :], prof[..., d:-d]
    alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None, None, None]
    # depth = max(1 − mid / max(dn + α·(up − dn), 1), 0), in place (one buffer).
    depth = alphas * (up - dn)[None]  # (steps, chunks, channels, rows)
    depth += dn[None]
    np.maximum(depth, 1.0, out=depth)
    np.divide(mid[None], depth, out=depth)
    np.subtract(1.0, depth, out=depth)
    np.maximum(depth, 0.0, out=depth)
    best = np.argmin(depth.max(axis=2), axis=0)  # (chunks, rows)
    return np.take_along_axis(depth, best[None, :, None, :], axis=0)[0]


def count_pleats(
    rect: Rectified, body: BodyFrame, spec: PrototypeSpec, params: PleatParams
) -> PleatResult:
    """Number of fold creases across the body's height."""
    prof, y0, s = fold_profile(rect, body, spec, params)
    if prof.size < 5:
        return PleatResult(0, (), (), y0, s, prof)
    # Valleys of print (channels disagree) come back negative: they count in the
    # noise level but can never be a fold.
    mag = np.abs(prof)
    centre = median(mag)
    noise = 1.4826 * median(np.abs(mag - centre))
    level = max(params.min_depth, centre + params.min_sigmas * noise)
    spacing = max(round(params.min_spacing_mm / s), 1)
    order = np.argsort(prof)[::-1]
    taken: list[int] = []
    for i in order:
        if prof[i] < level:
            break
        if all(abs(int(i) - j) >= spacing for j in taken):
            taken.append(int(i))
    taken.sort()
    return PleatResult(
        len(taken),
        tuple(round(y0 + i * s, 2) for i in taken),
        tuple(round(float(prof[i]), 4) for i in taken),
        y0,
        s,
        prof,
    )
