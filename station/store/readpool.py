"""Read connections to the QC log, lent out one transaction at a time.

A connection per reader *thread* leaks: the API's worker threads come and go (anyio
retires a thread idle for ten seconds and starts a new one on the next request), and a
connection kept for a thread that has exited is never used nor closed again: two file
descriptors and a page cache per supervisor visit, for as long as the station runs.
Lending a connection for the length of one read transaction instead bounds what stays
open to the few kept idle, however many threads have read.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Idle read connections kept for the next reader. More are opened while more threads
#: read at once, and closed when they are given back. A fresh connection costs about
#: 0.4 ms more than a kept one for the API's usual read (it parses the schema):
#: with 40 threads reading at once, 2 kept meant a new connection for 23 % of reads,
#: 4 kept for 7 %. Each kept one holds two descriptors and a small page cache.
DEFAULT_IDLE_READERS = 4


class ReaderPool:
    """Read connections opened by ``connect``, lent for one transaction each."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], *, idle: int = DEFAULT_IDLE_READERS
    ) -> None:
        self._connect = connect
        self._max_idle = idle
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        #: Every connection open now, idle or lent: what :meth:`close_all` must reach.
        self._open: set[sqlite3.Connection] = set()
        self._generation = 0
        self._shut = False

    @property
    def open_count(self) -> int:
        """Connections open now (idle and lent): what a leak would make grow."""
        with self._lock:
            return len(self._open)

    @contextmanager
    def lend(self) -> Iterator[sqlite3.Connection]:
        """A connection for this caller alone until the block ends."""
        with self._lock:
            generation = self._generation
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
            with self._lock:
                self._open.add(conn)
        try:
            yield conn
        finally:
            self._give_back(conn, generation)

    def _give_back(self, conn: sqlite3.Connection, generation: int) -> None:
        with self._lock:
            keep = (
                generation == self._generation
                and not self._shut
                and not conn.in_transaction
                and len(self._idle) < self._max_idle
            )
            if keep:
                self._idle.append(conn)
                return
            self._open.discard(conn)
        conn.close()

    def close_all(self, *, final: bool = False) -> None:
        """Close the idle connections now and each lent one when it is given back.

        ``final``: the store is closing; no connection is kept idle after this.
        """
        with self._lock:
            self._shut = self._shut or final
            self._generation += 1
            idle, self._idle = self._idle, []
            self._open.difference_update(idle)
        for conn in idle:
            conn.close()
