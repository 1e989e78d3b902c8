"""Children that take Ctrl-C as they would from a terminal.

A pytest started in the background of a non-interactive shell (``pytest &`` in a
script, as some CI runners and our own long runs do) has SIGINT ignored, by POSIX
rule, and its children inherit that: Python then never raises ``KeyboardInterrupt``
in them, and a test that stops the demo with SIGINT waits for nothing. The demo
itself keeps the inherited disposition (a background job must not die of the
terminal's Ctrl-C); the tests give the child the terminal's default instead.
"""

from __future__ import annotations

import signal


def sigint_as_from_a_terminal() -> None:
    """``preexec_fn`` for :class:`subprocess.Popen`: SIGINT back to its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
