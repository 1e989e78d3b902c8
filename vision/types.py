"""Small dataclasses that every vision step passes along.

They carry millimetres, not pixels, wherever a person will read the value: the
station logs them, the API serves them and the supervisor compares them with the
prototype's tolerances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Verdict = Literal["accept", "reject", "no_mask", "error"]

#: The fixed defect vocabulary. Acceptance checks and central systems key on these
#: strings, so they never change meaning; new codes may be added.
DEFECT_CODES: tuple[str, ...] = (
    "dimension",  # body width or height outside tolerance
    "pleats",  # wrong pleat count
    "ear_loop",  # missing or detached ear loop
    "seam_gap",  # a stretch without stitches at least the spec's max gap
    "seam_offset",  # seam too close to or too far from the edge
    "stitch_length",  # stitch pitch outside tolerance
    "partial",  # mask touches the image border: cannot be measured
    "multiple",  # more than one mask in the frame
    "foreign",  # a foreign object (tool, hand, detached part) beside the mask
    "hole",  # classifier: hole or tear
    "stain",  # classifier: mark or stain
    "anomaly",  # classifier: unlike any good mask seen in training
    "late",  # station: decision not ready before the ejector deadline
    "error",  # station: the inspection raised or the frame was unusable
    "camera",  # station: camera unhealthy
    "model",  # station: model unhealthy
    "archive",  # station: the image archive cannot write (disk full, read-only)
)


@dataclass(frozen=True, slots=True)
class Defect:
    """One reason to reject a mask.

    Positions are in mask coordinates, millimetres from the body's top-left corner
    (x along the width, y along the height), so a supervisor can find the defect on
    the mask in hand. ``value`` is what was measured and ``limit`` the tolerance it
    broke, as text (``"95 ± 3"``), so the log reads without the spec at hand.
    """

    code: str
    message: str
    x_mm: float | None = None
    y_mm: float | None = None
    w_mm: float | None = None
    h_mm: float | None = None
    value: float | None = None
    limit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the empty fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(slots=True)
class Measurements:
    """What was measured on the mask body; None where the step could not measure."""

    width_mm: float | None = None
    height_mm: float | None = None
    angle_deg: float | None = None
    center_mm: tuple[float, float] | None = None
    pleats: int | None = None
    ear_loops: int | None = None
    seam_offset_mm: float | None = None
    stitch_length_mm: float | None = None
    max_gap_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["center_mm"] is not None:
            d["center_mm"] = list(d["center_mm"])
        return d


@dataclass(slots=True)
class InspectionResult:
    """The outcome of inspecting one frame.

    ``overlay`` is the annotated image for supervisors (BGR uint8) or None when the
    caller asked for none; ``stage_ms`` keeps per-stage latency so slow steps show
    in the log and the benchmarks. When the pipeline deferred the overlay (the
    station: it is needed only for rejects, samples and the live view, never for
    the verdict), ``draw_overlay`` draws it and :meth:`annotated` returns it.
    """

    verdict: Verdict
    defects: list[Defect] = field(default_factory=list)
    measurements: Measurements = field(default_factory=Measurements)
    stage_ms: dict[str, float] = field(default_factory=dict)
    message: str = ""
    overlay: np.ndarray | None = None
    draw_overlay: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def annotated(self) -> np.ndarray | None:
        """The overlay, drawn now (once) if the pipeline deferred it.

        Safe from any thread: drawing only reads the frame and the measurements, and
        two racing calls merely draw the same image twice.
        """
        draw = self.draw_overlay
        if self.overlay is None and draw is not None:
            self.overlay = draw()
            self.draw_overlay = None
        return self.overlay

    @property
    def defect_codes(self) -> list[str]:
        return [d.code for d in self.defects]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no images)."""
        return {
            "verdict": self.verdict,
            "defects": [d.to_dict() for d in self.defects],
            "message": self.message,
            **self.measurements.to_dict(),
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
        }
