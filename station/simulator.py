"""The simulated line: a belt carrying rendered masks, a photo-eye pin and a camera.

Rendering is pure and lives in ``vision/synth``; this module owns the *time*: where
each mask is on the belt at a given instant, when the photo-eye sees it (driving a
gpiozero ``MockPin``, so the station's real trigger path runs), and what the camera
sees when a frame is taken. The camera is one more :class:`CameraSource`.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
from gpiozero.pins.mock import MockFactory

from station.camera.simulated import SimulatedCamera
from station.config import StationConfig, load_spec
from vision.synth import (
    LookParams,
    MaskParams,
    MaskSprite,
    Placement,
    Renderer,
    SimCamera,
    sample_look,
    sample_mask,
)

log = logging.getLogger(__name__)

#: Time a simulated frame may take to render on a busy machine, seconds.
_RENDER_ALLOWANCE_S = 0.5

#: The capture target has the mask centre this far before the image centre, so a frame
#: that arrives a render time late still holds the whole mask.
_CAPTURE_LEAD_MM = 30.0

#: Belt thread period, seconds: the photo-eye edge resolution.
_BELT_TICK_S = 0.001

#: Belt millimetres beyond the view's edge at which a mask is no longer drawn.
_VIEW_MARGIN_MM = 200.0

#: Gap between a new mask's leading edge and the photo-eye when it enters the belt:
#: short, so the first mask after a start is seen at once (cold start), yet the
#: edge is still a clean rising edge.
_SPAWN_GAP_MM = 10.0

#: Largest size error of a simulated ``dimension`` defect (vision.synth.sampling).
_SIZE_DEFECT_MAX_MM = 10.0

#: Masks whose ground truth is kept for tests and tools (the newest ones).
_TRUTH_KEPT = 256

#: Sprites rendered ahead of the belt. One is enough to keep the belt fed: the
#: feeder renders the next as soon as the belt takes it (~0.5 s, the belt spaces
#: masks by ~2 s), and each sprite holds ~11 MB.
_READY_SPRITES = 1

#: Texture scale of the demo's mask sprites, mm per pixel. Finer than the camera's
#: 0.155 mm/px; against 0.1 mm/px (the dataset renderer's default) the station's
#: verdicts were the same on 14 test masks and stitch lengths within 0.01 mm, for
#: 0.64× the memory and render time.
_SPRITE_MM_PER_PX = 0.125


@dataclass
class BeltMask:
    """One mask riding the belt: its parameters, sprite and timing on the monotonic clock.

    The sprite is dropped once the mask has left the camera's view: it is the
    mask's only large part, and nothing draws it any more.
    """

    index: int
    params: MaskParams
    sprite: MaskSprite | None
    defect: str | None
    enter_s: float  # centre at the spawn line
    half_extent_y_mm: float

    def center_y_mm(self, t_s: float, spawn_y_mm: float, speed_mm_s: float) -> float:
        return spawn_y_mm + (t_s - self.enter_s) * speed_mm_s


class SimulatedLine:
    """A conveyor of rendered masks, deterministic by ``simulator.seed``.

    Mask *i* enters at a fixed belt spacing; the photo-eye pin is high while any part
    of a mask body is over the trigger line. The simulated camera renders the belt at
    the instant it samples, so frames carry honest timestamps.
    """

    def __init__(self, config: StationConfig, camera: SimCamera | None = None) -> None:
        self.config = config
        self.sim = config.simulator
        self.spec = load_spec(config.inspection.spec_path)
        self.sim_camera = camera or SimCamera()
        self._renderer: Renderer | None = None
        self._renderer_lock = threading.Lock()
        self.calibration = self.sim_camera.calibration()
        self.pin_factory = MockFactory()
        self.rng = np.random.default_rng(self.sim.seed)
        self.look: LookParams = sample_look(np.random.default_rng(self.sim.seed + 1))
        self.speed = self.sim.belt_speed_mm_s
        self.trigger_y_mm = -self.sim.trigger_distance_mm
        self._max_half_mm = _max_half_extent_mm(self)
        self.spawn_y_mm = self.trigger_y_mm - self._max_half_mm - _SPAWN_GAP_MM
        self.masks: list[BeltMask] = []
        #: The newest masks fed, by index: parameters and defect (no sprite).
        self.truth: dict[int, BeltTruth] = {}
        self._lock = threading.Lock()
        self._feeding = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t_start = time.monotonic()
        self.fed = 0
        self._ready: queue.Queue[BeltMask] = queue.Queue(maxsize=_READY_SPRITES)
        self._feeder: threading.Thread | None = None
        self._pool: list[MaskSprite] = []
        self._pool_defects: list[str | None] = []
        self.camera = SimulatedCamera(self)

    @property
    def renderer(self) -> Renderer:
        """The renderer, built at first use (a few tenths of a second, ~20 MB).

        The camera's first frame builds it, on the camera thread, while the feeder
        thread renders the first mask: a demo's first mask does not wait for it.
        """
        with self._renderer_lock:
            if self._renderer is None:
                self._renderer = Renderer(self.sim_camera, _SPRITE_MM_PER_PX)
            return self._renderer

    # -- timing ---------------------------------------------------------------------
    def capture_delay_ms(self) -> float:
        return line_timing_ms(self.config)["capture_delay_ms"]

    # -- feeding --------------------------------------------------------------------
    def _new_mask(self, index: int, enter_s: float) -> BeltMask:
        defect = None
        if self.rng.random() < self.sim.defect_rate:
            kinds = [k for k in SIM_DEFECTS if k != "partial"]
            defect = str(self.rng.choice(kinds))
        params = sample_mask(self.rng, self.spec, defect, max_angle_deg=self.sim.max_angle_deg)
        x_mm = float(self.rng.uniform(-10, 10))
        params = replace(params, center_mm=(x_mm, 0.0))
        pool = self.sim.sprite_pool
        if pool and len(self._pool) >= pool:
            # Throughput runs: reuse a rendered mask (the station still inspects it).
            sprite = self._pool[index % pool]
            params, defect = sprite.params, self._pool_defects[index % pool]
        else:
            # Built without the renderer (which only the camera needs): at start-up the
            # first sprite and the renderer are built at once, on two threads.
            sprite = MaskSprite.build(params, self.rng, _SPRITE_MM_PER_PX, self.spec)
            if pool:
                self._pool.append(sprite)
                self._pool_defects.append(defect)
        a = math.radians(params.angle_deg)
        half_y = (abs(params.width_mm * math.sin(a)) + abs(params.height_mm * math.cos(a))) / 2
        return BeltMask(index, params, sprite, defect, enter_s, half_y)

    def start_feeder(self) -> None:
        """Start rendering masks ahead of the belt; idempotent.

        The demo calls this first thing, so the first sprite is ready by the time
        the station has started.
        """
        if self._feeder is None:
            self._feeder = threading.Thread(target=self._prepare, name="belt-feeder", daemon=True)
            self._feeder.start()

    def start(self) -> None:
        self._t_start = time.monotonic()
        self.start_feeder()
        self._thread = threading.Thread(target=self._run, name="belt", daemon=True)
        self._thread.start()

    def _prepare(self) -> None:
        """Render the next masks ahead of time: a sprite costs a few hundred ms, and the
        belt thread must keep the photo-eye's timing to the millisecond."""
        index = 0
        while not self._stop.is_set() and (
            self.sim.max_masks is None or index < self.sim.max_masks
        ):
            # Render only once there is room: a rendered mask waiting to be put would
            # be one more sprite held in memory.
            while self._ready.full() and not self._stop.is_set():
                self._stop.wait(_BELT_TICK_S * 5)
            if self._stop.is_set():
                break
            self._ready.put(self._new_mask(index, 0.0))
            index += 1

    def stop_feeding(self) -> None:
        self._feeding = False

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._feeder):
            if thread is not None:
                thread.join(timeout=5)

    def finished(self) -> bool:
        """True once ``max_masks`` were fed and the last one is past the ejector."""
        if not self._fed_all():
            return False
        with self._lock:
            return not self.masks

    def _run(self) -> None:
        """Spawn masks at the belt spacing and drive the photo-eye pin at each edge.

        Edges are computed, not sampled: if this thread wakes late (a busy machine),
        the mask is held back by the lateness so that the edge the station sees and
        the mask's position in later frames stay consistent, as on a real belt.
        (Sleeping until the next computed edge instead of ticking was tried: on the
        loaded machine the camera thread then lost far more frames, so it ticks.)
        """
        pin = self.pin_factory.pin(self.config.gpio.trigger_pin)
        on, off = (pin.drive_high, pin.drive_low)
        if not self.config.gpio.trigger_active_high:
            on, off = off, on
        period_s = self.sim.mask_spacing_mm / self.speed
        next_enter = time.monotonic()
        eject_y = self.sim.eject_distance_mm + _VIEW_MARGIN_MM
        pending: list[BeltMask] = []  # not yet at the photo-eye
        covering: list[BeltMask] = []  # under the photo-eye
        while not self._stop.wait(_BELT_TICK_S):
            now = time.monotonic()
            if self._feeding and now >= next_enter and not self._fed_all():
                try:
                    mask = self._ready.get_nowait()
                except queue.Empty:  # renderer behind: leave a gap on the belt
                    next_enter = now + _BELT_TICK_S
                    continue
                mask.enter_s = next_enter
                if self.fed == 0:
                    # The belt starts with the first mask's own leading edge (not the
                    # largest mask's) the spawn gap before the photo-eye.
                    mask.enter_s -= (self._max_half_mm - mask.half_extent_y_mm) / self.speed
                with self._lock:
                    self.masks.append(mask)
                    self.truth[mask.index] = BeltTruth(mask.params, mask.defect)
                    while len(self.truth) > _TRUTH_KEPT:
                        self.truth.pop(next(iter(self.truth)))
                pending.append(mask)
                self.fed += 1
                next_enter += period_s
            for mask in list(pending):
                travel = self.trigger_y_mm - mask.half_extent_y_mm - self.spawn_y_mm
                late_s = now - (mask.enter_s + travel / self.speed)
                if late_s >= 0:
                    with self._lock:
                        mask.enter_s += late_s
                    pending.remove(mask)
                    covering.append(mask)
                    on()
            for mask in list(covering):
                travel = self.trigger_y_mm + mask.half_extent_y_mm - self.spawn_y_mm
                if now >= mask.enter_s + travel / self.speed:
                    covering.remove(mask)
                    if not covering:
                        off()
            with self._lock:
                self.masks = [
                    m
                    for m in self.masks
                    if m.center_y_mm(now, self.spawn_y_mm, self.speed) < eject_y
                ]
                for m in self.masks:
                    if m.center_y_mm(now, self.spawn_y_mm, self.speed) > _VIEW_MARGIN_MM:
                        m.sprite = None  # out of view for good

    def _fed_all(self) -> bool:
        return self.sim.max_masks is not None and self.fed >= self.sim.max_masks

    # -- what the camera sees -------------------------------------------------------
    def render_at(self, t_s: float, rng: np.random.Generator) -> np.ndarray:
        return self.render(self.placements_at(t_s), t_s, rng)

    def placements_at(self, t_s: float) -> list[Placement]:
        """The masks in view at ``t_s``, with their sprites.

        Taken when a frame is sampled: a frame rendered later (on demand) must show
        the belt as it was then, even once the belt thread has dropped the sprite of
        a mask that has left the view since.
        """
        with self._lock:
            placed = [
                m.sprite.placed(
                    center_mm=(
                        m.params.center_mm[0],
                        m.center_y_mm(t_s, self.spawn_y_mm, self.speed),
                    )
                )
                for m in self.masks
                if m.sprite is not None
            ]
        return [p for p in placed if abs(p.center_mm[1]) < _VIEW_MARGIN_MM]

    def render(
        self, placements: list[Placement], t_s: float, rng: np.random.Generator
    ) -> np.ndarray:
        """The camera frame of ``placements`` on the belt as it was at ``t_s``."""
        belt_offset_mm = (t_s - self._t_start) * self.speed
        image, _truth = self.renderer.compose(placements, self.look, rng, belt_offset_mm)
        return image


