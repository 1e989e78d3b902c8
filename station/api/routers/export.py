"""The export download: the same files as ``qc-station export``, streamed over HTTP.

Rows are read in chunks and streamed as they are written, so a year of log never sits
in memory. Parameters are validated before the first byte goes out: once streaming
has started a failure can only cut the file short, never turn into an error status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from station.export.files import (
    MEDIA_TYPES,
    CsvOptions,
    ExportDependencyError,
    export_records,
    iter_export_bytes,
    require_parquet,
)
from station.export.schema import json_schema

from ..dependencies import BatchQuery, ConfigDep, StoreDep, TimeWindowDep

router = APIRouter(prefix="/api/v1/export", tags=["export"])

_EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def _station_id(config: Any) -> str:
    station = getattr(config, "station", None)
    return str(getattr(station, "station_id", "station"))


@router.get(
    "",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The export file (attachment)."},
        400: {"description": "Bad timestamp or CSV option."},
        501: {"description": "Parquet requested but pyarrow is not installed."},
    },
)
def download_export(
    store: StoreDep,
    config: ConfigDep,
    window: TimeWindowDep,
    batch: BatchQuery = None,
    format: Annotated[
        Literal["csv", "jsonl", "parquet"], Query(description="File format.")
    ] = "csv",
    delimiter: Annotated[
        str, Query(min_length=1, max_length=3, description="CSV separator; ';' for French Excel.")
    ] = ",",
    decimal_comma: Annotated[bool, Query(description="CSV numbers as 12,5.")] = False,
    bom: Annotated[bool, Query(description="Start CSV with a UTF-8 BOM (Excel).")] = True,
) -> StreamingResponse:
    """Inspections in ``[since, until)`` (optionally one batch), oldest first."""
    try:
        options = CsvOptions(
            delimiter="\t" if delimiter.lower() in ("tab", "\\t") else delimiter,
            decimal_comma=decimal_comma,
            bom=bom,
        )
        if format == "parquet":  # fail now (501) rather than mid-stream
            require_parquet()
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    except ExportDependencyError as exc:
        raise HTTPException(status_code=501, detail=str(exc)) from exc
    records = export_records(store, since=window.since, until=window.until, batch=batch)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"qc-{_station_id(config)}-{stamp}.{_EXTENSIONS[format]}"
    return StreamingResponse(
        iter_export_bytes(records, format, options),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/schema", responses={200: {"description": "JSON Schema of one record."}})
def export_schema() -> dict[str, Any]:
    """The versioned JSON Schema every export format and sink follows."""
    return json_schema()
