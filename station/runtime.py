"""Assemble a running station from its configuration.

``qc-station run`` and ``qc-station demo`` both come here; the demo only swaps in the
simulated belt and gpiozero's MockFactory. Everything that owns a resource (threads,
the SQLite file, the HTTP server) is closed by :meth:`Runtime.close`.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from station.archive import ImageArchive
from station.auth import load_or_create_token, token_path
from station.camera import make_source
from station.camera.base import CameraSource, ReopeningSource
from station.config import StationConfig, load_calibration, load_spec
from station.encoder import BeltClock
from station.events import EventBus, attach_store
from station.export.publisher import Publisher
from station.frames import FrameFeed
from station.gpio import StationIO, make_pin_factory
from station.health import cpu_temperature_c, disk_usage
from station.loop import Station, Versions
from station.model import Classifier, load_classifier
from station.recipes import load_recipe
from station.recording import Recorder
from station.store import Batch, QCStore
from station.trigger import PresenceParams, PresenceTrigger
from vision.calibration import Calibration
from vision.pipeline import InspectionContext
from vision.spec import PrototypeSpec

if TYPE_CHECKING:
    from station.simulator import SimulatedLine

log = logging.getLogger(__name__)

#: Width and JPEG quality of the live preview frames.
LIVE_WIDTH_PX = 960
LIVE_JPEG_QUALITY = 75

#: Interpreter thread switch interval for a running station, seconds.
GIL_SWITCH_INTERVAL_S = 0.001


@dataclass
class Runtime:
    """A running station and what it owns."""

    config: StationConfig
    data_dir: Path
    store: QCStore
    station: Station
    io: StationIO
    archive: ImageArchive
    recorder: Recorder
    server: Any | None = None
    server_thread: threading.Thread | None = None
    belt: Any | None = None
    url: str | None = None
    events: EventBus = field(default_factory=EventBus)
    publisher: Publisher | None = None
    _overlay_jpeg: tuple[Any, bytes] | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def spec(self) -> PrototypeSpec:
        """The prototype the next masks are measured against."""
        return self.station.ctx.spec

    def last_overlay_jpeg(self) -> bytes | None:
        """The last annotated frame as a small JPEG, encoded once per new frame."""
        overlay = self.station.last_overlay
        if overlay is None:
            return None
        cached = self._overlay_jpeg
        if cached is not None and cached[0] is overlay:
            return cached[1]
        scale = min(1.0, LIVE_WIDTH_PX / overlay.shape[1])
        small = (
            cv2.resize(overlay, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if scale < 1
            else overlay
        )
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, LIVE_JPEG_QUALITY])
        if not ok:
            return None
        self._overlay_jpeg = (overlay, buf.tobytes())
        return self._overlay_jpeg[1]

    def image_path(self, inspection_id: str, kind: str) -> Path | None:
        """The archived JPEG of an inspection, resolved inside the archive only."""
        record = self.store.get(inspection_id)
        if record is None:
            return None
        relative = record["image_raw_path" if kind == "raw" else "image_annotated_path"]
        return self.archive.resolve(relative) if relative else None

    def status(self) -> dict[str, Any]:
        """Station health plus the machine's: what ``/api/v1/status`` serves."""
        st = self.station.status()
        st["archive"] = asdict(self.archive.health())
        st["recording"] = self.recorder.health()
        st["disk"] = disk_usage(self.data_dir)
        st["temperature_c"] = cpu_temperature_c()
        if self.publisher is not None:
            st["export"] = self.publisher.health()
        return st

    def start_batch(
        self,
        workshop: str | None = None,
        order_number: str | None = None,
        spec_name: str | None = None,
    ) -> Batch:
        """Open a batch (closing the open one) and switch the recipe, without a restart."""
        spec = load_recipe(spec_name) if spec_name else None
        batch = self.store.start_batch(
            workshop or self.config.station.workshop,
            order_number=order_number,
            spec_name=spec.spec.name if spec else self.station.ctx.spec.spec.name,
            close_previous=True,
        )
        self.station.set_recipe(spec, batch.id)
        return batch

    def close_batch(self) -> Batch:
        """Close the open batch; masks are counted outside any batch until the next."""
        batch = self.store.close_batch()
        self.station.set_recipe(None, None)
        return batch

    def close(self, keep_store: bool = False) -> None:
        """Stop feeding masks, settle those on the belt, then close everything.

        ``keep_store`` leaves the QC log open so the caller can read final counts.
        """
        if self.belt is not None:
            self.belt.stop_feeding()
        self.station.stop()
        self.recorder.close()  # rows held while the log was busy get a last chance
        if self.belt is not None:
            self.belt.stop()
        if self.publisher is not None:
            self.publisher.stop()  # unsent records stay in the outbox
        self.events.close()  # ends open SSE/MJPEG streams so uvicorn can stop
        if self.server is not None:
            self.server.should_exit = True
            if self.server_thread is not None:
                self.server_thread.join(timeout=5)
        self.io.close()
        if not keep_store:
            self.store.close()


