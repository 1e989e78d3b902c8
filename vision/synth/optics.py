"""Light, lens and sensor: turn scene radiance into an 8-bit camera frame.

Order follows the physics: uneven illumination and vignetting scale the radiance,
the lens blurs it, the sensor adds read and shot noise, then the frame is quantized
and optionally JPEG-compressed. Noise comes from a bank the renderer generates once
(drawing 9 M normal samples per frame would cost more than the rest of the frame);
each frame mixes two randomly offset windows of the bank with random weights, so no
two frames share a noise pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.synth.fields import RowField, sample_positions
from vision.synth.params import LookParams

#: Extra rows/cols of the noise bank, the range of per-frame window offsets.
NOISE_PAD_PX = 48
#: int8 steps per sigma in the noise bank.
NOISE_BANK_SCALE = 32.0
#: Demosaicing's correlation of neighbouring pixels' noise, as a blur.
_BANK_BLUR_SIGMA_PX = 0.55
#: Rows of the noise bank blurred at a time, and the blur's margin (> its radius).
_BANK_BAND_ROWS = 256
_BANK_BLUR_MARGIN_PX = 4
#: Pixels between samples of the light gain (it varies over hundreds of pixels).
GAIN_STEP_PX = 16
#: Fixed-point scale of the per-level noise sigma table (sigma ≤ 15 DN fits in uint8).
_SIGMA_SCALE = 16.0


def make_noise_bank(width_px: int, height_px: int) -> np.ndarray:
    """Unit-variance, slightly correlated (demosaicing) noise, (H+pad, W+pad, 3) int8.

    Stored as int8 × :data:`NOISE_BANK_SCALE` (clipped at ±4 sigma): a quarter of the
    float32 bank's memory, and sensor noise needs no finer steps than 1/32 sigma.
    Blurred in bands of rows (each with the blur's margin), so building it never
    holds more than one band in float32 besides the raw draw.
    """
    rng = np.random.default_rng(0x5E45)
    rows, cols = height_px + NOISE_PAD_PX, width_px + NOISE_PAD_PX
    out = np.empty((rows, cols, 3), np.int8)
    m = _BANK_BLUR_MARGIN_PX
    scale: float | None = None
    raw = np.empty((0, cols, 3), np.float32)  # drawn rows raw_top .. raw_top + len(raw)
    raw_top = 0
    for r0 in range(0, rows, _BANK_BAND_ROWS):
        r1 = min(r0 + _BANK_BAND_ROWS, rows)
        top, bottom = max(r0 - m, 0), min(r1 + m, rows)
        # Drawing in bands gives the same stream as drawing the whole bank at once.
        more = bottom - raw_top - len(raw)
        raw = np.concatenate([raw[top - raw_top :], _draw(rng, more, cols)])
        raw_top = top
        band = cv2.GaussianBlur(raw, (0, 0), _BANK_BLUR_SIGMA_PX)[r0 - top : r1 - top]
        if scale is None:  # the first band is large enough to estimate the blur's loss
            scale = NOISE_BANK_SCALE / max(float(band[:256, :256].std()), 1e-6)
        band *= np.float32(scale)
        np.clip(np.rint(band, out=band), -127, 127, out=out[r0:r1], casting="unsafe")
    return out


def _draw(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return rng.standard_normal((max(rows, 0), cols, 3), dtype=np.float32)


def light_gain_field(width_px: int, height_px: int, look: LookParams) -> RowField:
    """Per-pixel BGR gain (exposure, white balance, light side, vignetting) as a field.

    The gain is smooth, so it is sampled every :data:`GAIN_STEP_PX` pixels and
    interpolated per band of rows when a frame is finished.
    """
    xs = sample_positions(width_px, GAIN_STEP_PX)
    ys = sample_positions(height_px, GAIN_STEP_PX)
    u = ((xs + 0.5) / width_px * 2 - 1).astype(np.float32)
    v = ((ys + 0.5) / height_px * 2 - 1).astype(np.float32)
    aspect = height_px / width_px
    x = u[None, :]
    y = v[:, None] * aspect
    rho2 = (x * x + y * y) / (1 + aspect * aspect)
    vign = 1.0 - look.vignetting * rho2 * (0.75 + 0.25 * rho2)
    d = np.deg2rad(look.light_dir_deg)
    side = 1.0 + 0.5 * look.light_gradient * (x * np.cos(d) + y * np.sin(d)) / np.hypot(1, aspect)
    gain = (look.exposure * vign * side).astype(np.float32)
    coarse = gain[..., None] * np.asarray(look.white_balance, np.float32)
    return RowField.from_samples(coarse, width_px, height_px, GAIN_STEP_PX)


def light_gain(width_px: int, height_px: int, look: LookParams) -> np.ndarray:
    """Per-pixel BGR gain (H, W, 3) float32: :func:`light_gain_field` expanded."""
    return light_gain_field(width_px, height_px, look).full()


def gain_key(look: LookParams) -> tuple[float, ...]:
    """Fields of the look that :func:`light_gain` depends on (cache key)."""
    return (
        look.exposure,
        *look.white_balance,
        look.light_dir_deg,
        look.light_gradient,
        look.vignetting,
    )


@dataclass(frozen=True)
class NoiseDraw:
    """One frame's draw from the noise bank: two window offsets and a mixing angle."""

    oy1: int
    ox1: int
    oy2: int
    ox2: int
    theta: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> NoiseDraw:
        oy1, ox1, oy2, ox2 = (int(v) for v in rng.integers(0, NOISE_PAD_PX, 4))
        return cls(oy1, ox1, oy2, ox2, float(rng.uniform(0.0, 2 * np.pi)))


def blur_margin_px(look: LookParams) -> int:
    """Rows of context the lens blur needs on each side of a band (its kernel radius)."""
    if look.blur_px <= 0.05:
        return 0
    return int(np.ceil(4.0 * look.blur_px)) + 1


def finish_rows(
    radiance: np.ndarray,
    core: slice,
    rows: slice,
    look: LookParams,
    noise: NoiseDraw,
    bank: np.ndarray,
    gain: np.ndarray,
) -> np.ndarray:
    """Scene radiance of a band → camera rows uint8 BGR.

    ``radiance`` holds frame rows ``rows`` (float32, 0–255 scale, modified in place)
    and ``gain`` the same rows of the light gain; ``core`` are the rows wanted, inside
    ``rows`` by at least :func:`blur_margin_px` wherever ``rows`` is not cut by the
    frame's edge, so the blur sees the same neighbours as on a whole frame.
    """
    w = radiance.shape[1]
    cv2.multiply(radiance, gain, dst=radiance)
    # Quantize, then blur in 8 bits: 3x cheaper than blurring floats, and the half-DN
    # rounding vanishes under the sensor noise added next.
    level = cv2.convertScaleAbs(radiance)
    if look.blur_px > 0.05:
        level = cv2.GaussianBlur(level, (0, 0), look.blur_px)
    level = level[core.start - rows.start : core.stop - rows.start]
    sigma16 = cv2.LUT(level, noise_lut(look))
    y0, y1 = core.start, core.stop
    k = 1.0 / NOISE_BANK_SCALE
    out = cv2.addWeighted(
        bank[noise.oy1 + y0 : noise.oy1 + y1, noise.ox1 : noise.ox1 + w],
        np.cos(noise.theta) * k,
        bank[noise.oy2 + y0 : noise.oy2 + y1, noise.ox2 : noise.ox2 + w],
        np.sin(noise.theta) * k,
        0.0,
        dtype=cv2.CV_32F,
    )
    cv2.multiply(out, sigma16, dst=out, scale=1.0 / _SIGMA_SCALE, dtype=cv2.CV_32F)
    cv2.add(out, level, dst=out, dtype=cv2.CV_32F)
    cv2.max(out, 0.0, dst=out)
    return cv2.convertScaleAbs(out)


def jpeg_encode(frame: np.ndarray, look: LookParams) -> np.ndarray | None:
    """The frame as the look's JPEG bytes; None if the look has no JPEG step.

    Apart from :func:`jpeg_roundtrip` so that a caller can drop the raw frame
    (9 MB at 2028 × 1520) before the decoded one is made.
    """
    if look.jpeg_quality is None:
        return None
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(look.jpeg_quality)])
    return buf if ok else None


