"""The belt plane from a board lying flat on the belt, and its self-check.

Split from :mod:`vision.calibrate` (the intrinsics and the overall procedure): this is
the part that defines belt millimetres, so it is the part a measurement error is
most often traced back to.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.calibrate_board import CalibrationRefused, board_object_points_mm
from vision.calibration import Calibration

__all__ = ["SelfCheck", "belt_plane", "lifted", "plane_rms_px", "self_check"]


@dataclass(frozen=True)
class SelfCheck:
    """The flat board re-measured through the finished calibration, in millimetres.

    ``sides`` are all adjacent-corner distances (each should be ``square_mm``); the
    ``span`` is the board's full inner extent along X and Y, a long baseline on which
    a scale error shows most clearly. ``scale_error_pct`` is the mean measured side
    relative to the true one. The plane was fitted to these very corners, so this
    checks consistency (detection, distortion, the fit), not an independent ruler.
    """

    n_sides: int
    mean_abs_error_mm: float
    max_abs_error_mm: float
    scale_error_pct: float
    span_error_mm: float
    mm_per_px: float


# -- belt plane -----------------------------------------------------------------------
def belt_plane(
    image_corners_px: np.ndarray,
    cols: int,
    rows: int,
    square_mm: float,
    camera_matrix: np.ndarray,
    dist_coeffs: np.ndarray,
    *,
    board_thickness_mm: float = 0.0,
) -> np.ndarray:
    """``plane_h`` (belt mm → undistorted px) from the board lying flat on the belt.

    ``solvePnP`` (homography start + Levenberg–Marquardt) rather than a free
    homography of the undistorted corners: the pose has 6 degrees of freedom against
    the homography's 8, so with K known it cannot absorb corner noise as fake
    perspective. ``board_thickness_mm`` moves the plane from the printed surface down
    to the belt along the plane's normal: at 300 mm from the camera, 1 mm of height is
    0.33 % of scale — more than the station's whole error budget.
    """
    corners = np.asarray(image_corners_px, np.float64).reshape(-1, 1, 2)
    obj = board_object_points_mm(cols, rows, square_mm).reshape(-1, 1, 3)
    k = np.asarray(camera_matrix, np.float64)
    dist = np.asarray(dist_coeffs, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, corners, k, dist, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise CalibrationRefused("plane image: the board's pose could not be solved")
    rvec, tvec = cv2.solvePnPRefineLM(obj, corners, k, dist, rvec, tvec)
    rot, _ = cv2.Rodrigues(rvec)
    t = tvec.reshape(3)
    normal = rot[:, 2] * np.sign(rot[:, 2] @ t)  # unit normal pointing away from the camera
    t_belt = t + board_thickness_mm * normal
    return k @ np.column_stack([rot[:, 0], rot[:, 1], t_belt])


def plane_rms_px(
    calibration: Calibration, corners_px: np.ndarray, cols: int, rows: int, square_mm: float
) -> float:
    """RMS distance (px) between the detected flat-board corners and their reprojection."""
    obj = board_object_points_mm(cols, rows, square_mm)[:, :2]
    proj = calibration.mm_to_px(obj)
    diff = proj - np.asarray(corners_px, np.float64).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum(diff**2, axis=1))))


# -- self check -----------------------------------------------------------------------
def self_check(
    calibration: Calibration,
    plane_corners_px: np.ndarray,
    cols: int,
    rows: int,
    square_mm: float,
    *,
    board_thickness_mm: float = 0.0,
) -> SelfCheck:
    """Re-measure every square side and the board's span of the flat board, in mm.

    The corners lie ``board_thickness_mm`` above the belt, so they are measured on a
    plane moved up by that much (exactly what the mask measurement would get for an
    object of that height); without thickness this is the calibration itself.
    """
    cal = calibration
    if board_thickness_mm:
        cal = lifted(calibration, board_thickness_mm)
    mm = cal.px_to_mm(np.asarray(plane_corners_px, np.float64).reshape(-1, 2))
    grid = mm.reshape(rows, cols, 2)
    sides = np.concatenate(
        [
            np.linalg.norm(np.diff(grid, axis=1), axis=-1).ravel(),
            np.linalg.norm(np.diff(grid, axis=0), axis=-1).ravel(),
        ]
    )
    err = sides - square_mm
    span_x = np.linalg.norm(grid[:, -1] - grid[:, 0], axis=-1) - (cols - 1) * square_mm
    span_y = np.linalg.norm(grid[-1, :] - grid[0, :], axis=-1) - (rows - 1) * square_mm
    spans = np.concatenate([span_x, span_y])
    return SelfCheck(
        n_sides=int(sides.size),
        mean_abs_error_mm=float(np.mean(np.abs(err))),
        max_abs_error_mm=float(np.max(np.abs(err))),
        scale_error_pct=float(100.0 * (np.mean(sides) / square_mm - 1.0)),
        span_error_mm=float(spans[np.argmax(np.abs(spans))]),
        mm_per_px=calibration.mm_per_px(),
    )


def lifted(calibration: Calibration, height_mm: float) -> Calibration:
    """The same calibration for a plane ``height_mm`` above the belt (towards the camera)."""
    k = calibration.camera_matrix
    rt = np.linalg.inv(k) @ calibration.plane_h
    scale = np.linalg.norm(rt[:, 0])  # r1 is a unit vector, up to the homography's scale
    r1, r2, t = rt[:, 0] / scale, rt[:, 1] / scale, rt[:, 2] / scale
    r3 = np.cross(r1, r2)
    away = r3 * np.sign(r3 @ t)
    h = k @ np.column_stack([r1, r2, t - height_mm * away])
    return Calibration(
        camera_matrix=k,
        dist_coeffs=calibration.dist_coeffs,
        plane_h=h,
        image_size=calibration.image_size,
    )
