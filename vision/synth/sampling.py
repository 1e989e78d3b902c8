"""Random masks, defects, scenes and looks for tests, evaluation and training sets.

Good masks are drawn well inside the spec's tolerances (at most half of each) and
defects well outside them, so every label is unambiguous; the ground truth is still
derived from the drawn mask, not from the intent (see :mod:`vision.synth.truth`).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from vision.calibration import Calibration
from vision.spec import PrototypeSpec
from vision.synth.camera import SimCamera
from vision.synth.loops import footprint_mm
from vision.synth.params import SCENE_KINDS, SIDES, DefectParams, LookParams, MaskParams

#: Cloth colours (BGR): whites, light blues, pastels, beige and a few mid tones.
FABRIC_BGR: tuple[tuple[float, float, float], ...] = (
    (206, 208, 210),
    (212, 212, 206),
    (226, 200, 166),
    (226, 196, 160),
    (204, 192, 228),
    (200, 226, 206),
    (186, 210, 226),
    (176, 196, 214),
    (150, 150, 152),
    (170, 122, 88),
    (118, 150, 112),
    (128, 104, 150),
)
#: Print inks (BGR): navy, red, dark green, brown, black, mustard.
PRINT_BGR: tuple[tuple[float, float, float], ...] = (
    (110, 50, 30),
    (50, 50, 180),
    (60, 110, 40),
    (50, 80, 120),
    (45, 45, 45),
    (60, 170, 210),
)
LOOP_BGR: tuple[tuple[float, float, float], ...] = ((218, 218, 216), (42, 42, 44), (170, 194, 210))
_PRINT_KINDS = ("plain", "stripes", "dots", "check", "floral")
_PRINT_P = (0.5, 0.15, 0.12, 0.12, 0.11)
#: Pixels kept free at the image border around a mask that must be fully in view.
EDGE_MARGIN_PX = 6


def sample_look(rng: np.random.Generator) -> LookParams:
    """A random but plausible belt, light and sensor."""
    return LookParams(
        belt_level=float(rng.uniform(24, 48)),
        belt_tint=tuple(float(v) for v in rng.uniform(0.96, 1.04, 3)),  # type: ignore[arg-type]
        belt_texture=float(rng.uniform(0.06, 0.16)),
        belt_specks=float(rng.uniform(2, 12)),
        belt_seed=int(rng.integers(0, 2**31)),
        exposure=float(rng.uniform(0.88, 1.06)),
        white_balance=tuple(float(v) for v in rng.uniform(0.95, 1.05, 3)),  # type: ignore[arg-type]
        light_dir_deg=float(rng.uniform(0, 360)),
        light_gradient=float(rng.uniform(0.05, 0.3)),
        vignetting=float(rng.uniform(0.1, 0.35)),
        shadow=float(rng.uniform(0.3, 0.6)),
        blur_px=float(rng.uniform(0.45, 1.0)),
        read_noise=float(rng.uniform(1.0, 2.5)),
        shot_noise=float(rng.uniform(0.02, 0.08)),
        jpeg_quality=None if rng.random() < 0.5 else int(rng.integers(80, 96)),
    )


def sample_mask(
    rng: np.random.Generator,
    spec: PrototypeSpec | None = None,
    defect: str | None = None,
    *,
    max_angle_deg: float = 30.0,
    camera: SimCamera | Calibration | None = None,
) -> MaskParams:
    """A random good mask (``defect=None``) or one with the named defect, placed in view.

    ``defect`` is one of :data:`~vision.synth.params.MASK_DEFECT_KINDS`. The mask,
    loops included, lies fully inside the image unless ``defect == "partial"``.
    """
    spec = spec or PrototypeSpec()
    cal = _calibration(camera)
    params = _sample_good(rng, spec)
    params = _place(params, rng, cal, max_angle_deg)
    if defect is not None:
        params = apply_defect(params, defect, rng, spec, camera=cal, max_angle_deg=max_angle_deg)
    return params


def sample_scene(
    rng: np.random.Generator,
    kind: str = "good",
    spec: PrototypeSpec | None = None,
    *,
    max_angle_deg: float = 30.0,
    camera: SimCamera | Calibration | None = None,
) -> list[MaskParams]:
    """Masks for one frame of :data:`~vision.synth.params.SCENE_KINDS`.

    "no_mask" is an empty belt; "multiple" is two good masks that do not overlap,
    the second one possibly entering or leaving the view.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind: expected one of {SCENE_KINDS}, got {kind!r}")
    spec = spec or PrototypeSpec()
    cal = _calibration(camera)
    if kind == "no_mask":
        return []
    if kind != "multiple":
        defect = None if kind == "good" else kind
        return [sample_mask(rng, spec, defect, max_angle_deg=max_angle_deg, camera=cal)]
    first = _place(_sample_good(rng, spec), rng, cal, min(max_angle_deg, 12.0))
    second = _sample_good(rng, spec)
    for _ in range(400):
        cand = replace(
            second,
            center_mm=(float(rng.uniform(-60, 60)), float(rng.uniform(-200, 200))),
            angle_deg=float(rng.uniform(-12, 12)),
        )
        if not _overlap(first, cand) and _visible_fraction(cand, cal) > 0.4:
            return [first, cand]
    below = first.center_mm[1] + (115.0 if first.center_mm[1] < 0 else -115.0)
    return [first, replace(second, center_mm=(first.center_mm[0], below), angle_deg=0.0)]


