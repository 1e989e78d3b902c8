"""The measurement core on rendered frames: every defect found where it is, good masks
pass with their size to a fraction of a millimetre, and every bad input gets a verdict.

Masks are built by hand (plain cloth, one defect each, clearly out of tolerance) so
each test says exactly what it checks; random prints and cameras are the evaluation's
job (``qc-station eval``, docs/ACCURACY.md).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache, lru_cache

import numpy as np
import pytest

from vision.overlay import OverlayParams
from vision.pipeline import InspectionContext, analyse_frame, inspect_frame
from vision.spec import PrototypeSpec
from vision.synth import DefectParams, LookParams, MaskParams, Renderer, SimCamera

SPEC = PrototypeSpec()


@lru_cache(maxsize=1)
def renderer() -> Renderer:
    return Renderer(SimCamera())


def _good(**changes) -> MaskParams:
    base = MaskParams.from_spec(
        SPEC,
        center_mm=(4.0, -6.0),
        angle_deg=9.0,
        width_mm=200.6,
        height_mm=94.4,
        thread_bgr=(150.0, 150.0, 155.0),
        fabric_bgr=(222.0, 214.0, 200.0),
    )
    return replace(base, **changes)


SCENES: dict[str, list[MaskParams]] = {
    "good": [_good()],
    "dimension": [_good(width_mm=208.0)],
    "pleats": [_good(pleats=4)],
    "ear_loop": [_good(ear_loops=("ok", "detached_top"))],
    "seam_gap": [_good(defects=(DefectParams("seam_gap", 120.0, 5.0, 14.0, {"side": "top"}),))],
    "seam_offset": [_good(seam_offsets_mm=(5.0, 9.0, 5.0, 5.0))],
    "stitch_length": [_good(stitch_length_mm=4.4)],
    "partial": [_good(center_mm=(130.0, -6.0), angle_deg=0.0)],
    "multiple": [
        _good(center_mm=(0.0, -62.0), angle_deg=2.0),
        _good(center_mm=(10.0, 68.0), angle_deg=-3.0),
    ],
    "no_mask": [],
}


@cache
def scene(kind: str) -> tuple[np.ndarray, object]:
    rng = np.random.default_rng(20261123)
    return renderer().render(SCENES[kind], LookParams(), rng, SPEC)


@lru_cache(maxsize=1)
def ctx() -> InspectionContext:
    return InspectionContext.create(renderer().calibration, SPEC)


def _overlap(d, t) -> bool:
    return (
        abs(d.x_mm - t.x_mm) * 2 <= d.w_mm + t.w_mm and abs(d.y_mm - t.y_mm) * 2 <= d.h_mm + t.h_mm
    )


def test_good_mask_is_accepted_and_measured() -> None:
    image, truth = scene("good")
    result = inspect_frame(image, ctx())
    assert result.verdict == "accept", result.defects
    m, t = result.measurements, truth.masks[0]
    assert abs(m.width_mm - t.width_mm) < 0.3
    assert abs(m.height_mm - t.height_mm) < 0.3
    assert m.pleats == 3 and m.ear_loops == 2
    assert abs(m.stitch_length_mm - t.stitch_length_mm) < 0.05
    assert abs(m.seam_offset_mm - 5.0) < 0.5
    assert result.overlay is not None and result.overlay.ndim == 3
    assert {"find", "rectify", "edges", "seams", "total"} <= set(result.stage_ms)


@pytest.mark.parametrize(
    "kind", ["dimension", "pleats", "ear_loop", "seam_gap", "seam_offset", "stitch_length"]
)
def test_each_defect_is_found_where_it_is(kind: str) -> None:
    image, truth = scene(kind)
    assert kind in truth.defect_codes  # the scene really has the defect
    result = inspect_frame(image, ctx())
    assert result.verdict == "reject"
    assert set(result.defect_codes) == {kind}, result.defects
    found = [d for d in result.defects if d.code == kind]
    true = [d for d in truth.masks[0].defects if d.code == kind]
    assert any(_overlap(d, t) for d in found for t in true)
    for d in found:
        assert d.value is not None and d.limit


def test_partial_and_multiple_and_empty_belt() -> None:
    assert inspect_frame(scene("partial")[0], ctx()).defect_codes == ["partial"]
    multiple = inspect_frame(scene("multiple")[0], ctx())
    assert multiple.verdict == "reject" and "multiple" in multiple.defect_codes
    empty = inspect_frame(scene("no_mask")[0], ctx())
    assert empty.verdict == "no_mask" and not empty.defects and empty.overlay is not None


def test_rectified_mask_is_exposed_for_the_classifier() -> None:
    fa = analyse_frame(scene("good")[0], ctx())
    assert fa.mask is not None
    rect = fa.mask.rectified
    assert rect.mm_per_px == pytest.approx(0.2)
    # The body's corners map into the rectified image, TL near the grid origin offset.
    corners = fa.mask.mask_to_rect_px(np.array([[0.0, 0.0], [200.6, 94.4]]))
    assert np.all(corners >= 0)
    assert np.all(corners < np.array(rect.image.shape[1::-1]))
    back = fa.mask.rect_px_to_mask(corners)
    assert np.allclose(back, [[0.0, 0.0], [200.6, 94.4]], atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((100, 100, 3), np.uint8),  # wrong size
        np.zeros((1520, 2028, 3), np.float32),  # wrong type
        np.zeros((1520, 2028, 5), np.uint8),  # wrong channels
        "not an image",
    ],
)
def test_bad_input_gets_an_error_verdict_and_never_raises(bad) -> None:
    result = inspect_frame(bad, ctx())
    assert result.verdict == "error"
    assert result.defect_codes == ["error"] and result.message
    assert "total" in result.stage_ms


def test_grey_16bit_and_bgra_frames_are_inspected() -> None:
    image, _ = scene("good")
    grey = image.mean(axis=2).astype(np.uint8)
    assert inspect_frame(grey, ctx()).verdict in ("accept", "reject")
    wide = image.astype(np.uint16) << 8
    assert inspect_frame(wide, ctx()).verdict == "accept"
    bgra = np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], axis=2)
    assert inspect_frame(bgra, ctx()).verdict == "accept"


def test_black_frame_and_white_frame() -> None:
    black = np.zeros((1520, 2028, 3), np.uint8)
    assert inspect_frame(black, ctx()).verdict == "no_mask"
    white = np.full((1520, 2028, 3), 255, np.uint8)
    result = inspect_frame(white, ctx())
    assert result.verdict in ("reject", "error")  # a frame full of "cloth" is never accepted


@pytest.mark.parametrize("pleats", [2, 3, 4])
def test_pleats_counted_on_a_black_check_print(pleats: int) -> None:
    """Horizontal print bands (dark ink, so the colour test cannot remove them) are
    not counted as folds. (A crease falling right on a dark band's edge can still be
    missed: with a 7 mm check this scene loses a fold; docs/ACCURACY.md, open issues.)"""
    mask = _good(
        pleats=pleats, print_kind="check", print_bgr=(40.0, 40.0, 40.0), print_scale_mm=10.0
    )
    rng = np.random.default_rng(7)
    img, _ = renderer().render([mask], LookParams(), rng, SPEC)
    result = inspect_frame(img, ctx())
    assert result.measurements.pleats == pleats


@pytest.mark.parametrize("kind", ["good", "partial"])
def test_deferred_overlay_is_drawn_on_request_and_matches(kind: str) -> None:
    """The station defers the overlay past the verdict: nothing is drawn (or timed) in
    the pipeline, and ``annotated()`` later gives the very image drawn inline."""
    image, _ = scene(kind)
    inline = inspect_frame(image, ctx())
    deferred = inspect_frame(image, replace(ctx(), defer_overlay=True))
    assert deferred.overlay is None and deferred.draw_overlay is not None
    assert "overlay" not in deferred.stage_ms and "overlay" in inline.stage_ms
    assert deferred.verdict == inline.verdict
    drawn = deferred.annotated()
    assert inline.overlay is not None and drawn is not None
    assert np.array_equal(drawn, inline.overlay)
    assert deferred.annotated() is drawn and deferred.draw_overlay is None  # drawn once
    none = inspect_frame(image, replace(ctx(), annotate=False, defer_overlay=True))
    assert none.annotated() is None


def test_a_failing_deferred_overlay_still_gives_an_image() -> None:
    """Drawn by the recorder after the verdict, the overlay must never raise (it would
    cost the mask its row): a failure gives the coarse frame with the reason."""
    bad = replace(ctx().params, overlay=OverlayParams(outline_step_mm=0.0))
    result = inspect_frame(scene("good")[0], replace(ctx(), params=bad, defer_overlay=True))
    assert result.verdict == "accept"
    image = result.annotated()
    assert image is not None and image.ndim == 3
    assert image.shape[1] == 2028 // ctx().params.segment.downscale  # the coarse copy
