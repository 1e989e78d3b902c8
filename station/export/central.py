"""The central consumer: every station's MQTT stream into one PostgreSQL table.

Runs next to the central Mosquitto (``firmware_config/central/``), not on a station.
It subscribes with QoS 1 under a persistent session, so the broker queues messages
while the consumer is down, and it acknowledges a message (manual PUBACK) only after
the transaction holding its row committed: a crash between the two redelivers the
message, and ``INSERT ... ON CONFLICT (id) DO NOTHING`` makes the redelivery a no-op.
Hence the dedup rule: **one row per inspection UUID; the first copy wins.**

A payload that cannot be stored (not JSON, fields missing, topic and payload naming
different stations) goes to ``qc_rejected_messages`` and is acknowledged: nothing is
dropped silently, and one bad message cannot block a workshop's stream.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .schema import VERDICT_VALUES

log = logging.getLogger(__name__)

CENTRAL_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS qc_inspections (
    id                    uuid PRIMARY KEY,
    station_seq           bigint NOT NULL,
    ts_utc                timestamptz NOT NULL,
    workshop              text NOT NULL,
    station_id            text NOT NULL,
    batch_id              text,
    verdict               text NOT NULL,
    defect_codes          text[] NOT NULL DEFAULT '{}',
    width_mm              double precision,
    height_mm             double precision,
    pleats                integer,
    ear_loops             integer,
    stitch_length_mm      double precision,
    latency_ms            double precision,
    spec_version          text,
    model_version         text,
    calibration_version   text,
    message               text NOT NULL DEFAULT '',
    defects               jsonb NOT NULL DEFAULT '[]',
    measurements          jsonb NOT NULL DEFAULT '{}',
    stage_ms              jsonb NOT NULL DEFAULT '{}',
    image_raw_path        text,
    image_annotated_path  text,
    schema_version        text NOT NULL,
    received_utc          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS qc_inspections_station_seq
    ON qc_inspections (workshop, station_id, station_seq);
CREATE INDEX IF NOT EXISTS qc_inspections_ts ON qc_inspections (ts_utc);
CREATE INDEX IF NOT EXISTS qc_inspections_batch ON qc_inspections (batch_id, ts_utc);

CREATE TABLE IF NOT EXISTS qc_stations (
    workshop      text NOT NULL,
    station_id    text NOT NULL,
    status        text,
    status_utc    timestamptz,
    counts        jsonb,
    counts_utc    timestamptz,
    PRIMARY KEY (workshop, station_id)
);

CREATE TABLE IF NOT EXISTS qc_rejected_messages (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL,
    payload       text NOT NULL,
    reason        text NOT NULL,
    received_utc  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE VIEW qc_hourly AS
SELECT workshop, station_id, batch_id,
       date_trunc('hour', ts_utc) AS hour_utc,
       count(*) AS total,
       count(*) FILTER (WHERE verdict = 'accept') AS accepted,
       count(*) FILTER (WHERE verdict IN ('reject', 'error')) AS rejected,
       count(*) FILTER (WHERE verdict = 'no_mask') AS no_mask
FROM qc_inspections
GROUP BY workshop, station_id, batch_id, date_trunc('hour', ts_utc);
"""

