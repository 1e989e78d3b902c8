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
        camera = status.get("camera") if isinstance(status.get("camera"), dict) else {}
        disk = status.get("disk") if isinstance(status.get("disk"), dict) else {}
        archive = status.get("archive") if isinstance(status.get("archive"), dict) else {}
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
                "qc_archive_write_failures",
                "Images the archive failed to write.",
                archive.get("write_failures"),
            ),
        ):
            if isinstance(value, int | float) and not isinstance(value, bool):
                counter = CounterMetricFamily(name, help_text)
                counter.add_metric([], float(value))
                yield counter


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
