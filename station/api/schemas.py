"""Response models: they document the API at ``/docs`` and pin its JSON shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Health(BaseModel):
    ok: bool = Field(description="True when the API can read the QC log.")
    state: str = Field(description="The station state, 'offline' when none is attached.")
    detail: str | None = None


class Counts(BaseModel):
    """The counters; with ``group_by`` the same figures also come as a ``series``."""

    model_config = ConfigDict(extra="allow")

    total: int = Field(description="Every inspection, whatever its verdict.")
    accepted: int
    rejected: int = Field(description="Verdict reject plus error (an error ejects the mask).")
    no_mask: int
    errors: int = Field(description="Verdict error alone (already included in rejected).")
    by_defect: dict[str, int] = Field(
        description="Masks carrying each defect code at least once, most frequent first."
    )
    last_seq: int = Field(
        description="Log position these counts include; live events with a greater seq are new."
    )
    group_by: str | None = Field(default=None, description="hour, shift, batch or defect.")
    series: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "hour/shift/batch: {key, start_utc…, total, accepted, rejected, no_mask, errors}; "
            "defect (Pareto): {key, count, pct, cumulative_pct}."
        ),
    )


class BatchOut(BaseModel):
    id: str
    workshop: str
    order_number: str | None
    spec_name: str | None
    started_utc: str
    closed_utc: str | None


class StationStatus(BaseModel):
    """The station runtime's status; extra keys pass through unchanged."""

    model_config = ConfigDict(extra="allow")

    state: str = Field(description="'offline' when no station runtime is attached.")
    faults: list[dict[str, str]] = Field(
        default_factory=list, description="[{code, severity: fault|warning}], faults first."
    )
    batch: BatchOut | None = Field(default=None, description="The open batch in the QC log.")


class LabelOut(BaseModel):
    inspection_id: str
    label: str = Field(description="'good' or a defect code.")
    verdict_was: str
    defects_was: list[str]
    labelled_by: str
    ts_utc: str
    image: str | None = Field(description="Path inside the training set, e.g. hole/<id>.jpg.")
    note: str
    seq: int | None


class Inspection(BaseModel):
    id: str
    seq: int = Field(description="Monotonic log position; pagination key.")
    ts_utc: str = Field(description="Capture time, UTC, ISO-8601 with milliseconds.")
    t0_mono_s: float | None
    station_id: str
    workshop: str
    batch_id: str | None
    verdict: str
    defects: list[dict[str, Any]]
    measurements: dict[str, Any]
    stage_ms: dict[str, float]
    latency_ms: float | None
    width_mm: float | None
    height_mm: float | None
    pleats: int | None
    ear_loops: int | None
    stitch_length_mm: float | None
    spec_version: str | None
    model_version: str | None
    calibration_version: str | None
    message: str
    image_url: str | None = Field(
        description="The annotated JPEG (served by id; add ?width_px= for a thumbnail)."
    )
    raw_url: str | None = Field(description="The frame as captured, when it was archived.")
    label: LabelOut | None = Field(
        default=None, description="The supervisor's label in force (detail only)."
    )


class InspectionPage(BaseModel):
    items: list[Inspection]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class Languages(BaseModel):
    default: str
    languages: list[str]


class BatchStart(BaseModel):
    """A new production batch; the station switches to its spec without restarting."""

    model_config = ConfigDict(extra="forbid")

    order_number: str | None = Field(
        default=None, max_length=64, pattern=r"^[\w .:/#-]*$", description="Production order."
    )
    spec_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="A prototype of GET /api/v1/specs; default: the one in force.",
    )
    workshop: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Default: the station's workshop.",
    )
    close_previous: bool = Field(
        default=False, description="Close the open batch first instead of answering 409."
    )


class BatchList(BaseModel):
    items: list[BatchOut]
    current: BatchOut | None = Field(description="The open batch, if any.")


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(
        pattern=r"^[a-z_]{1,32}$", description="'good' or a visible defect code (see /docs)."
    )
    note: str = Field(default="", max_length=500, description="Free text for the audit trail.")


class LabelResult(BaseModel):
    label: LabelOut
    agrees: bool = Field(description="True when the label confirms the station's decision.")
    training_image: str = Field(description="Where the frame was filed in the training set.")


class MeasureSpc(BaseModel):
    nominal: float
    lsl: float
    usl: float
    n: int
    mean: float | None
    sigma: float | None = Field(description="Sample standard deviation (n - 1), in mm.")
    cp: float | None
    cpk: float | None
    ucl: float | None = Field(description="mean + 3 sigma.")
    lcl: float | None = Field(description="mean - 3 sigma.")
    out_of_tolerance: int
    points: list[dict[str, Any]] = Field(description="Latest masks: {seq, id, ts_utc, value}.")


class Spc(BaseModel):
    batch: str | None = Field(description="The batch analysed; null for a time window.")
    since: str | None
    until: str | None
    spec: str = Field(description="name@version of the spec giving the tolerances.")
    width_mm: MeasureSpc
    height_mm: MeasureSpc


class SpecOut(BaseModel):
    name: str = Field(description="Recipe name, as POST /api/v1/batches takes it.")
    label: str = Field(description="name@version, as inspections record it.")
    version: str
    description: str
    width_mm: dict[str, float] = Field(description="{nominal, tol, lo, hi}")
    height_mm: dict[str, float]
    pleats: int
    ear_loops: int
    stitch_length_mm: dict[str, float]
    current: bool = Field(description="The spec the station measures against now.")
