"""Camera calibration as data: intrinsics, lens distortion and the belt plane.

The belt plane is a homography from belt millimetres to *undistorted* pixels, so
one calibration answers both questions the station asks: where does a pixel lie on
the belt (``px_to_mm``) and where is a belt point in the raw image (``mm_to_px``,
which the rectifier uses to build one remap for the mask region only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

CALIBRATION_FORMAT = "qc-station/calibration@1"


@dataclass(frozen=True)
class Calibration:
    """Intrinsics, distortion (OpenCV's k1 k2 p1 p2 k3) and the belt-plane homography.

    ``plane_h`` maps homogeneous belt millimetres ``(X, Y, 1)`` to undistorted pixel
    coordinates (the camera matrix already applied). ``image_size`` is (width, height)
    in pixels: a frame of another size cannot be measured with this calibration.
    """

    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    plane_h: np.ndarray
    image_size: tuple[int, int]
    version: str = "uncalibrated"
    created: str = ""
    rms_px: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "camera_matrix", np.asarray(self.camera_matrix, np.float64))
        dist = np.zeros(5, np.float64)
        given = np.asarray(self.dist_coeffs, np.float64).ravel()[:5]
        dist[: given.size] = given
        object.__setattr__(self, "dist_coeffs", dist)
        object.__setattr__(self, "plane_h", np.asarray(self.plane_h, np.float64))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    # -- conversions -------------------------------------------------------------------
    def undistort_px(self, points_px: np.ndarray) -> np.ndarray:
        """Raw pixel coordinates (N, 2) → undistorted pixel coordinates (N, 2)."""
        pts = np.asarray(points_px, np.float64).reshape(-1, 1, 2)
        out = cv2.undistortPoints(pts, self.camera_matrix, self.dist_coeffs, P=self.camera_matrix)
        return out.reshape(-1, 2)

    def px_to_mm(self, points_px: np.ndarray) -> np.ndarray:
        """Raw pixel coordinates (N, 2) → belt millimetres (N, 2)."""
        und = self.undistort_px(points_px)
        h_inv = np.linalg.inv(self.plane_h)
        return _apply_h(h_inv, und)

    def mm_to_px(self, points_mm: np.ndarray) -> np.ndarray:
        """Belt millimetres (..., 2) → raw (distorted) pixel coordinates (..., 2).

        Written with NumPy rather than ``cv2.projectPoints`` because the rectifier
        calls it on whole grids and needs any array shape.
        """
        pts = np.asarray(points_mm, np.float64)
        und = _apply_h(self.plane_h, pts)
        k = self.camera_matrix
        x = (und[..., 0] - k[0, 2]) / k[0, 0]
        y = (und[..., 1] - k[1, 2]) / k[1, 1]
        k1, k2, p1, p2, k3 = self.dist_coeffs
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        out = np.empty(pts.shape, np.float64)
        out[..., 0] = xd * k[0, 0] + k[0, 2]
        out[..., 1] = yd * k[1, 1] + k[1, 2]
        return out

    def mm_per_px(self) -> float:
        """Mean belt millimetres per pixel at the image centre (for humans and priors)."""
        w, h = self.image_size
        c = np.array([[w / 2, h / 2], [w / 2 + 1, h / 2], [w / 2, h / 2 + 1]], np.float64)
        mm = self.px_to_mm(c)
        return float((np.linalg.norm(mm[1] - mm[0]) + np.linalg.norm(mm[2] - mm[0])) / 2)

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "version": self.version,
            "created": self.created,
            "image_size": list(self.image_size),
            "camera_matrix": self.camera_matrix.tolist(),
            "dist_coeffs": self.dist_coeffs.tolist(),
            "plane_h": self.plane_h.tolist(),
            "rms_px": self.rms_px,
            "mm_per_px": self.mm_per_px(),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Build from :meth:`to_dict` output; raises ValueError naming the bad key."""
        if data.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"format: expected {CALIBRATION_FORMAT!r}, got {data.get('format')!r}")
        shapes = {"camera_matrix": (3, 3), "plane_h": (3, 3)}
        for key in ("camera_matrix", "dist_coeffs", "plane_h", "image_size"):
            if key not in data:
                raise ValueError(f"{key}: missing")
        for key, shape in shapes.items():
            arr = np.asarray(data[key], np.float64)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"{key}: expected a finite {shape[0]}x{shape[1]} matrix")
        if len(data["image_size"]) != 2 or min(data["image_size"]) <= 0:
            raise ValueError("image_size: expected [width, height] in pixels")
        return cls(
            camera_matrix=np.asarray(data["camera_matrix"]),
            dist_coeffs=np.asarray(data["dist_coeffs"]),
            plane_h=np.asarray(data["plane_h"]),
            image_size=tuple(data["image_size"]),
            version=str(data.get("version", "unknown")),
            created=str(data.get("created", "")),
            rms_px=data.get("rms_px"),
            extra=dict(data.get("extra") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3×3 homography to points of shape (..., 2)."""
    x, y = pts[..., 0], pts[..., 1]
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    out = np.empty(pts.shape, np.float64)
    out[..., 0] = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    out[..., 1] = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    return out
