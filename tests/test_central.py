"""The central consumer: MQTT stream -> one PostgreSQL table, idempotent on the UUID."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_export_support import (
    Mosquitto,
    Postgres,
    fill,
    running_broker,
    running_postgres,
    wait_for,
)

from station.config.export import ExportConfig
from station.export.central import (
    CENTRAL_SCHEMA_SQL,
    CentralConsumer,
    CentralWriter,
    InvalidMessage,
    inspection_row,
    split_topic,
)
from station.export.publisher import Publisher
from station.export.schema import to_export_record
from station.store import QCStore
from station.store.outbox import Outbox


def _record(**changes: Any) -> dict[str, Any]:
    row = {
        "id": "0b6f8a6e-3a57-4b8e-9a55-1c6d0b8e2f10",
        "seq": 1,
        "ts_utc": "2025-03-01T08:00:00.000Z",
        "station_id": "st-1",
        "workshop": "atelier-a",
        "verdict": "accept",
    }
    return {**to_export_record(row), **changes}


def test_topics_split_under_any_prefix() -> None:
    assert split_topic("qc/atelier-a/st-1/inspections", "qc") == (
        "atelier-a",
        "st-1",
        "inspections",
    )
    assert split_topic("usine/qc/w/s/status", "usine/qc/") == ("w", "s", "status")
    with pytest.raises(InvalidMessage):
        split_topic("other/w/s/inspections", "qc")
    with pytest.raises(InvalidMessage):
        split_topic("qc/w/inspections", "qc")


def test_payloads_are_checked_against_their_topic() -> None:
    row = inspection_row(_record(defect_codes=["width"]), "atelier-a", "st-1")
    assert row["station_seq"] == 1 and row["defect_codes"] == ["width"]
    with pytest.raises(InvalidMessage, match="topic of"):
        inspection_row(_record(), "atelier-b", "st-1")  # a station posing as another
    with pytest.raises(InvalidMessage, match="missing"):
        inspection_row({"id": "x"}, "atelier-a", "st-1")
    with pytest.raises(InvalidMessage, match="UUID"):
        inspection_row(_record(id="not-a-uuid"), "atelier-a", "st-1")
    with pytest.raises(InvalidMessage, match="schema_version"):
        inspection_row(_record(schema_version="2.0"), "atelier-a", "st-1")


def test_schema_sql_is_idempotent_text() -> None:
    assert "CREATE TABLE IF NOT EXISTS qc_inspections" in CENTRAL_SCHEMA_SQL
    assert "id                    uuid PRIMARY KEY" in CENTRAL_SCHEMA_SQL


@pytest.fixture
def broker(tmp_path: Path, in_ci: bool) -> Iterator[Mosquitto]:
    with running_broker(tmp_path / "broker", in_ci) as server:
        yield server


@pytest.fixture
def postgres(in_ci: bool) -> Iterator[Postgres]:
    with running_postgres(in_ci) as server:
        yield server


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from station.commands import central as central_cmd

    parser = argparse.ArgumentParser(prog="qc-station")
    central_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["central", "schema"])
    assert args.handler(args) == 0
    assert "CREATE TABLE IF NOT EXISTS qc_inspections" in capsys.readouterr().out
    args = parser.parse_args(["central", "consume", "--host", "127.0.0.1", "--port", "1884"])
    assert (args.port, args.prefix, args.client_id) == (1884, "qc", "qc-central-consumer")


class RunningConsumer:
    """A consumer on a thread, stoppable and restartable with the same client id."""

    def __init__(self, dsn: str, port: int) -> None:
        self.writer = CentralWriter(dsn)
        self.writer.init_schema()
        self.consumer = CentralConsumer(self.writer, "127.0.0.1", port, flush_interval_s=0.05)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.consumer.run, args=(self.stop_event,))
        self.thread.start()
        assert self.consumer.connected.wait(10), "consumer could not connect"

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.writer.close()


def _scalar(dsn: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.fixture
def stations(tmp_path: Path, broker: Mosquitto) -> Iterator[dict[str, tuple[QCStore, Publisher]]]:
    out = {}
    for name in ("st-1", "st-2"):
        store = QCStore(tmp_path / name / "qc.sqlite3")
        cfg = ExportConfig.model_validate(
            {
                "sinks": [
                    {
                        "type": "mqtt",
                        "name": "central",
                        "host": "127.0.0.1",
                        "port": broker.port,
                        "backoff_initial_s": 0.05,
                        "backoff_max_s": 0.5,
                    }
                ],
                "poll_interval_s": 0.02,
            }
        )
        pub = Publisher.from_config(store, cfg, station_id=name, workshop="atelier-a")
        pub.start()
        out[name] = (store, pub)
    yield out
    for store, pub in out.values():
        pub.stop()
        store.close()


@pytest.mark.slow
def test_consumer_writes_n_rows_and_a_replay_writes_none_twice(
    broker: Mosquitto, postgres: Postgres, stations: dict[str, tuple[QCStore, Publisher]]
) -> None:
    import paho.mqtt.client as mqtt

    n = 40
    dsn = postgres.dsn
    first = RunningConsumer(dsn, broker.port)
    try:
        for store, _pub in stations.values():
            fill(store, n // 2, station_id=_station(store))
        wait_for(lambda: _scalar(dsn, "SELECT count(*) FROM qc_inspections") == n, what="N rows")
    finally:
        first.stop()
    # While the consumer is down the broker queues for its persistent session.
    for store, _pub in stations.values():
        fill(store, 5, batch="B2", station_id=_station(store))
        assert Outbox(store).requeue() == n // 2 + 5  # replay the whole stream too
    for store, _pub in stations.values():
        wait_for(lambda s=store: Outbox(s).stats().count == 0, what="replayed to the broker")
    bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder")
    bad.connect("127.0.0.1", broker.port)
    bad.loop_start()
    wait_for(bad.is_connected, what="intruder connected")
    bad.publish("qc/atelier-a/st-1/inspections", b"not json", qos=1).wait_for_publish(5)
    spoof = json.dumps(_record(station_id="st-2"))  # st-2's payload on st-1's topic
    bad.publish("qc/atelier-a/st-1/inspections", spoof, qos=1).wait_for_publish(5)
    bad.disconnect()
    bad.loop_stop()

    second = RunningConsumer(dsn, broker.port)
    try:
        wait_for(
            lambda: _scalar(dsn, "SELECT count(*) FROM qc_rejected_messages") == 2,
            timeout_s=20,
            what="queued messages consumed",
        )
        wait_for(lambda: _scalar(dsn, "SELECT count(*) FROM qc_inspections") == n + 10, what="B2")
        assert second.consumer.stats.duplicates >= n  # the replay arrived, and was a no-op
    finally:
        second.stop()
    assert _scalar(dsn, "SELECT count(DISTINCT id) FROM qc_inspections") == n + 10
    per_station = _scalar(
        dsn,
        "SELECT json_object_agg(station_id, c) FROM (SELECT station_id,"
        " count(*) c FROM qc_inspections GROUP BY station_id) x",
    )
    assert per_station == {"st-1": n // 2 + 5, "st-2": n // 2 + 5}
    gaps = _scalar(
        dsn,
        "SELECT count(*) FROM (SELECT station_seq - lag(station_seq) OVER"
        " (PARTITION BY station_id ORDER BY station_seq) AS d FROM qc_inspections) x"
        " WHERE d <> 1",
    )
    assert gaps == 0  # per-station seq has no hole: nothing missing
    assert _scalar(dsn, "SELECT count(*) FROM qc_stations WHERE status = 'online'") == 2
    assert _scalar(dsn, "SELECT sum(total) FROM qc_hourly") == n + 10


def _station(store: QCStore) -> str:
    return store.path.parent.name
