"""Turn a settled mask into a QC-log row (and archived images).

Runs on the actuator's or the worker's thread, under the mask's lock, before the
pulse fires: it must be quick, bounded by the mask's deadline, and it must either
commit or raise. Two faults are handled here, both fail-safe:

- **The QC log cannot be written** (another process holds its lock, the disk is
  full): the write gives up in time for the pulse (``store.record(timeout_s=...)``),
  this raises so the actuator rejects the mask, and the row — marked rejected, as
  the mask was — is kept in memory and written as soon as the log answers again.
  A row held over a second raises the ``record`` fault (a moment's contention with
  another writer does not), which stays up until the backlog is written.
- **The image archive cannot be written** (disk full, read-only): a mask the
  station would accept is rejected with the ``archive`` defect while the archive
  is failing, because its reject images — the evidence supervisors and retraining
  rely on — are being lost. Each such mask tries the archive again, so the first
  write that succeeds lifts the fault.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from station.actuator import InFlight
from station.archive import ImageArchive
from station.camera.base import Frame
from station.config import StationConfig
from station.health import AlarmBoard
from station.loop import Versions
from station.store import InspectionRecord, QCStore, StoreError
from vision.types import Defect, InspectionResult

log = logging.getLogger(__name__)

#: Longest a row may wait for a busy QC log, seconds (a mask's deadline is usually sooner).
MAX_WRITE_WAIT_S = 1.0
#: Kept free before a mask's deadline, so the actuator fires on time after a failed write.
FIRE_MARGIN_S = 0.005
#: Rows held while the log cannot be written; beyond this the oldest are dropped (counted).
BACKLOG_MAX_ROWS = 10_000
#: How often the backlog is retried, and how long each retry waits for the log, seconds.
RETRY_PERIOD_S = 0.5
RETRY_WAIT_S = 0.05
#: Time a durable commit may take (fsync); an accept with less left before its deadline
#: is recorded and fired as a late reject, seconds.
COMMIT_ALLOWANCE_S = 0.015
#: Time an accepted mask's sample images may take (two JPEGs of a full frame on a busy
#: Pi); with less left before its deadline the sample is skipped, seconds.
SAMPLE_TIME_S = 0.25
#: A row held this long means the log is really unavailable (not a moment's contention
#: with another writer): the ``record`` fault is raised, seconds.
RECORD_ALARM_AFTER_S = 1.0
#: On close, how long the backlog may take to reach the log, seconds.
CLOSE_FLUSH_S = 2.0


def _rejected(result: InspectionResult, code: str, message: str) -> InspectionResult:
    """``result`` turned into a reject, with the reason added to its defects."""
    return replace(
        result,
        verdict="reject",
        defects=[*result.defects, Defect(code=code, message=message)],
        message=message,
    )


class Recorder:
    """Writes each settled mask to the store; archives rejects and a sample of accepts.

    Args:
        config: station identity and archive settings.
        store: the QC log.
        archive: where JPEGs go (under its own quota).
        versions: spec / calibration / model versions recorded with each row.
        sample: random source for the accept sample (seedable for tests).
        alarms: where the ``record`` and ``archive`` faults are raised (the station's).
        clock: the clock of ``InFlight.deadline_s`` (monotonic; the belt clock with an
            encoder), to bound a write by the mask's deadline.
    """

    def __init__(
        self,
        config: StationConfig,
        store: QCStore,
        archive: ImageArchive,
        versions: Versions,
        sample: random.Random | None = None,
        alarms: AlarmBoard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.archive = archive
        self.versions = versions
        self.alarms = alarms or AlarmBoard()
        self.clock = clock
        self._sample = sample or random.Random()
        self._backlog: deque[tuple[float, InspectionRecord]] = deque()  # (held at, row)
        self._last_failure = ""
        self._backlog_lock = threading.Lock()
        self._stop = threading.Event()
        self._retry: threading.Thread | None = None
        self.written_late = 0
        self.lost = 0
        self.archive_rejects = 0

    # -- images ----------------------------------------------------------------------
    def _keep_images(self, item: InFlight) -> bool:
        result = item.result
        if result is None:
            return False
        if result.verdict != "accept":
            return True
        if self._time_left_s(item) < SAMPLE_TIME_S:
            return False  # never let an accept's images push it past its deadline
        if self.archive.failing:
            return True  # while failing, every mask probes the archive
        return self._sample.random() < self.config.storage.archive_accept_sample

    def _save_images(self, item: InFlight, frame: Frame | None) -> tuple[str | None, str | None]:
        if frame is None or frame.image is None or not self._keep_images(item):
            return None, None
        prefix = f"{item.mask_id[:2]}/{item.mask_id}"
        raw = self.archive.save(f"{prefix}_raw.jpg", frame.image)
        # Drawn here, for kept images only: the pipeline defers it past the verdict.
        overlay = item.result.annotated() if item.result is not None else None
        ann = self.archive.save(f"{prefix}_annotated.jpg", overlay) if overlay is not None else raw
        return raw, ann

    def _archive_policy(self, item: InFlight) -> InspectionResult:
        """The mask's result, turned into an ``archive`` reject while the archive fails."""
        result = item.result
        assert result is not None
        if not self.archive.failing:
            self.alarms.clear("archive")
            return result
        msg = f"image archive unavailable: {self.archive.last_error}"
        self.alarms.raise_alarm("archive", msg)
        if result.verdict != "accept":
            return result
        self.archive_rejects += 1
        result = _rejected(result, "archive", msg)
        item.result = result  # under the mask's lock: the actuator fires what we record
        return result

    # -- the row ---------------------------------------------------------------------
    def _build(
        self,
        item: InFlight,
        frame: Frame | None,
        result: InspectionResult,
        raw: str | None,
        ann: str | None,
    ) -> InspectionRecord:
        # Capture-to-decision latency; the trigger time t0 is recorded separately.
        latency_ms = (
            (time.monotonic() - frame.timestamp_s) * 1000
            if frame is not None
            else result.stage_ms.get("total")
        )
        return InspectionRecord.from_result(
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

    def _time_left_s(self, item: InFlight) -> float:
        return item.deadline_s - self.clock()

    def _wait_budget_s(self, item: InFlight) -> float:
        """How long the write may wait for the log and still leave the pulse its time."""
        return min(MAX_WRITE_WAIT_S, max(0.0, self._time_left_s(item) - FIRE_MARGIN_S))

    def _too_late_to_accept(self, item: InFlight, result: InspectionResult) -> InspectionResult:
        """An accept reaching the log at its deadline is rejected ``late``, row included.

        At the deadline the actuator fires a reject if this mask is still being
        recorded; the row must then say reject too, not the accept it was about to.
        """
        if result.verdict != "accept" or self._time_left_s(item) >= COMMIT_ALLOWANCE_S:
            return result
        msg = "verdict reached the QC log at the ejector deadline"
        result = _rejected(result, "late", msg)
        item.result = result
        return result

    def record(self, item: InFlight, frame: Frame | None) -> None:
        """Commit the mask's row before its pulse; raise (mask rejected) if the log is busy."""
        if item.result is None:
            raise ValueError(f"mask {item.mask_id} recorded before it was settled")
        self.archive.check_space()
        raw, ann = self._save_images(item, frame)
        result = self._too_late_to_accept(item, self._archive_policy(item))
        rec = self._build(item, frame, result, raw, ann)
        try:
            self.store.record(rec, timeout_s=self._wait_budget_s(item))
        except Exception as exc:
            self._keep_for_later(item, frame, result, raw, ann, exc)
            raise
        if not self.backlog_rows():
            self.alarms.clear("record")

    # -- rows the log could not take in time -------------------------------------------
    def _keep_for_later(
        self,
        item: InFlight,
        frame: Frame | None,
        result: InspectionResult,
        raw: str | None,
        ann: str | None,
        exc: Exception,
    ) -> None:
        msg = f"QC log write failed: {type(exc).__name__}: {exc}"
        self._last_failure = msg
        if result.verdict == "accept":  # the actuator rejects it: the row must say so
            result = _rejected(result, "late", msg)
        rec = self._build(item, frame, result, raw, ann)
        with self._backlog_lock:
            if len(self._backlog) >= BACKLOG_MAX_ROWS:
                self._backlog.popleft()
                self.lost += 1
                log.error("QC log backlog full: oldest unwritten row dropped")
            self._backlog.append((time.monotonic(), rec))
            if self._retry is None:
                self._retry = threading.Thread(
                    target=self._retry_loop, name="record-retry", daemon=True
                )
                self._retry.start()

    def backlog_rows(self) -> int:
        with self._backlog_lock:
            return len(self._backlog)

    def flush(self, wait_s: float = RETRY_WAIT_S) -> int:
        """Write held rows, oldest first, until one fails; returns how many were written."""
        written, failed = 0, False
        while True:
            with self._backlog_lock:
                if not self._backlog:
                    break
                rec = self._backlog[0][1]
            try:
                self.store.record(rec, timeout_s=wait_s)
                written += 1
            except sqlite3.IntegrityError as exc:  # never retried: it would block the rest
                if self.store.get(rec.id) is not None:
                    log.warning("row %s was already in the QC log", rec.id)
                else:
                    self.lost += 1
                    log.error("row %s refused by the QC log, dropped: %s", rec.id, exc)
            except (StoreError, sqlite3.Error) as exc:
                log.debug("QC log still unavailable: %s", exc)
                failed = True
                break
            with self._backlog_lock:
                self._backlog.popleft()
        self.written_late += written
        if failed:
            return written
        if written:
            log.warning("QC log writes again: %d held row(s) written", written)
        self.alarms.clear("record")
        return written

    def _retry_loop(self) -> None:
        while not self._stop.wait(RETRY_PERIOD_S):
            try:
                self.flush()
            except Exception:
                log.exception("QC log backlog retry failed")
            with self._backlog_lock:
                held_s = time.monotonic() - self._backlog[0][0] if self._backlog else 0.0
            if held_s >= RECORD_ALARM_AFTER_S:
                self.alarms.raise_alarm("record", self._last_failure)

    def health(self) -> dict[str, Any]:
        """Held rows and what became of them, for ``/api/v1/status``."""
        return {
            "backlog_rows": self.backlog_rows(),
            "written_late": self.written_late,
            "lost": self.lost,
            "archive_rejects": self.archive_rejects,
        }

    def close(self) -> None:
        """Stop retrying; give the held rows a last chance to reach the log."""
        self._stop.set()
        if self._retry is not None:
            self._retry.join(timeout=RETRY_PERIOD_S + 1)
        if self.backlog_rows():
            with contextlib.suppress(Exception):
                self.flush(wait_s=CLOSE_FLUSH_S)
            if self.backlog_rows():
                log.error("%d row(s) never reached the QC log", self.backlog_rows())
