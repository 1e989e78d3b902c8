"""``type = "mqtt"``: one JSON message per inspection on an MQTT broker (paho-mqtt 2).

Topics, under ``<prefix>/<workshop>/<station>/``:

- ``inspections``: each record, QoS 1, not retained. A record is acknowledged to the
  outbox only once the broker's PUBACK arrived; QoS 1 may deliver twice, so consumers
  deduplicate on ``id``.
- ``status``: retained ``online`` on connect; the broker publishes the retained
  last-will ``offline`` if the station vanishes, and a clean stop publishes it too.
- ``counts``: retained JSON of the open batch's and today's (UTC) counts, refreshed
  every ``counts_interval_s`` while connected.

The client id is stable per station and the session persistent (clean session off),
so the broker recognises the station across reconnects. Paho keeps unacknowledged
messages in memory and resends them after a reconnect; they are not published again
by the next ``send``, which would only add duplicates.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from station.store.timeutil import utc_now_iso

from .base import Outbound, Sink, TransientSinkError

log = logging.getLogger(__name__)


def default_client_id(workshop: str, station_id: str) -> str:
    """Stable per station: the broker keeps the persistent session under this id."""
    return f"qc-{workshop}-{station_id}"


def topic_base(prefix: str, workshop: str, station_id: str) -> str:
    return f"{prefix}/{workshop}/{station_id}"


class MqttSink(Sink):
    """Publishes records with QoS 1 and waits for the broker's acknowledgements."""

    type = "mqtt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import paho.mqtt.client as mqtt
        except ImportError as exc:
            raise RuntimeError("the mqtt sink needs paho-mqtt>=2: pip install paho-mqtt") from exc
        cfg, ident = self.config, self.identity
        self.base = topic_base(cfg.topic_prefix, ident.workshop, ident.station_id)
        self.client_id = cfg.client_id or default_client_id(ident.workshop, ident.station_id)
        self._cond = threading.Condition()
        self._mid_seq: dict[int, int] = {}  # in flight: paho message id -> outbox seq
        self._seq_mid: dict[int, int] = {}  # in flight: outbox seq -> paho message id
        self._acked: set[int] = set()  # PUBACKed, not yet reported by send()
        self._early: set[int] = set()  # PUBACKs that beat their registration
        self._ignore: set[int] = set()  # status/counts message ids: not records
        self._connected = False
        self._last_error: str | None = None
        self._next_counts_s = 0.0
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.will_set(f"{self.base}/status", "offline", qos=1, retain=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, self._password())
        if cfg.tls_enabled:
            client.tls_set(
                ca_certs=str(cfg.tls_ca_path) if cfg.tls_ca_path else None,
                certfile=str(cfg.tls_cert_path) if cfg.tls_cert_path else None,
                keyfile=str(cfg.tls_key_path) if cfg.tls_key_path else None,
            )
            client.tls_insecure_set(cfg.tls_insecure)
        client.max_inflight_messages_set(min(cfg.batch_size_records, 100))
        client.reconnect_delay_set(
            min_delay=max(1, int(cfg.backoff_initial_s)),
            max_delay=max(1, int(min(cfg.backoff_max_s, 60))),
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        self._client = client
        #: publish() results meaning "sent" or "queued in paho until the reconnect".
        self._queued_rcs = (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    def _password(self) -> str | None:
        cfg = self.config
        if cfg.password_file is not None:
            lines = cfg.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        return cfg.password.get_secret_value() if cfg.password is not None else None

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._cond:
            self._connected = not reason.is_failure
            self._last_error = str(reason) if reason.is_failure else None
            self._cond.notify_all()
        if reason.is_failure:
            log.warning("mqtt %s: connection refused: %s", self.name, reason)
            return
        log.info("mqtt %s: connected to %s:%s", self.name, self.config.host, self.config.port)
        self._publish_untracked("status", "online")
        self._next_counts_s = 0.0

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._cond:
            was_connected, self._connected = self._connected, False
            if reason.is_failure and self._last_error is None:  # keep a refusal's reason
                # Closed before the broker answered the CONNECT (TLS, a proxy, the
                # network): paho only says "Unspecified error"; say where it broke.
                where = "disconnected" if was_connected else "closed before the broker answered"
                self._last_error = f"{where}: {reason}"
            self._cond.notify_all()
        log.info("mqtt %s: disconnected (%s)", self.name, reason)

    def _on_connect_fail(self, _c: Any, _ud: Any) -> None:
        with self._cond:
            self._last_error = self._last_error or "cannot reach the broker"

    def _on_publish(self, _c: Any, _ud: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._cond:
            seq = self._mid_seq.pop(mid, None)
            if seq is not None:
                self._seq_mid.pop(seq, None)
                self._acked.add(seq)
                self._cond.notify_all()
            elif mid in self._ignore:
                self._ignore.discard(mid)
            else:
                self._early.add(mid)

    # Paho calls on_publish while holding its own message lock, and publish() takes
    # that lock: so publish() is never called under self._cond (that deadlocks), and a
    # PUBACK may arrive before its message id is registered (kept in _early).
    def _register(self, mid: int, seq: int | None) -> None:
        """Track ``mid`` as outbox row ``seq`` (None: a status/counts message)."""
        with self._cond:
            if mid in self._early:
                self._early.discard(mid)
                if seq is not None:
                    self._acked.add(seq)
                    self._cond.notify_all()
            elif seq is None:
                self._ignore.add(mid)
            else:
                self._mid_seq[mid] = seq
                self._seq_mid[seq] = mid

    def _publish_untracked(self, kind: str, payload: str) -> Any:
        info = self._client.publish(f"{self.base}/{kind}", payload, qos=1, retain=True)
        self._register(info.mid, None)
        return info

    # -- sink interface ------------------------------------------------------------------
    def start(self) -> None:
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        if self._connected:
            info = self._publish_untracked("status", "offline")
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("mqtt %s: offline status not confirmed: %s", self.name, exc)
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, items: Sequence[Outbound]) -> int:
        topic = f"{self.base}/inspections"
        for item in items:
            seq = item.outbox_seq
            with self._cond:
                known = seq in self._seq_mid or seq in self._acked
            if known:
                continue  # paho still holds it (resent on reconnect) or it is acked
            info = self._client.publish(topic, item.payload, qos=1)
            if info.rc not in self._queued_rcs:
                raise TransientSinkError(f"mqtt publish refused: rc={info.rc}")
            self._register(info.mid, seq)
        deadline = time.monotonic() + self.config.ack_timeout_s
        with self._cond:
            while not all(i.outbox_seq in self._acked for i in items):
                left = deadline - time.monotonic()
                if left <= 0 or not self._connected:
                    break
                self._cond.wait(min(left, 0.5))
            done = 0
            for item in items:
                if item.outbox_seq not in self._acked:
                    break
                self._acked.discard(item.outbox_seq)
                done += 1
            connected, error = self._connected, self._last_error
        if done == 0:
            why = "no PUBACK in time" if connected else f"not connected ({error or 'connecting'})"
            raise TransientSinkError(
                f"mqtt {self.config.host}:{self.config.port}: {why}; "
                f"{len(items)} record(s) kept for later"
            )
        return done

    def tick(self) -> None:
        """Refresh the retained counts while connected (skipped offline: stale anyway)."""
        now = time.monotonic()
        if not self._connected or self.counts is None or now < self._next_counts_s:
            return
        self._next_counts_s = now + self.config.counts_interval_s
        payload = {
            "ts_utc": utc_now_iso(),
            "station_id": self.identity.station_id,
            "workshop": self.identity.workshop,
            **self.counts(),
        }
        self._publish_untracked("counts", json.dumps(payload, separators=(",", ":")))

    def health(self) -> dict[str, Any]:
        with self._cond:
            return {
                "connected": self._connected,
                "broker": f"{self.config.host}:{self.config.port}",
                "client_id": self.client_id,
                "in_flight": len(self._seq_mid),
                "connection_error": self._last_error,
            }
