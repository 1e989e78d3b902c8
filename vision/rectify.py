"""One remap from the raw frame to a top-down image of the mask at a fixed mm/px.

Every check after the coarse find works in millimetres on this canonical image: the
body's edges, the seams, the pleats, the ear loops and, in the next step, the
classifier's tiles. The map composes the belt pose of the mask, the belt-plane
homography and the lens distortion (``Calibration.mm_to_px``), so the whole frame is
never undistorted: only the mask's region is sampled, once.

``mm_to_px`` is exact but costs ~20 float64 operations per point; evaluating it on
every output pixel would cost more than the remap itself. The map is smooth (lens
distortion changes slowly), so it is evaluated on a lattice every ``lattice_step_px``
output pixels and bilinearly interpolated by ``cv2.resize`` (float weights for float
maps): the error is far below 0.01 px for any plausible lens (see the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.calibration import Calibration


@dataclass(frozen=True, slots=True)
class RectifyParams:
    """Canonical grid: scale and how much belt is kept around the body."""

    mm_per_px: float = 0.2
    #: Belt kept beyond the long sides (edge search window and a little belt).
    margin_mm: float = 6.0
    #: Belt kept beyond the short sides, where the ear loops lie.
    loop_margin_mm: float = 20.0
    #: Spacing of the exactly computed map nodes, in output pixels.
    lattice_step_px: int = 16
    #: Where the source row rises along an output row by less than this (px per px:
    #: a mask turned 0–6° one way), sample the row backwards (the map's columns
    #: reversed, the output flipped back: the same pixels, bit for bit). OpenCV's
    #: remap reads such a slow rise up to 1.6× slower than the mirror-image fall;
    #: steeper rises gain nothing and would pay for the flip. 0 turns it off. See
    #: docs/PERFORMANCE.md.
    mirror_max_rise: float = 0.1


@dataclass(frozen=True, slots=True)
class Pose:
    """A rectangle on the belt: centre (belt mm), rotation and size.

    ``angle_deg`` turns the rectangle's width axis from belt +X towards belt +Y, the
    same convention as the simulator and the station's mask coordinates.
    """

    center_mm: tuple[float, float]
    angle_deg: float
    width_mm: float
    height_mm: float

    def local_to_belt(self, pts_mm: np.ndarray) -> np.ndarray:
        """Rectangle-local mm (origin at its top-left corner) (..., 2) → belt mm."""
        a = np.deg2rad(self.angle_deg)
        c, s = np.cos(a), np.sin(a)
        p = np.asarray(pts_mm, np.float64)
        x = p[..., 0] - self.width_mm / 2
        y = p[..., 1] - self.height_mm / 2
        out = np.empty(p.shape, np.float64)
        out[..., 0] = self.center_mm[0] + c * x - s * y
        out[..., 1] = self.center_mm[1] + s * x + c * y
        return out

    def belt_to_local(self, pts_mm: np.ndarray) -> np.ndarray:
        """Belt mm (..., 2) → rectangle-local mm."""
        a = np.deg2rad(self.angle_deg)
        c, s = np.cos(a), np.sin(a)
        p = np.asarray(pts_mm, np.float64)
        dx = p[..., 0] - self.center_mm[0]
        dy = p[..., 1] - self.center_mm[1]
        out = np.empty(p.shape, np.float64)
        out[..., 0] = c * dx + s * dy + self.width_mm / 2
        out[..., 1] = -s * dx + c * dy + self.height_mm / 2
        return out


@dataclass(frozen=True, slots=True)
class Rectified:
    """The mask region, top-down, at ``mm_per_px``; what later checks and the classifier use.

    Pixel centre ``(col, row)`` is at local mm ``(u0_mm + col·s, v0_mm + row·s)`` where
    local mm are measured from the *coarse* body's top-left corner along its axes
    (``pose``). The refined body (fitted edges) lies within a fraction of a degree and
    a millimetre of that frame; :class:`vision.edges.BodyFrame` carries the exact
    relation to mask coordinates.
    """

    image: np.ndarray  # BGR uint8, (rows, cols, 3)
    mm_per_px: float
    u0_mm: float
    v0_mm: float
    pose: Pose
    #: False where the map fell outside the camera frame (filled with black).
    in_frame: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]  # type: ignore[return-value]

    def gray(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """Grey levels of a region (only what a step needs is converted)."""
        return cv2.cvtColor(self.image[rows, cols], cv2.COLOR_BGR2GRAY)

    def to_px(self, local_mm: np.ndarray) -> np.ndarray:
        """Local mm (..., 2) → fractional (col, row) of this image."""
        p = np.asarray(local_mm, np.float64)
        return (p - (self.u0_mm, self.v0_mm)) / self.mm_per_px

    def to_mm(self, px: np.ndarray) -> np.ndarray:
        """Fractional (col, row) (..., 2) → local mm."""
        return np.asarray(px, np.float64) * self.mm_per_px + (self.u0_mm, self.v0_mm)

    def col(self, u_mm: float) -> float:
        return (u_mm - self.u0_mm) / self.mm_per_px

    def row(self, v_mm: float) -> float:
        return (v_mm - self.v0_mm) / self.mm_per_px


def grid_box_mm(pose: Pose, params: RectifyParams) -> tuple[float, float, float, float]:
    """(u0, v0, u1, v1) local mm covered by the canonical image."""
    return (
        -params.loop_margin_mm,
        -params.margin_mm,
        pose.width_mm + params.loop_margin_mm,
        pose.height_mm + params.margin_mm,
    )


def build_map(
    calibration: Calibration, pose: Pose, params: RectifyParams, mirrored: bool = False
) -> tuple[np.ndarray, float, float]:
    """Raw-frame pixel coordinates of every canonical pixel, (rows, cols, 2) float32.

    Returns the map and the local mm of its pixel (0, 0). The lattice nodes sit at
    the exact positions ``cv2.resize`` interpolates between (pixel-centre convention:
    destination ``j`` samples source ``(j + 0.5)/step − 0.5``), one node beyond each
    side so that no output pixel is extrapolated. ``mirrored`` gives the map with its
    columns in reverse order (the same values: the lattice is symmetric), without
    copying the dense map.
    """
    s = params.mm_per_px
    u0, v0, u1, v1 = grid_box_mm(pose, params)
    cols = int(np.ceil((u1 - u0) / s)) + 1
    rows = int(np.ceil((v1 - v0) / s)) + 1
    step = max(int(params.lattice_step_px), 1)
    # Node k of the resized lattice lies at output pixel k·step + (step−1)/2 − step.
    nc = int(np.ceil((cols - 1 + step - (step - 1) / 2) / step)) + 1
    nr = int(np.ceil((rows - 1 + step - (step - 1) / 2) / step)) + 1
    jc = np.arange(nc) * step + (step - 1) / 2 - step
    jr = np.arange(nr) * step + (step - 1) / 2 - step
    local = np.empty((nr, nc, 2), np.float64)
    local[..., 0] = u0 + jc[None, :] * s
    local[..., 1] = v0 + jr[:, None] * s
    lattice = calibration.mm_to_px(pose.local_to_belt(local)).astype(np.float32)
    if mirrored:
        lattice = np.ascontiguousarray(lattice[:, ::-1])
    dense = cv2.resize(lattice, (nc * step, nr * step), interpolation=cv2.INTER_LINEAR)
    # A view, not a copy: OpenCV takes strided rows, and copying the map (≈5 MB) cost
    # about as much as building it.
    c0 = nc * step - step - cols if mirrored else step
    return dense[step : step + rows, c0 : c0 + cols], u0, v0


def row_rise(calibration: Calibration, pose: Pose, params: RectifyParams) -> float:
    """Source rows gained per source column along an output row (the body's middle)."""
    u0, v0, u1, v1 = grid_box_mm(pose, params)
    v = 0.5 * (v0 + v1)
    (x0, y0), (x1, y1) = calibration.mm_to_px(pose.local_to_belt(np.array([[u0, v], [u1, v]])))
    return float((y1 - y0) / (x1 - x0)) if x1 != x0 else 0.0


def rectify(
    frame: np.ndarray, calibration: Calibration, pose: Pose, params: RectifyParams
) -> Rectified:
    """Sample the mask region of the raw ``frame`` onto the canonical mm grid.

    The float map is used as it is. OpenCV 5 samples float maps with exact bilinear
    weights at the same speed as its fixed-point ``CV_16SC2`` maps (whose 1/32 px
    weights were off by up to 1.6 levels), so ``cv2.convertMaps`` would only add a
    pass over the map (≈0.8 ms) and lose precision.
    """
    mirrored = 0.0 < row_rise(calibration, pose, params) < params.mirror_max_rise
    mapping, u0, v0 = build_map(calibration, pose, params, mirrored)
    h, w = frame.shape[:2]
    corners = mapping[[0, 0, -1, -1], [0, -1, 0, -1]]
    in_frame = bool(
        np.all(corners[:, 0] >= 0)
        and np.all(corners[:, 1] >= 0)
        and np.all(corners[:, 0] <= w - 1)
        and np.all(corners[:, 1] <= h - 1)
    )
    image = cv2.remap(frame, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if mirrored:
        image = cv2.flip(image, 1)
    return Rectified(image, params.mm_per_px, u0, v0, pose, in_frame)
