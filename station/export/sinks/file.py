"""``type = "file"``: append each record as one JSON line to a local file.

For a USB stick or a folder another tool syncs, and for testing the publisher without
a server. The file is fsynced before the batch is acknowledged; a crash between the
two repeats the batch, so readers deduplicate on ``id`` as they would for MQTT.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .base import Outbound, Sink, TransientSinkError


class FileSink(Sink):
    """Append-only JSONL file sink."""

    type = "file"

    def send(self, items: Sequence[Outbound]) -> int:
        path = self.config.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.writelines(item.payload + "\n" for item in items)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise TransientSinkError(f"cannot append to {path}: {exc}") from exc
        return len(items)

    def health(self) -> dict[str, Any]:
        return {"path": str(self.config.path)}
