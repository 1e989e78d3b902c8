"""``qc-station calibrate``: chessboard photos in, a calibration JSON out (or a refusal).

The file side of :mod:`vision.calibrate`: list and read the photos (lazily, behind a
progress bar on stderr), run the pure calibration, print what an operator must check
(reprojection RMS, mm/px, the flat board re-measured), and write the JSON atomically
— only on success, so a station never starts on a half-written or refused file.

Exit codes: 0 written; 1 refused (too few views, RMS too high, no board on the plane
image…); 2 bad arguments or unreadable files. Every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vision.calibrate import Report

#: Photo files ``--images`` picks up (case-insensitive); anything else is ignored.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
)
#: Below three views Zhang's method cannot separate focal length from pose.
MIN_VIEWS_FLOOR = 3
#: Hex digits of the calibration hash in the default version name.
VERSION_HASH_CHARS = 8

_BOARD_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class UsageError(ValueError):
    """Bad arguments or unreadable input: exit code 2, nothing written."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Declare ``qc-station calibrate`` on the CLI's sub-parsers (sets ``handler``)."""
    p = sub.add_parser(
        "calibrate",
        help="calibrate the camera and the belt plane from chessboard photos",
        description=(
            "Compute lens intrinsics from tilted chessboard photos and the belt plane "
            "from one photo of the board lying flat on the belt; see calibration/README.md."
        ),
    )
    p.add_argument(
        "--board",
        required=True,
        type=parse_board,
        metavar="COLSxROWS",
        help="inner corners of the chessboard, e.g. 9x6 for the shipped target (10x7 squares)",
    )
    p.add_argument(
        "--square-mm",
        required=True,
        type=_positive_float,
        help="side of one printed square in millimetres, measured on the print",
    )
    p.add_argument("--images", required=True, type=Path, help="folder of tilted chessboard photos")
    p.add_argument(
        "--plane", required=True, type=Path, help="photo of the board lying flat on the belt"
    )
    p.add_argument("--out", required=True, type=Path, help="calibration JSON to write")
    p.add_argument(
        "--min-views", type=int, default=8, help="refuse with fewer usable views (default 8)"
    )
    p.add_argument(
        "--max-rms-px",
        type=_positive_float,
        default=1.0,
        help="refuse above this reprojection RMS in pixels (default 1.0)",
    )
    p.add_argument(
        "--board-thickness-mm",
        type=float,
        default=0.0,
        help="thickness of the flat board (backing + print): the belt lies this far below it",
    )
    p.add_argument(
        "--fix-k3",
        action="store_true",
        help="keep the 6th-order radial distortion term at 0 (near-rectilinear lens, few views)",
    )
    p.add_argument(
        "--version", default=None, help="calibration version (default cal-<date>-<hash>)"
    )
    p.set_defaults(handler=cmd_calibrate)


