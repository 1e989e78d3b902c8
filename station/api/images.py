"""Inspection images by id: find the archived file, optionally a small copy of it.

The QC log stores where the station saved each frame (relative to its image
archive). A request only ever names an inspection id (a UUID); the path comes from
the log and is resolved inside the archive, never from the request. Thumbnails for
the reject gallery are made on demand in a few fixed widths and kept in a small
in-memory cache, so a phone does not download 2-megapixel frames.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: The only thumbnail widths served: bounded cache keys, bounded CPU.
THUMBNAIL_WIDTHS_PX: tuple[int, ...] = (160, 320, 640, 1280)
_CACHE_ENTRIES = 128
_COLUMN = {"annotated": "image_annotated_path", "raw": "image_raw_path"}


class ImageResolver:
    """Inspection id + kind → JPEG file, through the station or the log's paths.

    Args:
        station: the running station; its ``image_path(id, kind)`` is preferred
            (the archive knows where it put things).
        images_dir: the archive root used when there is no station (log-only mode).
    """

    def __init__(self, station: Any | None, images_dir: Path | None) -> None:
        self._station = station
        self._images_dir = images_dir
        self._cache: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, record: dict[str, Any], kind: str) -> Path | None:
        """The file for ``record``'s image, or None if it was never kept or is gone."""
        finder = getattr(self._station, "image_path", None)
        if finder is not None:
            found = finder(record["id"], kind)
            return Path(found) if found is not None else None
        relative = record.get(_COLUMN[kind])
        if not relative or self._images_dir is None:
            return None
        return resolve_inside(self._images_dir, relative)

    def thumbnail(self, path: Path, key: tuple[str, str], width_px: int) -> bytes:
        """``path`` scaled down to ``width_px`` wide (never up), as JPEG bytes."""
        cache_key = (*key, width_px)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached
        data = _scaled_jpeg(path, width_px)
        with self._lock:
            self._cache[cache_key] = data
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return data


def resolve_inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is an existing file inside ``root``; else None.

    Same rule as :meth:`station.archive.ImageArchive.resolve`: a path from the log
    that climbs out of the archive (``..``, absolute, symlink) is refused.
    """
    base = root.resolve()
    path = (base / relative).resolve()
    if base not in path.parents or not path.is_file():
        return None
    return path


def _scaled_jpeg(path: Path, width_px: int) -> bytes:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot decode {path.name} as an image")
    height, width = image.shape[:2]
    if width > width_px:
        size = (width_px, max(1, round(height * width_px / width)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise OSError(f"cannot encode a thumbnail of {path.name}")
    return np.asarray(buf).tobytes()
