"""The sink plugin contract: what the publisher hands a sink and what it expects back.

A sink delivers records in order and says how many leading records the far side has
acknowledged. Everything else is an exception whose class tells the publisher what to
do: retry later (:class:`TransientSinkError`), skip one refused record for good
(:class:`RecordRejected`), or stop trying for a long while (:class:`SinkHalted`).
Sinks never touch the outbox: acknowledging is the publisher's job, so a sink bug
can at worst delay delivery, never drop a record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is publishing: carried in topics, client ids and HTTP bodies."""

    station_id: str
    workshop: str


@dataclass(frozen=True, slots=True)
class Outbound:
    """One record on its way out: outbox position, the export record, its JSON text."""

    outbox_seq: int
    record: dict[str, Any]
    payload: str

    @property
    def id(self) -> str:
        return str(self.record["id"])


class SinkError(Exception):
    """Base of the errors a sink raises on purpose."""


class TransientSinkError(SinkError):
    """Not delivered now (network down, 5xx, timeout): retry with backoff.

    ``retry_after_s`` is the far side's own hint (HTTP ``Retry-After``), if any.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RecordRejected(SinkError):
    """``items[index]`` was refused for good; ``items[:index]`` were acknowledged.

    The publisher records the refusal (health and ``outbox_rejects``) and moves on,
    so one malformed record cannot block every record behind it.
    """

    def __init__(self, index: int, status: int | None, reason: str) -> None:
        super().__init__(f"record {index} refused ({status}): {reason}")
        self.index = index
        self.status = status
        self.reason = reason


class SinkHalted(SinkError):
    """A configuration problem (bad credentials, wrong URL): nothing was delivered.

    Retrying quickly cannot help; the publisher reports it and waits ``retry_after_s``.
    """

    def __init__(self, status: int | None, reason: str, retry_after_s: float) -> None:
        super().__init__(f"halted ({status}): {reason}")
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


class Sink(ABC):
    """A destination for inspection records, run on its own publisher thread.

    Args:
        config: the sink's validated config section (``name``, ``type``…).
        identity: station and workshop of this station.
        counts: returns the station's current counts (for sinks that publish them).
    """

    type: ClassVar[str]

    def __init__(
        self,
        config: Any,
        identity: Identity,
        counts: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.counts = counts

    @property
    def name(self) -> str:
        return str(self.config.name)

    def start(self) -> None:
        """Open connections; must not block on the network (connect in background)."""
        return  # optional hook: most sinks need nothing here

    def stop(self) -> None:
        """Close connections; called once, from the thread that stops the publisher."""
        return  # optional hook: most sinks need nothing here

    @abstractmethod
    def send(self, items: Sequence[Outbound]) -> int:
        """Deliver ``items`` in order; return how many leading items were acknowledged.

        Returning fewer than ``len(items)`` (even 0) means "the rest later"; raise a
        :class:`SinkError` subclass to say why nothing more can go now.
        """

    def tick(self) -> None:
        """Periodic work between sends (e.g. refresh a retained counts message)."""
        return  # optional hook: most sinks need nothing here

    def health(self) -> dict[str, Any]:
        """Sink-specific state for ``/api/v1/status`` (e.g. ``connected``)."""
        return {}
