"""What a simulated frame contains, as plain frozen dataclasses in millimetres.

Mask coordinates (used by every ``*_mm`` position below and by the ground truth):
origin at the body's top-left corner, x along the width (the long side), y along
the height, millimetres. On the belt the body centre sits at ``center_mm`` and the
mask's x axis is turned by ``angle_deg`` from belt +X towards belt +Y (clockwise in
the image, since the image's y axis points down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vision.spec import PrototypeSpec

#: Side names, in the order of :attr:`MaskParams.seam_offsets_mm`.
SIDES: tuple[str, ...] = ("top", "right", "bottom", "left")

#: State of one ear loop. "detached_top" means its top end came off (still sewn at the bottom).
LoopState = Literal["ok", "detached_top", "detached_bottom", "missing"]
LOOP_STATES: tuple[str, ...] = ("ok", "detached_top", "detached_bottom", "missing")

PrintKind = Literal["plain", "stripes", "dots", "check", "floral"]
PRINT_KINDS: tuple[str, ...] = ("plain", "stripes", "dots", "check", "floral")

#: Defects the simulator can put on a mask, named like the station's DEFECT_CODES.
MASK_DEFECT_KINDS: tuple[str, ...] = (
    "dimension",
    "pleats",
    "ear_loop",
    "seam_gap",
    "seam_offset",
    "stitch_length",
    "partial",
    "hole",
    "stain",
)
#: Everything :func:`vision.synth.sampling.sample_scene` can produce.
SCENE_KINDS: tuple[str, ...] = ("good", *MASK_DEFECT_KINDS, "no_mask", "multiple")

BGR = tuple[float, float, float]


@dataclass(frozen=True)
class DefectParams:
    """A local flaw drawn on the mask: ``hole``, ``stain`` or ``seam_gap``.

    ``x_mm``/``y_mm`` is the flaw's centre in mask coordinates and ``size_mm`` its
    largest extent (for a seam gap: the stitch-free length along the seam). ``extra``
    carries the kind-specific details (``side`` of a seam gap, ``shape`` of a hole:
    "hole" or "tear", ``tint`` of a stain: "oil", "ink", "coffee", …) and may be empty.
    Dimension, pleat, loop, offset and pitch defects are not listed here: they are
    just out-of-tolerance values of :class:`MaskParams` and the ground truth finds
    them by comparing with the spec.
    """

    kind: str
    x_mm: float
    y_mm: float
    size_mm: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskParams:
    """One mask: its geometry, construction and fabric, all in mm / degrees / BGR."""

    width_mm: float = 200.0
    height_mm: float = 95.0
    center_mm: tuple[float, float] = (0.0, 0.0)
    angle_deg: float = 0.0
    pleats: int = 3
    #: Seam distance from the edge per side, in :data:`SIDES` order (top, right, bottom, left).
    seam_offsets_mm: tuple[float, float, float, float] = (5.0, 5.0, 5.0, 5.0)
    stitch_length_mm: float = 2.5
    thread_width_mm: float = 0.42
    thread_bgr: BGR = (186.0, 188.0, 190.0)
    fabric_bgr: BGR = (206.0, 208.0, 210.0)
    print_kind: PrintKind = "plain"
    print_bgr: BGR = (170.0, 120.0, 90.0)
    print_scale_mm: float = 8.0
    #: Stripes only: their direction (0: across the width, bands run top to bottom;
    #: 90: bands run along the width), where they start (mm along that direction,
    #: unfolded cloth) and their width as a share of the period. None: drawn at
    #: random by the renderer, as for every sampled mask. Set to lay a stripe edge
    #: along a seam (``scripts/print_edge_set.py``).
    print_angle_deg: float | None = None
    print_phase_mm: float = 0.0
    print_duty: float | None = None
    #: Period of the visible weave (two threads), mm; finer weaves are below resolution.
    weave_mm: float = 0.7
    #: Ear loop state on the left (x = 0) and right (x = width) short sides.
    ear_loops: tuple[LoopState, LoopState] = ("ok", "ok")
    loop_bgr: BGR = (222.0, 222.0, 220.0)
    loop_width_mm: float = 3.0
    #: How far each loop reaches beyond the body's short side, mm.
    loop_reach_mm: float = 35.0
    defects: tuple[DefectParams, ...] = ()

    @property
    def seam_offset_mm(self) -> float:
        """The seam offset farthest from nominal 5 mm (a single number for summaries)."""
        return max(self.seam_offsets_mm, key=lambda v: abs(v - 5.0))

    @classmethod
    def from_spec(cls, spec: PrototypeSpec | None = None, **changes: Any) -> MaskParams:
        """A nominal mask of the prototype, with any field overridden by ``changes``."""
        spec = spec or PrototypeSpec()
        off = spec.seam.offset_mm.nominal
        n_loops = spec.ear_loops.count
        loops: tuple[LoopState, LoopState] = (
            "ok" if n_loops >= 1 else "missing",
            "ok" if n_loops >= 2 else "missing",
        )
        base: dict[str, Any] = {
            "width_mm": spec.body.width_mm.nominal,
            "height_mm": spec.body.height_mm.nominal,
            "pleats": spec.body.pleats,
            "seam_offsets_mm": (off, off, off, off),
            "stitch_length_mm": spec.seam.stitch_length_mm.nominal,
            "ear_loops": loops,
        }
        base.update(changes)
        return cls(**base)


@dataclass(frozen=True)
class LookParams:
    """Scene-wide appearance: belt, light, optics and sensor.

    Kept apart from the masks so the same mask can be shown under many looks
    (training-set variety) and a look can stay fixed over a moving-belt sequence.
    """

    #: Belt rubber brightness (0–255 before lighting) and its colour cast (BGR gains).
    belt_level: float = 38.0
    belt_tint: BGR = (1.0, 1.0, 1.0)
    #: Relative strength of the rubber's mottling and grain.
    belt_texture: float = 0.12
    #: Dust/lint specks per 100 cm² of belt.
    belt_specks: float = 6.0
    #: Seed of the belt's own pattern, so a belt stays the same belt across frames.
    belt_seed: int = 0
    #: Overall exposure gain.
    exposure: float = 1.0
    #: White balance gains applied to B, G, R.
    white_balance: BGR = (1.0, 1.0, 1.0)
    #: Direction the light comes from in the image, degrees (0 = from the right).
    light_dir_deg: float = 200.0
    #: Brightness difference across the view due to the one-sided light (0.2 = ±10 %).
    light_gradient: float = 0.15
    #: Brightness loss in the image corners from lens vignetting (0.25 = −25 %).
    vignetting: float = 0.25
    #: Strength of the mask's drop shadow on the belt (0–1).
    shadow: float = 0.45
    #: Gaussian defocus blur, pixels (sigma).
    blur_px: float = 0.7
    #: Read noise, digital numbers (sigma).
    read_noise: float = 1.6
    #: Shot noise variance per digital number of signal.
    shot_noise: float = 0.04
    #: JPEG quality of a compressed round trip, or None for a raw frame.
    jpeg_quality: int | None = None
