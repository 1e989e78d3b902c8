"""The mask body's cloth: outline, weave, print, pleats and stains, in mask millimetres.

Everything here is computed on a :class:`~vision.synth.grid.Grid` over mask
coordinates (x along the width from the body's left edge, y along the height from
its top edge). Separable patterns (weave, stripes, pleat profile) are built from
1-D arrays and combined by broadcasting, which keeps a 200 × 95 mm body at 0.1 mm
per texture pixel well under a tenth of a second.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.synth.grid import DRAW_SHIFT, Grid, smooth_noise, smoothstep, to_float_layer
from vision.synth.params import MaskParams

#: Fabric hidden inside each fold: shifts the print between pleat bands.
PLEAT_DEPTH_MM = 10.0
#: Radius of the body's corners (cut and sewn cloth is never a sharp rectangle).
CORNER_RADIUS_MM = 1.5
#: Largest inward step of a short side between two pleat bands.
EDGE_STEP_MM = 0.4


def pleat_folds_mm(height_mm: float, pleats: int, rng: np.random.Generator) -> np.ndarray:
    """y of each fold line, spread over the middle of the body like a pressed mask."""
    if pleats <= 0:
        return np.zeros(0, np.float64)
    if pleats == 1:
        base = np.array([0.5])
    else:
        span = min(0.2 + 0.12 * pleats, 0.7)
        base = 0.5 - span / 2 + span * np.arange(pleats) / (pleats - 1)
    jitter = rng.uniform(-1.0, 1.0, pleats)
    return np.sort(base * height_mm + jitter)


def body_sdf(
    grid: Grid,
    width_mm: float,
    height_mm: float,
    folds_mm: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Signed distance to the body outline, mm: negative inside, positive outside.

    With folds and a generator, the short sides step inwards by up to
    :data:`EDGE_STEP_MM` between pleat bands (folded layers never line up exactly).
    Steps only go inwards and at least one band on each side reaches the full
    width, so the body's outer extent is exactly ``width_mm`` × ``height_mm``.
    """
    r = CORNER_RADIUS_MM
    ys = grid.ys()
    left = np.zeros(grid.rows, np.float32)
    right = np.full(grid.rows, width_mm, np.float32)
    if folds_mm is not None and folds_mm.size and rng is not None:
        band = np.searchsorted(folds_mm, ys)
        for edge, sign in ((left, 1.0), (right, -1.0)):
            steps = rng.uniform(0.0, EDGE_STEP_MM, folds_mm.size + 1)
            steps -= steps.min()
            smooth = cv2.GaussianBlur(
                steps[band].astype(np.float32)[:, None], (1, 0), 1.0, sigmaY=grid.px(0.25)
            ).ravel()
            edge += sign * smooth
    cx = (left + right) / 2
    half = (right - left) / 2
    qx = np.abs(grid.xs()[None, :] - cx[:, None]) - (half[:, None] - r)
    qy = (np.abs(ys - height_mm / 2) - (height_mm / 2 - r))[:, None]
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return (outside + inside - r).astype(np.float32)


def coverage_from_sdf(sdf_mm: np.ndarray, soft_mm: float = 0.12) -> np.ndarray:
    """Anti-aliased coverage: 0.5 exactly on the outline, so thresholds keep the size."""
    return np.clip(0.5 - sdf_mm / soft_mm, 0.0, 1.0).astype(np.float32)


