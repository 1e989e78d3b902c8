"""Printed chessboards for calibration views, at any 3-D pose, through the same camera.

Board frame (OpenCV's calibration convention): origin at the first inner corner,
X along a row of ``cols`` inner corners, Y along ``rows``, square ``square_mm``, so
the object points are ``(i · square, j · square, 0)`` and the pose (rvec, tvec) is
board → camera exactly as ``cv2.solvePnP`` would return it. The board is a matte
print with a white margin (the detector needs a quiet zone around the squares).
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.synth.camera import SimCamera
from vision.synth.grid import Grid
from vision.synth.params import LookParams
from vision.synth.render import Renderer

#: Board texture resolution: squares are large, 0.2 mm keeps edges crisp enough.
BOARD_MM_PER_PX = 0.2
#: Paper and ink brightness (0–255 before lighting).
PAPER_LEVEL = 205.0
INK_LEVEL = 28.0


def board_margin_mm(square_mm: float) -> float:
    """White margin printed around the outer squares."""
    return 0.5 * square_mm


def board_outline_mm(cols: int, rows: int, square_mm: float) -> tuple[float, float, float, float]:
    """Board paper (x0, y0, x1, y1) in board mm, margin included."""
    m = board_margin_mm(square_mm)
    return (-square_mm - m, -square_mm - m, cols * square_mm + m, rows * square_mm + m)


def board_texture(
    cols: int, rows: int, square_mm: float, rng: np.random.Generator
) -> tuple[Grid, np.ndarray]:
    """Brightness of the printed board (paper with faint fibre texture), float32.

    Squares are box-filtered analytically over each texture pixel, so edges and
    corners land exactly on the board geometry whatever the square size: a half
    pixel of bias here would be a 0.6 px calibration error in the camera image.
    """
    x0, y0, x1, y1 = board_outline_mm(cols, rows, square_mm)
    grid = Grid.covering(x0, y0, x1, y1, BOARD_MM_PER_PX)
    s = grid.mm_per_px
    xs, ys = grid.xs().astype(np.float64), grid.ys().astype(np.float64)
    x_lo, x_hi, y_lo, y_hi = -square_mm, cols * square_mm, -square_mm, rows * square_mm
    # dark = inside · (1 + sx·sy) / 2, box-filtered; the box filter is separable.
    ix, iy = _box_inside(xs, x_lo, x_hi, s), _box_inside(ys, y_lo, y_hi, s)
    gx = _box_square_wave(xs, square_mm, s, x_lo, x_hi)
    gy = _box_square_wave(ys, square_mm, s, y_lo, y_hi)
    dark = 0.5 * (np.outer(iy, ix) + np.outer(gy, gx))
    lum = (PAPER_LEVEL + (INK_LEVEL - PAPER_LEVEL) * dark).astype(np.float32)
    lum *= 1.0 + 0.015 * rng.standard_normal(lum.shape).astype(np.float32)
    return grid, lum


def _box_square_wave(
    x: np.ndarray, period_mm: float, width_mm: float, lo: float, hi: float
) -> np.ndarray:
    """Mean over [x ± width/2] of ±1 alternating every ``period_mm`` (+1 on [0, p)).

    Zero outside [lo, hi], so the squares stop cleanly at the printed area.
    """

    def integral(t: np.ndarray) -> np.ndarray:
        m = np.mod(t, 2 * period_mm)
        return np.where(m < period_mm, m, 2 * period_mm - m)

    a = np.maximum(x - width_mm / 2, lo)
    b = np.minimum(x + width_mm / 2, hi)
    return np.where(b > a, (integral(b) - integral(a)) / width_mm, 0.0)


def _box_inside(x: np.ndarray, lo: float, hi: float, width_mm: float) -> np.ndarray:
    """Fraction of [x ± width/2] inside [lo, hi]."""
    a = np.maximum(x - width_mm / 2, lo)
    b = np.minimum(x + width_mm / 2, hi)
    return np.clip((b - a) / width_mm, 0.0, 1.0)


def render_chessboard(
    renderer: Renderer,
    cols: int = 9,
    rows: int = 6,
    square_mm: float = 25.0,
    rvec: np.ndarray | None = None,
    tvec: np.ndarray | None = None,
    look: LookParams | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A calibration view: the board at (rvec, tvec) over the belt, uint8 BGR.

    Without a pose the board lies flat on the belt, centred at the belt origin
    (the view that defines the belt plane during calibration).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    look = look or LookParams(shadow=0.0)
    if rvec is None or tvec is None:
        rvec, tvec = board_on_belt_pose(renderer.camera, cols, rows, square_mm)
    grid, lum = board_texture(cols, rows, square_mm, rng)
    plane, valid = renderer.plane_mm(rvec, tvec)
    k = 1.0 / grid.mm_per_px
    m = np.float32([[k, 0, -grid.x0_mm * k], [0, k, -grid.y0_mm * k]])
    tex_map = cv2.transform(plane, m)
    alpha_src = np.ones(lum.shape, np.float32)
    board = cv2.remap(lum, tex_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.remap(alpha_src, tex_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha[~valid] = 0.0
    radiance = renderer.belt_radiance(look)
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    radiance *= 1.0 - a3
    radiance += cv2.cvtColor(board, cv2.COLOR_GRAY2BGR) * a3
    return renderer.finish(radiance, look, rng)


def board_on_belt_pose(
    camera: SimCamera,
    cols: int = 9,
    rows: int = 6,
    square_mm: float = 25.0,
    center_mm: tuple[float, float] = (0.0, 0.0),
    angle_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose of a board lying flat on the belt with its corner grid centred at ``center_mm``."""
    a = np.deg2rad(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return _pose_from(
        camera, rz, np.array([center_mm[0], center_mm[1], 0.0]), cols, rows, square_mm
    )


def _pose_from(
    camera: SimCamera,
    r_local: np.ndarray,
    centre_belt: np.ndarray,
    cols: int,
    rows: int,
    square_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Board pose from its rotation relative to the belt and its centre in belt mm."""
    r_belt = camera.rotation
    rot = r_belt @ r_local
    c_board = np.array([(cols - 1) * square_mm / 2, (rows - 1) * square_mm / 2, 0.0])
    t = r_belt @ centre_belt + camera.tvec_mm - rot @ c_board
    return cv2.Rodrigues(rot)[0].ravel(), t


def board_in_view(
    camera: SimCamera,
    rvec: np.ndarray,
    tvec: np.ndarray,
    cols: int,
    rows: int,
    square_mm: float,
    margin_px: float = 12.0,
) -> bool:
    """Whole board paper (margin included) inside the image and facing the camera."""
    x0, y0, x1, y1 = board_outline_mm(cols, rows, square_mm)
    t = np.linspace(0.0, 1.0, 20)
    pts = np.concatenate(
        [
            np.stack([x0 + (x1 - x0) * t, np.full_like(t, y0)], 1),
            np.stack([x0 + (x1 - x0) * t, np.full_like(t, y1)], 1),
            np.stack([np.full_like(t, x0), y0 + (y1 - y0) * t], 1),
            np.stack([np.full_like(t, x1), y0 + (y1 - y0) * t], 1),
        ]
    )
    obj = np.column_stack([pts, np.zeros(len(pts))])
    rot = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    cam_pts = obj @ rot.T + np.asarray(tvec, np.float64)
    if np.any(cam_pts[:, 2] <= 1.0) or rot[2, 2] <= 0.2:
        return False
    px, _ = cv2.projectPoints(
        obj,
        np.asarray(rvec, np.float64),
        np.asarray(tvec, np.float64),
        camera.camera_matrix,
        camera.dist_coeffs,
    )
    px = px.reshape(-1, 2)
    w, h = camera.size_px
    return bool(
        np.all(px[:, 0] >= margin_px)
        and np.all(px[:, 1] >= margin_px)
        and np.all(px[:, 0] <= w - 1 - margin_px)
        and np.all(px[:, 1] <= h - 1 - margin_px)
    )


def sample_board_poses(
    camera: SimCamera,
    n: int,
    rng: np.random.Generator,
    cols: int = 9,
    rows: int = 6,
    square_mm: float = 25.0,
    max_tilt_deg: float = 25.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` calibration poses with the whole board in view; the first lies flat on the belt.

    The others are tilted 5°–``max_tilt_deg`` about a random in-plane axis, turned a
    little and lifted up to 30 mm, like a board held by hand. When a big board
    leaves little room, ranges shrink until a pose fits.
    """
    poses = [board_on_belt_pose(camera, cols, rows, square_mm)]
    tilt_hi, shift, turn = max_tilt_deg, 25.0, 10.0
    if not board_in_view(camera, *poses[0], cols, rows, square_mm):
        raise ValueError(f"a {cols}x{rows} board of {square_mm:g} mm squares does not fit the view")
    while len(poses) < n:
        for _ in range(200):
            axis = rng.uniform(0, np.pi)
            tilt = np.deg2rad(rng.uniform(min(5.0, tilt_hi), tilt_hi))
            r_tilt = cv2.Rodrigues(np.array([np.cos(axis), np.sin(axis), 0.0]) * tilt)[0]
            a = np.deg2rad(rng.uniform(-turn, turn))
            rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            centre = np.array(
                [rng.uniform(-shift, shift), rng.uniform(-shift, shift), -rng.uniform(0, 30)]
            )
            rvec, tvec = _pose_from(camera, r_tilt @ rz, centre, cols, rows, square_mm)
            if board_in_view(camera, rvec, tvec, cols, rows, square_mm):
                poses.append((rvec, tvec))
                break
        else:
            tilt_hi, shift, turn = tilt_hi * 0.8, shift * 0.8, turn * 0.8
    return poses
