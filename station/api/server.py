"""Serving the supervisor page and API beside the station, in its own thread.

The station's inspection must not wait for the web page, so uvicorn runs in a thread
of the station's process, at a lower scheduling priority. But the page is how a
supervisor sees the line: a port that cannot be served is refused at start with the
key to change, not logged while the station prints a URL where someone else answers.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from typing import Any

from station.config import ConfigError

log = logging.getLogger(__name__)

#: How long the start waits for uvicorn to listen before calling the port unusable.
API_START_TIMEOUT_S = 15.0
_START_POLL_S = 0.01


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`ConfigError` naming ``api.port`` if ``host:port`` cannot be bound.

    Bound as uvicorn binds it (``SO_REUSEADDR``), then released: uvicorn binds again
    a moment later. The exact errno makes the message say why.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "is already in use (another station or program listens there)"
            elif exc.errno == errno.EACCES:
                why = "needs privileges (ports below 1024 are reserved)"
            else:
                why = f"cannot be bound: {exc.strerror or exc}"
            raise ConfigError(
                "[api]",
                [f"api.port: {host}:{port} {why}; choose another port (api.port, or --port)"],
            ) from exc


def start_api_server(
    app: Any, host: str, port: int, thread_nice: int
) -> tuple[Any, threading.Thread]:
    """Start uvicorn serving ``app`` in a thread; return once it listens.

    Call :func:`check_port_free` first, before anything is announced. Raises
    :class:`RuntimeError` if the server ends or does not listen within
    :data:`API_START_TIMEOUT_S`.
    """
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(
        target=serve_lowered, args=(server, thread_nice), name="api", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the web page could not be served on {host}:{port} (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(
                f"the web page did not start on {host}:{port} within {API_START_TIMEOUT_S:.0f} s"
            )
        time.sleep(_START_POLL_S)
    return server, thread


def serve_lowered(server: Any, nice: int) -> None:
    """Run the API server at a lower scheduling priority than the inspection.

    On Linux the niceness is a thread's own, and threads inherit it from the thread
    that starts them: the server's worker threads run lowered too, while the camera,
    inspection and ejector threads keep the station's priority.
    """
    if nice > 0 and hasattr(os, "setpriority"):
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        except OSError as exc:
            log.warning("API threads keep the station's priority: %s", exc)
    server.run()
