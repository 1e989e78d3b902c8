"""One shared answer for the read endpoints every open page polls.

Each supervisor page polls status, counts, the last inspections, SPC, specs and
batches every second or so, and a workshop may leave many pages open (tablets, the
office PC, a TV). Each answer costs 1–7 ms of Python, under the interpreter lock the
inspection thread needs too: fifty pages asking the same eight questions each second
kept more than one core busy and tripled the inspection's p99 (`scripts/load.py
load`). Identical GETs within ``ttl_ms`` now get the same bytes, computed once.

An answer is never older than ``ttl_ms``, and none survives a change the API can
know of: any write request through the API, and any commit to the QC log by this
process (``generation``, :attr:`station.store.QCStore.writes`), start afresh.
Requests carrying credentials are never cached, nor are streams (only the listed
paths are), nor anything but a whole ``200`` answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The polled read endpoints: cheap to serve twice, never a stream.
CACHEABLE_PATHS: frozenset[str] = frozenset(
    {
        "/api/v1/status",
        "/api/v1/counts",
        "/api/v1/inspections",
        "/api/v1/spc",
        "/api/v1/specs",
        "/api/v1/batches",
        "/api/v1/labels",
    }
)

#: Distinct answers kept (path + query + language); the oldest go first.
MAX_ENTRIES = 256

#: Larger answers are served but not kept (an export-sized page of inspections).
MAX_CACHED_BODY_BYTES = 512 * 1024

_Key = tuple[str, bytes, bytes]


@dataclass(frozen=True, slots=True)
class _Entry:
    stamp_s: float
    generation: int
    start: Message
    body: bytes


class ResponseCache:
    """Pure ASGI middleware: identical polled GETs within ``ttl_ms`` share one answer.

    Args:
        app: the application.
        ttl_ms: how old a shared answer may be, milliseconds; 0 turns the cache off.
        generation: a counter that changes whenever the data behind the answers
            changes (the QC log's commits); a changed value empties the cache.
        paths: the request paths that may be shared.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        app: ASGIApp,
        ttl_ms: float,
        generation: Callable[[], int] = lambda: 0,
        paths: Iterable[str] = CACHEABLE_PATHS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.ttl_s = ttl_ms / 1000.0
        self.generation = generation
        self.paths = frozenset(paths)
        self.clock = clock
        self._entries: dict[_Key, _Entry] = {}
        self._pending: dict[_Key, asyncio.Future[None]] = {}
        self.hits = 0
        self.misses = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.ttl_s <= 0:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "GET":
            write = scope["method"] not in ("HEAD", "OPTIONS")
            if write:
                self._entries.clear()  # nothing read before a write is served after it
            await self.app(scope, receive, send)
            if write:
                self._entries.clear()
            return
        key = self._key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        pending = self._pending.get(key)
        if pending is not None:  # the same question is being answered: wait for it
            await asyncio.shield(pending)
        entry = self._fresh(key)
        if entry is not None:
            self.hits += 1
            await send(_copy_start(entry.start))
            await send({"type": "http.response.body", "body": entry.body, "more_body": False})
            return
        self.misses += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        try:
            await self._answer_and_keep(key, scope, receive, send)
        finally:
            self._pending.pop(key, None)
            done.set_result(None)

    def _key(self, scope: Scope) -> _Key | None:
        if scope["path"] not in self.paths:
            return None
        language = b""
        for name, value in scope.get("headers", ()):
            if name in (b"authorization", b"cookie"):
                return None
            if name == b"accept-language":
                language = value
        return scope["path"], scope.get("query_string", b""), language

    def _fresh(self, key: _Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() - entry.stamp_s > self.ttl_s or entry.generation != self.generation():
            self._entries.pop(key, None)
            return None
        return entry

    async def _answer_and_keep(self, key: _Key, scope: Scope, receive: Receive, send: Send) -> None:
        generation, stamp = self.generation(), self.clock()
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal start, size, keep
            if message["type"] == "http.response.start":
                start = _copy_start(message)  # outer middleware may edit the message
                keep = message.get("status") == 200
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                keep = size <= MAX_CACHED_BODY_BYTES
                chunks.append(body)
            await send(message)

        await self.app(scope, receive, capture)
        if keep and start is not None and generation == self.generation():
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = _Entry(stamp, generation, start, b"".join(chunks))


def _copy_start(message: Message) -> Message:
    """A response start message with its own header list."""
    return {**message, "headers": [tuple(h) for h in message.get("headers", ())]}
