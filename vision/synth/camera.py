"""A simulated Raspberry Pi HQ camera looking down at the belt, with exact calibration.

The simulator is only useful for measurement evaluation if the ground truth and the
calibration the station would use agree exactly, so the camera is defined the way
the station's :class:`~vision.calibration.Calibration` is: OpenCV intrinsics, the
five-term OpenCV distortion model and the belt plane's pose. ``plane_h`` is then
``K · [r1 r2 t]`` with no estimation error at all.

Belt frame: X mm along the image's width, Y mm along its height, origin at the belt
point seen at the image centre, Z into the belt (away from the camera). The belt
travels along +Y: a mask enters at the top of the image and leaves at the bottom.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from vision.calibration import Calibration
from vision.synth.fields import RowField, sample_positions

#: 2x2-binned full-sensor mode of the Pi HQ camera (IMX477): 3.1 µm pixels.
DEFAULT_SIZE_PX: tuple[int, int] = (2028, 1520)


@dataclass(frozen=True)
class SimCamera:
    """Intrinsics, lens distortion and the belt plane's pose, as plain numbers.

    The pose is given the way a mechanic would describe it (tilts of the camera
    mount and the scale at the image centre) instead of as rvec/tvec, so a
    randomized camera stays physically plausible; :attr:`rvec` / :attr:`tvec_mm`
    derive the OpenCV pose. Defaults: 6 mm lens on the binned HQ sensor (fx ≈ 1935
    px) about 300 mm above the belt, 0.155 mm/px at the centre (≈ 315 × 235 mm view).
    """

    width_px: int = DEFAULT_SIZE_PX[0]
    height_px: int = DEFAULT_SIZE_PX[1]
    fx_px: float = 1935.0
    fy_px: float = 1935.0
    cx_px: float = 1017.5
    cy_px: float = 757.5
    #: OpenCV order k1, k2, p1, p2, k3: mild barrel distortion of a cheap M12/CS lens.
    dist: tuple[float, float, float, float, float] = (-0.08, 0.02, 0.0004, -0.0003, 0.0)
    #: Rotation of the camera mount about the belt's X axis (pitch), degrees.
    tilt_x_deg: float = 2.0
    #: Rotation about the belt's Y axis (roll), degrees.
    tilt_y_deg: float = -1.2
    #: Rotation about the optical axis (belt edge not quite parallel to the image).
    yaw_deg: float = 0.0
    #: Belt millimetres per pixel at the image centre (sets the camera height).
    mm_per_px_center: float = 0.155

    # -- geometry ---------------------------------------------------------------------
    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) in pixels, the order OpenCV and Calibration use."""
        return (self.width_px, self.height_px)

    @property
    def camera_matrix(self) -> np.ndarray:
        return np.array(
            [[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]],
            np.float64,
        )

    @property
    def dist_coeffs(self) -> np.ndarray:
        return np.asarray(self.dist, np.float64)

    @property
    def rotation(self) -> np.ndarray:
        """Belt-to-camera rotation: the columns are the belt's X, Y, Z axes in the camera."""
        rx = _rot_x(np.deg2rad(self.tilt_x_deg))
        ry = _rot_y(np.deg2rad(self.tilt_y_deg))
        rz = _rot_z(np.deg2rad(self.yaw_deg))
        return rz @ ry @ rx

    @property
    def rvec(self) -> np.ndarray:
        """Belt pose as OpenCV's Rodrigues vector (belt → camera)."""
        return cv2.Rodrigues(self.rotation)[0].ravel()

    @property
    def tvec_mm(self) -> np.ndarray:
        """Belt origin in camera coordinates, mm.

        The origin sits on the ray through the image centre; its distance is solved
        so that the scale at the centre is exactly :attr:`mm_per_px_center` (the
        scale is proportional to that distance, so one evaluation suffices).
        """
        centre = np.array([[self.width_px / 2, self.height_px / 2]], np.float64)
        ray = cv2.undistortPoints(
            centre.reshape(-1, 1, 2), self.camera_matrix, self.dist_coeffs, criteria=_CRITERIA
        ).reshape(2)
        direction = np.array([ray[0], ray[1], 1.0])
        unit = _plane_calibration(self, direction).mm_per_px()
        return direction * (self.mm_per_px_center / unit)

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(rvec, tvec_mm) of the belt plane."""
        return self.rvec, self.tvec_mm

    def plane_h(self) -> np.ndarray:
        """Belt mm (X, Y, 1) → undistorted pixels: ``K · [r1 r2 t]``."""
        return plane_homography(self.camera_matrix, self.rotation, self.tvec_mm)

    def calibration(self) -> Calibration:
        """The exact calibration the station would get from a perfect procedure."""
        return _plane_calibration(self, self.tvec_mm, version=self.version())

    def version(self) -> str:
        """Stable identifier: the same numbers always give the same version string."""
        text = repr(sorted(asdict(self).items()))
        return "sim-" + hashlib.sha1(text.encode()).hexdigest()[:10]

    # -- variation --------------------------------------------------------------------
    @classmethod
    def randomized(cls, rng: np.random.Generator, base: SimCamera | None = None) -> SimCamera:
        """A plausible other unit: lens, focus distance and mount jittered around ``base``.

        Used to evaluate measurement on cameras the code was not tuned on; the
        jitter stays within what one lens model and one mounting bracket produce.
        """
        base = base or cls()
        f = base.fx_px * rng.uniform(0.97, 1.03)
        k1 = base.dist[0] + rng.uniform(-0.04, 0.03)
        k2 = base.dist[1] + rng.uniform(-0.02, 0.02)
        p1, p2 = rng.uniform(-8e-4, 8e-4, 2)
        k3 = rng.uniform(-0.01, 0.01)
        return replace(
            base,
            fx_px=float(f),
            fy_px=float(f * rng.uniform(0.998, 1.002)),
            cx_px=float(base.cx_px + rng.uniform(-15, 15)),
            cy_px=float(base.cy_px + rng.uniform(-15, 15)),
            dist=(float(k1), float(k2), float(p1), float(p2), float(k3)),
            tilt_x_deg=float(rng.uniform(-3.0, 3.0)),
            tilt_y_deg=float(rng.uniform(-3.0, 3.0)),
            yaw_deg=float(rng.uniform(-1.0, 1.0)),
            mm_per_px_center=float(base.mm_per_px_center * rng.uniform(0.95, 1.05)),
        )


_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-15)


def plane_homography(camera_matrix: np.ndarray, rot: np.ndarray, tvec_mm: np.ndarray) -> np.ndarray:
    """Plane mm (X, Y, 1) → undistorted pixels for a plane with pose (R, t)."""
    rt = np.column_stack([rot[:, 0], rot[:, 1], np.asarray(tvec_mm, np.float64).ravel()])
    return camera_matrix @ rt


def undistorted_grid(camera: SimCamera) -> np.ndarray:
    """Normalized undistorted coordinates (x/z, y/z) of every raw pixel, (H, W, 2) float64.

    Computed once per camera and kept by the renderer: every plane (belt, chessboard)
    is rendered from it by one homography. OpenCV's iterative undistortion is
    accurate to ~1e-5 px for this lens, far below the 0.05 px the tests require.
    """
    u, v = np.meshgrid(
        np.arange(camera.width_px, dtype=np.float64), np.arange(camera.height_px, dtype=np.float64)
    )
    pts = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, camera.camera_matrix, camera.dist_coeffs)
    return und.reshape(camera.height_px, camera.width_px, 2)


def undistorted_samples(camera: SimCamera, step_px: int) -> np.ndarray:
    """Normalized undistorted coordinates of every ``step_px``-th pixel, float64.

    Sampled on the grid of :func:`~vision.synth.fields.sample_positions` (which may
    reach a few pixels past the image's edge), for fields kept at a fraction of
    their size: a 16th of the iterative undistortion's cost at a step of 4.
    """
    us = sample_positions(camera.width_px, step_px)
    vs = sample_positions(camera.height_px, step_px)
    u, v = np.meshgrid(us, vs)
    pts = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, camera.camera_matrix, camera.dist_coeffs)
    return und.reshape(vs.size, us.size, 2)


def belt_field(camera: SimCamera, step_px: int) -> RowField:
    """Belt coordinates (X, Y) in mm of every camera pixel, as a :class:`RowField`."""
    belt_mm, _ = plane_coords(undistorted_samples(camera, step_px), camera.rotation, camera.tvec_mm)
    return RowField.from_samples(belt_mm, camera.width_px, camera.height_px, step_px)


def plane_coords(
    und_norm: np.ndarray, rot: np.ndarray, tvec_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel's ray meets a plane with pose (R, t): plane mm (H, W, 2) float32.

    Returns the coordinates and a validity mask (ray hits the plane in front of the
    camera). Pixels that miss get coordinates far outside any texture.
    """
    hn = np.column_stack([rot[:, 0], rot[:, 1], np.asarray(tvec_mm, np.float64).ravel()])
    inv = np.linalg.inv(hn)
    x = und_norm[..., 0]
    y = und_norm[..., 1]
    w = inv[2, 0] * x + inv[2, 1] * y + inv[2, 2]
    valid = w > 1e-9
    safe_w = np.where(valid, w, 1.0)
    out = np.empty(und_norm.shape, np.float32)
    out[..., 0] = (inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]) / safe_w
    out[..., 1] = (inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]) / safe_w
    out[~valid] = -1e6
    return out, valid


def _plane_calibration(
    camera: SimCamera, tvec_mm: np.ndarray, version: str = "sim-probe"
) -> Calibration:
    return Calibration(
        camera_matrix=camera.camera_matrix,
        dist_coeffs=camera.dist_coeffs,
        plane_h=plane_homography(camera.camera_matrix, camera.rotation, tvec_mm),
        image_size=camera.size_px,
        version=version,
        rms_px=0.0,
        extra={"source": "vision.synth", "mm_per_px_center": camera.mm_per_px_center},
    )


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float64)


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float64)


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)
