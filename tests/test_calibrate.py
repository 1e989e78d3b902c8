"""Camera calibration: the pure maths, the printable target and ``qc-station calibrate``.

The end-to-end tests photograph the chessboard with the simulator's camera, whose
exact calibration is known, write the photos as PNG files and run the command on
them: the recovered calibration must measure the belt like the true one.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import struct
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from station.commands.calibrate import add_parser, cmd_calibrate, parse_board
from vision.calibrate import (
    CalibrationRefused,
    belt_plane,
    board_object_points_mm,
    calibrate_intrinsics,
    find_board,
    self_check,
)
from vision.calibrate_board import canonical_order
from vision.calibration import Calibration
from vision.synth import Renderer, SimCamera, render_chessboard, sample_board_poses, sample_look

COLS, ROWS = 9, 6
SQUARE_MM = 25.0
#: Tilted views rendered for the end-to-end run (the command's minimum is 8).
N_VIEWS = 10
#: Acceptance: the recovered scale and belt distances within this of the truth.
MAX_SCALE_ERROR_PCT = 0.2
#: Belt region over which distances are compared: ±X, ±Y mm around the image centre
#: (the simulator's view is ≈ ±157 × ±117 mm; masks pass in the middle).
BELT_HALF_EXTENT_MM = (130.0, 90.0)
REPO = Path(__file__).resolve().parents[1]
CALIBRATION_DIR = REPO / "calibration"


# -- helpers --------------------------------------------------------------------------
def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Parse ``argv`` with the command's own parser and run it: (exit code, out, err)."""
    parser = argparse.ArgumentParser(prog="qc-station")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["calibrate", *argv])
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def cli_args(views: Path, plane: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--board",
        f"{COLS}x{ROWS}",
        "--square-mm",
        str(SQUARE_MM),
        "--images",
        str(views),
        "--plane",
        str(plane),
        "--out",
        str(out),
        *extra,
    ]


def last_line(err: str) -> str:
    """The refusal line (tqdm may have drawn a bar on stderr before it)."""
    return [ln for ln in err.splitlines() if ln.strip()][-1]


def projected_corners(
    camera: SimCamera, rvec: np.ndarray, tvec: np.ndarray, noise_px: float, rng: np.random.Generator
) -> np.ndarray:
    obj = board_object_points_mm(COLS, ROWS, SQUARE_MM)
    px, _ = cv2.projectPoints(obj, rvec, tvec, camera.camera_matrix, camera.dist_coeffs)
    return px.reshape(-1, 2) + rng.normal(0.0, noise_px, (obj.shape[0], 2))


def belt_distance_errors_pct(truth: Calibration, recovered: Calibration) -> np.ndarray:
    """Relative errors of distances between belt points, measured through ``recovered``.

    The points are placed with the true calibration (belt mm → raw pixels) and read
    back with the recovered one. The recovered belt frame is the flat board's, not
    the simulator's, so only distances are comparable, not coordinates.
    """
    hx, hy = BELT_HALF_EXTENT_MM
    xs, ys = np.meshgrid(np.linspace(-hx, hx, 5), np.linspace(-hy, hy, 5))
    pts = np.column_stack([xs.ravel(), ys.ravel()])
    measured = recovered.px_to_mm(truth.mm_to_px(pts))
    i, j = np.triu_indices(len(pts), 1)
    true_d = np.linalg.norm(pts[i] - pts[j], axis=1)
    meas_d = np.linalg.norm(measured[i] - measured[j], axis=1)
    return 100.0 * (meas_d / true_d - 1.0)


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def copy_views(src: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in src:
        shutil.copy(p, folder / p.name)
    return folder


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SimCamera())


