"""A small stand-in for the station runtime, implementing the API's LiveStation protocol.

Tests use it to drive the API with known rows, images and events, without a camera.
Run as a module it also serves the supervisor page over a made-up line, for working
on the page while the real demo is busy elsewhere::

    .venv/bin/python -m tests.helpers.fake_station --port 8090 --data-dir /tmp/fake
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from station.archive import ImageArchive
from station.config import load_spec
from station.events import EventBus, attach_store
from station.paths import PROTOTYPES_DIR
from station.store import Batch, InspectionRecord, QCStore

RUNNING_STATUS: dict[str, Any] = {
    "state": "running",
    "station_id": "station-test",
    "workshop": "atelier-test",
    "uptime_s": 3725.0,
    "camera": {"source": "simulator", "state": "ok", "fps": 10.0},
    "model": {"name": "defect-classifier", "version": "0.3.1", "hash": "sha256:1f2e3d4c"},
    "spec": {"name": "resilience-adult", "version": "resilience-adult@2020.1"},
    "calibration": {"version": "cal-2025-02-27", "age_days": 2.5},
    "latency_ms": {"p50": 182.0, "p99": 412.0},
    "late": 0,
    "in_flight": 1,
    "record_failures": 0,
    "gpio": {"pin_factory": "MockFactory", "light": "green", "fault": False},
    "archive": {"used_mb": 12.5, "quota_mb": 2048.0, "files": 40, "last_error": None},
    "disk": {"free_mb": 20480.0, "total_mb": 30000.0, "used_pct": 31.7},
    "temperature_c": 51.2,
}


def make_jpeg(text: str, colour: tuple[int, int, int] = (40, 40, 40), size=(480, 360)) -> bytes:
    """A small JPEG with ``text`` on it (distinct bytes per text)."""
    image = np.full((size[1], size[0], 3), colour, np.uint8)
    cv2.putText(image, text, (20, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


class FakeStation:
    """Implements :class:`station.api.dependencies.LiveStation` over a real store."""

    def __init__(
        self, store: QCStore, data_dir: Path, status: dict[str, Any] | None = None
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.events = EventBus()
        self._detach = attach_store(self.events, store)
        self.spec = load_spec(PROTOTYPES_DIR / "resilience-adult.toml")
        self.archive = ImageArchive(self.data_dir / "images", quota_mb=200)
        self.state = dict(status or RUNNING_STATUS)
        self.overlay: bytes | None = None

    # -- the protocol ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {**self.state, "spec": {"version": self.spec.label}}

    def last_overlay_jpeg(self) -> bytes | None:
        return self.overlay

    def image_path(self, inspection_id: str, kind: str) -> Path | None:
        record = self.store.get(inspection_id)
        if record is None:
            return None
        relative = record["image_raw_path" if kind == "raw" else "image_annotated_path"]
        return self.archive.resolve(relative) if relative else None

    def start_batch(self, workshop: str, order_number: str | None, spec_name: str) -> Batch:
        self.spec = load_spec(PROTOTYPES_DIR / f"{spec_name}.toml")
        return self.store.start_batch(
            workshop, order_number=order_number, spec_name=spec_name, close_previous=True
        )

    def close_batch(self) -> Batch:
        return self.store.close_batch()

    def close(self) -> None:
        self._detach()
        self.events.close()

    # -- test helpers ----------------------------------------------------------------
    def inspect(
        self,
        verdict: str,
        codes: tuple[str, ...] = (),
        *,
        width_mm: float | None = 200.0,
        height_mm: float | None = 95.0,
        ts_utc: datetime | None = None,
        batch: str | None = None,
        image: bool = True,
        latency_ms: float = 150.0,
    ) -> InspectionRecord:
        """Log one mask (with archived JPEGs unless ``image`` is False)."""
        rec_id = InspectionRecord(verdict=verdict, station_id="s", workshop="w").id
        raw = annotated = None
        if image:
            frame = cv2.imdecode(np.frombuffer(make_jpeg(f"raw {rec_id[:8]}"), np.uint8), 1)
            raw = self.archive.save(f"{rec_id[:2]}/{rec_id}_raw.jpg", frame)
            overlay = frame.copy()
            cv2.rectangle(overlay, (10, 10), (200, 120), (0, 0, 255), 4)
            annotated = self.archive.save(f"{rec_id[:2]}/{rec_id}_annotated.jpg", overlay)
        measurements = {"width_mm": width_mm, "height_mm": height_mm, "pleats": 3, "ear_loops": 2}
        current = self.store.current_batch()
        rec = InspectionRecord(
            id=rec_id,
            verdict=verdict,
            station_id="station-test",
            workshop="atelier-test",
            ts_utc=ts_utc or datetime.now(UTC),
            batch_id=batch if batch is not None else (current.id if current else None),
            defects=[{"code": c, "message": c} for c in codes],
            measurements={k: v for k, v in measurements.items() if v is not None},
            latency_ms=latency_ms,
            spec_version=self.spec.label,
            calibration_version="cal-test",
            model_version="0.3.1",
            image_raw_path=raw,
            image_annotated_path=annotated,
        )
        self.store.record(rec)
        return rec


def _simulate(station: FakeStation, period_s: float, stop: threading.Event) -> None:
    """A made-up line: mostly good masks, some rejects, sizes drifting a little."""
    rng = random.Random(1)
    defects = ["seam_gap", "ear_loop", "dimension", "stain", "hole", "pleats", "stitch_length"]
    now = datetime.now(UTC)
    for i in range(180):  # some history so the charts have hours to show
        ts = now - timedelta(minutes=3 * (180 - i))
        _one(station, rng, defects, ts, image=i > 150)
    while not stop.wait(period_s):
        _one(station, rng, defects, None, image=True)
        station.overlay = make_jpeg(time.strftime("%H:%M:%S"), (30, 60, 30), (640, 480))


def _one(st: FakeStation, rng: random.Random, defects: list[str], ts: Any, image: bool) -> None:
    width = rng.gauss(200.4, 1.0)
    height = rng.gauss(94.8, 0.9)
    codes: tuple[str, ...] = ()
    if rng.random() < 0.12:
        codes = (rng.choice(defects),)
    if abs(width - 200) > 3 or abs(height - 95) > 3:
        codes = (*codes, "dimension")
    verdict = "reject" if codes else ("no_mask" if rng.random() < 0.03 else "accept")
    if verdict == "no_mask":
        st.inspect("no_mask", width_mm=None, height_mm=None, ts_utc=ts, image=False)
        return
    st.inspect(
        verdict,
        tuple(sorted(set(codes))),
        width_mm=width,
        height_mm=height,
        ts_utc=ts,
        image=image and verdict == "reject",
        latency_ms=rng.gauss(180, 30),
    )


def main() -> None:
    import uvicorn

    from station.api import create_app

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--period-s", type=float, default=2.0)
    parser.add_argument("--token", default="fake-station-supervisor-token")
    args = parser.parse_args()
    store = QCStore(args.data_dir / "qc.sqlite3")
    station = FakeStation(store, args.data_dir)
    stop = threading.Event()
    threading.Thread(target=_simulate, args=(station, args.period_s, stop), daemon=True).start()
    app = create_app(store, station, token=args.token)
    print(f"page superviseur : http://127.0.0.1:{args.port}/ (jeton {args.token})", flush=True)
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        stop.set()
        station.close()
        store.close()


if __name__ == "__main__":
    main()
