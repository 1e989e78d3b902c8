"""The simulator must be exact where the station measures and honest where it labels.

Exact: the calibration it hands out agrees with where it drew things, so measurement
errors found on synthetic frames belong to the measurement code. Honest: every
defect changes the image where the ground truth says, and nowhere else.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from vision.spec import PrototypeSpec
from vision.synth import (
    DefectParams,
    LookParams,
    MaskParams,
    MaskSprite,
    Renderer,
    SimCamera,
    apply_defect,
    board_on_belt_pose,
    render_chessboard,
    sample_board_poses,
    sample_look,
    sample_mask,
    sample_scene,
)
from vision.synth.truth import spec_defects

#: A look without JPEG, so pixel differences stay where the scene differs.
RAW_LOOK = LookParams(jpeg_quality=None)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SimCamera())


@pytest.fixture(scope="module")
def good() -> MaskParams:
    """A plain, slightly turned good mask well inside the view."""
    rng = np.random.default_rng(7)
    return replace(
        sample_mask(rng, max_angle_deg=10.0),
        print_kind="plain",
        center_mm=(-5.0, 4.0),
        angle_deg=6.0,
    )


@pytest.fixture(scope="module")
def good_frame(renderer: Renderer, good: MaskParams) -> tuple[np.ndarray, object]:
    sprite = MaskSprite.build(good, np.random.default_rng(11), renderer.scene_mm_per_px)
    return renderer.compose([sprite.placed()], RAW_LOOK, np.random.default_rng(12))


# -- camera and calibration ------------------------------------------------------------
def test_camera_scale_and_view() -> None:
    cal = SimCamera().calibration()
    assert cal.image_size == (2028, 1520)
    assert cal.mm_per_px() == pytest.approx(0.155, abs=1e-4)
    w, h = cal.image_size
    corners = cal.px_to_mm(np.array([[0, h / 2], [w - 1, h / 2], [w / 2, 0], [w / 2, h - 1]]))
    assert np.linalg.norm(corners[1] - corners[0]) == pytest.approx(315, abs=10)
    assert np.linalg.norm(corners[3] - corners[2]) == pytest.approx(235, abs=10)
    assert np.allclose(cal.px_to_mm(np.array([[w / 2, h / 2]])), 0.0, atol=1e-6)
    assert cal.version.startswith("sim-")
    assert SimCamera().calibration().version == cal.version


@pytest.mark.parametrize("seed", [None, 3])
def test_calibration_agrees_with_renderer(renderer: Renderer, seed: int | None) -> None:
    """mm_to_px(belt point) lands where the renderer maps that belt point (< 0.05 px)."""
    r = renderer if seed is None else Renderer(SimCamera.randomized(np.random.default_rng(seed)))
    cal = r.calibration
    rng = np.random.default_rng(0)
    pts_mm = np.column_stack([rng.uniform(-140, 140, 200), rng.uniform(-100, 100, 200)])
    px = cal.mm_to_px(pts_mm).astype(np.float32)
    inside = (px[:, 0] > 1) & (px[:, 1] > 1) & (px[:, 0] < 2026) & (px[:, 1] < 1518)
    back = cv2.remap(r.belt_mm, px[inside][None], None, cv2.INTER_LINEAR)[0]
    err_px = np.linalg.norm(back - pts_mm[inside], axis=1) / cal.mm_per_px()
    assert inside.sum() > 150
    assert err_px.max() < 0.05


# -- frames ------------------------------------------------------------------------------
def test_frame_format_and_determinism(renderer: Renderer) -> None:
    def frame(seed: int) -> tuple[np.ndarray, object]:
        rng = np.random.default_rng(seed)
        masks = sample_scene(rng, "good")
        return renderer.render(masks, sample_look(rng), rng)

    a, gt_a = frame(5)
    b, gt_b = frame(5)
    c, _ = frame(6)
    assert a.dtype == np.uint8 and a.shape == (1520, 2028, 3)
    assert gt_a.body_mask_px.shape == (1520, 2028) and gt_a.body_mask_px.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert gt_a.body_mask_px.tobytes() == gt_b.body_mask_px.tobytes()
    assert gt_a.to_dict() == gt_b.to_dict()
    assert a.tobytes() != c.tobytes()
    assert gt_a.expected_verdict == "accept"


def _measure_body(gt, cal) -> list[tuple[float, float, tuple[float, float]]]:
    """(long side, short side, centre) of each body blob, measured in belt mm."""
    contours, _ = cv2.findContours(gt.body_mask_px, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = []
    for c in contours:
        if cv2.contourArea(c) < 1000:
            continue
        mm = cal.px_to_mm(c.reshape(-1, 2).astype(np.float64)).astype(np.float32)
        (cx, cy), (w, h), _ = cv2.minAreaRect(mm)
        out.append((max(w, h), min(w, h), (cx, cy)))
    return out


def test_body_mask_matches_truth(renderer: Renderer, good_frame) -> None:
    """Body size measured from body_mask_px through the calibration is within 0.5 mm."""
    frames = [good_frame]
    rng = np.random.default_rng(21)
    for _ in range(2):
        masks = [sample_mask(rng, max_angle_deg=30.0)]
        frames.append(renderer.render(masks, sample_look(rng), rng))
    for _, gt in frames:
        (truth,) = gt.masks
        ((long_mm, short_mm, centre),) = _measure_body(gt, renderer.calibration)
        assert long_mm == pytest.approx(truth.width_mm, abs=0.5)
        assert short_mm == pytest.approx(truth.height_mm, abs=0.5)
        assert np.allclose(centre, truth.center_mm, atol=0.5)


def test_body_visible_in_image(good_frame) -> None:
    """The cloth is much brighter than the belt where body_mask_px says it is."""
    img, gt = good_frame
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    inner = cv2.erode(gt.body_mask_px, np.ones((15, 15), np.uint8)) > 0
    outer = cv2.dilate(gt.body_mask_px, np.ones((61, 61), np.uint8)) == 0
    assert grey[inner].mean() > grey[outer].mean() + 60


def _region_px(renderer: Renderer, params: MaskParams, box_mm, margin_mm: float) -> np.ndarray:
    """Camera-pixel mask of a box in mask mm (grown by margin), through the exact pose."""
    x0, y0, x1, y1 = box_mm
    x0, y0, x1, y1 = x0 - margin_mm, y0 - margin_mm, x1 + margin_mm, y1 + margin_mm
    t = np.linspace(0.0, 1.0, 40)
    pts = np.concatenate(
        [
            np.column_stack([x0 + (x1 - x0) * t, np.full_like(t, y0)]),
            np.column_stack([np.full_like(t, x1), y0 + (y1 - y0) * t]),
            np.column_stack([x1 - (x1 - x0) * t, np.full_like(t, y1)]),
            np.column_stack([np.full_like(t, x0), y1 - (y1 - y0) * t]),
        ]
    )
    a = np.deg2rad(params.angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    belt = (pts - (params.width_mm / 2, params.height_mm / 2)) @ rot.T + params.center_mm
    px = renderer.calibration.mm_to_px(belt)
    region = np.zeros((1520, 2028), np.uint8)
    cv2.fillPoly(region, [np.round(px).astype(np.int32)], 255)
    return region > 0


@pytest.mark.parametrize(
    "kind",
    ["hole", "stain", "seam_gap", "seam_offset", "pleats", "ear_loop", "stitch_length"],
)
def test_defect_changes_image_where_truth_says(
    renderer: Renderer, good: MaskParams, good_frame, kind: str
) -> None:
    bad = apply_defect(good, kind, np.random.default_rng(hash(kind) % 1000))
    sprite = MaskSprite.build(bad, np.random.default_rng(11), renderer.scene_mm_per_px)
    img, gt = renderer.compose([sprite.placed()], RAW_LOOK, np.random.default_rng(12))
    ref, _ = good_frame
    assert gt.expected_verdict == "reject"
    (truth,) = gt.masks
    assert truth.defect_codes == [kind]
    changed = np.abs(img.astype(np.int16) - ref.astype(np.int16)).max(axis=2) > 12
    region = np.zeros(changed.shape, bool)
    for d in truth.defects:
        region |= _region_px(renderer, bad, d.box_mm(), margin_mm=2.0)
    assert changed[region].sum() >= 30, "the defect is not visible"
    assert changed[~region].sum() <= 0.01 * changed.sum(), "changes outside the truth region"


def test_dimension_defect_changes_measured_size(renderer: Renderer, good: MaskParams) -> None:
    bad = apply_defect(good, "dimension", np.random.default_rng(4))
    _img, gt = renderer.render([bad], RAW_LOOK, np.random.default_rng(5))
    (truth,) = gt.masks
    assert truth.defect_codes == ["dimension"]
    ((long_mm, short_mm, _),) = _measure_body(gt, renderer.calibration)
    spec = PrototypeSpec()
    assert not (spec.body.width_mm.contains(long_mm) and spec.body.height_mm.contains(short_mm))
    assert long_mm == pytest.approx(bad.width_mm, abs=0.5)
    assert short_mm == pytest.approx(bad.height_mm, abs=0.5)


def test_partial_mask_crosses_border(renderer: Renderer) -> None:
    rng = np.random.default_rng(8)
    masks = sample_scene(rng, "partial")
    _, gt = renderer.render(masks, RAW_LOOK, rng)
    assert gt.partial and gt.masks[0].partial
    assert "partial" in gt.defect_codes and gt.expected_verdict == "reject"
    b = gt.body_mask_px
    assert b[0].any() or b[-1].any() or b[:, 0].any() or b[:, -1].any()


def test_empty_belt_has_no_bright_blob(renderer: Renderer) -> None:
    rng = np.random.default_rng(9)
    look = replace(sample_look(rng), belt_level=48.0, belt_specks=12.0, exposure=1.1)
    img, gt = renderer.render(sample_scene(rng, "no_mask"), look, rng)
    assert gt.no_mask and gt.expected_verdict == "no_mask" and not gt.body_mask_px.any()
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    bright = (grey > 110).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(bright)
    largest = stats[1:, cv2.CC_STAT_AREA].max() if n > 1 else 0
    assert largest < 150
    assert grey.mean() < 70


def test_two_masks(renderer: Renderer) -> None:
    rng = np.random.default_rng(10)
    masks = sample_scene(rng, "multiple")
    _, gt = renderer.render(masks, RAW_LOOK, rng)
    assert len(gt.masks) == 2 and gt.multiple
    assert "multiple" in gt.defect_codes and gt.expected_verdict == "reject"


def test_compose_moves_sprite_cheaply(renderer: Renderer, good: MaskParams) -> None:
    """Re-composing one sprite at a new Y moves its body by exactly that distance."""
    sprite = renderer.make_sprite(replace(good, angle_deg=0.0), np.random.default_rng(1))
    found = []
    for y in (-40.0, 30.0):
        _img, gt = renderer.compose(
            [sprite.placed(center_mm=(0.0, y))],
            RAW_LOOK,
            np.random.default_rng(2),
            belt_offset_mm=y,
        )
        assert gt.masks[0].center_mm == (0.0, y)
        ((_, _, centre),) = _measure_body(gt, renderer.calibration)
        found.append(centre)
    assert found[1][1] - found[0][1] == pytest.approx(70.0, abs=0.3)
    assert found[1][0] - found[0][0] == pytest.approx(0.0, abs=0.3)


def test_truth_is_judged_against_the_spec() -> None:
    spec = PrototypeSpec()
    base = MaskParams.from_spec(spec)
    assert spec_defects(base, spec, 0.5, []) == []
    wide = replace(base, width_mm=210.0, stitch_length_mm=4.5)
    assert [d.code for d in spec_defects(wide, spec, 0.5, [])] == ["dimension", "stitch_length"]
    gap = DefectParams("seam_gap", 100.0, 5.0, 12.0, {"side": "top"})
    codes = [
        d.code
        for d in spec_defects(
            replace(base, defects=(gap,)), spec, 12.4, [("top", 100.0, 5.0, 12.4)]
        )
    ]
    assert codes == ["seam_gap"]


def test_good_samples_are_accepted(renderer: Renderer) -> None:
    rng = np.random.default_rng(33)
    for _ in range(3):
        params = sample_mask(rng)
        sprite = renderer.make_sprite(params, rng)
        assert sprite.truth.defects == [], sprite.truth
        assert sprite.truth.max_gap_mm < PrototypeSpec().seam.max_gap_mm


# -- calibration boards ------------------------------------------------------------------
def test_chessboard_is_found_where_it_was_put(renderer: Renderer) -> None:
    cam = renderer.camera
    rng = np.random.default_rng(4)
    poses = sample_board_poses(cam, 3, rng)
    flat_r, flat_t = board_on_belt_pose(cam)
    assert np.allclose(poses[0][0], flat_r) and np.allclose(poses[0][1], flat_t)
    obj = np.array([[i * 25.0, j * 25.0, 0.0] for j in range(6) for i in range(9)])
    for rvec, tvec in poses:
        img = render_chessboard(renderer, 9, 6, 25.0, rvec, tvec, sample_look(rng), rng)
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        ok, corners = cv2.findChessboardCorners(grey, (9, 6))
        assert ok
        corners = cv2.cornerSubPix(
            grey,
            corners,
            (11, 11),
            (-1, -1),
            (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01),
        ).reshape(-1, 2)
        expected, _ = cv2.projectPoints(obj, rvec, tvec, cam.camera_matrix, cam.dist_coeffs)
        expected = expected.reshape(-1, 2)
        if np.linalg.norm(corners[0] - expected[0]) > np.linalg.norm(corners[0] - expected[-1]):
            expected = expected[::-1]  # the detector may start from the opposite corner
        assert np.abs(corners - expected).max() < 0.35


def test_stripes_can_be_placed_and_leave_sampled_masks_alone() -> None:
    """``print_angle_deg``/``print_phase_mm``/``print_duty`` lay a stripe where asked
    (u = (along - phase) / period, a band over u in 0.5 ± duty / 2); unset, the
    renderer draws them at random exactly as before (same draws, same pixels)."""
    from vision.synth.fabric import print_coverage
    from vision.synth.grid import Grid

    grid = Grid.covering(0.0, 0.0, 40.0, 30.0, 0.1)
    folds = np.zeros(0)
    base = MaskParams.from_spec(print_kind="stripes", print_scale_mm=10.0)
    placed = replace(base, print_angle_deg=0.0, print_duty=0.4, print_phase_mm=3.0)
    cover = print_coverage(grid, placed, folds, np.random.default_rng(0))
    row = cover[100]
    at = {x: float(row[round(x / 0.1)]) for x in (5.5, 6.5, 9.5, 10.5, 16.5)}
    assert at[5.5] < 0.05 and at[10.5] < 0.05  # bands cover x in (6, 10) + 10 k
    assert at[6.5] > 0.95 and at[9.5] > 0.95 and at[16.5] > 0.95
    assert np.allclose(cover, cover[:1])  # angle 0: bands run top to bottom
    across = print_coverage(
        grid, replace(placed, print_angle_deg=90.0), folds, np.random.default_rng(0)
    )
    assert np.allclose(across, across[:, :1])  # angle 90: bands along the width
    # Unset: the same random draws as a mask sampled before these fields existed.
    a = print_coverage(grid, base, folds, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    angle = np.deg2rad(rng.choice([0.0, 90.0, 45.0, -45.0]))
    duty = rng.uniform(0.25, 0.5)
    u = np.add.outer(grid.ys() * np.float32(np.sin(angle)), grid.xs() * np.float32(np.cos(angle)))
    f = np.abs(np.remainder(u / np.float32(10.0), 1.0) - 0.5) * 2
    assert np.mean(np.abs(a - (f < duty))) < 0.02


@pytest.mark.parametrize("side", ["top", "right", "bottom", "left"])
def test_print_edge_set_lays_a_stripe_edge_beside_the_seam(side: str) -> None:
    """``scripts/print_edge_set.py`` puts a stripe edge within 0.5 mm of the chosen
    side's seam (unfolded cloth for the bottom one), and none elsewhere near it."""
    import importlib.util
    from pathlib import Path

    from vision.synth.fabric import pleat_folds_mm, print_coverage
    from vision.synth.grid import Grid

    path = Path(__file__).resolve().parents[1] / "scripts" / "print_edge_set.py"
    module_spec = importlib.util.spec_from_file_location("print_edge_set", path)
    assert module_spec and module_spec.loader
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)
    for seed in range(4):
        mask = script.stripe_beside_seam(MaskParams.from_spec(), side, np.random.default_rng(seed))
        grid = Grid.covering(0.0, 0.0, mask.width_mm, mask.height_mm, 0.05)
        folds = pleat_folds_mm(mask.height_mm, mask.pleats, np.random.default_rng(seed))
        cover = print_coverage(grid, mask, folds, np.random.default_rng(seed))
        profile = cover[grid.rows // 8] if side in ("left", "right") else cover[:, grid.cols // 2]
        length = mask.width_mm if side in ("left", "right") else mask.height_mm
        d = np.arange(profile.size) * 0.05  # mm from the side's own edge
        if side in ("right", "bottom"):
            profile, d = profile[::-1], length - d[::-1]
        near = (d > 4.0) & (d < 6.0)
        steps = np.flatnonzero(np.abs(np.diff((profile[near] > 0.5).astype(int))))
        assert steps.size == 1, (seed, steps)
        assert abs(d[near][steps[0]] - 5.0) < 0.55
