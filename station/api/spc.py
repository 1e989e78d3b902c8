"""Statistical process control of body width and height, against the prototype spec.

The supervisor wants to know whether the line drifts *before* masks fall out of
tolerance: the control chart shows each measured mask against the tolerance lines,
and Cp/Cpk say how comfortably the batch fits inside them.

Definitions (one value per mask, no subgroups):

* ``sigma`` is the sample standard deviation (n − 1);
* ``cp = (USL − LSL) / (6 σ)``, ``cpk = min(USL − mean, mean − LSL) / (3 σ)``;
* control limits are ``mean ± 3 σ``.

With σ from all the batch's masks these are, strictly, Pp/Ppk; on a line of single
masks that is the figure supervisors can act on, and it is what the page shows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from station.config import ConfigError, load_spec
from station.recipes import available_specs, load_recipe
from vision.spec import PrototypeSpec, Toleranced

log = logging.getLogger(__name__)

MEASURES: tuple[str, ...] = ("width_mm", "height_mm")


def capability(values: list[float], tolerance: Toleranced) -> dict[str, Any]:
    """Mean, σ, Cp, Cpk and control limits of ``values`` against ``tolerance``.

    Figures that need a spread (σ, Cp, Cpk, limits) are None below two values or when
    every value is identical (an infinite Cp helps no one).
    """
    lsl, usl = tolerance.lo, tolerance.hi
    n = len(values)
    mean = fmean(values) if n else None
    sigma = stdev(values) if n >= 2 else None
    spread = sigma is not None and sigma > 0
    cp = (usl - lsl) / (6 * sigma) if spread else None
    cpk = min(usl - mean, mean - lsl) / (3 * sigma) if spread and mean is not None else None
    return {
        "nominal": tolerance.nominal,
        "lsl": lsl,
        "usl": usl,
        "n": n,
        "mean": mean,
        "sigma": sigma,
        "cp": cp,
        "cpk": cpk,
        "ucl": mean + 3 * sigma if spread and mean is not None else None,
        "lcl": mean - 3 * sigma if spread and mean is not None else None,
        "out_of_tolerance": sum(1 for v in values if not lsl <= v <= usl),
    }


def spc_report(
    rows: list[dict[str, Any]], spec: PrototypeSpec, max_points: int
) -> dict[str, dict[str, Any]]:
    """Per measure: capability over every row, plus the latest ``max_points`` points."""
    report: dict[str, dict[str, Any]] = {}
    for measure in MEASURES:
        tolerance: Toleranced = getattr(spec.body, measure)
        measured = [r for r in rows if r.get(measure) is not None]
        stats = capability([float(r[measure]) for r in measured], tolerance)
        stats["points"] = [
            {"seq": r["seq"], "id": r["id"], "ts_utc": r["ts_utc"], "value": float(r[measure])}
            for r in measured[-max_points:]
        ]
        report[measure] = stats
    return report


def list_specs() -> list[tuple[str, PrototypeSpec]]:
    """Every recipe a batch may choose, as (name, spec); unreadable files are logged."""
    specs = []
    for name in available_specs():
        try:
            specs.append((name, load_recipe(name)))
        except (ConfigError, OSError, ValueError) as exc:
            log.error("prototype spec %r is unusable: %s", name, exc)
    return specs


def find_spec(name: str | None, station: Any | None, config: Any | None) -> PrototypeSpec:
    """The spec to judge a batch by: the station's own if it matches ``name``, else the
    recipe of that name, else the configured one, else the default prototype."""
    current: PrototypeSpec | None = getattr(station, "spec", None)
    if current is None:  # the runtime keeps it on its inspection context
        ctx = getattr(getattr(station, "station", None), "ctx", None)
        current = getattr(ctx, "spec", None)
    if isinstance(current, PrototypeSpec) and (name is None or current.spec.name == name):
        return current
    if name is not None:
        try:
            return load_recipe(name)
        except (ConfigError, OSError, ValueError) as exc:
            log.warning("spec %r of a batch is not available: %s", name, exc)
    spec_path = getattr(getattr(config, "inspection", None), "spec_path", None)
    if spec_path is not None:
        try:
            return load_spec(Path(spec_path))
        except (ConfigError, OSError) as exc:
            log.error("configured spec %s is unusable: %s", spec_path, exc)
    return current if isinstance(current, PrototypeSpec) else PrototypeSpec()


def spec_name_of(spec_version: str | None) -> str | None:
    """``resilience-adult`` from a logged ``resilience-adult@2020.1``."""
    if not spec_version:
        return None
    return spec_version.split("@", 1)[0] or None
