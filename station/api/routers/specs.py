"""The prototype specs a batch can be started with, and their tolerances."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vision.spec import PrototypeSpec, Toleranced

from ..dependencies import ConfigDep, StationDep
from ..schemas import SpecOut
from ..spc import find_spec, list_specs

router = APIRouter(prefix="/api/v1/specs", tags=["specs"])


def _tol(t: Toleranced) -> dict[str, float]:
    return {"nominal": t.nominal, "tol": t.tol, "lo": t.lo, "hi": t.hi}


def spec_out(name: str, spec: PrototypeSpec, current: PrototypeSpec) -> dict[str, Any]:
    return {
        "name": name,
        "label": spec.label,
        "version": spec.spec.version,
        "description": spec.spec.description,
        "width_mm": _tol(spec.body.width_mm),
        "height_mm": _tol(spec.body.height_mm),
        "pleats": spec.body.pleats,
        "ear_loops": spec.ear_loops.count,
        "stitch_length_mm": _tol(spec.seam.stitch_length_mm),
        "current": spec.label == current.label,
    }


@router.get("", response_model=list[SpecOut])
def get_specs(station: StationDep, config: ConfigDep) -> list[dict[str, Any]]:
    """Recipes a batch may choose (``firmware_config/prototypes``) and the one in force.

    ``name`` is what ``POST /api/v1/batches`` takes; ``label`` (name@version) is what
    each inspection's ``spec_version`` records.
    """
    current = find_spec(None, station, config)
    specs = list_specs()
    if all(spec.label != current.label for _, spec in specs):
        specs.insert(0, (current.spec.name, current))
    return [spec_out(name, spec, current) for name, spec in specs]
