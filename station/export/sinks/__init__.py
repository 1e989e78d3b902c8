"""Sink plugins, chosen by the ``type`` of each ``[[export.sinks]]`` table.

Adding a sink: a :class:`~.base.Sink` subclass in its own module, a config model with
a ``type`` literal in :mod:`station.config.export`, and one line in :data:`SINK_TYPES`.
Modules are imported on demand, so a station without paho-mqtt can still push HTTP.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .base import (
    Identity,
    Outbound,
    RecordRejected,
    Sink,
    SinkError,
    SinkHalted,
    TransientSinkError,
)

#: ``type`` -> "module:Class" under this package.
SINK_TYPES: dict[str, str] = {
    "mqtt": "mqtt:MqttSink",
    "http": "http:HttpSink",
    "file": "file:FileSink",
}


def make_sink(
    config: Any, identity: Identity, counts: Callable[[], dict[str, Any]] | None = None
) -> Sink:
    """Instantiate the plugin for ``config.type``."""
    try:
        module_name, class_name = SINK_TYPES[config.type].split(":")
    except KeyError:
        raise ValueError(f"unknown sink type {config.type!r}: {', '.join(SINK_TYPES)}") from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(config, identity, counts)


__all__ = [
    "SINK_TYPES",
    "Identity",
    "Outbound",
    "RecordRejected",
    "Sink",
    "SinkError",
    "SinkHalted",
    "TransientSinkError",
    "make_sink",
]