def jpeg_roundtrip(frame: np.ndarray, look: LookParams) -> np.ndarray:
    """The frame through the look's JPEG compression, if it has one."""
    buf = jpeg_encode(frame, look)
    return frame if buf is None else cv2.imdecode(buf, cv2.IMREAD_COLOR)


def finish(
    radiance: np.ndarray,
    look: LookParams,
    rng: np.random.Generator,
    bank: np.ndarray,
    gain: np.ndarray | None = None,
) -> np.ndarray:
    """Scene radiance (H, W, 3) float32, 0–255 scale → camera frame uint8 BGR.

    ``radiance`` is modified in place (it is the caller's scratch buffer). ``gain``
    is :func:`light_gain` for this look if the caller has it cached.
    """
    h, w = radiance.shape[:2]
    if gain is None:
        gain = light_gain(w, h, look)
    whole = slice(0, h)
    frame = finish_rows(radiance, whole, whole, look, NoiseDraw.draw(rng), bank, gain)
    return jpeg_roundtrip(frame, look)


def noise_lut(look: LookParams) -> np.ndarray:
    """Noise sigma per 8-bit level (read + shot noise), ×16 as uint8 for a fast LUT."""
    levels = np.arange(256, dtype=np.float64)
    sigma = np.sqrt(look.read_noise**2 + look.shot_noise * levels)
    return np.clip(np.round(sigma * _SIGMA_SCALE), 0, 255).astype(np.uint8).reshape(1, 256)
