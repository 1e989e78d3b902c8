"""Camera sources against real files written here and fake clocks.

Folder replay, OpenCV capture, the reopening wrapper and the source registry.
Picamera2Source is tested against a fake in tests/test_picamera2_source.py, which
also lists what only a real Pi can show.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.fake_clock import FakeClock
from helpers.fake_picamera2 import FakePicamera2

from station.camera import (
    SOURCE_KINDS,
    CameraSource,
    FolderSource,
    Frame,
    OpenCVSource,
    Picamera2Source,
    ReopeningSource,
    make_source,
    register_source_kind,
)


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image), path
    return path


def _colour(value: int, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


# -- FolderSource ---------------------------------------------------------------------


def test_folder_replays_in_natural_order_with_paths_and_seq(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        _write(tmp_path / f"img{i}.png", _colour(i * 10))
    (tmp_path / "notes.txt").write_text("not an image")
    _write(tmp_path / "IMG3.JPG", _colour(30))
    clock = FakeClock()
    with FolderSource(tmp_path, clock=clock.__call__, name="replay") as source:
        frames = []
        while (frame := source.read(0.1)) is not None:
            frames.append(frame)
            clock.advance(0.01)
        assert source.exhausted
    assert [Path(f.path).name for f in frames] == ["img1.png", "img2.png", "IMG3.JPG", "img10.png"]
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert all(b.timestamp_s > a.timestamp_s for a, b in itertools.pairwise(frames))
    assert all(f.ok and f.source == "replay" for f in frames)
    assert frames[3].image.shape == (24, 32, 3) and frames[3].image.dtype == np.uint8
    assert int(frames[3].image[0, 0, 0]) == 100
    assert frames[0].lores.shape == (24, 32)  # no upscaling of a small image


def test_folder_loop_wraps_and_non_loop_stops(tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / f"{i}.png", _colour(i))
    looping = FolderSource(tmp_path, loop=True)
    looping.open()
    names = [Path(looping.read(0.1).path).name for _ in range(7)]
    assert names == ["0.png", "1.png", "2.png", "0.png", "1.png", "2.png", "0.png"]
    once = FolderSource(tmp_path)
    once.open()
    assert [once.read(0.1) is not None for _ in range(4)] == [True, True, True, False]


def test_folder_converts_grey_16bit_and_alpha_to_bgr8(tmp_path: Path) -> None:
    _write(tmp_path / "a_grey.png", np.full((8, 10), 77, np.uint8))
    _write(tmp_path / "b_16bit.png", np.full((8, 10, 3), 0xABCD, np.uint16))
    _write(tmp_path / "c_16bit_grey.tif", np.full((8, 10), 0x1234, np.uint16))
    bgra = np.zeros((8, 10, 4), np.uint8)
    bgra[..., 0], bgra[..., 3] = 200, 128
    _write(tmp_path / "d_alpha.png", bgra)
    with FolderSource(tmp_path) as source:
        grey, sixteen, sixteen_grey, alpha = (source.read(0.1) for _ in range(4))
    for frame in (grey, sixteen, sixteen_grey, alpha):
        assert frame.ok, frame.error
        assert frame.image.shape == (8, 10, 3) and frame.image.dtype == np.uint8
    assert np.all(grey.image == 77)
    assert np.all(sixteen.image == 0xAB)
    assert np.all(sixteen_grey.image == 0x12)
    assert alpha.image[0, 0].tolist() == [200, 0, 0]


def test_folder_bad_files_become_error_frames_and_replay_goes_on(tmp_path: Path) -> None:
    _write(tmp_path / "1_good.png", _colour(50))
    (tmp_path / "2_corrupt.jpg").write_bytes(b"this is not a jpeg at all")
    ok, jpeg = cv2.imencode(
        ".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    )
    assert ok
    (tmp_path / "3_truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    ok, png = cv2.imencode(".png", _colour(9))
    (tmp_path / "4_truncated.png").write_bytes(png.tobytes()[: len(png) // 2])
    (tmp_path / "5_empty.bmp").write_bytes(b"")
    _write(tmp_path / "6_good.bmp", _colour(60))
    with FolderSource(tmp_path) as source:
        frames = [source.read(0.1) for _ in range(6)]
        assert source.decode_failures == 4
    assert [f.ok for f in frames] == [True, False, False, False, False, True]
    for frame in frames[1:5]:
        name = Path(frame.path).name
        assert frame.image is None and frame.lores is None
        assert frame.error.startswith(f"cannot decode {name}"), frame.error
    assert frames[2].error == "cannot decode 3_truncated.jpg: truncated JPEG"
    assert [f.seq for f in frames] == list(range(6))


def test_folder_fps_pacing_uses_injected_clock_and_sleep(tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / f"{i}.png", _colour(i))
    clock = FakeClock()
    source = FolderSource(tmp_path, fps=10.0, clock=clock.__call__, sleep=clock.sleep)
    source.open()
    first = source.read(1.0)
    clock.advance(0.03)  # processing time between reads
    second = source.read(1.0)
    assert clock.sleeps_s == [pytest.approx(0.07)]
    assert second.timestamp_s - first.timestamp_s == pytest.approx(0.1)
    assert source.read(0.05) is None  # next frame due in 0.1 s: longer than the timeout
    assert clock.sleeps_s[-1] == pytest.approx(0.05)
    assert source.read(1.0).timestamp_s == pytest.approx(first.timestamp_s + 0.2)


def test_folder_missing_directory_and_read_before_open(tmp_path: Path) -> None:
    source = FolderSource(tmp_path / "nope")
    with pytest.raises(RuntimeError, match="before open"):
        source.read(0.1)
    with pytest.raises(FileNotFoundError):
        source.open()


def test_read_after_skips_stale_frames(tmp_path: Path) -> None:
    for i in range(5):
        _write(tmp_path / f"{i}.png", _colour(i))
    clock = FakeClock()
    source = FolderSource(tmp_path, fps=10.0, clock=clock.__call__, sleep=clock.sleep)
    source.open()
    t0_s = clock() + 0.25
    frame = source.read_after(t0_s, timeout_s=1.0)
    assert frame is not None and frame.timestamp_s >= t0_s
    assert Path(frame.path).name == "3.png"  # frames 0..2 were exposed before t0
    assert source.read_after(clock() + 10.0, timeout_s=0.3) is None


# -- OpenCVSource ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "run.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi")
    for i in range(8):
        writer.write(_colour(i * 30, (48, 64)))
    writer.release()
    return path


def test_opencv_reads_video_file_frames_in_order(video_file: Path) -> None:
    clock = FakeClock()
    source = OpenCVSource(video_file, lores_width_px=32, clock=clock.__call__)
    assert source.kind == "file"
    frames: list[Frame] = []
    with source:
        while (frame := source.read(1.0)) is not None:
            frames.append(frame)
            clock.advance(0.1)
    assert len(frames) == 8
    assert [f.seq for f in frames] == list(range(8))
    assert all(b.timestamp_s > a.timestamp_s for a, b in itertools.pairwise(frames))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].lores.shape == (24, 32)
    brightness = [float(f.image.mean()) for f in frames]
    assert brightness == sorted(brightness)  # MJPG is lossy, but the ramp survives
    assert not source.is_open


def test_opencv_loops_video_file(video_file: Path) -> None:
    with OpenCVSource(str(video_file), loop=True) as source:
        frames = [source.read(1.0) for _ in range(12)]
    assert all(f is not None for f in frames)
    assert frames[8].image.mean() < frames[7].image.mean()  # back to the dark first frame


def test_opencv_missing_file_and_target_kinds(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        OpenCVSource(tmp_path / "missing.avi").open()
    assert OpenCVSource(0).kind == "device"
    assert OpenCVSource("0").target == 0
    assert OpenCVSource("/dev/video2").kind == "device"
    assert OpenCVSource("rtsp://cam.local/stream").kind == "url"


def test_opencv_failed_grab_is_none_and_url_gets_timeouts() -> None:
    calls: list[tuple[Any, ...]] = []

    class DeadCapture:
        def isOpened(self) -> bool:
            return True

        def read(self) -> tuple[bool, None]:
            return False, None

        def release(self) -> None:
            calls.append(("release",))

        def getBackendName(self) -> str:
            return "FAKE"

    def factory(*args: Any) -> DeadCapture:
        calls.append(args)
        return DeadCapture()

    source = OpenCVSource("rtsp://cam.local/s", open_timeout_ms=1500, capture_factory=factory)
    with source:
        assert source.read(0.5) is None
        assert source.grab_failures == 1
    assert calls[0][2] == [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        1500,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        5000,
    ]
    assert calls[-1] == ("release",)


# -- ReopeningSource ------------------------------------------------------------------


class ScriptedSource(CameraSource):
    """Inner source whose reads follow a script: "f" frame, "n" None, "x" raise."""

    def __init__(self, clock: FakeClock, script: str = "", open_failures: int = 0) -> None:
        super().__init__("scripted", clock=clock.__call__)
        self.fake_clock = clock
        self.script = list(script)
        self.open_failures = open_failures
        self.opens = 0
        self.closes = 0
        self._open = False
        self._seq = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        if self.open_failures > 0:
            self.open_failures -= 1
            raise OSError("camera unplugged")
        self.opens += 1
        self._open = True

    def close(self) -> None:
        self.closes += 1
        self._open = False

    def read(self, timeout_s: float) -> Frame | None:
        assert self._open, "read on a closed inner source"
        step = self.script.pop(0) if self.script else "f"
        if step == "x":
            raise OSError("VIDIOC_DQBUF: No such device")
        if step == "n":
            self.fake_clock.advance(timeout_s)  # waited the whole timeout for nothing
            return None
        self.fake_clock.advance(0.125)  # 8 fps, exact in binary floating point
        self._seq += 1
        return Frame(_colour(1), self.fake_clock(), self._seq - 1, source=self.name)


def test_reopening_passes_frames_and_reports_health() -> None:
    clock = FakeClock()
    inner = ScriptedSource(clock)
    source = ReopeningSource(inner, clock=clock.__call__, sleep=clock.sleep)
    assert source.health().state == "closed"
    with source:
        frames = [source.read(0.5) for _ in range(30)]
        health = source.health()
        clock.advance(0.5)
        aged = source.health()
    assert all(f is not None for f in frames)
    assert health.state == "ok" and health.frames == 30
    assert health.fps == pytest.approx(8.0)
    assert health.failures == 0 and health.reopens == 0 and health.last_error is None
    assert health.last_frame_age_s == 0.0 and aged.last_frame_age_s == pytest.approx(0.5)
    assert source.health().state == "closed" and inner.closes == 1


def test_reopening_reopens_after_stall_with_backoff() -> None:
    clock = FakeClock()
    inner = ScriptedSource(clock, script="ff" + "n" * 4)
    source = ReopeningSource(
        inner,
        stall_timeout_s=2.0,
        backoff_initial_s=1.0,
        clock=clock.__call__,
        sleep=clock.sleep,
    )
    source.open()
    assert source.read(0.5) and source.read(0.5)
    assert source.read(0.5) is None
    assert source.health().state == "stalled"
    results = [source.read(0.5) for _ in range(3)]  # the 4th None crosses 2 s without a frame
    assert results == [None, None, None]
    health = source.health()
    assert health.state == "reopening" and health.failures == 1 and inner.closes == 1
    assert "no frame for 2.0 s" in health.last_error
    assert source.read(0.5) is None  # sleeps 0.5 of the 1.0 s backoff
    frame = source.read(0.5)  # sleeps the rest, reopens, reads
    assert frame is not None
    assert clock.sleeps_s == [0.5, 0.5]
    health = source.health()
    assert health.state == "ok" and health.reopens == 1 and inner.opens == 2


def test_reopening_backoff_grows_to_max_while_open_fails_and_never_raises() -> None:
    clock = FakeClock()
    inner = ScriptedSource(clock, script="x")
    source = ReopeningSource(
        inner,
        stall_timeout_s=0.1,
        backoff_initial_s=0.5,
        backoff_max_s=3.0,
        clock=clock.__call__,
        sleep=clock.sleep,
    )
    source.open()
    inner.open_failures = 6
    assert source.read(10.0) is None  # raised inside: counted, waited 10 s, not raised
    assert source.health().state == "reopening"  # 10 s without a frame: closed
    for _ in range(10):
        if inner.open_failures == 0:
            break
        assert source.read(10.0) is None
    assert clock.sleeps_s == [10.0, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]  # doubling, capped at 3 s
    assert source.read(10.0) is not None
    assert clock.sleeps_s[-1] == 3.0
    health = source.health()
    assert health.reopens == 1 and health.state == "ok"
    assert health.failures == 1 + 1 + 6  # read raised, stall, six failed opens
    assert health.last_error == "open failed: OSError('camera unplugged')"


def test_reopening_survives_failing_first_open() -> None:
    clock = FakeClock()
    inner = ScriptedSource(clock, open_failures=1)
    source = ReopeningSource(inner, backoff_initial_s=0.2, clock=clock.__call__, sleep=clock.sleep)
    source.open()
    assert source.health().state == "reopening"
    assert "camera unplugged" in source.health().last_error
    assert source.read(1.0) is not None
    assert source.health().reopens == 1


# -- registry -------------------------------------------------------------------------


def test_make_source_and_registry(tmp_path: Path) -> None:
    source = make_source("folder", folder=tmp_path, loop=True)
    assert isinstance(source, FolderSource) and source.loop
    assert isinstance(make_source("picamera2", camera_factory=FakePicamera2), Picamera2Source)
    with pytest.raises(ValueError, match="did you mean 'folder'"):
        make_source("foldr")

    def simulator(**kwargs: Any) -> FolderSource:
        return FolderSource(tmp_path, **kwargs)

    register_source_kind("test-sim", simulator)
    try:
        assert make_source("test-sim", fps=5.0).fps == 5.0
        with pytest.raises(ValueError, match="already registered"):
            register_source_kind("test-sim", FolderSource)
    finally:
        SOURCE_KINDS.pop("test-sim")
