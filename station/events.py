"""Live events: the inspection threads publish, the web page's SSE streams subscribe.

The inspection loop must never wait on a browser. :meth:`EventBus.publish` is
thread-safe and never blocks: it hands the event to each subscriber's asyncio loop
with ``call_soon_threadsafe``. Each subscriber has a bounded queue; a slow client
loses its *oldest* events (and the count of what it lost) instead of growing the
station's memory or slowing the line. Pages recover by re-reading the counts, which
carry the log position (``seq``) that streamed events are compared against.

Synchronous listeners (metrics) run on the publisher's thread and must be quick.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from station.store import InspectionRecord, QCStore

log = logging.getLogger(__name__)

#: Events a slow SSE client may have queued before the oldest are dropped.
DEFAULT_QUEUE_SIZE = 256

_CLOSED = object()


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: ``type`` names it (``inspection``, ``batch``, ``label``)."""

    id: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    """One consumer's bounded queue, read from its own asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
        #: Events lost because this consumer was too slow (oldest dropped first).
        self.dropped = 0
        #: True once the bus is closed and everything queued has been read.
        self.closed = False

    def _offer(self, item: object) -> None:
        """Runs on the subscriber's loop: enqueue, dropping the oldest when full."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def next(self, timeout_s: float | None = None) -> Event | None:
        """The next event, or None after ``timeout_s`` or once the bus has closed."""
        if self.closed:
            return None
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return None
        if item is _CLOSED:
            self.closed = True
            return None
        assert isinstance(item, Event)
        return item


class EventBus:
    """Fan-out of station events to SSE clients and in-process listeners.

    Args:
        queue_size: per-subscriber queue bound; the oldest events go first.
    """

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._next_id = 1
        self._closed = False
        #: Events published since start (for metrics and tests).
        self.published = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, type_: str, data: dict[str, Any]) -> Event | None:
        """Send ``data`` to every subscriber; safe from any thread, never blocks.

        Returns the event, or None once the bus is closed (shutdown in progress).
        """
        with self._lock:
            if self._closed:
                return None
            event = Event(self._next_id, type_, data)
            self._next_id += 1
            self.published += 1
            # Delivered under the lock so every subscriber sees events in id order.
            dead = [s for s in self._subscribers if not _deliver(s, event)]
            for sub in dead:
                self._subscribers.remove(sub)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed on %s", listener, event.type)
        return event

    def subscribe(self) -> Subscription:
        """A new subscription on the *running* asyncio loop (call it from async code)."""
        sub = Subscription(asyncio.get_running_loop(), self.queue_size)
        with self._lock:
            if self._closed:
                sub.closed = True
            else:
                self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (an SSE client went away); unknown subscriptions are ignored."""
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` on the publisher's thread for every event."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        """End every subscription (their streams finish) and refuse later events.

        Called on shutdown before the HTTP server stops, so open SSE and MJPEG
        streams end by themselves instead of holding the server open.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            _deliver(sub, _CLOSED)


def _deliver(sub: Subscription, item: object) -> bool:
    """Schedule ``item`` on the subscriber's loop; False if that loop is gone."""
    try:
        sub.loop.call_soon_threadsafe(sub._offer, item)
    except RuntimeError:  # the loop was closed: its client is gone for good
        log.info("dropping a subscriber whose event loop has closed")
        return False
    return True


def inspection_event(rec: InspectionRecord, seq: int) -> dict[str, Any]:
    """The ``inspection`` event for a committed QC-log row (what the page receives).

    Small on purpose (no images, no full measurements): pages fetch the details by
    id when a person asks. ``seq`` is the log position, comparable with the
    ``last_seq`` of ``/api/v1/counts``.
    """
    measurements = rec.measurements or {}
    return {
        "id": rec.id,
        "seq": seq,
        "ts_utc": rec.ts_utc,
        "verdict": rec.verdict,
        "defects": rec.defect_codes,
        "width_mm": _number(measurements.get("width_mm")),
        "height_mm": _number(measurements.get("height_mm")),
        "latency_ms": _number(rec.latency_ms),
        "batch_id": rec.batch_id,
        "has_image": rec.image_annotated_path is not None,
    }


def _number(value: Any) -> float | None:
    """A JSON-safe float (numpy scalars unwrapped, NaN and infinities as null)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def attach_store(bus: EventBus, store: QCStore) -> Callable[[], None]:
    """Publish an ``inspection`` event for every row committed to ``store``.

    Returns a function that detaches the bus again. Whoever creates the bus wires
    it, once: the runtime for its own bus, the API for its fallback bus.
    """

    def on_record(rec: InspectionRecord, seq: int) -> None:
        bus.publish("inspection", inspection_event(rec, seq))

    store.add_record_listener(on_record)
    return lambda: store.remove_record_listener(on_record)
