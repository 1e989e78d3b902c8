"""Prometheus metrics: the QC log's counters, live latencies and the station's health.

Counters per verdict and defect are read from the QC log at scrape time, so they
survive restarts and always agree with ``/api/v1/counts`` (the log only grows, so
they only grow). Latencies are observed from the live event bus into a histogram.
Each app has its own registry: several apps in one process (tests) never collide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from station.events import Event, EventBus
from station.store import QCStore

from .dependencies import StationView, read_station_status
from .faults import assess

log = logging.getLogger(__name__)

#: Capture-to-decision latency buckets, in seconds (the ejector deadline is ~1.6 s).
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
_STATES = ("running", "warning", "starting", "paused", "stopped", "error", "offline", "unknown")


class QCCollector(Collector):
    """Reads the log's counters and the station's status when Prometheus scrapes."""

    def __init__(
        self, store: QCStore, station: StationView | None, sse_clients: Callable[[], int]
    ) -> None:
        self.store = store
        self.station = station
        self.sse_clients = sse_clients

    def collect(self) -> Iterator[Metric]:
        counts = self.store.counts()
        verdicts = CounterMetricFamily(
            "qc_inspections", "Inspections in the QC log, by verdict.", labels=["verdict"]
        )
        verdicts.add_metric(["accept"], counts["accepted"])
        verdicts.add_metric(["reject"], counts["rejected"] - counts["errors"])
        verdicts.add_metric(["error"], counts["errors"])
        verdicts.add_metric(["no_mask"], counts["no_mask"])
        yield verdicts
        defects = CounterMetricFamily(
            "qc_defects", "Masks carrying each defect code, from the QC log.", labels=["code"]
        )
        for code, n in counts["by_defect"].items():
            defects.add_metric([code], n)
        yield defects
        yield from self._health(read_station_status(self.station))
        clients = GaugeMetricFamily("qc_api_event_clients", "Open Server-Sent Event streams.")
        clients.add_metric([], self.sse_clients())
        yield clients

    def _health(self, status: dict[str, Any]) -> Iterator[Metric]:
        state = str(status.get("state", "unknown"))
        states = GaugeMetricFamily(
            "qc_station_state", "1 for the station's current state.", labels=["state"]
        )
        for name in sorted({*_STATES, state}):
            states.add_metric([name], 1.0 if name == state else 0.0)
        yield states
        faults = assess(status)
        faulted = GaugeMetricFamily("qc_station_faulted", "1 while any fault is reported.")
        faulted.add_metric([], 1.0 if any(f["severity"] == "fault" for f in faults) else 0.0)
        yield faulted
        yield from _alarms(status.get("alarms"))
        camera = status.get("camera") if isinstance(status.get("camera"), dict) else {}
        disk = status.get("disk") if isinstance(status.get("disk"), dict) else {}
        archive = status.get("archive") if isinstance(status.get("archive"), dict) else {}
        recording = status.get("recording") if isinstance(status.get("recording"), dict) else {}
        calibration = status.get("calibration")
        gauges: list[tuple[str, str, Any, float]] = [
            ("qc_camera_fps", "Frames per second from the camera.", camera.get("fps"), 1),
            (
                "qc_in_flight",
                "Masks between the camera and the ejector.",
                status.get("in_flight"),
                1,
            ),
            ("qc_uptime_seconds", "Seconds since the station started.", status.get("uptime_s"), 1),
            ("qc_cpu_temperature_celsius", "SoC temperature.", status.get("temperature_c"), 1),
            (
                "qc_disk_free_bytes",
                "Free space under the data directory.",
                disk.get("free_mb"),
                2**20,
            ),
            ("qc_archive_used_bytes", "Image archive size.", archive.get("used_mb"), 2**20),
            (
                "qc_calibration_age_days",
                "Days since the calibration in use was made.",
                calibration.get("age_days") if isinstance(calibration, dict) else None,
                1,
            ),
            (
                "qc_record_backlog_rows",
                "Rows held in memory while the QC log could not be written.",
                recording.get("backlog_rows"),
                1,
            ),
            (
                "qc_archive_failing",
                "1 while the image archive cannot write (disk full, read-only).",
                _flag(archive.get("failing")),
                1,
            ),
        ]
        for name, help_text, value, scale in gauges:
            if isinstance(value, int | float) and not isinstance(value, bool):
                gauge = GaugeMetricFamily(name, help_text)
                gauge.add_metric([], float(value) * scale)
                yield gauge
        for name, help_text, value in (
            ("qc_late_decisions", "Verdicts that missed the ejector deadline.", status.get("late")),
            (
                "qc_record_failures",
                "Masks the QC log failed to record.",
                status.get("record_failures"),
            ),
            (
                "qc_model_failures",
                "Classifier runs that raised (each mask rejected as 'model').",
                status.get("model", {}).get("failures")
                if isinstance(status.get("model"), dict)
                else None,
            ),
            (
                "qc_archive_write_failures",
                "Images the archive failed to write.",
                archive.get("write_failures"),
            ),
            (
                "qc_inspection_errors",
                "Inspections that raised or had no usable frame (rejected as error).",
                status.get("errors"),
            ),
            (
                "qc_camera_misses",
                "Masks with no fresh camera frame in time (rejected as camera).",
                status.get("camera_misses"),
            ),
            (
                "qc_forced_rejects",
                "Masks still being recorded at their deadline (rejected).",
                status.get("forced_rejects"),
            ),
            (
                "qc_clock_jumps",
                "Wall-clock steps seen against the monotonic clock.",
                status.get("clock_jumps"),
            ),
            (
                "qc_records_written_late",
                "Rows written after their pulse because the QC log was busy.",
                recording.get("written_late"),
            ),
            ("qc_records_lost", "Rows the QC log never took.", recording.get("lost")),
            (
                "qc_archive_rejects",
                "Masks rejected because the image archive could not write.",
                recording.get("archive_rejects"),
            ),
        ):
            if isinstance(value, int | float) and not isinstance(value, bool):
                counter = CounterMetricFamily(name, help_text)
                counter.add_metric([], float(value))
                yield counter


def _flag(value: Any) -> float | None:
    return None if value is None else float(bool(value))


def _alarms(alarms: Any) -> Iterator[Metric]:
    """One series per alarm the station has seen: active now, times raised, events."""
    if not isinstance(alarms, dict):
        return
    active = GaugeMetricFamily(
        "qc_alarm_active",
        "1 while the alarm is active (camera, inspection, record, archive, clock).",
        labels=["code", "severity"],
    )
    raised = CounterMetricFamily(
        "qc_alarm_raised", "Times each alarm became active.", labels=["code"]
    )
    events = CounterMetricFamily(
        "qc_alarm_events", "Occurrences reported for each alarm.", labels=["code"]
    )
    for code, alarm in sorted(alarms.items()):
        if not isinstance(alarm, dict):
            continue
        active.add_metric([str(code), str(alarm.get("severity"))], _flag(alarm.get("active")))
        raised.add_metric([str(code)], float(alarm.get("raised", 0)))
        events.add_metric([str(code)], float(alarm.get("events", 0)))
    yield active
    yield raised
    yield events


class Metrics:
    """The app's registry: the collector plus a latency histogram fed by the bus."""

    def __init__(self, store: QCStore, station: StationView | None, bus: EventBus) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(QCCollector(store, station, lambda: bus.subscriber_count))
        self.latency = Histogram(
            "qc_inspection_latency_seconds",
            "Capture-to-decision latency of inspections since the API started.",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._bus = bus

    def on_event(self, event: Event) -> None:
        """Bus listener (publisher's thread): observe each inspection's latency."""
        if event.type != "inspection":
            return
        latency_ms = event.data.get("latency_ms")
        if isinstance(latency_ms, int | float):
            self.latency.observe(float(latency_ms) / 1000.0)

    def start(self) -> None:
        self._bus.add_listener(self.on_event)

    def stop(self) -> None:
        self._bus.remove_listener(self.on_event)
