"""The belt seen beside the body: the cue that tells a hole from ink as dark as the belt.

A hole shows the belt (in the mask's shadow): the same rubber, the same light, so
its pixels have the belt's colour, only darker. A spot of print ink as dark as the
belt has its own hue. Divided by the fabric's median (:func:`vision.tiles.normalise`)
both are near −1 and differ by a few hundredths; relative to the belt, on a log
scale, they differ by tenths: ``ln(pixel / belt)`` per channel makes the colour
relative to the belt a *difference* of channels, which the model's first (linear)
layer can take.

Pure numpy; the classifier measures the belt per body (:func:`belt_colour`), the
training set stores it per body, as measured by this very function.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The belt is sampled in two strips beyond the body's long sides, this far out (mm):
#: past the edge's blur and loose fibres, inside the rectified image's margin
#: (6 mm, :class:`vision.rectify.RectifyParams`).
BELT_STRIP_MM: tuple[float, float] = (2.0, 5.0)
#: ... and this far in from the short sides (mm), away from the ear loops and tacks.
BELT_STRIP_INSET_MM = 15.0
#: Spacing of the belt samples (mm): ~1 000 samples, a fraction of a millisecond.
BELT_STEP_MM = 1.0


def belt_colour(
    rect_image: np.ndarray, mask_to_rect: np.ndarray, body_w_mm: float, body_h_mm: float
) -> np.ndarray:
    """Median BGR of the belt beside the body's long sides, in the rectified image.

    What a hole shows is the belt (in the mask's shadow): its colour, known per
    frame, is the cue that tells a hole from a spot of ink as dark as it. Pixels
    outside the camera frame (filled black) are ignored; with no belt pixel at all
    the result is ``nan``.
    """
    xs = np.arange(BELT_STRIP_INSET_MM, body_w_mm - BELT_STRIP_INSET_MM, BELT_STEP_MM)
    d = np.arange(BELT_STRIP_MM[0], BELT_STRIP_MM[1] + 1e-9, BELT_STEP_MM)
    ys = np.concatenate([-d, body_h_mm + d])
    a = np.asarray(mask_to_rect, np.float64)
    # (a·x + b·y) + c, in the order a matrix product adds: the same pixels as ``pts @ a.T``.
    cx = np.rint((a[0, 0] * xs[None, :] + (a[0, 1] * ys)[:, None]) + a[0, 2]).astype(np.intp)
    cy = np.rint((a[1, 0] * xs[None, :] + (a[1, 1] * ys)[:, None]) + a[1, 2]).astype(np.intp)
    cx, cy = cx.ravel(), cy.ravel()
    h, w = rect_image.shape[:2]
    inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    samples = rect_image[cy[inside], cx[inside]]
    samples = samples[samples.max(axis=1) > 0]
    if samples.size == 0:
        return np.full(3, np.nan, np.float32)
    return np.median(samples, axis=0).astype(np.float32)


#: ``ln(pixel / belt)`` is clipped to this range: the floor is a pixel 20× darker
#: than the belt (noise), the ceiling cloth ≈ 4.5× brighter (all cloth alike here:
#: the fabric channels carry the cloth's own detail).
BELT_LOG_RANGE: tuple[float, float] = (-3.0, 1.5)
#: A pixel level below this (8-bit) counts as this (no logarithm of zero).
BELT_FLOOR_LEVEL = 1.0
#: With no belt measured (a body against the frame's edge), the belt is taken as this
#: share of the fabric's median colour (the rendered belts are 0.1–0.4 of it).
BELT_FALLBACK_SHARE_OF_REF = 0.2


def belt_fallback(belt_bgr: np.ndarray | None, ref_bgr: np.ndarray) -> np.ndarray:
    """The measured belt, or (not measured) a dark share of the fabric's own colour."""
    if belt_bgr is not None:
        belt = np.asarray(belt_bgr, np.float32)
        if belt.shape == (3,) and np.isfinite(belt).all():
            return np.maximum(belt, np.float32(BELT_FLOOR_LEVEL))
    return np.maximum(
        np.asarray(ref_bgr, np.float32) * np.float32(BELT_FALLBACK_SHARE_OF_REF),
        np.float32(BELT_FLOOR_LEVEL),
    )


def belt_lut(belt_bgr: np.ndarray) -> np.ndarray:
    """(256, 3) float32: ``clip(ln(max(level, floor) / belt), range)`` per channel."""
    levels = np.maximum(np.arange(256, dtype=np.float32), np.float32(BELT_FLOOR_LEVEL))
    ratio = levels[:, None] / np.asarray(belt_bgr, np.float32)[None, :]
    lo, hi = BELT_LOG_RANGE
    return np.clip(np.log(ratio), lo, hi).astype(np.float32)


def stored_belt(meta: dict[str, Any]) -> np.ndarray:
    """The belt measured beside a stored body (BGR), ``nan`` if not measured or not stored."""
    belt = meta.get("belt_bgr")
    return np.asarray(belt if belt else [np.nan] * 3, np.float32)