@dataclass(frozen=True)
class BeltTruth:
    """What a fed mask was rendered as: its parameters and its defect (None: good)."""

    params: MaskParams
    defect: str | None


def _max_half_extent_mm(line: SimulatedLine) -> float:
    """Half the largest extent along the belt a mask of the spec can have.

    Largest body (a size defect past the tolerance) at the largest rotation drawn.
    """
    body = line.spec.body
    w = body.width_mm.hi + _SIZE_DEFECT_MAX_MM
    h = body.height_mm.hi + _SIZE_DEFECT_MAX_MM
    a = math.radians(line.sim.max_angle_deg)
    return (w * math.sin(a) + h * math.cos(a)) / 2


def line_timing_ms(config: StationConfig) -> dict[str, float]:
    """Line delays that match the simulated belt's geometry.

    A level mask's leading edge reaches the photo-eye when its centre is half a body
    height upstream of it. The capture target is half a frame period early, so that
    the first frame at or after it finds the mask centred on average. A rendered frame
    arrives a render time after its timestamp, hence the longer frame wait.
    """
    sim = config.simulator
    half_mm = load_spec(config.inspection.spec_path).body.height_mm.nominal / 2
    to_camera_s = (sim.trigger_distance_mm + half_mm - _CAPTURE_LEAD_MM) / sim.belt_speed_mm_s
    to_ejector_s = to_camera_s + sim.eject_distance_mm / sim.belt_speed_mm_s
    period_s = 1.0 / sim.frame_rate_fps
    return {
        "capture_delay_ms": max(0.0, (to_camera_s - 0.5 * period_s) * 1000),
        "eject_delay_ms": to_ejector_s * 1000,
        # A rendered frame is delivered a render time after it is stamped; allow a few.
        "frame_wait_ms": (3 * period_s + _RENDER_ALLOWANCE_S) * 1000,
    }


SIM_DEFECTS: tuple[str, ...] = (
    "dimension",
    "pleats",
    "ear_loop",
    "seam_gap",
    "seam_offset",
    "stitch_length",
    "hole",
    "stain",
)