_COLUMNS: tuple[str, ...] = (
    "id",
    "station_seq",
    "ts_utc",
    "workshop",
    "station_id",
    "batch_id",
    "verdict",
    "defect_codes",
    "width_mm",
    "height_mm",
    "pleats",
    "ear_loops",
    "stitch_length_mm",
    "latency_ms",
    "spec_version",
    "model_version",
    "calibration_version",
    "message",
    "defects",
    "measurements",
    "stage_ms",
    "image_raw_path",
    "image_annotated_path",
    "schema_version",
)
_INSERT = (
    f"INSERT INTO qc_inspections ({', '.join(_COLUMNS)}) VALUES "
    f"({', '.join(f'%({c})s' for c in _COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)
_JSON_COLUMNS = ("defects", "measurements", "stage_ms")


class InvalidMessage(ValueError):
    """A message that cannot become a row (kept in ``qc_rejected_messages``)."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT message as the consumer queues it (``mid`` is acknowledged later)."""

    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass
class WriteResult:
    """Outcome of one transaction: rows new, rows already present, messages refused."""

    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


def split_topic(topic: str, prefix: str) -> tuple[str, str, str]:
    """``<prefix>/<workshop>/<station>/<kind>`` -> (workshop, station, kind)."""
    rest = topic.removeprefix(prefix.rstrip("/") + "/")
    parts = rest.split("/")
    if rest == topic or len(parts) != 3:
        raise InvalidMessage(f"topic {topic!r} is not {prefix}/<workshop>/<station>/<kind>")
    return parts[0], parts[1], parts[2]


def inspection_row(record: Any, workshop: str, station_id: str) -> dict[str, Any]:
    """Validate one record against the topic it came on; the row to insert."""
    if not isinstance(record, dict):
        raise InvalidMessage("payload is not a JSON object")
    missing = [
        k for k in ("id", "seq", "ts_utc", "station_id", "workshop", "verdict") if k not in record
    ]
    if missing:
        raise InvalidMessage(f"missing fields: {', '.join(missing)}")
    if (record["workshop"], record["station_id"]) != (workshop, station_id):
        raise InvalidMessage(
            f"payload is from {record['workshop']}/{record['station_id']} "
            f"but came on the topic of {workshop}/{station_id}"
        )
    try:
        uid = uuid.UUID(str(record["id"]))
    except ValueError as exc:
        raise InvalidMessage(f"id is not a UUID: {record['id']!r}") from exc
    if record["verdict"] not in VERDICT_VALUES:
        raise InvalidMessage(f"unknown verdict {record['verdict']!r}")
    if not str(record.get("schema_version", "")).startswith("1."):
        raise InvalidMessage(f"unsupported schema_version {record.get('schema_version')!r}")
    row = {c: record.get(c) for c in _COLUMNS}
    row.update(
        id=uid,
        station_seq=int(record["seq"]),
        defect_codes=[str(c) for c in record.get("defect_codes") or []],
        message=str(record.get("message") or ""),
    )
    return row


class CentralWriter:
    """The PostgreSQL side: schema, and idempotent batch inserts.

    Args:
        dsn: libpq connection string (``host=… dbname=… user=…``); empty means the
            ``PG*`` environment variables, which keeps passwords out of ``ps``.
    """

    def __init__(self, dsn: str = "") -> None:
        import psycopg

        self._psycopg = psycopg
        self.dsn = dsn
        self.conn = psycopg.connect(dsn)

    def init_schema(self) -> None:
        with self.conn.transaction():
            self.conn.execute(CENTRAL_SCHEMA_SQL)

    def close(self) -> None:
        self.conn.close()

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = self._psycopg.connect(self.dsn)

    def write(self, messages: Sequence[Incoming], prefix: str) -> WriteResult:
        """Store ``messages`` in one transaction (commit before the caller acks)."""
        from psycopg.types.json import Jsonb

        result = WriteResult()
        rows: list[dict[str, Any]] = []
        with self.conn.transaction(), self.conn.cursor() as cur:
            for msg in messages:
                try:
                    workshop, station, kind = split_topic(msg.topic, prefix)
                    text = msg.payload.decode("utf-8")
                    if kind == "inspections":
                        row = inspection_row(json.loads(text), workshop, station)
                        rows.append(
                            {k: Jsonb(v) if k in _JSON_COLUMNS else v for k, v in row.items()}
                        )
                    elif kind in ("status", "counts"):
                        self._station(cur, workshop, station, kind, text)
                    else:
                        raise InvalidMessage(f"unknown topic kind {kind!r}")
                except (InvalidMessage, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
                    result.rejected += 1
                    result.reasons.append(str(exc))
                    cur.execute(
                        "INSERT INTO qc_rejected_messages (topic, payload, reason)"
                        " VALUES (%s, %s, %s)",
                        (msg.topic, msg.payload.decode("utf-8", "replace"), str(exc)),
                    )
            if rows:
                cur.executemany(_INSERT, rows)
                result.inserted = max(0, cur.rowcount)
                result.duplicates = len(rows) - result.inserted
        return result

    @staticmethod
    def _station(cur: Any, workshop: str, station: str, kind: str, text: str) -> None:
        if kind == "status":
            cur.execute(
                "INSERT INTO qc_stations (workshop, station_id, status, status_utc)"
                " VALUES (%s, %s, %s, now()) ON CONFLICT (workshop, station_id) DO UPDATE"
                " SET status = excluded.status, status_utc = excluded.status_utc",
                (workshop, station, text[:32]),
            )
        else:
            json.loads(text)  # refuse non-JSON counts
            cur.execute(
                "INSERT INTO qc_stations (workshop, station_id, counts, counts_utc)"
                " VALUES (%s, %s, %s::jsonb, now()) ON CONFLICT (workshop, station_id) DO UPDATE"
                " SET counts = excluded.counts, counts_utc = excluded.counts_utc",
                (workshop, station, text),
            )


@dataclass
class ConsumerStats:
    """Running totals, logged periodically and used by tests."""

    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    db_errors: int = 0


class CentralConsumer:
    """MQTT subscriber feeding :class:`CentralWriter`, acknowledging after commit.

    Args:
        writer: the database side.
        host, port: the central broker.
        prefix: topic prefix the stations publish under.
        client_id: stable id: the broker keeps this consumer's queue under it.
        username, password: broker credentials, if any.
        tls_ca_path: CA (PEM) to verify the broker; enables TLS when given.
        batch_max: messages per transaction at most.
        flush_interval_s: longest a message waits for its batch to fill, seconds.
    """

    def __init__(
        self,
        writer: CentralWriter,
        host: str,
        port: int = 1883,
        *,
        prefix: str = "qc",
        client_id: str = "qc-central-consumer",
        username: str | None = None,
        password: str | None = None,
        tls_ca_path: str | None = None,
        batch_max: int = 500,
        flush_interval_s: float = 0.2,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.writer = writer
        self.prefix = prefix.rstrip("/")
        self.batch_max = int(batch_max)
        self.flush_interval_s = float(flush_interval_s)
        self.stats = ConsumerStats()
        self.connected = threading.Event()
        self._queue: queue.Queue[Incoming] = queue.Queue()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if username is not None:
            client.username_pw_set(username, password)
        if tls_ca_path is not None:
            client.tls_set(ca_certs=tls_ca_path)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        self._host, self._port = host, int(port)

    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("central broker refused the consumer: %s", reason)
            return
        client.subscribe(
            [(f"{self.prefix}/+/+/{kind}", 1) for kind in ("inspections", "status", "counts")]
        )
        self.connected.set()
        log.info("consumer connected to %s:%s", self._host, self._port)

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        log.warning("consumer disconnected: %s", reason)

    def _on_message(self, _c: Any, _ud: Any, msg: Any) -> None:
        self._queue.put(Incoming(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _next_batch(self, stop: threading.Event) -> list[Incoming]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.flush_interval_s
        while len(batch) < self.batch_max and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; database outages are retried, never acked past."""
        self.client.connect_async(self._host, self._port, keepalive=30)
        self.client.loop_start()
        delay_s = 1.0
        try:
            batch: list[Incoming] = []
            while not stop.is_set():
                if not batch:
                    batch = self._next_batch(stop)
                    if not batch:
                        continue
                try:
                    result = self.writer.write(batch, self.prefix)
                except self.writer._psycopg.Error as exc:  # database down: keep the batch
                    self.stats.db_errors += 1
                    log.error("database write failed (%s); retrying in %.0f s", exc, delay_s)
                    stop.wait(delay_s)
                    delay_s = min(delay_s * 2, 60.0)
                    try:
                        self.writer.reconnect()
                    except self.writer._psycopg.Error as again:
                        log.error("database reconnect failed: %s", again)
                    continue
                for msg in batch:
                    if msg.qos > 0:
                        self.client.ack(msg.mid, msg.qos)
                self._count(batch, result)
                batch, delay_s = [], 1.0
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _count(self, batch: list[Incoming], result: WriteResult) -> None:
        self.stats.received += len(batch)
        self.stats.inserted += result.inserted
        self.stats.duplicates += result.duplicates
        self.stats.rejected += result.rejected
        for reason in result.reasons:
            log.warning("message refused: %s", reason)
