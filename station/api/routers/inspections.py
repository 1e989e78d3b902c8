"""The inspection log, page by page; one inspection by id, with its images.

Ids are parsed as UUIDs before anything else, so no request text ever reaches a
file path: images are found from the paths the station logged, inside its archive.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from station.store import MAX_PAGE_LIMIT, QCStore

from ..dependencies import BatchQuery, ImagesDep, StoreDep, TimeWindowDep
from ..images import THUMBNAIL_WIDTHS_PX, ImageResolver
from ..schemas import Inspection, InspectionPage

router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])

_IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
_PREFIX = "/api/v1/inspections"


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A log row as the API shows it: image URLs by id instead of archive paths."""
    out = dict(record)
    annotated = out.pop("image_annotated_path", None)
    raw = out.pop("image_raw_path", None)
    out["image_url"] = f"{_PREFIX}/{record['id']}/image" if annotated else None
    out["raw_url"] = f"{_PREFIX}/{record['id']}/raw" if raw else None
    return out


def find(store: QCStore, inspection_id: uuid.UUID) -> dict[str, Any]:
    """The inspection or 404."""
    record = store.get(str(inspection_id))
    if record is None:
        raise HTTPException(status_code=404, detail=f"no inspection {inspection_id}")
    return record


@router.get("", response_model=InspectionPage, responses={400: {"description": "Bad filter."}})
def list_inspections(
    store: StoreDep,
    window: TimeWindowDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^\d{1,19}$", description="next_cursor of the previous page.")
    ] = None,
    verdict: Literal["accept", "reject", "no_mask", "error"] | None = None,
    defect: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$")] = None,
    batch: BatchQuery = None,
) -> dict[str, Any]:
    """Newest first; follow ``next_cursor`` until it is null to read every match once."""
    try:
        page = store.list_inspections(
            limit=limit,
            cursor=cursor,
            verdict=verdict,
            defect=defect,
            since=window.since,
            until=window.until,
            batch=batch,
        )
    except OverflowError as exc:  # 19 digits may exceed SQLite's 64-bit INTEGER
        raise HTTPException(status_code=400, detail=f"cursor out of range: {cursor}") from exc
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return {"items": [public(r) for r in page.items], "next_cursor": page.next_cursor}


@router.get("/{inspection_id}", response_model=Inspection, responses={404: {}})
def get_inspection(store: StoreDep, inspection_id: uuid.UUID) -> dict[str, Any]:
    """One inspection, with the supervisor's label in force if there is one."""
    record = public(find(store, inspection_id))
    label = store.latest_label(record["id"])
    record["label"] = None if label is None else label.to_dict()
    return record


WidthQuery = Annotated[
    int | None,
    Query(description=f"Thumbnail width, one of {list(THUMBNAIL_WIDTHS_PX)} px (never enlarged)."),
]


async def _image(
    store: QCStore,
    images: ImageResolver,
    inspection_id: uuid.UUID,
    kind: Literal["annotated", "raw"],
    width_px: int | None,
) -> Response:
    if width_px is not None and width_px not in THUMBNAIL_WIDTHS_PX:
        raise HTTPException(
            status_code=422, detail=f"width_px must be one of {list(THUMBNAIL_WIDTHS_PX)}"
        )
    record = await run_in_threadpool(find, store, inspection_id)
    path = await run_in_threadpool(images.path, record, kind)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no {kind} image kept for {inspection_id}")
    if width_px is None:
        return FileResponse(path, media_type="image/jpeg", headers=_IMAGE_HEADERS)
    data = await run_in_threadpool(images.thumbnail, path, (record["id"], kind), width_px)
    return Response(data, media_type="image/jpeg", headers=_IMAGE_HEADERS)


_IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG."},
    404: {"description": "Unknown inspection, or no image kept (quota, accepted mask)."},
}


@router.get("/{inspection_id}/image", response_class=Response, responses=_IMAGE_RESPONSES)
async def get_annotated_image(
    store: StoreDep, images: ImagesDep, inspection_id: uuid.UUID, width_px: WidthQuery = None
) -> Response:
    """The annotated JPEG (the raw frame when no overlay was drawn)."""
    return await _image(store, images, inspection_id, "annotated", width_px)


@router.get("/{inspection_id}/raw", response_class=Response, responses=_IMAGE_RESPONSES)
async def get_raw_image(
    store: StoreDep, images: ImagesDep, inspection_id: uuid.UUID, width_px: WidthQuery = None
) -> Response:
    """The frame as the camera captured it (what the classifier is trained on)."""
    return await _image(store, images, inspection_id, "raw", width_px)
