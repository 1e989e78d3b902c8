"""The one export record: what files, MQTT, HTTP and the central database all carry.

The fields are declared once, here; the versioned JSON Schema in ``docs/schema/`` is
generated from them (a test keeps the file in step), and every format encodes the
same record. Versioning: a new optional field is a minor bump (``1.1``); renaming,
removing or retyping a field is a major bump and a new schema file, because the
central consumer and workshop spreadsheets key on these names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Version carried in every record (``schema_version``).
SCHEMA_VERSION = "1.0"
#: Major version: the JSON Schema file is ``docs/schema/qc-inspection-v<major>.json``.
SCHEMA_MAJOR = SCHEMA_VERSION.split(".")[0]
SCHEMA_FILENAME = f"qc-inspection-v{SCHEMA_MAJOR}.json"
SCHEMA_ID = f"urn:qc-station:schema:qc-inspection:{SCHEMA_MAJOR}"

VERDICT_VALUES: tuple[str, ...] = ("accept", "reject", "no_mask", "error")


@dataclass(frozen=True, slots=True)
class ExportField:
    """One column of the export.

    ``kind`` is the JSON type: ``string``, ``integer``, ``number``, ``array`` (of
    strings) or ``json`` (a nested structure). Flat formats write arrays joined with
    ``|`` (CSV) or as a list (Parquet), and nested structures as JSON text.
    """

    name: str
    kind: str
    nullable: bool
    description: str
    fmt: str | None = None


FIELDS: tuple[ExportField, ...] = (
    ExportField("schema_version", "string", False, "Version of this schema, e.g. 1.0."),
    ExportField("id", "string", False, "Inspection UUID (v4): the deduplication key.", "uuid"),
    ExportField(
        "seq",
        "integer",
        False,
        "Per-station sequence number, strictly increasing in logging order; "
        "a gap means an inspection has not arrived (yet).",
    ),
    ExportField(
        "ts_utc",
        "string",
        False,
        "Capture time, UTC, YYYY-MM-DDTHH:MM:SS.mmmZ.",
        "date-time",
    ),
    ExportField("station_id", "string", False, "Station that inspected the mask."),
    ExportField("workshop", "string", False, "Workshop the station belongs to."),
    ExportField("batch_id", "string", True, "Production batch (lot), null outside a batch."),
    ExportField("verdict", "string", False, "accept | reject | no_mask | error (error = ejected)."),
    ExportField("defect_codes", "array", False, "Distinct defect codes, sorted."),
    ExportField("width_mm", "number", True, "Measured body width in millimetres."),
    ExportField("height_mm", "number", True, "Measured body height in millimetres."),
    ExportField("pleats", "integer", True, "Number of pleats counted."),
    ExportField("ear_loops", "integer", True, "Number of ear loops found."),
    ExportField("stitch_length_mm", "number", True, "Median stitch length in millimetres."),
    ExportField("latency_ms", "number", True, "Capture-to-decision time in milliseconds."),
    ExportField("spec_version", "string", True, "Prototype spec label the mask was judged on."),
    ExportField("model_version", "string", True, "Defect classifier version, null if none."),
    ExportField("calibration_version", "string", True, "Camera calibration version."),
    ExportField("message", "string", False, "Human-readable note from the pipeline."),
    ExportField("defects", "json", False, "Defect details: list of {code, message, ...}."),
    ExportField("measurements", "json", False, "All measurements (units in key names)."),
    ExportField("stage_ms", "json", False, "Per-stage pipeline time in milliseconds."),
    ExportField("image_raw_path", "string", True, "Raw image path on the station, if kept."),
    ExportField(
        "image_annotated_path", "string", True, "Annotated image path on the station, if kept."
    ),
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)


def to_export_record(row: dict[str, Any]) -> dict[str, Any]:
    """A QC-log row (as :func:`inspection_row_to_dict` returns it) as an export record.

    Keys come out in :data:`FIELD_NAMES` order, so every format lists them alike.
    """
    defects = row.get("defects") or []
    return {
        "schema_version": SCHEMA_VERSION,
        "id": row["id"],
        "seq": int(row["seq"]),
        "ts_utc": row["ts_utc"],
        "station_id": row["station_id"],
        "workshop": row["workshop"],
        "batch_id": row.get("batch_id"),
        "verdict": row["verdict"],
        "defect_codes": sorted({str(d["code"]) for d in defects if "code" in d}),
        "width_mm": row.get("width_mm"),
        "height_mm": row.get("height_mm"),
        "pleats": row.get("pleats"),
        "ear_loops": row.get("ear_loops"),
        "stitch_length_mm": row.get("stitch_length_mm"),
        "latency_ms": row.get("latency_ms"),
        "spec_version": row.get("spec_version"),
        "model_version": row.get("model_version"),
        "calibration_version": row.get("calibration_version"),
        "message": row.get("message") or "",
        "defects": defects,
        "measurements": row.get("measurements") or {},
        "stage_ms": row.get("stage_ms") or {},
        "image_raw_path": row.get("image_raw_path"),
        "image_annotated_path": row.get("image_annotated_path"),
    }


def dumps_record(record: dict[str, Any]) -> str:
    """Compact, strict JSON (UTF-8 kept readable; NaN already turned into null)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _property(f: ExportField) -> dict[str, Any]:
    if f.kind == "array":
        prop: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    elif f.name == "defects":
        prop = {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string"}},
            },
        }
    elif f.kind == "json":
        prop = {"type": "object"}
    else:
        prop = {"type": f.kind}
    if f.fmt == "uuid":
        prop["pattern"] = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    elif f.fmt == "date-time":
        prop["pattern"] = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
    if f.name == "verdict":
        prop["enum"] = list(VERDICT_VALUES)
    if f.name == "schema_version":
        prop["pattern"] = rf"^{SCHEMA_MAJOR}\.\d+$"
    if f.nullable:
        prop["type"] = [prop["type"], "null"]
    prop["description"] = f.description
    return prop


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one record; ``docs/schema/`` holds it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"QC station inspection record, schema {SCHEMA_VERSION}",
        "description": (
            "One inspection of one mask, as exported to files (CSV, JSONL, Parquet), "
            "published on MQTT (<prefix>/<workshop>/<station>/inspections), pushed over "
            "HTTP and stored centrally. Deduplicate on id; order per station by seq. "
            "CSV joins defect_codes with '|' and writes objects as JSON text."
        ),
        "type": "object",
        "required": list(FIELD_NAMES),
        "additionalProperties": True,
        "properties": {f.name: _property(f) for f in FIELDS},
    }


def json_schema_text() -> str:
    """The schema file's exact content (what ``docs/schema/`` must hold)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
