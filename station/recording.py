"""Turn a settled mask into a QC-log row (and archived images).

Runs on the actuator's or the worker's thread, under the mask's lock, before the
pulse fires: it must be quick and it must either commit or raise. Images are best
effort (the archive counts its failures); the row is not.
"""

from __future__ import annotations

import logging
import random
import time

from station.actuator import InFlight
from station.archive import ImageArchive
from station.camera.base import Frame
from station.config import StationConfig
from station.loop import Versions
from station.store import InspectionRecord, QCStore

log = logging.getLogger(__name__)


class Recorder:
    """Writes each settled mask to the store; archives rejects and a sample of accepts.

    Args:
        config: station identity and archive settings.
        store: the QC log.
        archive: where JPEGs go (under its own quota).
        versions: spec / calibration / model versions recorded with each row.
        sample: random source for the accept sample (seedable for tests).
    """

    def __init__(
        self,
        config: StationConfig,
        store: QCStore,
        archive: ImageArchive,
        versions: Versions,
        sample: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.archive = archive
        self.versions = versions
        self._sample = sample or random.Random()

    def _keep_images(self, item: InFlight) -> bool:
        result = item.result
        if result is None:
            return False
        if result.verdict != "accept":
            return True
        return self._sample.random() < self.config.storage.archive_accept_sample

    def _save_images(self, item: InFlight, frame: Frame | None) -> tuple[str | None, str | None]:
        if frame is None or frame.image is None or not self._keep_images(item):
            return None, None
        prefix = f"{item.mask_id[:2]}/{item.mask_id}"
        raw = self.archive.save(f"{prefix}_raw.jpg", frame.image)
        overlay = item.result.overlay if item.result is not None else None
        ann = self.archive.save(f"{prefix}_annotated.jpg", overlay) if overlay is not None else raw
        return raw, ann

    def record(self, item: InFlight, frame: Frame | None) -> None:
        result = item.result
        if result is None:
            raise ValueError(f"mask {item.mask_id} recorded before it was settled")
        raw, ann = self._save_images(item, frame)
        # Capture-to-decision latency; the trigger time t0 is recorded separately.
        latency_ms = (
            (time.monotonic() - frame.timestamp_s) * 1000
            if frame is not None
            else result.stage_ms.get("total")
        )
        rec = InspectionRecord.from_result(
            result,
            station_id=self.config.station.station_id,
            workshop=self.config.station.workshop,
            batch_id=item.batch_id,
            spec_version=item.spec_label or self.versions.spec,
            model_version=self.versions.model,
            calibration_version=self.versions.calibration,
            t0_mono_s=item.t0_s,
            image_raw_path=raw,
            image_annotated_path=ann,
            inspection_id=item.mask_id,
            latency_ms=latency_ms,
        )
        self.store.record(rec)
