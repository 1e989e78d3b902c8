"""Supervisor labels become classifier training data.

When a supervisor confirms or corrects a verdict on the page, the raw frame is put
in the training set's folder format, which the training scripts read as they are::

    <data_dir>/training/real/<label>/<inspection_id>.jpg
    <data_dir>/training/real/labels.jsonl      # one JSON object per line, last wins

Relabelling moves the image to its new folder and appends a new line, so the file
is an audit trail as well as the index. Lines are appended with fsync: a label the
page reported as saved survives a power cut. Training reads the folder with
:func:`vision.training.real.read_labels` (the format is defined there once).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.store import utc_now_iso
from vision.training.real import LABELS_FILE
from vision.types import DEFECT_CODES

log = logging.getLogger(__name__)

GOOD = "good"
#: Codes the station itself raises: they describe the line, not the image.
STATION_CODES = frozenset({"late", "error", "camera", "model"})
#: What a supervisor may call an image: ``good`` or a visible defect.
TRAINING_LABELS: tuple[str, ...] = (GOOD, *(c for c in DEFECT_CODES if c not in STATION_CODES))


def training_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "training" / "real"


def station_label(verdict: str, defect_codes: list[str]) -> str | None:
    """The label that would *confirm* what the station decided, if there is one.

    An accept is ``good``; a reject is its first visible defect (codes are sorted,
    so the choice is stable). Errors and empty frames have no image label.
    """
    if verdict == "accept":
        return GOOD
    if verdict == "reject":
        visible = [c for c in defect_codes if c in TRAINING_LABELS]
        return visible[0] if visible else None
    return None


@dataclass(frozen=True, slots=True)
class TrainingLabel:
    """What one labels.jsonl line says."""

    id: str
    label: str
    verdict_was: str
    defects_was: list[str]
    labelled_by: str
    ts_utc: str
    image: str
    spec_version: str | None
    calibration_version: str | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "label": self.label,
                "verdict_was": self.verdict_was,
                "defects_was": self.defects_was,
                "labelled_by": self.labelled_by,
                "ts_utc": self.ts_utc,
                "image": self.image,
                "spec_version": self.spec_version,
                "calibration_version": self.calibration_version,
            },
            ensure_ascii=False,
        )


class TrainingSetWriter:
    """Writes labelled frames into ``<data_dir>/training/real`` (one writer per process).

    Args:
        root: the training-set folder (``training_dir(data_dir)``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    @property
    def index_path(self) -> Path:
        return self.root / LABELS_FILE

    def write(
        self,
        inspection: dict[str, Any],
        label: str,
        raw_image: Path | None,
        *,
        labelled_by: str = "supervisor",
        ts_utc: str | None = None,
    ) -> TrainingLabel:
        """File the frame under ``label`` and append the index line.

        ``inspection`` is the QC-log dict (id, verdict, defects, versions). The image
        already filed under another label is moved (the archive may have deleted its
        copy since); otherwise ``raw_image`` is copied. Raises ValueError for an
        unknown label and FileNotFoundError when there is no frame to file.
        """
        if label not in TRAINING_LABELS:
            raise ValueError(f"label must be one of {TRAINING_LABELS}, not {label!r}")
        inspection_id = str(inspection["id"])
        if Path(inspection_id).name != inspection_id or inspection_id.startswith("."):
            raise ValueError(f"not a file-safe inspection id: {inspection_id!r}")
        relative = f"{label}/{inspection_id}.jpg"
        target = self.root / relative
        codes = sorted({d["code"] for d in inspection.get("defects", [])})
        entry = TrainingLabel(
            id=inspection_id,
            label=label,
            verdict_was=str(inspection["verdict"]),
            defects_was=codes,
            labelled_by=labelled_by,
            ts_utc=ts_utc or utc_now_iso(),
            image=relative,
            spec_version=inspection.get("spec_version"),
            calibration_version=inspection.get("calibration_version"),
        )
        with self._lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            previous = [p for p in self._filed(inspection_id) if p != target]
            if target.is_file():
                pass  # same label again: the image is already in place
            elif previous:
                os.replace(previous.pop(0), target)
            elif raw_image is not None and raw_image.is_file():
                self._copy(raw_image, target)
            else:
                raise FileNotFoundError(f"no archived frame for inspection {inspection_id}")
            for stale in previous:
                stale.unlink(missing_ok=True)
            self._append(entry.to_json())
        log.info("inspection %s labelled %s by %s", inspection_id, label, labelled_by)
        return entry

    def _filed(self, inspection_id: str) -> list[Path]:
        """Where this inspection's frame is already filed (normally zero or one place)."""
        name = f"{inspection_id}.jpg"
        return [d / name for d in sorted(self.root.iterdir()) if (d / name).is_file()]

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        tmp = target.with_suffix(".jpg.tmp")
        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def _append(self, line: str) -> None:
        with open(self.index_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
