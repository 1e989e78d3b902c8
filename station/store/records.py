"""What one QC-log row holds, and how an :class:`InspectionResult` becomes one.

The record is plain data so the inspection loop can build it on its own thread and
hand it to :meth:`QCStore.record`; everything is validated here, before the
transaction, so a bad value fails loudly instead of half-writing a row.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .timeutil import Timestamp, to_utc_iso, utc_now_iso

if TYPE_CHECKING:
    from vision.types import InspectionResult

#: The verdicts the log accepts (same vocabulary as ``vision.types.Verdict``).
VERDICTS: tuple[str, ...] = ("accept", "reject", "no_mask", "error")

#: Measurements copied into their own columns so SPC queries need no JSON parsing.
DENORMALISED_MEASUREMENTS: tuple[str, ...] = (
    "width_mm",
    "height_mm",
    "pleats",
    "ear_loops",
    "stitch_length_mm",
)

#: A longer gap between capture and logging means t0 came from another clock.
_MAX_PLAUSIBLE_AGE_S = 24 * 3600.0


def new_inspection_id() -> str:
    """A fresh public id: random, so ids from several stations never collide."""
    return str(uuid.uuid4())


def normalise_uuid(value: str | uuid.UUID) -> str:
    """The canonical lower-case hyphenated form, or ValueError for anything else."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or len(value) != 36:
        raise ValueError(f"not a UUID: {value!r}")
    return str(uuid.UUID(value))


