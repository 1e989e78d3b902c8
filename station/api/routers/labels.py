"""A supervisor confirms or corrects an inspection: the frame becomes training data."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from station.labels import GOOD, TRAINING_LABELS

from ..dependencies import BusDep, ImagesDep, StoreDep, TrainingDep
from ..schemas import LabelIn, LabelResult
from ..security import SupervisorDep
from .inspections import find

router = APIRouter(tags=["labels"])


def agrees(record: dict[str, Any], label: str) -> bool:
    """Whether ``label`` confirms what the station decided for ``record``."""
    codes = {d["code"] for d in record.get("defects", [])}
    if label == GOOD:
        return record["verdict"] == "accept"
    return record["verdict"] == "reject" and label in codes


@router.get("/api/v1/labels")
def list_labels() -> dict[str, list[str]]:
    """What an image may be labelled: ``good`` or a visible defect code."""
    return {"labels": list(TRAINING_LABELS)}


@router.post(
    "/api/v1/inspections/{inspection_id}/label",
    status_code=201,
    response_model=LabelResult,
    dependencies=[SupervisorDep],
    responses={
        401: {"description": "No or wrong supervisor token."},
        404: {"description": "Unknown inspection."},
        409: {"description": "No archived frame: this inspection cannot become training data."},
        413: {"description": "Body too large."},
        503: {"description": "No data directory to write training data to."},
    },
)
async def label_inspection(
    inspection_id: uuid.UUID,
    body: LabelIn,
    store: StoreDep,
    images: ImagesDep,
    training: TrainingDep,
    bus: BusDep,
) -> dict[str, Any]:
    """Label the inspection ``good`` or with a defect code (supervisor token required).

    The raw frame is filed as ``<data_dir>/training/real/<label>/<id>.jpg`` and a line
    appended to ``labels.jsonl`` there; relabelling moves the file and appends a line
    (the last one wins). The label is also kept in the QC log (``labels`` table).
    """
    if body.label not in TRAINING_LABELS:
        raise HTTPException(status_code=422, detail=f"label must be one of {list(TRAINING_LABELS)}")
    if training is None:
        raise HTTPException(status_code=503, detail="no data directory for training data")
    record = await run_in_threadpool(find, store, inspection_id)
    raw = await run_in_threadpool(images.path, record, "raw")
    try:
        entry = await run_in_threadpool(training.write, record, body.label, raw)
    except FileNotFoundError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    label = await run_in_threadpool(
        lambda: store.add_label(
            record["id"], body.label, image=entry.image, note=body.note, ts_utc=entry.ts_utc
        )
    )
    confirmed = agrees(record, body.label)
    bus.publish(
        "label", {"id": record["id"], "label": body.label, "agrees": confirmed, "seq": label.seq}
    )
    return {"label": label.to_dict(), "agrees": confirmed, "training_image": entry.image}
