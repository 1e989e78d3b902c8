"""Camera calibration from chessboard photos: intrinsics, distortion and the belt plane.

Pure functions over images and corner arrays; ``qc-station calibrate`` does the file
work. The procedure is the classic one (Zhang's method through OpenCV) with the
station's own acceptance rules, because a wrong calibration silently mis-measures
every mask while a refused one costs five minutes of new photos:

1. ``find_board`` on each tilted view, then ``calibrate_intrinsics`` (K and the five
   OpenCV distortion terms) — refused below ``min_views`` usable views or above
   ``max_rms_px`` reprojection RMS;
2. ``belt_plane`` from one more photo of the board lying flat on the belt: its pose
   gives ``plane_h = K · [r1 r2 t]`` (the contract of :class:`Calibration`);
3. ``self_check`` re-measures every square of that flat board in millimetres.

Belt frame of the result: the flat board's. Origin at its first inner corner, X along
its columns (the ``cols`` side, 9 corners on the shipped target), Y along its rows, Z
into the belt. A board's corner lattice looks the same flipped end for end, so
``find_board`` chooses the first corner itself: X points to the image's right (or,
for a board turned near 90°, down the image) and Y completes a frame with Z away from
the camera — lay the board with its long side across the image and belt X, Y follow
image x, y like the simulator's. Only distances and areas are meaningful across
calibrations; coordinates depend on where the board lay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.calibrate_board import (
    CalibrationRefused,
    DetectParams,
    board_object_points_mm,
    find_board,
)
from vision.calibrate_plane import (
    SelfCheck,
    belt_plane,
    lifted,
    plane_rms_px,
    self_check,
)
from vision.calibration import Calibration

__all__ = [
    "CalibrationRefused",
    "DetectParams",
    "IntrinsicsResult",
    "Report",
    "SelfCheck",
    "belt_plane",
    "board_object_points_mm",
    "calibrate",
    "calibrate_intrinsics",
    "find_board",
    "self_check",
]

#: Default acceptance limits (see ``calibrate``'s parameters for why these values).
DEFAULT_MIN_VIEWS = 8
DEFAULT_MAX_RMS_PX = 1.0
#: How many image names a refusal message lists before eliding the rest.
MAX_NAMES_IN_MESSAGE = 8
#: Levenberg–Marquardt stop rule for the intrinsics fit (iterations, step size).
_LM_MAX_ITER = 100
_LM_EPS = 1e-12


@dataclass(frozen=True)
class IntrinsicsResult:
    """Camera matrix, OpenCV distortion (k1 k2 p1 p2 k3) and how well they fit the views.

    ``per_view_rms_px`` is in the order of the views passed in; a view far above the
    others (blur, a board not flat, a wrong detection) is the first one to retake.
    """

    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    rms_px: float
    per_view_rms_px: tuple[float, ...]


@dataclass(frozen=True)
class Report:
    """What the operator should see after a calibration (and what is kept in ``extra``)."""

    rms_px: float
    per_view_rms_px: dict[str, float]
    views_total: int
    views_used: int
    missing: tuple[str, ...]
    plane_rms_px: float
    self_check: SelfCheck
    mm_per_px: float
    coverage: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def as_extra(self) -> dict[str, object]:
        """JSON-friendly summary stored in ``Calibration.extra`` for later audits."""
        sc = self.self_check
        return {
            "views_used": self.views_used,
            "views_total": self.views_total,
            "per_view_rms_px": {k: round(v, 4) for k, v in self.per_view_rms_px.items()},
            "plane_rms_px": round(self.plane_rms_px, 4),
            "coverage": round(self.coverage, 3),
            "self_check": {
                "mean_abs_error_mm": round(sc.mean_abs_error_mm, 4),
                "max_abs_error_mm": round(sc.max_abs_error_mm, 4),
                "scale_error_pct": round(sc.scale_error_pct, 4),
                "span_error_mm": round(sc.span_error_mm, 4),
            },
            "warnings": list(self.warnings),
        }


# -- intrinsics -----------------------------------------------------------------------
def calibrate_intrinsics(
    views_corners: Sequence[np.ndarray],
    cols: int,
    rows: int,
    square_mm: float,
    image_size: tuple[int, int],
    *,
    min_views: int = DEFAULT_MIN_VIEWS,
    max_rms_px: float = DEFAULT_MAX_RMS_PX,
    fix_k3: bool = False,
    names: Sequence[str] | None = None,
) -> IntrinsicsResult:
    """K and distortion from the corners of several board views (Zhang's method).

    ``image_size`` is (width, height) px. Refuses with fewer than ``min_views`` views:
    eight well-tilted views pin the five distortion terms and the principal point;
    fewer fit the noise. Refuses an RMS above ``max_rms_px``: the sub-pixel corners of
    a sharp board reproject to ~0.1–0.3 px, so an RMS near 1 px means blur, a board
    that is not flat, or a mis-detected board — the worst views are named. (A wrong
    ``square_mm`` does not show here at all: it scales the world, not the image; the
    printed mm/px is where it shows.) ``fix_k3`` keeps the sixth-order radial term at
    0: for a near-rectilinear lens and boards that never reach the image corners, a
    free k3 only chases noise there (on the simulator's k3 = 0 lens, fixing it cut the
    worst edge-to-edge distance error from ~0.1 % to ~0.02 %; on a lens that has k3,
    fixing it costs as much).
    """
    names = (
        list(names) if names is not None else [f"view {i + 1}" for i in range(len(views_corners))]
    )
    if len(views_corners) < min_views:
        raise CalibrationRefused(
            f"only {len(views_corners)} usable views, need at least {min_views}"
        )
    obj = board_object_points_mm(cols, rows, square_mm).astype(np.float32)
    obj_points = [obj] * len(views_corners)
    img_points = [np.asarray(c, np.float32).reshape(-1, 1, 2) for c in views_corners]
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, _LM_MAX_ITER, _LM_EPS)
    try:
        rms, k, dist, rvecs, tvecs = cv2.calibrateCamera(
            obj_points, img_points, tuple(image_size), None, None, flags=flags, criteria=criteria
        )
    except cv2.error as err:  # degenerate views (all parallel, collinear corners…)
        raise CalibrationRefused(
            f"the lens fit failed on these views ({str(err).strip().splitlines()[-1]}); "
            "take views with the board tilted in different directions"
        ) from None
    per_view = []
    for rvec, tvec, img in zip(rvecs, tvecs, img_points, strict=True):
        proj, _ = cv2.projectPoints(obj.reshape(-1, 1, 3), rvec, tvec, k, dist)
        per_view.append(float(np.sqrt(np.mean(np.sum((proj - img) ** 2, axis=-1)))))
    if not np.isfinite(rms) or rms > max_rms_px:
        worst = sorted(zip(per_view, names, strict=True), reverse=True)[:3]
        listed = ", ".join(f"{n} {e:.2f} px" for e, n in worst)
        raise CalibrationRefused(
            f"reprojection RMS {rms:.2f} px exceeds {_limit(max_rms_px)} px "
            f"(worst views: {listed}; retake them sharp, with the board flat)"
        )
    return IntrinsicsResult(
        camera_matrix=np.asarray(k, np.float64),
        dist_coeffs=np.asarray(dist, np.float64).ravel()[:5],
        rms_px=float(rms),
        per_view_rms_px=tuple(per_view),
    )


# -- coverage -------------------------------------------------------------------------
def coverage_fraction(
    views_corners: Sequence[np.ndarray], image_size: tuple[int, int], raster_px: int
) -> float:
    """Share of the image inside at least one view's board (the hull of its corners).

    Distortion is only measured where corners were seen; elsewhere it is extrapolated
    from the polynomial, which is worst exactly in the image corners. Computed on a
    raster of one cell per ``raster_px`` × ``raster_px`` image pixels (plenty for a
    percentage).
    """
    w, h = image_size
    cells = np.zeros((max(1, -(-h // raster_px)), max(1, -(-w // raster_px))), np.uint8)
    for c in views_corners:
        pts = np.asarray(c, np.float64).reshape(-1, 2) / raster_px
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        cv2.fillConvexPoly(cells, hull, 1)
    return float(cells.mean())


# -- everything -----------------------------------------------------------------------
def calibrate(
    views: Iterable[np.ndarray],
    plane_image: np.ndarray,
    cols: int,
    rows: int,
    square_mm: float,
    *,
    names: Sequence[str] | None = None,
    min_views: int = DEFAULT_MIN_VIEWS,
    max_rms_px: float = DEFAULT_MAX_RMS_PX,
    board_thickness_mm: float = 0.0,
    fix_k3: bool = False,
    min_coverage: float = 0.6,
    coverage_raster_px: int = 8,
    detect: DetectParams | None = None,
    version: str = "uncalibrated",
    created: str = "",
) -> tuple[Calibration, Report]:
    """Full calibration from tilted views plus one flat-on-the-belt image.

    ``views`` may be a lazy iterable (the command reads each file only when it is
    needed, so 25 full-resolution photos never sit in memory together); ``names``
    label them in messages. Boards missing from some views are tolerated as long as
    ``min_views`` remain. Boards covering less than ``min_coverage`` of the image give
    a warning, not a refusal: the result is valid near the centre, where masks
    pass, but the operator should add views reaching the image corners.
    """
    detect = detect or DetectParams()
    # The flat image first: it is one image, and without it nothing can be measured,
    # so a wrong plane photo is reported before minutes of corner detection.
    plane_corners = find_board(plane_image, cols, rows, detect)
    if plane_corners is None:
        raise CalibrationRefused("plane image: chessboard not found")
    image_size = (int(plane_image.shape[1]), int(plane_image.shape[0]))
    name_list = list(names) if names is not None else []
    found: list[np.ndarray] = []
    found_names: list[str] = []
    missing: list[str] = []
    total = 0
    for i, image in enumerate(views):
        name = name_list[i] if i < len(name_list) else f"view {i + 1}"
        total += 1
        size = (int(image.shape[1]), int(image.shape[0]))
        if size != image_size:
            raise CalibrationRefused(
                f"{name}: image size {size[0]}x{size[1]} differs from the plane image's "
                f"{image_size[0]}x{image_size[1]} (all photos must come from the same mode)"
            )
        corners = find_board(image, cols, rows, detect)
        if corners is None:
            missing.append(name)
        else:
            found.append(corners)
            found_names.append(name)
    if total == 0:
        raise CalibrationRefused("no calibration images given")
    missing_msg = (
        f"no chessboard found in {len(missing)} of {total} images (names: {_names(missing)})"
        if missing
        else ""
    )
    if len(found) < min_views:
        why = f"only {len(found)} usable views, need at least {min_views}"
        raise CalibrationRefused(f"{why}; {missing_msg}" if missing else why)

    intr = calibrate_intrinsics(
        found,
        cols,
        rows,
        square_mm,
        image_size,
        min_views=min_views,
        max_rms_px=max_rms_px,
        fix_k3=fix_k3,
        names=found_names,
    )
    plane_h = belt_plane(
        plane_corners,
        cols,
        rows,
        square_mm,
        intr.camera_matrix,
        intr.dist_coeffs,
        board_thickness_mm=board_thickness_mm,
    )
    cal = Calibration(
        camera_matrix=intr.camera_matrix,
        dist_coeffs=intr.dist_coeffs,
        plane_h=plane_h,
        image_size=image_size,
        version=version,
        created=created,
        rms_px=intr.rms_px,
    )
    check = self_check(
        cal, plane_corners, cols, rows, square_mm, board_thickness_mm=board_thickness_mm
    )
    surface = lifted(cal, board_thickness_mm) if board_thickness_mm else cal
    p_rms = plane_rms_px(surface, plane_corners, cols, rows, square_mm)
    coverage = coverage_fraction(found, image_size, coverage_raster_px)
    warnings = []
    if missing:
        warnings.append(missing_msg)
    if coverage < min_coverage:
        warnings.append(
            f"the boards covered only {100 * coverage:.0f} % of the image "
            f"(want {100 * min_coverage:.0f} %): add views with the board in the image corners"
        )
    report = Report(
        rms_px=intr.rms_px,
        per_view_rms_px=dict(zip(found_names, intr.per_view_rms_px, strict=True)),
        views_total=total,
        views_used=len(found),
        missing=tuple(missing),
        plane_rms_px=p_rms,
        self_check=check,
        mm_per_px=cal.mm_per_px(),
        coverage=coverage,
        warnings=tuple(warnings),
    )
    extra = {
        "board": {"cols": cols, "rows": rows, "square_mm": square_mm},
        "board_thickness_mm": board_thickness_mm,
        **report.as_extra(),
    }
    return Calibration(
        camera_matrix=cal.camera_matrix,
        dist_coeffs=cal.dist_coeffs,
        plane_h=cal.plane_h,
        image_size=cal.image_size,
        version=version,
        created=created,
        rms_px=cal.rms_px,
        extra=extra,
    ), report


def _limit(value: float) -> str:
    """A limit as the user typed it: 1.0 → "1.0", 0.001 → "0.001"."""
    return f"{value:.1f}" if value == round(value, 1) else f"{value:g}"


def _names(names: Sequence[str]) -> str:
    """Comma-separated names, elided after ``MAX_NAMES_IN_MESSAGE`` so one line stays one line."""
    shown = ", ".join(names[:MAX_NAMES_IN_MESSAGE])
    rest = len(names) - MAX_NAMES_IN_MESSAGE
    return f"{shown}, … (+{rest})" if rest > 0 else shown
