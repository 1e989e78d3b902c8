"""Turn measurements into a verdict against the prototype spec.

Kept apart from measuring so the rules read in one place and so the station can
add its own reasons (late, camera, model) through the same function.
"""

from __future__ import annotations

from vision.spec import PrototypeSpec, Toleranced
from vision.types import Defect, Measurements, Verdict


def _out_of(
    code: str, label: str, value: float | None, tol: Toleranced, unit: str = " mm"
) -> Defect | None:
    if value is None or tol.contains(value):
        return None
    return Defect(
        code=code,
        message=f"{label} {value:.1f}{unit} hors tolérance {tol.describe()}{unit}",
        value=round(float(value), 3),
        limit=tol.describe(),
    )


def dimension_defects(m: Measurements, spec: PrototypeSpec) -> list[Defect]:
    """Body width and height against the spec's tolerances."""
    found = [
        _out_of("dimension", "largeur", m.width_mm, spec.body.width_mm),
        _out_of("dimension", "hauteur", m.height_mm, spec.body.height_mm),
    ]
    return [d for d in found if d is not None]


def decide(defects: list[Defect]) -> Verdict:
    """Any defect rejects the mask: there is no "minor" class on this line."""
    return "reject" if defects else "accept"
