"""sd_notify without a dependency: READY, STATUS and WATCHDOG heartbeats to systemd.

The unit is ``Type=notify`` with ``WatchdogSec=``; the heartbeat is sent from the
inspection worker's own loop, so a hung loop (not just a dead process) is restarted.
Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    """Sends datagrams to ``$NOTIFY_SOCKET``; heartbeats rate-limited to half the watchdog."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() else None
        self._last_beat = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def send(self, message: str) -> None:
        if not self._addr:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self._addr)
        except OSError:
            log.warning("sd_notify failed: %s", message, exc_info=True)

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def heartbeat(self) -> None:
        """WATCHDOG=1 at most every half watchdog period."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_beat >= self.watchdog_interval_s:
            self._last_beat = now
            self.send("WATCHDOG=1")
