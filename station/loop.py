"""The inspection loop: trigger → capture → inspect → decide → actuate → record.

The same loop runs a real line (Picamera2 + lgpio) and the demo (simulator +
MockFactory); only the collaborators passed in differ.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from station.actuator import Actuator, InFlight
from station.camera.base import Frame
from station.config import StationConfig
from station.frames import FrameFeed
from station.gpio import Light, StationIO
from station.health import AlarmBoard, ClockMonitor
from station.systemd import Notifier
from vision.pipeline import InspectionContext, inspect_frame
from vision.spec import PrototypeSpec
from vision.types import Defect, InspectionResult

log = logging.getLogger(__name__)

Inspector = Callable[[np.ndarray | None, InspectionContext], InspectionResult]
Recorder = Callable[[InFlight, "Frame | None"], None]


@dataclass
class Versions:
    """What every record says it was measured with."""

    spec: str
    calibration: str
    model: str = "none"


@dataclass
class LoopStats:
    """Rolling figures for health: latency window, counts since start, camera state."""

    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    inspected: int = 0
    errors: int = 0
    camera_misses: int = 0
    consecutive_errors: int = 0
    last_verdict: str | None = None

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.fromiter(self.latencies_ms, float), q))


#: How often the health thread looks at the camera and the ejector, seconds.
WATCHDOG_PERIOD_S = 0.1

#: Inspections raising in a row before it is a fault (red) rather than a warning: one
#: bad frame is rejected and shown, a model session that keeps failing stops the line.
INSPECTION_FAULT_AFTER = 3


def calibration_age_days(created: str) -> float | None:
    """Days since the calibration was written (None when it carries no date)."""
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round((datetime.now(UTC) - when).total_seconds() / 86400, 1)


def camera_fault_result(message: str) -> InspectionResult:
    return InspectionResult(
        verdict="error", defects=[Defect(code="camera", message=message)], message=message
    )


class Station:
    """Wires the camera feed, the pins, the inspector, the actuator and the QC log.

    Args:
        config: the validated station configuration.
        feed: frames from the camera thread.
        io: the station's GPIO devices.
        ctx: calibration + spec for the vision pipeline.
        record: commits one settled mask (and its images) to the QC log.
        versions: spec / calibration / model versions recorded with each mask.
        inspector: the pipeline (injectable so tests can slow it down or make it raise).
    """

    def __init__(
        self,
        config: StationConfig,
        feed: FrameFeed,
        io: StationIO,
        ctx: InspectionContext,
        record: Recorder,
        versions: Versions,
        inspector: Inspector = inspect_frame,
        camera_health: Callable[[], dict[str, Any]] | None = None,
        notifier: Notifier | None = None,
        photo_eye: bool = True,
        belt_clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.feed = feed
        self.io = io
        self.ctx = ctx
        self.versions = versions
        self.inspector = inspector
        self._record = record
        self._camera_health = camera_health
        self.notifier = notifier or Notifier()
        self._recipe_lock = threading.Lock()
        self._confirm_lock = threading.Lock()
        self._awaiting_confirm: list[float] = []
        self.ejector_fault: str | None = None
        self.ejector_faults = 0
        self.batch_id: str | None = None
        self.photo_eye = photo_eye
        self._frames_for: dict[str, Frame | None] = {}
        self.actuator = Actuator(
            pulse_start=io.pulse_start,
            pulse_end=io.pulse_end,
            record=self._record_item,
            eject_delay_ms=config.line.eject_delay_ms,
            pulse_ms=config.gpio.pulse_ms,
            guard_ms=config.line.decision_guard_ms,
            max_in_flight=config.line.max_in_flight,
            belt_clock=belt_clock,
        )
        self._triggers: queue.Queue[tuple[float, float]] = queue.Queue()
        #: Triggers taken but not yet tracked by the actuator (queued or being taken).
        self._untracked = 0
        self._untracked_lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._watch: threading.Thread | None = None
        self.stats = LoopStats()
        #: Faults seen while running (camera, inspection, record, archive, clock):
        #: health, metrics and the stack light read this one board.
        self.alarms = AlarmBoard()
        self.clock_monitor = ClockMonitor(self.alarms)
        self.started_mono_s = time.monotonic()
        self.state = "starting"
        self._last_annotated: InspectionResult | None = None
        self.on_settled: list[Callable[[InFlight], None]] = []

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self.photo_eye:
            self.io.set_on_trigger(self._on_trigger)
        self.actuator.on_fired.append(self._on_fired)
        if self.io.reject_confirm is not None:
            self.io.reject_confirm.when_activated = self._on_confirm
        self.actuator.start()
        self.feed.start()
        self._worker = threading.Thread(target=self._work, name="inspect", daemon=True)
        self._worker.start()
        self._watch = threading.Thread(target=self._watchdog, name="health", daemon=True)
        self._watch.start()
        self.state = "running"
        self.io.set_light(Light.GREEN)
        self.notifier.ready(f"inspecting, spec {self.versions.spec}")

    def stop(self) -> None:
        """Stop taking triggers, finish the masks already on the belt, then stop."""
        self.notifier.stopping()
        self.io.set_on_trigger(None)
        deadline = time.monotonic() + self.config.line.eject_delay_ms / 1000 + 2
        while not self._triggers.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.actuator.stop(drain=True)
        self.feed.stop()
        self.io.set_light(Light.OFF)
        self.state = "stopped"

    # -- trigger → inspect -----------------------------------------------------------
    def _on_trigger(self, t0_s: float) -> None:
        """Photo-eye edge: runs on gpiozero's thread, so only note where the belt is."""
        with self._untracked_lock:
            self._untracked += 1
        self._triggers.put((t0_s, self.actuator.belt_position()))

    def settled(self) -> bool:
        """No trigger waiting or being taken, and no mask between camera and ejector.

        A trigger is counted until the actuator tracks it, and a tracked mask stays in
        flight until its pulse ends, so reading the two in this order misses none.
        """
        with self._untracked_lock:
            if self._untracked:
                return False
        return not self.actuator.in_flight

    def trigger(self, t0_s: float | None = None) -> None:
        """Software trigger (presence detection, tests)."""
        self._on_trigger(time.monotonic() if t0_s is None else t0_s)

    def _work(self) -> None:
        line = self.config.line
        while not self._stop.is_set():
            self.notifier.heartbeat()  # from this loop: a hung worker stops the heartbeats
            try:
                t0, belt_t0 = self._triggers.get(timeout=0.2)
            except queue.Empty:
                continue
            ctx, spec_label, batch_id = self._recipe()
            item = self.actuator.track(t0, belt_t0, spec_label=spec_label, batch_id=batch_id)
            with self._untracked_lock:
                self._untracked -= 1
            target = t0 + line.capture_delay_ms / 1000
            wait_s = max(0.0, target - time.monotonic()) + line.frame_wait_ms / 1000
            frame = self.feed.wait_frame_at_or_after(target, wait_s)
            if frame is not None:
                frame = frame.developed()  # a simulated frame is rendered only now
            result = self._inspect(frame, ctx)
            self._frames_for[item.mask_id] = frame
            if not self.actuator.settle(item, result):
                log.warning(
                    "mask %s: verdict %s came too late (%.0f ms after t0)",
                    item.mask_id,
                    result.verdict,
                    (time.monotonic() - t0) * 1000,
                )
            self._frames_for.pop(item.mask_id, None)

    def _inspect(self, frame: Frame | None, ctx: InspectionContext) -> InspectionResult:
        if frame is None:
            self.stats.camera_misses += 1
            return camera_fault_result("no fresh camera frame for this mask")
        if frame.image is None:
            msg = frame.error or "unreadable frame"
            return InspectionResult(
                verdict="error", defects=[Defect(code="error", message=msg)], message=msg
            )
        try:
            result = self.inspector(frame.image, ctx)
        except Exception as exc:
            log.exception("inspection raised")
            msg = f"{type(exc).__name__}: {exc}"
            self.stats.consecutive_errors += 1
            failing = self.stats.consecutive_errors >= INSPECTION_FAULT_AFTER
            self.alarms.raise_alarm("inspection", msg, "fault" if failing else "warning")
            result = InspectionResult(
                verdict="error", defects=[Defect(code="error", message=msg)], message=msg
            )
        else:
            self.stats.consecutive_errors = 0
            self.alarms.clear("inspection")
        if result.overlay is not None or result.draw_overlay is not None:
            self._last_annotated = result
        return result

    @property
    def last_overlay(self) -> np.ndarray | None:
        """The last annotated image, drawn on first request (off the inspection path)."""
        result = self._last_annotated
        return None if result is None else result.annotated()

    def _record_item(self, item: InFlight) -> None:
        """Called by the actuator under the mask's lock, before its pulse fires."""
        self._record(item, self._frames_for.get(item.mask_id))
        res = item.result
        self.stats.inspected += 1
        if res is not None:
            self.stats.last_verdict = res.verdict
            if res.verdict == "error":
                self.stats.errors += 1
            total = res.stage_ms.get("total")
            if total is not None:
                self.stats.latencies_ms.append(total)
        for callback in self.on_settled:
            try:
                callback(item)
            except Exception:
                log.exception("settled callback failed")

    def set_recipe(self, spec: PrototypeSpec | None, batch_id: str | None) -> None:
        """Measure the next masks against ``spec`` in batch ``batch_id`` (no restart).

        A mask takes the recipe in force when it is triggered and keeps it to its row,
        so masks already on the belt at a batch change stay in the batch they began in.
        """
        with self._recipe_lock:
            if spec is not None:
                self.ctx = replace(self.ctx, spec=spec)
                self.versions.spec = spec.label
            self.batch_id = batch_id

    def _model_status(self) -> dict[str, Any]:
        """The running classifier (name, version, sha256, failures) or ``none``."""
        clf = self.ctx.classifier
        if clf is None:
            return {"name": "none", "version": self.versions.model, "state": "disabled"}
        info = dict(clf.describe())
        info["state"] = "failing" if info.get("last_error") else "ok"
        return info

    def _recipe(self) -> tuple[InspectionContext, str, str | None]:
        with self._recipe_lock:
            return self.ctx, self.versions.spec, self.batch_id

    # -- health ----------------------------------------------------------------------
    # -- ejector confirmation ---------------------------------------------------------
    def _on_fired(self, item: InFlight) -> None:
        """A reject pulse went out: with a confirmation input, expect it to answer."""
        if item.fired == "reject" and self.io.reject_confirm is not None:
            window_s = self.config.gpio.reject_confirm_window_ms / 1000
            with self._confirm_lock:
                self._awaiting_confirm.append((item.fired_at_s or time.monotonic()) + window_s)

    def _on_confirm(self) -> None:
        """The ejector's switch closed: the oldest pending reject is confirmed."""
        with self._confirm_lock:
            if self._awaiting_confirm:
                self._awaiting_confirm.pop(0)
            if self.ejector_fault is not None:
                log.warning("ejector confirmed again: fault cleared")
            self.ejector_fault = None

    def _check_confirmations(self) -> None:
        now = time.monotonic()
        with self._confirm_lock:
            missed = [d for d in self._awaiting_confirm if d < now]
            self._awaiting_confirm = [d for d in self._awaiting_confirm if d >= now]
        if missed:
            self.ejector_faults += len(missed)
            self.ejector_fault = "l'éjecteur n'a pas confirmé un rejet"
            log.error("ejector did not confirm %d reject(s): fault", len(missed))

    # -- health ----------------------------------------------------------------------
    def _watchdog(self) -> None:
        """Stack light from health: red on a fault (ejector not confirming, or a fault
        alarm: inspection raising, QC log or archive not writing), amber while the
        camera is stalled, green otherwise; the fault output follows both."""
        stall_s = self.config.camera.stall_timeout_s
        while not self._stop.wait(WATCHDOG_PERIOD_S):
            self._check_confirmations()
            self.clock_monitor.check()
            last = self.feed.last_frame_mono_s
            stalled = last is None and time.monotonic() - self.started_mono_s > stall_s
            stalled = stalled or (last is not None and time.monotonic() - last > stall_s)
            if stalled and not self.alarms.is_active("camera"):
                self.alarms.raise_alarm("camera", "no camera frame lately", "warning")
            elif not stalled:
                self.alarms.clear("camera")
            if self.ejector_fault is not None or self.alarms.active("fault"):
                new_state, light = "fault", Light.RED
            elif stalled:
                new_state, light = "warning", Light.AMBER
            else:
                new_state, light = "running", Light.GREEN
            if new_state != self.state:
                log.warning("station state %s -> %s", self.state, new_state)
                self.state = new_state
                self.io.set_light(light, fault=new_state != "running")

    def status(self) -> dict[str, Any]:
        """Health for the API and ``qc-station status``."""
        cam = self._camera_health() if self._camera_health else {}
        return {
            "state": self.state,
            "station_id": self.config.station.station_id,
            "workshop": self.config.station.workshop,
            "uptime_s": round(time.monotonic() - self.started_mono_s, 1),
            "camera": {"source": self.config.camera.source, **cam},
            "spec": {
                "name": self.ctx.spec.spec.name,
                "version": self.ctx.spec.spec.version,
                "label": self.versions.spec,
            },
            "calibration": {
                "version": self.versions.calibration,
                "age_days": calibration_age_days(self.ctx.calibration.created),
            },
            "model": self._model_status(),
            "latency_ms": {
                "p50": self.stats.percentile(50),
                "p99": self.stats.percentile(99),
            },
            "inspected": self.stats.inspected,
            "errors": self.stats.errors,
            "camera_misses": self.stats.camera_misses,
            "alarms": self.alarms.snapshot(),
            "clock_jumps": self.clock_monitor.jumps,
            "late": self.actuator.late,
            "forced_rejects": self.actuator.forced,
            "record_failures": self.actuator.record_failures,
            "ejector_fault": self.ejector_fault,
            "ejector_faults": self.ejector_faults,
            "in_flight": len(self.actuator.in_flight),
            "gpio": self.io.describe(),
        }