def resolve_data_dir(config: StationConfig) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    if config.storage.data_dir is not None:
        path = Path(config.storage.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path, None
    tmp = tempfile.TemporaryDirectory(prefix="qc-station-")
    return Path(tmp.name), tmp


def build_runtime(
    config: StationConfig,
    *,
    calibration: Calibration | None = None,
    source: CameraSource | None = None,
    pin_factory: Any | None = None,
    belt: Any | None = None,
    serve: bool = True,
) -> Runtime:
    """Create the store, pins, camera feed, station and (optionally) the web server.

    ``calibration``/``source``/``belt`` are passed by the demo (the simulator knows its
    own camera); a real line reads the calibration file named in the config.
    """
    # The ejector thread must win the GIL within a millisecond or two of its deadline,
    # even while the camera and inspection threads run Python code: shorten the
    # interpreter's thread switch interval from its 5 ms default.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    classifier = _load_model(config)  # first: a refused model must not leave files open
    data_dir, tmp = resolve_data_dir(config)
    store = QCStore(data_dir / config.storage.db_filename)
    open_batch = store.current_batch()
    # A batch left open by the previous run keeps its recipe across the restart.
    spec = (
        load_recipe(open_batch.spec_name)
        if open_batch is not None and open_batch.spec_name
        else load_spec(config.inspection.spec_path)
    )
    if calibration is None:
        if config.inspection.calibration_path is None:
            raise ValueError(
                "inspection.calibration_path: required on a real line "
                "(run `qc-station calibrate` first)"
            )
        calibration = load_calibration(config.inspection.calibration_path)
    ctx = InspectionContext.create(
        calibration,
        spec,
        annotate=config.inspection.annotate,
        classifier=classifier,
        defer_overlay=True,  # drawn for rejects, samples and the live view only
    )
    if pin_factory is None:
        pin_factory = make_pin_factory(config.gpio.pin_factory)
    io = StationIO(config.gpio, pin_factory=pin_factory)
    belt_clock = None
    if config.gpio.encoder_pin is not None and config.line.encoder_counts_per_mm is not None:
        belt_clock = BeltClock(
            config.gpio.encoder_pin,
            config.line.encoder_counts_per_mm,
            config.line.encoder_nominal_speed_mm_s,
            pin_factory=pin_factory,
        )
    cam = config.camera
    inner = source if source is not None else _make_camera(config)
    reopening = ReopeningSource(
        inner,
        stall_timeout_s=cam.stall_timeout_s,
        backoff_initial_s=cam.backoff_initial_s,
        backoff_max_s=cam.backoff_max_s,
    )
    presence: PresenceTrigger | None = None
    station_ref: list[Station] = []
    if config.line.trigger == "presence":
        pc = config.line.presence
        presence = PresenceTrigger(
            PresenceParams(
                band_top_pct=pc.band_top_pct,
                band_height_pct=pc.band_height_pct,
                contrast_levels=pc.contrast_levels,
                on_fraction=pc.on_fraction,
                off_fraction=pc.off_fraction,
            ),
            fire=lambda t0: station_ref[0].trigger(t0),
        )
    feed = FrameFeed(reopening, on_frame=presence.feed if presence else None)
    versions = Versions(
        spec=spec.label,
        calibration=calibration.version,
        model=classifier.label if classifier is not None else "none",
    )
    archive = ImageArchive(data_dir / "images", config.storage.archive_quota_mb)
    recorder = Recorder(config, store, archive, versions)
    station = Station(
        config,
        feed,
        io,
        ctx,
        record=recorder.record,
        versions=versions,
        camera_health=lambda: _health_dict(reopening),
        photo_eye=config.line.trigger == "photo_eye",
        belt_clock=belt_clock,
    )
    station.set_recipe(None, open_batch.id if open_batch else None)
    station_ref.append(station)
    recorder.alarms = station.alarms  # record/archive faults show with the station's
    if belt_clock is not None:
        recorder.clock = belt_clock  # deadlines are on the belt clock
    rt = Runtime(config, data_dir, store, station, io, archive, recorder, belt=belt, _tmp=tmp)
    attach_store(rt.events, store)
    # Always running, even with no sink: it measures the backlog and keeps its quota.
    rt.publisher = Publisher.from_config(
        store,
        config.export,
        station_id=config.station.station_id,
        workshop=config.station.workshop,
    )
    station.start()
    rt.publisher.start()
    if belt is not None:
        belt.start()
    if serve and config.api.enabled:
        try:
            _serve(rt)
        except BaseException:
            rt.close()  # a refused start leaves no thread running
            raise
    return rt


def build_simulated_runtime(
    config: StationConfig, line: SimulatedLine, *, serve: bool = True
) -> Runtime:
    """The station on a simulated line: its camera, pins, exact calibration and belt."""
    return build_runtime(
        config,
        calibration=line.calibration,
        source=line.camera,
        pin_factory=line.pin_factory,
        belt=line,
        serve=serve,
    )


def _load_model(config: StationConfig) -> Classifier | None:
    """The configured defect classifier, or None when disabled.

    A model the station refuses (missing, card or sha256 mismatch, wrong graph) stops
    the start-up with :class:`ModelError` saying why: running without the model the
    configuration names would pass holes and stains unseen.
    """
    mc = config.model
    if not mc.enabled:
        log.warning("defect classifier disabled (model.enabled = false): holes and stains unseen")
        return None
    return load_classifier(mc.path, mc.intra_op_threads, mc.thresholds or None)


def _make_camera(config: StationConfig) -> CameraSource:
    cam = config.camera
    if cam.source == "picamera2":
        return make_source(
            "picamera2",
            size_px=(cam.width_px, cam.height_px),
            lores_size_px=(cam.lores_width_px, cam.lores_height_px),
            exposure_us=cam.exposure_us,
            analogue_gain=cam.analogue_gain,
            colour_gains=cam.colour_gains,
            frame_rate_fps=cam.frame_rate_fps,
        )
    if cam.source == "opencv":
        device: int | str = int(cam.device) if cam.device.isdigit() else cam.device
        return make_source(
            "opencv",
            target=device,
            width_px=cam.width_px,
            height_px=cam.height_px,
            fps=cam.frame_rate_fps,
            loop=cam.loop,
        )
    if cam.source == "folder":
        return make_source("folder", folder=cam.folder, loop=cam.loop, fps=cam.frame_rate_fps)
    raise ValueError(f"camera.source: {cam.source!r} needs the simulator (use `qc-station demo`)")


def _health_dict(source: ReopeningSource) -> dict[str, Any]:
    h = source.health()
    return {
        "state": h.state,
        "fps": round(h.fps, 2),
        "frames": h.frames,
        "failures": h.failures,
        "reopens": h.reopens,
        "last_frame_age_s": None if h.last_frame_age_s is None else round(h.last_frame_age_s, 3),
        "last_error": h.last_error,
    }


def _serve(rt: Runtime) -> None:
    from station.api import create_app
    from station.api.server import check_port_free, start_api_server

    api = rt.config.api
    check_port_free(api.host, api.port)  # refused before the token is announced
    token, created = load_or_create_token(rt.data_dir, api.token)
    if created:
        print(f"jeton superviseur (gardé dans {token_path(rt.data_dir)}) : {token}", flush=True)
    app = create_app(rt.store, station=rt, config=rt.config, token=token)
    rt.server, rt.server_thread = start_api_server(app, api.host, api.port, api.thread_nice)
    rt.url = f"http://{api.host}:{api.port}/"
