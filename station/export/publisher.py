"""The publisher: drains the outbox, in order, to every configured sink.

One background thread per sink, so a sink stuck on a timeout never delays another,
and one housekeeping thread that measures the backlog and enforces the disk quota.
The inspection loop never waits for any of them: it only commits its row (the outbox
row rides in the same transaction, see :mod:`station.store.outbox`), and the
publisher's writes (cursor moves, pruning) are small transactions on the same writer.

A row leaves the outbox only when every sink has acknowledged it. A failing sink
retries the same records with exponential backoff and jitter; its exceptions are
logged and reported in :meth:`Publisher.health`, never raised into the station.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from station.config.export import ExportConfig
from station.store import QCStore
from station.store.outbox import Outbox, OutboxStats
from station.store.timeutil import format_utc, utc_now_iso

from .schema import dumps_record, to_export_record
from .sinks import (
    Identity,
    Outbound,
    RecordRejected,
    Sink,
    SinkHalted,
    TransientSinkError,
    make_sink,
)

log = logging.getLogger(__name__)

#: Longest wait a far side's ``Retry-After`` may impose, in seconds.
RETRY_AFTER_CEILING_S = 3600.0


@dataclass
class SinkState:
    """What health shows about one sink (mutated under the publisher's lock)."""

    name: str
    type: str
    state: str = "starting"  # starting | idle | sending | retrying | halted
    acked_seq: int = 0
    pending: int = 0
    sent: int = 0
    rejected: int = 0
    consecutive_failures: int = 0
    retry_in_s: float | None = None
    last_ok_utc: str | None = None
    last_error: str | None = None
    last_error_utc: str | None = None
    last_4xx: dict[str, Any] | None = None


def backoff_s(
    failures: int, initial_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter: ``initial * 2^(n-1)`` capped, times 0.5..1.

    The jitter spreads dozens of stations that lost the same Wi-Fi at once, so they
    do not all hammer the central server in step when it comes back.
    """
    ceiling = min(max_s, initial_s * 2 ** max(0, failures - 1))
    return ceiling * (rng or random).uniform(0.5, 1.0)


def _today_start_utc() -> str:
    now = datetime.now(UTC)
    return format_utc(now.replace(hour=0, minute=0, second=0, microsecond=0))


class Publisher:
    """Store-and-forward from the QC log's outbox to the sinks.

    Args:
        store: the open QC log (its owner closes it, after :meth:`stop`).
        sinks: sink plugins; each one's ``config`` gives its batch size and backoff.
        quota_bytes: largest backlog (estimated payload bytes) kept for delivery.
        poll_interval_s: how often an idle sink looks for new rows (``wake`` is sooner).
        stats_interval_s: how often the backlog is measured and the quota enforced.
        rng: random source for the jitter (seedable in tests).
    """

    def __init__(
        self,
        store: QCStore,
        sinks: Sequence[Sink],
        *,
        quota_bytes: int = 512 * 2**20,
        poll_interval_s: float = 0.5,
        stats_interval_s: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.outbox = Outbox(store)
        self.sinks = [s for s in sinks if getattr(s.config, "enabled", True)]
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique: {names}")
        self.quota_bytes = int(quota_bytes)
        self.poll_interval_s = float(poll_interval_s)
        self.stats_interval_s = float(stats_interval_s)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._states = {s.name: SinkState(s.name, s.type) for s in self.sinks}
        self._stats: OutboxStats | None = None
        self._last_error: dict[str, Any] | None = None
        self._last_4xx: dict[str, Any] | None = None

    @classmethod
    def from_config(
        cls, store: QCStore, export: ExportConfig, *, station_id: str, workshop: str
    ) -> Publisher:
        """Build the sinks named in ``[export]`` for this station."""
        identity = Identity(station_id=station_id, workshop=workshop)
        sinks = [
            make_sink(cfg, identity, counts=lambda: station_counts(store))
            for cfg in export.sinks
            if cfg.enabled
        ]
        return cls(
            store,
            sinks,
            quota_bytes=int(export.outbox_quota_mb * 2**20),
            poll_interval_s=export.poll_interval_s,
            stats_interval_s=export.stats_interval_s,
        )

    @property
    def sink_names(self) -> list[str]:
        return [s.name for s in self.sinks]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Register the sinks' cursors and start the background threads (returns at once)."""
        if self._threads:
            raise RuntimeError("publisher already started")
        self.outbox.register(self.sink_names)
        for name in self.sink_names:
            self._states[name].acked_seq = self.outbox.cursor(name)
        self._refresh_stats()
        for sink in self.sinks:
            self._spawn(f"publish-{sink.name}", self._run_sink, sink)
        self._spawn("publish-housekeeping", self._run_housekeeping)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the threads and close the sinks; records not yet sent stay in the outbox."""
        self._stop.set()
        self.wake()
        for sink in self.sinks:
            try:
                sink.stop()
            except Exception:
                log.exception("sink %s: error while stopping", sink.name)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("publisher thread %s still busy after stop", thread.name)
        self._threads = []

    def wake(self) -> None:
        """Ask idle sinks to look for new rows now (e.g. right after a record)."""
        with self._wake:
            self._wake.notify_all()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stop.is_set():
            with self._wake:
                self._wake.wait(seconds)

    # -- one sink ------------------------------------------------------------------------
    def _run_sink(self, sink: Sink) -> None:
        state = self._states[sink.name]
        batch = int(getattr(sink.config, "batch_size_records", 100))
        started = False
        retry_at = 0.0
        while not self._stop.is_set():
            try:
                if not started:
                    sink.start()
                    started = True
                sink.tick()
                wait_s = retry_at - time.monotonic()
                if wait_s > 0:
                    self._sleep(min(wait_s, self.poll_interval_s))
                    continue
                items = self.outbox.pending(sink.name, limit=batch)
                if not items:
                    with self._lock:
                        state.state, state.retry_in_s = "idle", None
                    self._sleep(self.poll_interval_s)
                    continue
                outbound = []
                for item in items:
                    record = to_export_record(item.inspection)
                    outbound.append(Outbound(item.outbox_seq, record, dumps_record(record)))
                with self._lock:
                    state.state = "sending"
                retry_at = self._deliver(sink, state, outbound)
            except Exception as exc:  # a sink bug or a store error: report, back off, go on
                if not isinstance(exc, TransientSinkError):
                    log.exception("sink %s failed", sink.name)
                retry_at = self._failed(sink, state, exc)

    def _deliver(self, sink: Sink, state: SinkState, outbound: list[Outbound]) -> float:
        """Send one batch and record the outcome; returns when to try next (monotonic)."""
        try:
            done = sink.send(outbound)
        except RecordRejected as rej:
            self._ack(sink, state, outbound[: rej.index + 1], refused=(outbound[rej.index], rej))
            return 0.0
        except SinkHalted as halt:
            with self._lock:
                state.state = "halted"
                state.consecutive_failures += 1
                state.retry_in_s = halt.retry_after_s
                self._note_error(state, halt.reason, status=halt.status)
            log.error("sink %s halted: %s", sink.name, halt.reason)
            return time.monotonic() + halt.retry_after_s
        if not 0 <= done <= len(outbound):
            raise RuntimeError(f"sink {sink.name} acknowledged {done} of {len(outbound)}")
        if done == 0:
            raise TransientSinkError("sink acknowledged nothing")
        self._ack(sink, state, outbound[:done])
        return 0.0

    def _ack(
        self,
        sink: Sink,
        state: SinkState,
        acked: list[Outbound],
        refused: tuple[Outbound, RecordRejected] | None = None,
    ) -> None:
        """Move the sink's cursor past ``acked`` (the last one refused, if ``refused``)."""
        refusals = []
        if refused is not None:
            item, rej = refused
            refusals.append((item.outbox_seq, item.id, rej.status, rej.reason))
        pruned = self.outbox.ack(
            sink.name, acked[-1].outbox_seq, active_sinks=self.sink_names, rejected=refusals
        )
        with self._lock:
            state.acked_seq = acked[-1].outbox_seq
            state.pending = max(0, state.pending - len(acked))
            if self._stats is not None and pruned:  # exact again at the next refresh
                count = max(0, self._stats.count - pruned)
                self._stats = replace(
                    self._stats, count=count, bytes=0 if not count else self._stats.bytes
                )
            state.sent += len(acked) - len(refusals)
            state.consecutive_failures = 0
            state.retry_in_s = None
            state.last_ok_utc = utc_now_iso()
            if refused is not None:
                item, rej = refused
                state.rejected += 1
                self._note_error(state, rej.reason, status=rej.status, inspection_id=item.id)
        if refused is not None:
            log.error("sink %s refused inspection %s: %s", sink.name, *refusals[0][1::2])

    def _failed(self, sink: Sink, state: SinkState, exc: Exception) -> float:
        cfg = sink.config
        with self._lock:
            state.consecutive_failures += 1
            delay = backoff_s(
                state.consecutive_failures,
                float(getattr(cfg, "backoff_initial_s", 1.0)),
                float(getattr(cfg, "backoff_max_s", 300.0)),
                self._rng,
            )
            hint = getattr(exc, "retry_after_s", None)
            if hint is not None:
                delay = max(delay, min(float(hint), RETRY_AFTER_CEILING_S))
            state.state = "retrying"
            state.retry_in_s = round(delay, 3)
            self._note_error(state, f"{type(exc).__name__}: {exc}")
        log.warning("sink %s: %s; retrying in %.1f s", sink.name, exc, delay)
        return time.monotonic() + delay

    def _note_error(
        self,
        state: SinkState,
        message: str,
        status: int | None = None,
        inspection_id: str | None = None,
    ) -> None:
        """Record the last error (and the last 4xx); caller holds ``self._lock``."""
        now = utc_now_iso()
        state.last_error, state.last_error_utc = message, now
        self._last_error = {"sink": state.name, "message": message, "utc": now}
        if status is not None and 400 <= status < 500:
            state.last_4xx = {
                "status": status,
                "reason": message,
                "utc": now,
                "inspection_id": inspection_id,
            }
            self._last_4xx = {"sink": state.name, **state.last_4xx}

    # -- housekeeping --------------------------------------------------------------------
    def _run_housekeeping(self) -> None:
        while not self._stop.is_set():
            try:
                self._refresh_stats()
                if self._stats is not None and self._stats.bytes > self.quota_bytes:
                    evicted = self.outbox.evict_over_quota(self.quota_bytes)
                    log.error(
                        "outbox over its %.0f MiB quota: %d oldest rows dropped from the "
                        "outbox (still in the QC log; `qc-station outbox requeue` resends)",
                        self.quota_bytes / 2**20,
                        evicted,
                    )
                    self._refresh_stats()
            except Exception:
                log.exception("outbox housekeeping failed")
            self._stop.wait(self.stats_interval_s)

    def _refresh_stats(self) -> None:
        stats = self.outbox.stats()
        pending = {name: self.outbox.pending_count(name) for name in self.sink_names}
        with self._lock:
            self._stats = stats
            for name, n in pending.items():
                self._states[name].pending = n

    # -- health --------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``/api/v1/status`` (never touches the network)."""
        sink_health: dict[str, dict[str, Any]] = {}
        for sink in self.sinks:
            try:
                extra = sink.health()
            except Exception as exc:  # health must answer even if a plugin is broken
                log.warning("sink %s: health() failed", sink.name, exc_info=True)
                extra = {"health_error": str(exc)}
            sink_health[sink.name] = extra
        with self._lock:
            stats = self._stats
            sinks = {name: {**asdict(st), **sink_health[name]} for name, st in self._states.items()}
            last_error, last_4xx = self._last_error, self._last_4xx
        order = ["starting", "idle", "sending", "retrying", "halted"]
        worst = max((s["state"] for s in sinks.values()), key=order.index, default="no_sinks")
        backlog: dict[str, Any] = {"quota_bytes": self.quota_bytes}
        if stats is not None:
            backlog.update(
                count=stats.count,
                bytes=stats.bytes,
                used_pct=round(100.0 * stats.bytes / self.quota_bytes, 2),
                oldest_enqueued_utc=stats.oldest_enqueued_utc,
                rejected=stats.rejected,
                evicted=stats.evicted_rows,
            )
        return {
            "state": worst,
            "backlog": backlog,
            "sinks": sinks,
            "last_error": last_error,
            "last_4xx": last_4xx,
        }


def station_counts(store: QCStore) -> dict[str, Any]:
    """What the MQTT ``/counts`` message carries: the open batch's and today's (UTC)."""
    batch = store.current_batch()
    return {
        "batch_id": batch.id if batch else None,
        "batch": store.counts(batch=batch.id) if batch else None,
        "today_utc": store.counts(since=_today_start_utc()),
    }