def parse_board(text: str) -> tuple[int, int]:
    """``"9x6"`` → ``(9, 6)`` inner corners (cols, rows); argparse shows the message."""
    m = _BOARD_RE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(
            f"expected COLSxROWS inner corners such as 9x6, got {text!r}"
        )
    cols, rows = int(m.group(1)), int(m.group(2))
    if cols < 3 or rows < 3:
        raise argparse.ArgumentTypeError(f"board {text!r}: need at least 3x3 inner corners")
    return cols, rows


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Run the calibration; print the report; write ``--out`` only on success."""
    from vision.calibrate import CalibrationRefused, calibrate

    try:
        cols, rows = _board_arg(args.board)
        paths = list_images(Path(args.images))
        plane_path = Path(args.plane)
        if not plane_path.is_file():
            raise UsageError(f"--plane: file not found: {plane_path}")
        if int(args.min_views) < MIN_VIEWS_FLOOR:
            raise UsageError(
                f"--min-views: at least {MIN_VIEWS_FLOOR} (the lens fit needs three "
                f"differently tilted views), got {args.min_views}"
            )
        plane_image = read_image(plane_path)
        thickness_mm = float(getattr(args, "board_thickness_mm", 0.0) or 0.0)
        if not (np.isfinite(thickness_mm) and thickness_mm >= 0.0):
            raise UsageError(f"--board-thickness-mm: expected >= 0 mm, got {thickness_mm}")
        square_mm = float(args.square_mm)
        if not (np.isfinite(square_mm) and square_mm > 0.0):
            raise UsageError(f"--square-mm: expected a positive size, got {args.square_mm}")
        created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        views = _read_lazily(paths)
        with closing(views):  # closes the progress bar even when refused mid-way
            cal, report = calibrate(
                views,
                plane_image,
                cols,
                rows,
                square_mm,
                names=[p.name for p in paths],
                min_views=int(args.min_views),
                max_rms_px=float(args.max_rms_px),
                board_thickness_mm=thickness_mm,
                fix_k3=bool(getattr(args, "fix_k3", False)),
                created=created,
            )
    except UsageError as err:
        print(f"qc-station calibrate: {err}", file=sys.stderr)
        return 2
    except CalibrationRefused as err:
        print(f"qc-station calibrate: refused: {err}", file=sys.stderr)
        return 1

    version = getattr(args, "version", None) or default_version(
        cal.camera_matrix, cal.dist_coeffs, cal.plane_h
    )
    cal = replace(cal, version=version)
    extra = dict(cal.extra)
    extra["images"] = {"views": str(args.images), "plane": plane_path.name}
    cal = replace(cal, extra=extra)
    for line in summary_lines(report, args.square_mm):
        print(line)
    try:
        atomic_write_text(Path(args.out), cal.to_json() + "\n")
    except OSError as err:
        print(f"qc-station calibrate: cannot write {args.out}: {err}", file=sys.stderr)
        return 2
    print(f"written {args.out} (version {version})")
    return 0


def _board_arg(board: object) -> tuple[int, int]:
    """Accept the parsed tuple or a raw "9x6" string (a Namespace built by hand)."""
    if isinstance(board, str):
        try:
            return parse_board(board)
        except argparse.ArgumentTypeError as err:
            raise UsageError(f"--board: {err}") from None
    cols, rows = board  # type: ignore[misc]
    return int(cols), int(rows)


def list_images(folder: Path) -> list[Path]:
    """Photo files directly in ``folder``, sorted by name (so messages list them in order)."""
    if not folder.is_dir():
        raise UsageError(f"--images: not a folder: {folder}")
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise UsageError(
            f"--images: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}"
        )
    return paths


def read_image(path: Path) -> np.ndarray:
    """Read one photo unchanged in bit depth (16-bit PNGs keep their precision)."""
    import cv2

    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise UsageError(f"cannot read image: {path}")
    return image


def _read_lazily(paths: Sequence[Path]) -> Generator[np.ndarray, None, None]:
    """Yield each photo in turn behind a tqdm bar on stderr (detection is the slow part)."""
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, tests, systemd).
    bar = tqdm(paths, desc="chessboard", unit="img", file=sys.stderr, leave=False, disable=None)
    with bar:
        for path in bar:
            yield read_image(path)


def default_version(camera_matrix: np.ndarray, dist: np.ndarray, plane_h: np.ndarray) -> str:
    """``cal-YYYYMMDD-<hash>``: the date for humans, a hash of the numbers for uniqueness."""
    digest = hashlib.sha1()
    for arr in (camera_matrix, dist, plane_h):
        digest.update(np.ascontiguousarray(arr, np.float64).tobytes())
    date = datetime.now(UTC).strftime("%Y%m%d")
    return f"cal-{date}-{digest.hexdigest()[:VERSION_HASH_CHARS]}"


def summary_lines(report: Report, square_mm: float) -> list[str]:
    """The human report: what each figure means is in calibration/README.md."""
    sc = report.self_check
    worst_name, worst_px = max(report.per_view_rms_px.items(), key=lambda kv: kv[1])
    lines = [
        f"views: {report.views_used} of {report.views_total} used; "
        f"reprojection RMS {report.rms_px:.3f} px (worst view {worst_name} {worst_px:.3f} px)",
        f"belt plane: flat board reprojects to {report.plane_rms_px:.3f} px RMS; "
        f"scale {report.mm_per_px:.5f} mm/px at the image centre",
        f"self-check: {sc.n_sides} board squares re-measured ({square_mm:g} mm): "
        f"mean error {sc.mean_abs_error_mm:.3f} mm, max {sc.max_abs_error_mm:.3f} mm, "
        f"scale error {sc.scale_error_pct:+.3f} %, board span error {sc.span_error_mm:+.3f} mm",
        f"coverage: boards seen in {100 * report.coverage:.0f} % of the image",
    ]
    lines += [f"warning: {w}" for w in report.warnings]
    return lines


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder + rename: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