@pytest.fixture(scope="module")
def no_board_png(renderer: Renderer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty belt: what a photo without the board (or of the wrong scene) gives."""
    rng = np.random.default_rng(7)
    image, _ = renderer.render([], sample_look(rng), rng)
    return write_png(tmp_path_factory.mktemp("noboard") / "belt.png", image)


@pytest.fixture(scope="module")
def board_photos(
    renderer: Renderer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Path], Path]:
    """``N_VIEWS`` tilted views (as PNG files) and the flat-on-the-belt photo."""
    rng = np.random.default_rng(1)
    poses = sample_board_poses(renderer.camera, N_VIEWS + 1, rng, COLS, ROWS, SQUARE_MM)
    root = tmp_path_factory.mktemp("photos")
    images = [
        render_chessboard(renderer, COLS, ROWS, SQUARE_MM, rvec, tvec, rng=rng)
        for rvec, tvec in poses
    ]
    plane = write_png(root / "plane.png", images[0])
    views = [write_png(root / "views" / f"view_{i:02d}.png", im) for i, im in enumerate(images[1:])]
    return views, plane


# -- pure maths (no rendering) --------------------------------------------------------
def _tilted_poses(camera: SimCamera, n: int, rng: np.random.Generator) -> list[tuple]:
    """Board poses with the whole board in view, from the simulator's own sampler."""
    return sample_board_poses(camera, n + 1, rng, COLS, ROWS, SQUARE_MM)[1:]


def test_intrinsics_recovered_from_projected_corners() -> None:
    cam = SimCamera()
    rng = np.random.default_rng(0)
    corners = [projected_corners(cam, r, t, 0.05, rng) for r, t in _tilted_poses(cam, 10, rng)]
    result = calibrate_intrinsics(corners, COLS, ROWS, SQUARE_MM, cam.size_px)
    assert result.rms_px < 0.1
    assert len(result.per_view_rms_px) == 10
    assert result.camera_matrix[0, 0] == pytest.approx(cam.fx_px, rel=2e-3)
    assert result.camera_matrix[1, 2] == pytest.approx(cam.cy_px, abs=3.0)
    assert result.dist_coeffs[0] == pytest.approx(cam.dist[0], abs=0.01)


def test_intrinsics_refusals_name_the_reason() -> None:
    cam = SimCamera()
    rng = np.random.default_rng(1)
    poses = _tilted_poses(cam, 9, rng)
    few = [projected_corners(cam, r, t, 0.05, rng) for r, t in poses[:5]]
    with pytest.raises(CalibrationRefused, match=r"only 5 usable views, need at least 8"):
        calibrate_intrinsics(few, COLS, ROWS, SQUARE_MM, cam.size_px)
    noisy = [projected_corners(cam, r, t, 2.0, rng) for r, t in poses]
    names = [f"img{i}.png" for i in range(len(noisy))]
    with pytest.raises(CalibrationRefused, match=r"reprojection RMS \d+\.\d+ px exceeds 1\.0 px"):
        calibrate_intrinsics(noisy, COLS, ROWS, SQUARE_MM, cam.size_px, names=names)


@pytest.mark.parametrize("thickness_mm", [0.0, 3.0])
def test_belt_plane_and_self_check_from_exact_intrinsics(thickness_mm: float) -> None:
    """The flat board's surface is ``thickness_mm`` above the belt; the belt is found."""
    cam = SimCamera()
    truth = cam.calibration()
    rot = cam.rotation
    # Board origin on the belt at (-100, -60) mm, lifted towards the camera.
    offset = np.array([-100.0, -60.0, -thickness_mm])
    tvec = cam.tvec_mm + rot @ offset
    rng = np.random.default_rng(2)
    corners = projected_corners(cam, cam.rvec, tvec, 0.03, rng)
    plane_h = belt_plane(
        corners,
        COLS,
        ROWS,
        SQUARE_MM,
        cam.camera_matrix,
        cam.dist_coeffs,
        board_thickness_mm=thickness_mm,
    )
    cal = Calibration(cam.camera_matrix, cam.dist_coeffs, plane_h, cam.size_px)
    assert cal.mm_per_px() == pytest.approx(truth.mm_per_px(), rel=2e-4)
    assert np.abs(belt_distance_errors_pct(truth, cal)).max() < 0.02
    check = self_check(cal, corners, COLS, ROWS, SQUARE_MM, board_thickness_mm=thickness_mm)
    assert check.n_sides == (COLS - 1) * ROWS + COLS * (ROWS - 1)
    assert check.max_abs_error_mm < 0.02
    assert abs(check.scale_error_pct) < 0.01
    if thickness_mm:
        # Ignoring the thickness would be a ~1 % scale error: why the option exists.
        naive_h = belt_plane(corners, COLS, ROWS, SQUARE_MM, cam.camera_matrix, cam.dist_coeffs)
        naive = Calibration(cam.camera_matrix, cam.dist_coeffs, naive_h, cam.size_px)
        assert abs(naive.mm_per_px() / truth.mm_per_px() - 1) > 0.005


def test_canonical_order_ignores_the_detectors_choice_of_first_corner() -> None:
    cam = SimCamera()
    rng = np.random.default_rng(3)
    (rvec, tvec), *_ = _tilted_poses(cam, 1, rng)
    grid = projected_corners(cam, rvec, tvec, 0.0, rng).reshape(ROWS, COLS, 2)
    variants = [grid, grid[:, ::-1], grid[::-1, :], grid[::-1, ::-1]]
    outs = [canonical_order(v.reshape(-1, 2), COLS, ROWS) for v in variants]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    g = outs[0].reshape(ROWS, COLS, 2)
    assert g[0, -1, 0] > g[0, 0, 0]  # X to the image's right
    assert g[-1, 0, 1] > g[0, 0, 1]  # Y down the image (right-handed, Z into the belt)


def test_parse_board() -> None:
    assert parse_board("9x6") == (9, 6)
    assert parse_board(" 7X5 ") == (7, 5)
    for bad in ("9-6", "9x", "x6", "nine by six", "2x6", "9x6x2"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"board|COLSxROWS"):
            parse_board(bad)


def test_bad_board_argument_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = cli_args(tmp_path, tmp_path / "p.png", tmp_path / "cal.json")
    argv[1] = "9by6"
    with pytest.raises(SystemExit) as exc:
        run_cli(argv, capsys)
    assert exc.value.code == 2
    assert "expected COLSxROWS" in capsys.readouterr().err
    # A Namespace built by hand (as the CLI owner may) gets the same one-line message.
    ns = argparse.Namespace(
        board="9by6",
        square_mm=25.0,
        images=tmp_path,
        plane=tmp_path / "p.png",
        out=tmp_path / "cal.json",
        min_views=8,
        max_rms_px=1.0,
        version=None,
    )
    assert cmd_calibrate(ns) == 2
    assert "--board: expected COLSxROWS" in last_line(capsys.readouterr().err)
    assert not (tmp_path / "cal.json").exists()


# -- the printable target -------------------------------------------------------------
def _load_make_target() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "qc_calibration_make_target", CALIBRATION_DIR / "make_target.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_committed_pdf_target_is_current_and_true_to_scale() -> None:
    mt = _load_make_target()
    path = CALIBRATION_DIR / "chessboard_9x6_25mm_A4.pdf"
    data = path.read_bytes()
    assert data == mt.pdf_bytes(mt.Target()), "re-run calibration/make_target.py"
    text = data.decode("latin-1")
    assert "/MediaBox [0 0 595.276 841.890]" in text  # A4 in points
    rects = re.findall(r"([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) re f", text)
    squares = [r for r in rects if float(r[2]) == pytest.approx(25 * 72 / 25.4, abs=1e-3)]
    assert len(squares) == 35  # half of the 10 x 7 squares are black
    widths = [float(r[2]) for r in rects]
    assert any(w == pytest.approx(100 * 72 / 25.4, abs=1e-3) for w in widths)  # 100 mm bar
    assert "Print at 100 %" in text and "100 mm bar" in text
    # Cross-reference table offsets point at their objects (a strict reader needs it).
    offsets = [int(o) for o in re.findall(r"(\d{10}) 00000 n", text)]
    for i, off in enumerate(offsets, start=1):
        assert text[off:].startswith(f"{i} 0 obj")


def test_committed_png_target_is_detected_at_300_dpi() -> None:
    path = CALIBRATION_DIR / "chessboard_9x6_25mm_A4_300dpi.png"
    data = path.read_bytes()
    ppm_x, ppm_y, unit = struct.unpack(">IIB", data[data.index(b"pHYs") + 4 :][:9])
    assert unit == 1 and ppm_x == ppm_y and ppm_x * 0.0254 == pytest.approx(300, abs=0.1)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (3508, 2480)  # A4 at 300 dpi
    corners = find_board(image, COLS, ROWS)
    assert corners is not None
    grid = corners.reshape(ROWS, COLS, 2)
    spacing_px = np.linalg.norm(np.diff(grid, axis=1), axis=-1)
    assert np.median(spacing_px) / (300 / 25.4) == pytest.approx(SQUARE_MM, abs=0.05)


# -- the command on simulator photos --------------------------------------------------
def test_plane_photo_without_board_is_refused(
    renderer: Renderer, no_board_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    views = copy_views([no_board_png], tmp_path / "views")
    out = tmp_path / "cal.json"
    out.write_text("previous calibration\n")
    code, _, err = run_cli(cli_args(views, no_board_png, out), capsys)
    assert code == 1
    assert last_line(err) == "qc-station calibrate: refused: plane image: chessboard not found"
    assert out.read_text() == "previous calibration\n"  # never clobbered on refusal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.json", "views"]


@pytest.mark.slow
def test_calibrate_command_recovers_the_simulator_camera(
    board_photos: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    views, plane = board_photos
    out = tmp_path / "cal" / "line1.json"
    code, stdout, err = run_cli(cli_args(views[0].parent, plane, out), capsys)
    assert code == 0, err
    assert "reprojection RMS" in stdout and "mm/px" in stdout and "self-check" in stdout
    cal = Calibration.from_json(out.read_text())
    truth = SimCamera().calibration()
    assert cal.image_size == truth.image_size
    scale_err_pct = 100 * (cal.mm_per_px() / truth.mm_per_px() - 1)
    dist_err_pct = belt_distance_errors_pct(truth, cal)
    print(
        f"\nRMS {cal.rms_px:.4f} px, scale error {scale_err_pct:+.4f} %, belt distances "
        f"max {np.abs(dist_err_pct).max():.4f} %, self-check max "
        f"{cal.extra['self_check']['max_abs_error_mm']:.4f} mm"
    )
    assert abs(scale_err_pct) < MAX_SCALE_ERROR_PCT
    assert np.abs(dist_err_pct).max() < MAX_SCALE_ERROR_PCT
    assert cal.rms_px is not None and cal.rms_px < 0.2
    assert cal.extra["self_check"]["max_abs_error_mm"] < 0.1
    assert cal.extra["views_used"] == N_VIEWS
    assert re.fullmatch(r"cal-\d{8}-[0-9a-f]{8}", cal.version)
    created = datetime.fromisoformat(cal.created.replace("Z", "+00:00"))
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
    assert [p.name for p in out.parent.iterdir()] == ["line1.json"]  # no temp file left


@pytest.mark.slow
def test_too_few_views_are_refused(
    board_photos: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    views, plane = board_photos
    folder = copy_views(views[:5], tmp_path / "views")
    out = tmp_path / "cal.json"
    code, _, err = run_cli(cli_args(folder, plane, out), capsys)
    assert code == 1
    assert last_line(err) == ("qc-station calibrate: refused: only 5 usable views, need at least 8")
    assert not out.exists()


@pytest.mark.slow
def test_folder_mostly_without_board_is_refused(
    board_photos: tuple[list[Path], Path],
    no_board_png: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    views, plane = board_photos
    folder = copy_views(views[:3], tmp_path / "views")
    for i in range(5):
        shutil.copy(no_board_png, folder / f"belt_{i}.png")
    out = tmp_path / "cal.json"
    code, _, err = run_cli(cli_args(folder, plane, out), capsys)
    assert code == 1
    line = last_line(err)
    assert "only 3 usable views, need at least 8" in line
    assert (
        "no chessboard found in 5 of 8 images "
        "(names: belt_0.png, belt_1.png, belt_2.png, belt_3.png, belt_4.png)"
    ) in line
    assert not out.exists()


@pytest.mark.slow
def test_rms_above_the_limit_is_refused(
    board_photos: tuple[list[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    views, plane = board_photos
    out = tmp_path / "cal.json"
    code, _, err = run_cli(cli_args(views[0].parent, plane, out, "--max-rms-px", "0.001"), capsys)
    assert code == 1
    assert re.search(r"refused: reprojection RMS 0\.\d+ px exceeds 0\.001 px", last_line(err))
    assert "worst views: view_" in last_line(err)
    assert not out.exists()


def test_station_cli_registers_calibrate(in_ci: bool, tmp_path: Path) -> None:
    """Once ``station/cli.py`` adds the command, ``qc-station calibrate`` reaches it."""
    from station.cli import build_parser

    argv = ["calibrate", *cli_args(tmp_path, tmp_path / "p.png", tmp_path / "o.json")]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        if in_ci:
            raise
        pytest.skip("station/cli.py does not register `calibrate` yet")
    assert args.handler is cmd_calibrate
    assert args.board == (COLS, ROWS)