def apply_defect(
    params: MaskParams,
    kind: str,
    rng: np.random.Generator,
    spec: PrototypeSpec | None = None,
    *,
    camera: SimCamera | Calibration | None = None,
    max_angle_deg: float = 30.0,
) -> MaskParams:
    """``params`` with one defect added; everything else unchanged (same seeds → same pixels).

    Values are chosen clearly out of tolerance: ±6–10 mm body size, 2 or 4 pleats,
    8–25 mm seam gaps, seams at 8–10 or 1.5–2.5 mm, pitch 4–5 or 1.2–1.6 mm, holes
    ≥ 2.5 mm, stains ≥ 6 mm.
    """
    spec = spec or PrototypeSpec()
    cal = _calibration(camera)
    if kind == "dimension":
        sign = rng.choice([-1.0, 1.0])
        delta = float(sign * rng.uniform(6.0, 10.0))
        if rng.random() < 0.5:
            out = replace(params, width_mm=spec.body.width_mm.nominal + delta)
        else:
            out = replace(params, height_mm=spec.body.height_mm.nominal + delta)
        return out if _fits(out, cal) else _place(out, rng, cal, max_angle_deg)
    if kind == "pleats":
        return replace(params, pleats=int(spec.body.pleats + rng.choice([-1, 1])))
    if kind == "ear_loop":
        state = str(rng.choice(["missing", "detached_top", "detached_bottom"]))
        loops = list(params.ear_loops)
        loops[int(rng.integers(0, 2))] = state  # type: ignore[call-overload]
        return replace(params, ear_loops=tuple(loops))  # type: ignore[arg-type]
    if kind == "seam_gap":
        return replace(params, defects=(*params.defects, seam_gap(params, rng)))
    if kind == "seam_offset":
        value = float(rng.uniform(8.0, 10.0) if rng.random() < 0.5 else rng.uniform(1.5, 2.5))
        offs = list(params.seam_offsets_mm)
        if rng.random() < 0.5:
            offs = [value + float(rng.normal(0.0, 0.15)) for _ in offs]
        else:
            offs[int(rng.integers(0, 4))] = value
        return replace(params, seam_offsets_mm=tuple(offs))  # type: ignore[arg-type]
    if kind == "stitch_length":
        pitch = rng.uniform(4.0, 5.0) if rng.random() < 0.5 else rng.uniform(1.2, 1.6)
        return replace(params, stitch_length_mm=float(pitch))
    if kind == "partial":
        return _place_partial(params, rng, cal, max_angle_deg)
    if kind == "hole":
        tear = rng.random() < 0.35
        size = float(rng.uniform(8.0, 20.0) if tear else rng.uniform(2.5, 9.0))
        x, y = _inside(params, rng, 9.0 + size / 2 * (0.0 if tear else 1.0))
        extra = {"shape": "tear" if tear else "hole", "angle_deg": float(rng.uniform(0, 180))}
        return replace(params, defects=(*params.defects, DefectParams("hole", x, y, size, extra)))
    if kind == "stain":
        size = float(rng.uniform(6.0, 25.0))
        x, y = _inside(params, rng, size / 2 + 2.0)
        tint = str(rng.choice(["oil", "grease", "ink", "red", "coffee"]))
        stain = DefectParams("stain", x, y, size, {"tint": tint})
        return replace(params, defects=(*params.defects, stain))
    raise ValueError(f"kind: unknown defect {kind!r}")