def json_ready(value: Any) -> Any:
    """A copy safe for strict JSON: numpy scalars unwrapped, NaN/inf become null.

    Browsers and Starlette reject ``NaN`` in JSON, and a measurement step that could
    not measure may produce one; null already means "not measured" in the log.
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):
        return json_ready(value.tolist())  # numpy scalar or array → Python values
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _dumps(value: Any) -> str:
    return json.dumps(json_ready(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class InspectionRecord:
    """One inspection as the log stores it.

    ``ts_utc`` is when the frame was captured (wall clock, UTC); ``t0_mono_s`` the same
    instant on ``time.monotonic()``, kept so latencies can be recomputed exactly.
    ``latency_ms`` is capture-to-decision. Image paths are where the station saved the
    frames, relative to its image directory or absolute; the log never opens them.
    """

    verdict: str
    station_id: str
    workshop: str
    id: str = field(default_factory=new_inspection_id)
    ts_utc: Timestamp = field(default_factory=utc_now_iso)
    t0_mono_s: float | None = None
    batch_id: str | None = None
    defects: list[dict[str, Any]] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None
    spec_version: str | None = None
    model_version: str | None = None
    calibration_version: str | None = None
    image_raw_path: str | None = None
    image_annotated_path: str | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")
        if not self.station_id or not self.workshop:
            raise ValueError("station_id and workshop must be non-empty")
        for defect in self.defects:
            if not isinstance(defect, dict) or not isinstance(defect.get("code"), str):
                raise ValueError(f"each defect needs a string 'code': {defect!r}")
        object.__setattr__(self, "id", normalise_uuid(self.id))
        object.__setattr__(self, "ts_utc", to_utc_iso(self.ts_utc, "ts_utc"))
        for name in ("image_raw_path", "image_annotated_path"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))

    @property
    def defect_codes(self) -> list[str]:
        """Distinct defect codes, sorted: what ``inspection_defects`` will hold."""
        return sorted({d["code"] for d in self.defects})

    @classmethod
    def from_result(
        cls,
        result: InspectionResult,
        *,
        station_id: str,
        workshop: str,
        batch_id: str | None = None,
        spec_version: str | None = None,
        model_version: str | None = None,
        calibration_version: str | None = None,
        t0_mono_s: float | None = None,
        image_raw_path: str | Path | None = None,
        image_annotated_path: str | Path | None = None,
        latency_ms: float | None = None,
        ts_utc: Timestamp | None = None,
        inspection_id: str | None = None,
    ) -> InspectionRecord:
        """Build the record for a vision result.

        ``t0_mono_s`` must come from ``time.monotonic()`` in this process, taken when
        the frame was captured. With it, and unless given, ``latency_ms`` is the time
        from capture to now and ``ts_utc`` the wall-clock capture time; without it the
        latency is the sum of the vision stages and ``ts_utc`` is now.
        """
        now_mono_s = time.monotonic()
        now_utc = datetime.now(UTC)
        age_s: float | None = None
        if t0_mono_s is not None:
            age_s = now_mono_s - t0_mono_s
            if not 0.0 <= age_s <= _MAX_PLAUSIBLE_AGE_S:
                raise ValueError(
                    f"t0_mono_s={t0_mono_s!r} is {age_s:.3f} s from time.monotonic(): "
                    "pass the capture instant from time.monotonic() of this process"
                )
        if latency_ms is None:
            latency_ms = age_s * 1000.0 if age_s is not None else sum(result.stage_ms.values())
        if ts_utc is None:
            ts_utc = now_utc - timedelta(seconds=age_s) if age_s is not None else now_utc
        return cls(
            verdict=result.verdict,
            station_id=station_id,
            workshop=workshop,
            id=inspection_id or new_inspection_id(),
            ts_utc=ts_utc,
            t0_mono_s=t0_mono_s,
            batch_id=batch_id,
            defects=[d.to_dict() for d in result.defects],
            measurements=result.measurements.to_dict(),
            stage_ms=dict(result.stage_ms),
            latency_ms=latency_ms,
            spec_version=spec_version,
            model_version=model_version,
            calibration_version=calibration_version,
            image_raw_path=None if image_raw_path is None else str(image_raw_path),
            image_annotated_path=None
            if image_annotated_path is None
            else str(image_annotated_path),
            message=result.message,
        )

    def to_row(self) -> dict[str, Any]:
        """Named parameters for the ``inspections`` INSERT."""
        measurements = json_ready(self.measurements)
        row: dict[str, Any] = {
            "id": self.id,
            "ts_utc": self.ts_utc,
            "t0_mono_s": json_ready(self.t0_mono_s),
            "station_id": self.station_id,
            "workshop": self.workshop,
            "batch_id": self.batch_id,
            "verdict": self.verdict,
            "defects_json": _dumps(self.defects),
            "measurements_json": _dumps(measurements),
            "stage_ms_json": _dumps(self.stage_ms),
            "latency_ms": json_ready(self.latency_ms),
            "spec_version": self.spec_version,
            "model_version": self.model_version,
            "calibration_version": self.calibration_version,
            "image_raw_path": self.image_raw_path,
            "image_annotated_path": self.image_annotated_path,
            "message": self.message,
        }
        for name in DENORMALISED_MEASUREMENTS:
            row[name] = measurements.get(name)
        return row


#: Columns returned for one inspection, in API order.
INSPECTION_COLUMNS: tuple[str, ...] = (
    "id",
    "seq",
    "ts_utc",
    "t0_mono_s",
    "station_id",
    "workshop",
    "batch_id",
    "verdict",
    "defects_json",
    "measurements_json",
    "stage_ms_json",
    "latency_ms",
    *DENORMALISED_MEASUREMENTS,
    "spec_version",
    "model_version",
    "calibration_version",
    "image_raw_path",
    "image_annotated_path",
    "message",
)


def inspection_row_to_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A stored row as a JSON-ready dict; ``*_json`` columns are decoded and renamed."""
    out: dict[str, Any] = {}
    for key in INSPECTION_COLUMNS:
        value = row[key]
        if key.endswith("_json"):
            out[key.removesuffix("_json")] = json.loads(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Batch:
    """A production batch (lot): one order, one spec, from start to close."""

    id: str
    workshop: str
    order_number: str | None
    spec_name: str | None
    started_utc: str
    closed_utc: str | None

    @property
    def is_open(self) -> bool:
        return self.closed_utc is None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Batch:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
