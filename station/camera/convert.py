"""Pixel-format conversions shared by the sources that decode images themselves.

The station works on one layout only, 8-bit BGR (OpenCV's), plus a small grey
thumbnail for presence detection; files and USB cameras deliver other layouts.
"""

from __future__ import annotations

import cv2
import numpy as np


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Convert a decoded image to 8-bit, 3-channel BGR, the only layout the station uses.

    Grey images are replicated to three channels, an alpha channel is dropped and
    16-bit samples are scaled to 8 bits by ``>> 8`` (keeping the top byte, which is
    what a 16-bit PNG/TIFF written from 8-bit data round-trips to).

    Args:
        image: array as returned by ``cv2.imdecode(..., IMREAD_UNCHANGED)``.

    Raises:
        ValueError: for pixel types or channel counts that have no sensible BGR form.
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
        if channels == 3:
            return np.ascontiguousarray(image)
        if channels == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"unsupported image shape {image.shape}")


def make_lores(image_bgr: np.ndarray, width_px: int) -> np.ndarray:
    """Grey thumbnail ``width_px`` wide (aspect kept) for cheap presence detection.

    Args:
        image_bgr: BGR ``uint8`` image.
        width_px: width of the thumbnail in pixels; no upscaling beyond the input width.
    """
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    height_px, in_width_px = grey.shape
    if width_px >= in_width_px:
        return grey
    out_height_px = max(1, round(height_px * width_px / in_width_px))
    return cv2.resize(grey, (width_px, out_height_px), interpolation=cv2.INTER_AREA)
