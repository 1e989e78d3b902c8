"""The simulated line's camera: frames of the rendered belt, as any other camera source.

Split from :mod:`station.simulator`, which owns the belt (where each mask is when);
this module only samples it at the camera's frame rate and renders what it sees.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from station.camera.base import CameraSource, Frame

if TYPE_CHECKING:
    from station.simulator import SimulatedLine
    from vision.synth import Placement


class SimulatedCamera(CameraSource):
    """Frames of the simulated belt at ``camera.frame_rate_fps``, stamped when sampled.

    With a photo-eye trigger (``lazy``) a frame is rendered only when the station
    develops it (:meth:`Frame.developed`): the station inspects about one frame in
    ten, and rendering the others cost ~40 % of a core and ~9 MB per frame held in
    the ring. The pixels are the same whenever they are made: the mask positions
    come from the frame's timestamp and its noise from its sequence number. The
    presence trigger reads every frame's lores image, so then every frame is
    rendered as it is sampled. The first frame is always rendered at once: it builds
    the renderer and its caches on this thread, not on the first mask's way.
    """

    def __init__(self, line: SimulatedLine) -> None:
        super().__init__("simulator")
        self.line = line
        self.period_s = 1.0 / line.sim.frame_rate_fps
        self.lores_width_px = line.config.camera.lores_width_px
        self.lazy = line.config.line.trigger == "photo_eye"
        self._noise_seed = line.sim.seed + 2
        self._seq = 0
        self._next_s = 0.0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True
        self._next_s = time.monotonic()

    def close(self) -> None:
        self._open = False

    def read(self, timeout_s: float) -> Frame | None:
        if not self._open:
            return None
        wait = self._next_s - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return None
        if wait > 0:
            time.sleep(wait)
        t = time.monotonic()
        self._next_s = max(self._next_s + self.period_s, t)
        self._seq += 1
        placements = self.line.placements_at(t)
        if self.lazy and self._seq > 1:
            return Frame(
                image=None,
                timestamp_s=t,
                seq=self._seq,
                source=self.name,
                render=partial(self._render, placements, t, self._seq),
            )
        return self._render(placements, t, self._seq)

    def _render(self, placements: list[Placement], t_s: float, seq: int) -> Frame:
        rng = np.random.default_rng([self._noise_seed, seq])
        return self.frame_of(self.line.render(placements, t_s, rng), t_s, seq, self.lores_width_px)

    def describe(self) -> dict[str, Any]:
        return {"fps_target": 1.0 / self.period_s, "rendered": "on demand" if self.lazy else "all"}
