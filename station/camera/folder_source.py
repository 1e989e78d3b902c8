"""Replay a folder of still images as if a camera produced them.

Used to re-run the inspection on photos taken in the workshop (regression sets,
tuning thresholds at a desk), so a bad file must behave like a bad camera frame:
a :class:`Frame` with an ``error``, never an exception that stops the replay.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np

from station.camera.base import CameraSource, Clock, Frame, Sleep
from station.camera.convert import make_lores, to_bgr8

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


def natural_key(name: str) -> tuple[str | int, ...]:
    """Sort key putting ``img2.png`` before ``img10.png`` (digits compare as numbers)."""
    parts = re.split(r"(\d+)", name.casefold())
    # re.split with one group alternates text, digits, text...: types never mix per position.
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (no recursion), in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def decode_image(data: bytes, name: str) -> tuple[np.ndarray | None, str | None]:
    """Decode image bytes to 8-bit BGR; return ``(image, None)`` or ``(None, reason)``.

    Grey, 16-bit (scaled ``>> 8``) and 4-channel files are converted to BGR. A JPEG
    without its end-of-image marker is rejected even if the decoder would fill the
    missing rows with grey, because a half-decoded mask would be measured wrongly.

    Args:
        data: the file's bytes.
        name: file name used in the error text.
    """
    if not data:
        return None, f"cannot decode {name}: empty file"
    if data.startswith(_JPEG_SOI) and not data.rstrip(b"\x00\r\n ").endswith(_JPEG_EOI):
        return None, f"cannot decode {name}: truncated JPEG"
    try:
        raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        return None, f"cannot decode {name}: {str(exc).strip().splitlines()[-1]}"
    if raw is None:
        return None, f"cannot decode {name}"
    try:
        return to_bgr8(raw), None
    except ValueError as exc:
        return None, f"cannot decode {name}: {exc}"


class FolderSource(CameraSource):
    """Replays the image files of a folder in natural order, optionally looping and paced.

    The file list is taken at ``open()``. Without ``fps`` each ``read`` returns the
    next file at once; with ``fps`` reads are spaced ``1/fps`` seconds apart like a
    camera. After the last file a non-looping source returns ``None``.

    Args:
        folder: directory holding jpg/jpeg/png/bmp/tif/tiff files (case-insensitive).
        loop: restart at the first file after the last one.
        fps: pacing in frames per second; ``None`` = as fast as asked.
        lores_width_px: width of the grey thumbnail in ``Frame.lores``, in pixels.
        name: source name; defaults to ``folder:<directory name>``.
        clock: monotonic clock in seconds, injectable for tests.
        sleep: sleeping function taking seconds, injectable for tests.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        loop: bool = False,
        fps: float | None = None,
        lores_width_px: int = 320,
        name: str | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.folder = Path(folder)
        super().__init__(name or f"folder:{self.folder.name}", clock=clock)
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        self.loop = loop
        self.fps = fps
        self.lores_width_px = lores_width_px
        self._sleep = sleep
        self._files: list[Path] | None = None
        self._index = 0
        self._seq = 0
        self._next_due_s: float | None = None
        self.decode_failures = 0

    @property
    def is_open(self) -> bool:
        return self._files is not None

    @property
    def files(self) -> list[Path]:
        """The files that will be replayed, in order (empty before ``open()``)."""
        return list(self._files or [])

    @property
    def exhausted(self) -> bool:
        """True when a non-looping replay has handed out every file."""
        return self._files is not None and not self.loop and self._index >= len(self._files)

    def open(self) -> None:
        """List the folder; raises FileNotFoundError if it is not a directory."""
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.name}: no folder {self.folder}")
        self._files = list_images(self.folder)
        self._index = 0
        self._next_due_s = None
        if not self._files:
            logger.warning("%s: no image files in %s", self.name, self.folder)
        else:
            logger.info("%s: %d image(s) to replay", self.name, len(self._files))

    def close(self) -> None:
        self._files = None

    def read(self, timeout_s: float) -> Frame | None:
        """Decode the next file; ``None`` when exhausted or when pacing exceeds ``timeout_s``."""
        files = self._files
        if files is None:
            raise RuntimeError(f"{self.name}: read() before open()")
        if self._index >= len(files):
            if not self.loop or not files:
                return None
            self._index = 0
        if not self._wait_for_slot(timeout_s):
            return None
        path = files[self._index]
        self._index += 1
        try:
            image, error = decode_image(path.read_bytes(), path.name)
        except OSError as exc:
            image, error = None, f"cannot read {path.name}: {exc.strerror or exc}"
        if error is not None:
            self.decode_failures += 1
            logger.error("%s: %s (failure #%d)", self.name, error, self.decode_failures)
        seq = self._seq
        self._seq += 1
        return Frame(
            image=image,
            timestamp_s=self.clock(),
            seq=seq,
            lores=None if image is None else make_lores(image, self.lores_width_px),
            error=error,
            source=self.name,
            path=str(path),
        )

    def _wait_for_slot(self, timeout_s: float) -> bool:
        """Sleep until the next frame is due; False if that is later than ``timeout_s``."""
        if self.fps is None:
            return True
        period_s = 1.0 / self.fps
        now_s = self.clock()
        due_s = now_s if self._next_due_s is None else self._next_due_s
        wait_s = due_s - now_s
        if wait_s > timeout_s:
            self._sleep(max(timeout_s, 0.0))
            return False
        if wait_s > 0:
            self._sleep(wait_s)
        # Keep a steady cadence, but do not try to catch up after a long pause.
        self._next_due_s = max(due_s, self.clock() - period_s) + period_s
        return True
