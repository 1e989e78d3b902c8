"""Light, lens and sensor: turn scene radiance into an 8-bit camera frame.

Order follows the physics: uneven illumination and vignetting scale the radiance,
the lens blurs it, the sensor adds read and shot noise, then the frame is quantized
and optionally JPEG-compressed. Noise comes from a bank the renderer generates once
(drawing 9 M normal samples per frame would cost more than the rest of the frame);
each frame mixes two randomly offset windows of the bank with random weights, so no
two frames share a noise pattern.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.synth.params import LookParams

#: Extra rows/cols of the noise bank, the range of per-frame window offsets.
NOISE_PAD_PX = 48
#: Fixed-point scale of the per-level noise sigma table (sigma ≤ 15 DN fits in uint8).
_SIGMA_SCALE = 16.0


def make_noise_bank(width_px: int, height_px: int) -> np.ndarray:
    """Unit-variance, slightly correlated (demosaicing) noise, (H+pad, W+pad, 3) float32."""
    rng = np.random.default_rng(0x5E45)
    bank = rng.standard_normal(
        (height_px + NOISE_PAD_PX, width_px + NOISE_PAD_PX, 3), dtype=np.float32
    )
    bank = cv2.GaussianBlur(bank, (0, 0), 0.55)
    bank *= np.float32(1.0 / max(float(bank[:256, :256].std()), 1e-6))
    return bank


def light_gain(width_px: int, height_px: int, look: LookParams) -> np.ndarray:
    """Per-pixel BGR gain (H, W, 3) float32: exposure, white balance, light side, vignetting."""
    cw, ch = max(width_px // 16, 2), max(height_px // 16, 2)
    u = (np.arange(cw, dtype=np.float32) + 0.5) / cw * 2 - 1
    v = (np.arange(ch, dtype=np.float32) + 0.5) / ch * 2 - 1
    aspect = height_px / width_px
    x = u[None, :]
    y = v[:, None] * aspect
    rho2 = (x * x + y * y) / (1 + aspect * aspect)
    vign = 1.0 - look.vignetting * rho2 * (0.75 + 0.25 * rho2)
    d = np.deg2rad(look.light_dir_deg)
    side = 1.0 + 0.5 * look.light_gradient * (x * np.cos(d) + y * np.sin(d)) / np.hypot(1, aspect)
    gain = (look.exposure * vign * side).astype(np.float32)
    coarse = gain[..., None] * np.asarray(look.white_balance, np.float32)
    return cv2.resize(coarse, (width_px, height_px), interpolation=cv2.INTER_LINEAR)


def gain_key(look: LookParams) -> tuple[float, ...]:
    """Fields of the look that :func:`light_gain` depends on (cache key)."""
    return (
        look.exposure,
        *look.white_balance,
        look.light_dir_deg,
        look.light_gradient,
        look.vignetting,
    )


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
    cv2.multiply(radiance, gain, dst=radiance)
    # Quantize, then blur in 8 bits: 3x cheaper than blurring floats, and the half-DN
    # rounding vanishes under the sensor noise added next.
    level = cv2.convertScaleAbs(radiance)
    if look.blur_px > 0.05:
        level = cv2.GaussianBlur(level, (0, 0), look.blur_px)
    sigma16 = cv2.LUT(level, noise_lut(look))
    oy1, ox1, oy2, ox2 = (int(v) for v in rng.integers(0, NOISE_PAD_PX, 4))
    theta = float(rng.uniform(0.0, 2 * np.pi))
    noise = cv2.addWeighted(
        bank[oy1 : oy1 + h, ox1 : ox1 + w],
        np.cos(theta),
        bank[oy2 : oy2 + h, ox2 : ox2 + w],
        np.sin(theta),
        0.0,
    )
    cv2.multiply(noise, sigma16, dst=noise, scale=1.0 / _SIGMA_SCALE, dtype=cv2.CV_32F)
    out = cv2.add(noise, level, dtype=cv2.CV_32F)
    cv2.max(out, 0.0, dst=out)
    frame = cv2.convertScaleAbs(out)
    if look.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(look.jpeg_quality)])
        if ok:
            frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return frame


def noise_lut(look: LookParams) -> np.ndarray:
    """Noise sigma per 8-bit level (read + shot noise), ×16 as uint8 for a fast LUT."""
    levels = np.arange(256, dtype=np.float64)
    sigma = np.sqrt(look.read_noise**2 + look.shot_noise * levels)
    return np.clip(np.round(sigma * _SIGMA_SCALE), 0, 255).astype(np.uint8).reshape(1, 256)
