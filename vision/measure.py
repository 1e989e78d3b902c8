"""Coarse body pose on the belt, from the segmenter's outline.

The coarse outline (4× downscaled, ≈0.6 mm per pixel) is only good to about a
millimetre; it sets the canonical grid of the rectifier. The body's size is measured
afterwards on the rectified image (:mod:`vision.edges`), to a few hundredths of a mm.
The outline is carried through the calibration (undistortion + belt plane) *before*
fitting the rectangle, so the fit happens on the belt, not in the distorted image.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.calibration import Calibration
from vision.rectify import Pose
from vision.robust import median


def order_corners(corners: np.ndarray) -> np.ndarray:
    """Order 4 rectangle corners TL, TR, BR, BL with TL→TR along the long side.

    "Top-left" is meant with the long side horizontal and pointing to +X, which is
    unambiguous for the ±30° a mask lies at on the belt.
    """
    c = np.asarray(corners, np.float64).reshape(4, 2)
    center = c.mean(axis=0)
    angles = np.arctan2(c[:, 1] - center[1], c[:, 0] - center[0])
    c = c[np.argsort(angles)]  # clockwise on screen (y down), any start
    sides = [np.linalg.norm(c[(i + 1) % 4] - c[i]) for i in range(4)]
    if sides[0] < sides[1]:  # make the first edge a long one
        c = np.roll(c, -1, axis=0)
    if c[1, 0] < c[0, 0]:  # long edge pointing to +X, so TL is on the left
        c = np.roll(c, 2, axis=0)
    return c


def _rect_pose(corners: np.ndarray) -> Pose:
    width = (np.linalg.norm(corners[1] - corners[0]) + np.linalg.norm(corners[2] - corners[3])) / 2
    height = (np.linalg.norm(corners[3] - corners[0]) + np.linalg.norm(corners[2] - corners[1])) / 2
    dx, dy = corners[1] - corners[0]
    center = corners.mean(axis=0)
    return Pose(
        center_mm=(float(center[0]), float(center[1])),
        angle_deg=float(np.degrees(np.arctan2(dy, dx))),
        width_mm=float(width),
        height_mm=float(height),
    )


def coarse_pose(
    body_contour_px: np.ndarray,
    calibration: Calibration,
    outline_inset_mm: float = 0.0,
    corner_share: float = 0.2,
    max_points: int = 240,
) -> Pose:
    """Rectangle fit of the body outline on the belt (mm), robust to corner bumps.

    The bounding rectangle of the outline is only a start: what is left of the ear
    loops after the opening sticks out at the corners. Each side is then re-placed at
    the median position of the outline points along its middle (``corner_share`` of
    its length skipped at each end), which those bumps do not reach.
    ``outline_inset_mm`` is how far inside the true edge the outline's pixels lie in
    total across the body (one coarse pixel: half a pixel on each side).
    """
    step = max(len(body_contour_px) // max_points, 1)
    outline_mm = calibration.px_to_mm(body_contour_px[::step])
    first = _rect_pose(order_corners(cv2.boxPoints(cv2.minAreaRect(outline_mm.astype(np.float32)))))
    local = first.belt_to_local(outline_mm)
    u, v = local[:, 0], local[:, 1]
    w, h = first.width_mm, first.height_mm
    mid_u = (u > corner_share * w) & (u < (1 - corner_share) * w)
    mid_v = (v > corner_share * h) & (v < (1 - corner_share) * h)
    edges = []
    for sel, coord in (
        (mid_u & (v < h / 2), v),
        (mid_u & (v >= h / 2), v),
        (mid_v & (u < w / 2), u),
        (mid_v & (u >= w / 2), u),
    ):
        if sel.sum() < 3:
            return first
        edges.append(median(coord[sel]))
    top, bottom, left, right = edges
    centre_local = np.array([(left + right) / 2, (top + bottom) / 2])
    centre = first.local_to_belt(centre_local)
    return Pose(
        center_mm=(float(centre[0]), float(centre[1])),
        angle_deg=first.angle_deg,
        width_mm=right - left + outline_inset_mm,
        height_mm=bottom - top + outline_inset_mm,
    )
