"""Camera sources behind one small interface (:class:`CameraSource`).

``make_source(kind, **kwargs)`` builds a source from the ``[camera]`` section of the
configuration. Other modules add kinds without this package importing them::

    from station.camera import register_source_kind
    register_source_kind("simulator", SimulatorSource)

Wrap any source in :class:`ReopeningSource` for stall detection and reconnection.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from station.camera.base import (
    CameraSource,
    Frame,
    ReopeningSource,
    SourceHealth,
)
from station.camera.convert import make_lores, to_bgr8
from station.camera.folder_source import FolderSource
from station.camera.opencv_source import OpenCVSource
from station.camera.picamera2_source import PICAMERA2_MISSING, Picamera2Source

SourceFactory = Callable[..., CameraSource]

SOURCE_KINDS: dict[str, SourceFactory] = {
    "picamera2": Picamera2Source,
    "opencv": OpenCVSource,
    "folder": FolderSource,
}
"""Kind name → callable building the source from keyword arguments."""


def register_source_kind(kind: str, factory: SourceFactory, *, replace: bool = False) -> None:
    """Make ``make_source(kind, ...)`` call ``factory(**kwargs)``.

    Args:
        kind: name used in the configuration, e.g. ``"simulator"``.
        factory: callable returning a :class:`CameraSource`.
        replace: allow overriding an existing kind (otherwise ValueError).
    """
    if kind in SOURCE_KINDS and not replace and SOURCE_KINDS[kind] is not factory:
        raise ValueError(f"camera source kind {kind!r} is already registered")
    SOURCE_KINDS[kind] = factory


def make_source(kind: str, **kwargs: Any) -> CameraSource:
    """Build a camera source of the given kind with ``kwargs`` passed to its constructor.

    Raises:
        ValueError: for an unknown kind, naming the known ones.
    """
    try:
        factory = SOURCE_KINDS[kind]
    except KeyError:
        close = difflib.get_close_matches(kind, list(SOURCE_KINDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(SOURCE_KINDS))
        raise ValueError(f"unknown camera source kind {kind!r}{hint}; known: {known}") from None
    return factory(**kwargs)


__all__ = [
    "PICAMERA2_MISSING",
    "SOURCE_KINDS",
    "CameraSource",
    "FolderSource",
    "Frame",
    "OpenCVSource",
    "Picamera2Source",
    "ReopeningSource",
    "SourceFactory",
    "SourceHealth",
    "make_lores",
    "make_source",
    "register_source_kind",
    "to_bgr8",
]
