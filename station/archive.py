"""The image archive: JPEGs of rejects (and a sample of accepts) under a disk quota.

Supervisors look at reject images, and the classifier is retrained from them, so the
archive keeps as many as the quota allows and deletes the oldest first. Writing is
best effort: a full or read-only disk loses images, never the inspection row, and
the failure shows in health. While it lasts, :mod:`station.recording` rejects the
masks it would have accepted (their evidence is being lost).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np

log = logging.getLogger(__name__)

_MB = 1024 * 1024

#: Below this much free space the archive's filesystem counts as full, bytes.
MIN_FREE_BYTES = 1 * _MB


@dataclass(frozen=True)
class ArchiveHealth:
    """What the archive uses and how often it failed (for health and metrics)."""

    used_mb: float
    quota_mb: float
    files: int
    deleted: int
    write_failures: int
    last_error: str | None
    failing: bool


class ImageArchive:
    """JPEG files under ``root``, oldest deleted first when over ``quota_mb``.

    Args:
        root: directory of the archive (created if missing).
        quota_mb: maximum size of all archived files, in MiB.
        jpeg_quality: JPEG quality (0–100) of archived frames.
    """

    def __init__(self, root: Path, quota_mb: float, jpeg_quality: int = 85) -> None:
        self.root = Path(root)
        self.quota_bytes = int(quota_mb * _MB)
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._files: deque[tuple[Path, int]] = deque()
        self._used = 0
        self.deleted = 0
        self.write_failures = 0
        self.last_error: str | None = None
        #: True while the last write failed (disk full, read-only): cleared by the
        #: next write that succeeds, so health shows when the archive is back.
        self.failing = False
        #: How files are opened for writing and the filesystem looked at: seams for
        #: fault-injection tests (a full or read-only disk as the kernel reports it).
        self.opener: Callable[..., IO[bytes]] = open
        self.statvfs: Callable[[Path], os.statvfs_result] = os.statvfs
        self.root.mkdir(parents=True, exist_ok=True)
        self._scan()

    def _scan(self) -> None:
        """Index what a previous run left, oldest first, so the quota holds across restarts."""
        found = []
        for path in self.root.rglob("*.jpg"):
            try:
                st = path.stat()
            except OSError:
                continue
            found.append((st.st_mtime, path, st.st_size))
        found.sort()
        self._files = deque((p, size) for _, p, size in found)
        self._used = sum(size for _, size in self._files)

    def check_space(self) -> bool:
        """Look at the filesystem without writing; False (and failing) if full or read-only.

        One ``statvfs`` call: cheap enough for every mask, so a disk that filled up
        while only unsampled accepts went by is noticed before the next accept. Only
        a successful write clears ``failing``.
        """
        try:
            st = self.statvfs(self.root)
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if st.f_flag & os.ST_RDONLY:
                problem = f"read-only file system: {self.root}"
            elif st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
                problem = f"no space left: {st.f_bavail * st.f_frsize / _MB:.1f} MiB free"
            else:
                return True
        with self._lock:
            self.last_error = problem
            was_failing, self.failing = self.failing, True
        if not was_failing:
            log.error("image archive cannot write: %s", problem)
        return False

    def save(self, name: str, image: np.ndarray) -> str | None:
        """Write ``image`` as ``name`` (relative, e.g. ``ab/<uuid>_raw.jpg``); None on failure.

        The returned relative path is what the QC log stores; the API serves it by the
        inspection's id only, never by a path from a request.
        """
        path = self.root / name
        try:
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise OSError("JPEG encoding failed")
            data = buf.tobytes()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            try:
                with self.opener(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except OSError:
                with contextlib.suppress(OSError):  # no half-written file left on a full disk
                    tmp.unlink(missing_ok=True)
                raise
        except (OSError, cv2.error) as exc:
            with self._lock:
                self.write_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                was_failing, self.failing = self.failing, True
            if not was_failing:
                log.error("archive write failed for %s: %s", name, exc)
            return None
        with self._lock:
            if self.failing:
                log.warning("archive writes again after %d failure(s)", self.write_failures)
            self.failing = False
            self._files.append((path, len(data)))
            self._used += len(data)
            self._enforce_quota()
        return name

    def _enforce_quota(self) -> None:
        while self._used > self.quota_bytes and len(self._files) > 1:
            path, size = self._files.popleft()
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not delete %s: %s", path, exc)
            self._used -= size
            self.deleted += 1

    def resolve(self, relative: str) -> Path | None:
        """The file for a path stored in the log, refusing anything outside the archive."""
        path = (self.root / relative).resolve()
        root = self.root.resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    def health(self) -> ArchiveHealth:
        with self._lock:
            return ArchiveHealth(
                used_mb=round(self._used / _MB, 3),
                quota_mb=round(self.quota_bytes / _MB, 3),
                files=len(self._files),
                deleted=self.deleted,
                write_failures=self.write_failures,
                last_error=self.last_error,
                failing=self.failing,
            )
