"""A fake of picamera2's documented surface, for tests on a machine without a camera.

create_video_configuration, configure, start, stop, close, capture_request(wait=False)
-> job.get_result(timeout) -> request.make_array / get_metadata / release. What it
cannot show (real buffers, timestamps, control latency) is listed in
tests/test_picamera2_source.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class FakeRequest:
    def __init__(self, cam: FakePicamera2, index: int) -> None:
        self.cam = cam
        self.index = index
        self.released = 0

    def make_array(self, name: str) -> np.ndarray:
        if self.index in self.cam.broken:
            raise RuntimeError("buffer mapping failed")
        config = self.cam.camera_config[name]
        width_px, height_px = config["size"]
        if name == "main":
            return np.full((height_px, width_px, 3), self.index % 256, np.uint8)
        # YUV420 as picamera2 returns it: (h*3/2, stride), Y plane first, padded rows.
        array = np.full((height_px * 3 // 2, config["stride"]), 255, np.uint8)
        array[:height_px, :width_px] = 100
        return array

    def get_metadata(self) -> dict[str, Any]:
        metadata = {"ExposureTime": 3990, "AnalogueGain": 2.0, "ColourGains": (1.8, 1.5)}
        if self.cam.sensor_timestamps_ns:
            metadata["SensorTimestamp"] = self.cam.sensor_timestamps_ns.pop(0)
        return metadata

    def release(self) -> None:
        self.released += 1
        self.cam.outstanding -= 1


class FakeJob:
    def __init__(self, cam: FakePicamera2) -> None:
        self.cam = cam
        self.request: FakeRequest | None = None

    def get_result(self, timeout: float | None = None) -> FakeRequest:
        if self.request is None:
            if self.cam.stalls > 0:
                self.cam.stalls -= 1
                raise TimeoutError
            self.request = self.cam.next_request()
        return self.request


class FakePicamera2:
    """The documented picamera2 surface the source uses, recording what it was asked."""

    def __init__(self) -> None:
        self.created: dict[str, Any] | None = None
        self.camera_config: dict[str, Any] = {}
        self.calls: list[str] = []
        self.requests: list[FakeRequest] = []
        self.jobs = 0
        self.broken: set[int] = set()
        self.stalls = 0
        self.outstanding = 0
        self.sensor_timestamps_ns: list[int] = []

    def create_video_configuration(
        self,
        main: dict[str, Any],
        lores: dict[str, Any],
        controls: dict[str, Any],
        buffer_count: int = 6,
        **other: Any,
    ) -> dict[str, Any]:
        self.created = {
            "main": main,
            "lores": lores,
            "controls": controls,
            "buffer_count": buffer_count,
        }
        return {
            "main": dict(main),
            "lores": dict(lores),
            "controls": dict(controls),
            "buffer_count": buffer_count,
        }

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        lores = dict(config["lores"])
        lores["stride"] = lores["size"][0] + 64  # padded rows, as real ISPs do
        self.camera_config = {"main": dict(config["main"]), "lores": lores}

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")

    def capture_request(
        self, wait: Any = None, signal_function: Any = None, flush: Any = None
    ) -> Any:
        if wait is False:
            self.jobs += 1
            return FakeJob(self)
        return self.next_request()

    def next_request(self) -> FakeRequest:
        request = FakeRequest(self, len(self.requests))
        self.requests.append(request)
        self.outstanding += 1
        return request