def pleat_shading(grid: Grid, folds_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative light of the pleated surface (rows, cols), 1.0 = flat cloth.

    Each fold shows a highlight on the rounded edge above it, a thin dark crease on
    the edge itself and a shadow band cast onto the layer below, which fades over a
    few millimetres. The layers between folds sit at slightly different angles, so
    each band gets its own brightness. A gentle wave across the width keeps the folds
    from looking ruled.
    """
    ys = grid.ys().astype(np.float64)
    prof = np.zeros_like(ys)
    for y_k in folds_mm:
        d = ys - y_k
        hl = rng.uniform(0.06, 0.12)
        crease = rng.uniform(0.25, 0.4)
        shadow = rng.uniform(0.15, 0.28)
        tau = rng.uniform(1.2, 2.4)
        prof += hl * np.exp(-(((d + 0.9) / 0.8) ** 2))
        prof -= crease * np.exp(-(((d - 0.05) / 0.16) ** 2))
        below = np.clip(d / 0.25, 0.0, 1.0)
        prof -= shadow * below * np.exp(-np.maximum(d, 0.0) / tau)
    # Each layer between folds has its own tilt: a level and a slope per band.
    edges = np.concatenate([[ys[0]], folds_mm, [ys[-1]]])
    idx = np.searchsorted(folds_mm, ys)
    levels = rng.uniform(0.965, 1.035, folds_mm.size + 1)
    slopes = rng.uniform(-0.03, 0.03, folds_mm.size + 1)
    start, stop = edges[idx], edges[idx + 1]
    frac = (ys - start) / np.maximum(stop - start, 1e-6) - 0.5
    band = levels[idx] * (1.0 + slopes[idx] * frac)
    band = cv2.GaussianBlur(band[:, None], (1, 0), sigmaX=1.0, sigmaY=grid.px(0.3)).ravel()
    column = ((1.0 + prof) * band).astype(np.float32)
    if folds_mm.size == 0:
        return np.broadcast_to(column[:, None], grid.shape).copy()
    wave = smooth_noise((1, grid.cols), grid.px(40.0), rng)[0] * grid.px(0.25)
    slope = (grid.xs() - grid.xs().mean()) * rng.uniform(-0.004, 0.004) / grid.mm_per_px
    shift = (wave + slope).astype(np.float32)
    map_y = np.arange(grid.rows, dtype=np.float32)[:, None] - shift[None, :]
    map_x = np.zeros_like(map_y)
    return cv2.remap(
        column[:, None], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def print_coverage(
    grid: Grid, params: MaskParams, folds_mm: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """Where the print colour is (rows, cols) 0–1, or None for plain cloth.

    The print is laid out in *unfolded* fabric coordinates: every fold hides
    :data:`PLEAT_DEPTH_MM` of cloth, so stripes and checks jump at each pleat just as
    they do on a sewn mask.
    """
    kind = params.print_kind
    if kind == "plain":
        return None
    period = max(params.print_scale_mm, 1.0)
    xs = grid.xs()
    ys = grid.ys() + PLEAT_DEPTH_MM * np.searchsorted(folds_mm, grid.ys()).astype(np.float32)
    soft = min(0.35, period * 0.05)
    if kind == "stripes":
        chosen = params.print_angle_deg
        angle = np.deg2rad(rng.choice([0.0, 90.0, 45.0, -45.0]) if chosen is None else chosen)
        duty = rng.uniform(0.25, 0.5) if params.print_duty is None else params.print_duty
        # float32 factors: a float64 scalar would promote the whole layer to float64.
        u = np.add.outer(ys * np.float32(np.sin(angle)), xs * np.float32(np.cos(angle)))
        u -= np.float32(params.print_phase_mm)
        u *= np.float32(1.0 / period)
        return _band(u, duty, soft / period)
    if kind == "check":
        duty = rng.uniform(0.35, 0.5)
        bx = _band(xs / period, duty, soft / period)
        by = _band(ys / period, duty, soft / period)
        return (0.5 * np.add.outer(by, bx)).astype(np.float32)
    if kind == "dots":
        radius = period * rng.uniform(0.15, 0.3)
        stagger = 0.5 if rng.random() < 0.5 else 0.0
        offset = np.where(np.floor(ys / period) % 2 == 0, 0.0, stagger).astype(np.float32)
        fx = (np.add.outer(offset, xs / period) % 1.0) - 0.5
        fy = (ys / period) % 1.0 - 0.5
        d = np.sqrt(fx**2 + (fy**2)[:, None]) * period
        return smoothstep(radius + soft, radius - soft, d)
    return _flowers(grid, ys, period, rng)


def _flowers(
    grid: Grid, ys_unfolded: np.ndarray, period: float, rng: np.random.Generator
) -> np.ndarray:
    """Small five-petal flowers scattered on a jittered lattice (a typical cotton print).

    Drawn once on the unfolded cloth, then rows are picked through the folds.
    """
    s = grid.mm_per_px
    y0 = float(ys_unfolded.min())
    rows = int(np.ceil((float(ys_unfolded.max()) - y0) / s)) + 2
    unfolded = Grid(grid.x0_mm, y0, s, grid.cols, rows)
    canvas = np.zeros(unfolded.shape, np.uint8)
    x_span = grid.cols * s
    y_span = rows * s
    for cy in np.arange(-period / 2, y_span + period, period):
        for cx in np.arange(-period / 2, x_span + period, period):
            c = np.array([grid.x0_mm + cx, y0 + cy]) + rng.uniform(-0.3, 0.3, 2) * period
            r = period * 0.22 * rng.uniform(0.75, 1.2)
            turn = rng.uniform(0, 2 * np.pi)
            for k in range(5):
                a = turn + 2 * np.pi * k / 5
                p = unfolded.to_draw(c + 0.55 * r * np.array([np.cos(a), np.sin(a)]))
                rad = max(round(unfolded.px(0.45 * r) * (1 << DRAW_SHIFT)), 1)
                cv2.circle(canvas, (int(p[0]), int(p[1])), rad, 255, -1, cv2.LINE_AA, DRAW_SHIFT)
            p = unfolded.to_draw(c)
            rad = max(round(unfolded.px(0.22 * r) * (1 << DRAW_SHIFT)), 1)
            cv2.circle(canvas, (int(p[0]), int(p[1])), rad, 0, -1, cv2.LINE_AA, DRAW_SHIFT)
    idx = np.clip(np.round((ys_unfolded - y0) / s).astype(np.int64), 0, rows - 1)
    return to_float_layer(canvas[idx])


def _band(u: np.ndarray, duty: float, soft: float) -> np.ndarray:
    """Periodic band of relative width ``duty`` with soft edges (period 1)."""
    f = np.remainder(u, 1.0, dtype=np.float32)  # 0 at band centre, 1 between bands:
    f -= 0.5
    np.abs(f, out=f)
    f *= 2.0
    return smoothstep(duty + soft, duty - soft, f)


def fabric_colour(
    grid: Grid,
    params: MaskParams,
    folds_mm: np.ndarray,
    rng: np.random.Generator,
    shade: np.ndarray | None = None,
) -> np.ndarray:
    """Lit cloth colour (rows, cols, 3) float32 BGR, pleats and weave included.

    The weave is a plain over/under pattern of period ``weave_mm`` plus per-thread
    brightness (yarn thickness varies thread to thread), fine grain, a slow mottle
    and soft wrinkles along the pleats from the cloth not lying perfectly flat.
    ``shade`` is an extra brightness factor (rows, cols), e.g. :func:`edge_shading`.
    """
    xs, ys = grid.xs(), grid.ys()
    p = max(params.weave_mm, 0.3)
    amp = rng.uniform(0.03, 0.06)
    wx = np.cos(2 * np.pi * xs / p).astype(np.float32)
    wy = np.cos(2 * np.pi * ys / p).astype(np.float32)
    yarn_x = rng.normal(0.0, 0.009, int(np.ceil(xs.max() / (p / 2))) + 4).astype(np.float32)
    yarn_y = rng.normal(0.0, 0.009, int(np.ceil(ys.max() / (p / 2))) + 4).astype(np.float32)
    ix = np.clip(np.floor(xs / (p / 2)).astype(int) + 2, 0, yarn_x.size - 1)
    iy = np.clip(np.floor(ys / (p / 2)).astype(int) + 2, 0, yarn_y.size - 1)
    lum = np.outer(wy * amp, wx)
    lum += np.add.outer(yarn_y[iy] + 1.0, yarn_x[ix])
    lum += rng.standard_normal(grid.shape, dtype=np.float32) * np.float32(0.018)
    lum += _low_frequency(grid, rng)
    lum *= pleat_shading(grid, folds_mm, rng)
    if shade is not None:
        lum *= shade

    cover = print_coverage(grid, params, folds_mm, rng)
    # Channel by channel into one buffer: each 3-channel float layer is ~23 MB.
    out = np.empty((*grid.shape, 3), np.float32)
    base = np.asarray(params.fabric_bgr, np.float32)
    ink = np.asarray(params.print_bgr, np.float32)
    for c in range(3):
        channel = out[..., c]
        if cover is None:
            np.multiply(lum, base[c], out=channel)
        else:
            np.multiply(cover, ink[c] - base[c], out=channel)
            channel += base[c]
            channel *= lum
    return out


def _low_frequency(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Mottle (6 and 35 mm) and wrinkles along the pleats (5 × 40 mm), as one field.

    Summed on a 1 mm lattice and enlarged once: the features are all far coarser
    than a millimetre, so this equals enlarging each one, at a third of the cost.
    """
    step_mm = 1.0
    shape = (
        int(np.ceil(grid.rows * grid.mm_per_px / step_mm)) + 1,
        int(np.ceil(grid.cols * grid.mm_per_px / step_mm)) + 1,
    )
    field = smooth_noise(shape, 6.0 / step_mm, rng) * 0.012
    field += smooth_noise(shape, 35.0 / step_mm, rng) * 0.015
    field += smooth_noise(shape, (5.0 / step_mm, 40.0 / step_mm), rng) * rng.uniform(0.008, 0.02)
    scale = step_mm / grid.mm_per_px
    big = cv2.resize(
        field.astype(np.float32),
        (round(shape[1] * scale), round(shape[0] * scale)),
        interpolation=cv2.INTER_LINEAR,
    )
    return big[: grid.rows, : grid.cols]


def edge_shading(sdf_mm: np.ndarray) -> np.ndarray:
    """Slight darkening along the sewn edge, where the cloth turns under (factor ≤ 1)."""
    inside = np.minimum(sdf_mm, 0.0)
    return (1.0 - 0.1 * np.exp(inside / 0.7)).astype(np.float32)