# -- helpers -------------------------------------------------------------------------
def _calibration(camera: SimCamera | Calibration | None) -> Calibration:
    if isinstance(camera, Calibration):
        return camera
    return (camera or SimCamera()).calibration()


def _sample_good(rng: np.random.Generator, spec: PrototypeSpec) -> MaskParams:
    """Construction and cloth of a good mask, at the belt origin."""
    b, sm = spec.body, spec.seam
    off = sm.offset_mm.nominal + rng.uniform(-0.25, 0.25) * sm.offset_mm.tol
    fabric = np.clip(
        np.asarray(FABRIC_BGR[int(rng.integers(len(FABRIC_BGR)))]) + rng.normal(0, 5, 3), 0, 255
    )
    roll = rng.random()
    if roll < 0.5:
        thread = fabric * rng.uniform(0.78, 0.9)
    elif roll < 0.8:
        thread = np.array([214.0, 216.0, 218.0]) * rng.uniform(0.92, 1.0)
    else:
        thread = np.asarray(PRINT_BGR[int(rng.integers(len(PRINT_BGR)))], np.float64)
    return MaskParams.from_spec(
        spec,
        width_mm=float(b.width_mm.nominal + rng.uniform(-0.5, 0.5) * b.width_mm.tol),
        height_mm=float(b.height_mm.nominal + rng.uniform(-0.5, 0.5) * b.height_mm.tol),
        seam_offsets_mm=tuple(float(off + rng.normal(0.0, 0.12)) for _ in range(4)),
        stitch_length_mm=float(
            sm.stitch_length_mm.nominal + rng.uniform(-0.3, 0.3) * sm.stitch_length_mm.tol
        ),
        thread_width_mm=float(rng.uniform(0.35, 0.5)),
        thread_bgr=tuple(float(v) for v in thread),
        fabric_bgr=tuple(float(v) for v in fabric),
        print_kind=str(rng.choice(_PRINT_KINDS, p=_PRINT_P)),
        print_bgr=tuple(float(v) for v in PRINT_BGR[int(rng.integers(len(PRINT_BGR)))]),
        print_scale_mm=float(rng.uniform(5.0, 16.0)),
        weave_mm=float(rng.uniform(0.5, 1.0)),
        loop_bgr=tuple(float(v) for v in LOOP_BGR[int(rng.integers(len(LOOP_BGR)))]),
        loop_width_mm=float(rng.uniform(2.8, 3.4)),
        loop_reach_mm=float(rng.uniform(30.0, 40.0)),
    )


def _outline_belt(params: MaskParams, box: tuple[float, float, float, float]) -> np.ndarray:
    """Points along a box in mask mm, moved to the belt by the mask's pose."""
    x0, y0, x1, y1 = box
    t = np.linspace(0.0, 1.0, 25)
    pts = np.concatenate(
        [
            np.stack([x0 + (x1 - x0) * t, np.full_like(t, y0)], 1),
            np.stack([x0 + (x1 - x0) * t, np.full_like(t, y1)], 1),
            np.stack([np.full_like(t, x0), y0 + (y1 - y0) * t], 1),
            np.stack([np.full_like(t, x1), y0 + (y1 - y0) * t], 1),
        ]
    )
    a = np.deg2rad(params.angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    local = pts - (params.width_mm / 2, params.height_mm / 2)
    return local @ rot.T + np.asarray(params.center_mm)


def _inside_px(px: np.ndarray, cal: Calibration, margin: float) -> np.ndarray:
    w, h = cal.image_size
    return (
        (px[:, 0] >= margin)
        & (px[:, 1] >= margin)
        & (px[:, 0] <= w - 1 - margin)
        & (px[:, 1] <= h - 1 - margin)
    )


def _fits(params: MaskParams, cal: Calibration) -> bool:
    """Body and loops fully inside the image, with a small margin."""
    px = cal.mm_to_px(_outline_belt(params, footprint_mm(params)))
    return bool(_inside_px(px, cal, EDGE_MARGIN_PX).all())


def _visible_fraction(params: MaskParams, cal: Calibration) -> float:
    px = cal.mm_to_px(_outline_belt(params, (0.0, 0.0, params.width_mm, params.height_mm)))
    return float(_inside_px(px, cal, 0.0).mean())


def _place(
    params: MaskParams, rng: np.random.Generator, cal: Calibration, max_angle_deg: float
) -> MaskParams:
    """Random pose with the whole mask in view; narrows the angle range if it must."""
    limit = float(max_angle_deg)
    for _ in range(12):
        for _ in range(60):
            cand = replace(
                params,
                center_mm=(float(rng.uniform(-40, 40)), float(rng.uniform(-70, 70))),
                angle_deg=float(rng.uniform(-limit, limit)),
            )
            if _fits(cand, cal):
                return cand
        limit *= 0.7
    return replace(params, center_mm=(0.0, 0.0), angle_deg=0.0)


def _place_partial(
    params: MaskParams, rng: np.random.Generator, cal: Calibration, max_angle_deg: float
) -> MaskParams:
    """A pose where 10–50 % of the body's outline lies outside the image."""
    for _ in range(2000):
        cand = replace(
            params,
            center_mm=(float(rng.uniform(-170, 170)), float(rng.uniform(-140, 140))),
            angle_deg=float(rng.uniform(-max_angle_deg, max_angle_deg)),
        )
        if 0.5 <= _visible_fraction(cand, cal) <= 0.9:
            return cand
    return replace(params, center_mm=(0.0, 120.0), angle_deg=0.0)


def _overlap(a: MaskParams, b: MaskParams) -> bool:
    def rect(p: MaskParams) -> tuple:
        x0, y0, x1, y1 = footprint_mm(p)
        c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        pose = _outline_belt(p, (c[0], c[1], c[0], c[1]))[0]
        return ((float(pose[0]), float(pose[1])), (x1 - x0 + 4, y1 - y0 + 4), p.angle_deg)

    kind, _ = cv2.rotatedRectangleIntersection(rect(a), rect(b))
    return kind != cv2.INTERSECT_NONE


def _inside(params: MaskParams, rng: np.random.Generator, margin_mm: float) -> tuple[float, float]:
    """A random point on the body at least ``margin_mm`` from its edges."""
    mx = min(margin_mm, params.width_mm / 2 - 1)
    my = min(margin_mm, params.height_mm / 2 - 1)
    return (
        float(rng.uniform(mx, params.width_mm - mx)),
        float(rng.uniform(my, params.height_mm - my)),
    )


def seam_gap(params: MaskParams, rng: np.random.Generator, side: str | None = None) -> DefectParams:
    """8–25 mm without stitches on one side (``side``, or one drawn at random), away
    from the corners."""
    top, right, bottom, left = params.seam_offsets_mm
    if side is None:
        side = str(rng.choice(SIDES))
    length = float(rng.uniform(8.0, 25.0))
    if side in ("top", "bottom"):
        lo, hi = left + length / 2 + 8, params.width_mm - right - length / 2 - 8
        x, y = float(rng.uniform(lo, hi)), (top if side == "top" else params.height_mm - bottom)
    else:
        lo, hi = top + length / 2 + 8, params.height_mm - bottom - length / 2 - 8
        x, y = (left if side == "left" else params.width_mm - right), float(rng.uniform(lo, hi))
    return DefectParams("seam_gap", x, float(y), length, {"side": side})
