"""MQTT sink against a real Mosquitto: outage mid-run, order, retained status/counts, TLS."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_export_support import (
    REPO_ROOT,
    Collector,
    Mosquitto,
    check_mosquitto,
    fill,
    make_record,
    make_tls,
    running_broker,
    wait_for,
)

from station.config.export import ExportConfig
from station.export.publisher import Publisher
from station.store import QCStore
from station.store.outbox import Outbox


@pytest.fixture
def broker(tmp_path: Path, in_ci: bool) -> Iterator[Mosquitto]:
    with running_broker(tmp_path / "broker", in_ci) as server:
        yield server


def _mqtt(port: int, **kw: Any) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "name": "broker",
        "host": "127.0.0.1",
        "port": port,
        "batch_size_records": 20,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "ack_timeout_s": 2.0,
        "counts_interval_s": 0.2,
        **kw,
    }


def _publisher(store: QCStore, sink: dict[str, Any], station: str = "st-1") -> Publisher:
    config = ExportConfig.model_validate(
        {"sinks": [sink], "poll_interval_s": 0.02, "stats_interval_s": 0.1}
    )
    return Publisher.from_config(store, config, station_id=station, workshop="atelier-a")


def _inspections(collector: Collector) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in collector.snapshot() if t.endswith("/inspections")]


@pytest.mark.slow
def test_broker_outage_mid_run_all_n_arrive_once_after_dedup_in_order(
    tmp_path: Path, broker: Mosquitto
) -> None:
    n_per_station = 150
    collector = Collector(broker.port, "qc/+/+/inspections", client_id="central-test")
    stores = {s: QCStore(tmp_path / s / "qc.sqlite3") for s in ("st-1", "st-2")}
    pubs = [_publisher(store, _mqtt(broker.port), station=s) for s, store in stores.items()]
    logged: dict[str, list[str]] = {s: [] for s in stores}

    def inspect(station: str) -> None:  # the line keeps running through the outage
        for i in range(n_per_station):
            rec = make_record(i, station_id=station)
            stores[station].record(rec)
            logged[station].append(rec.id)
            time.sleep(0.01)

    try:
        for pub in pubs:
            pub.start()
        lines = [threading.Thread(target=inspect, args=(s,)) for s in stores]
        for line in lines:
            line.start()
        wait_for(lambda: len(_inspections(collector)) >= 60, what="first messages")
        broker.stop()  # outage mid-run
        time.sleep(1.0)
        assert all(pub.health()["sinks"]["broker"]["connected"] is False for pub in pubs)
        held = sum(Outbox(s).stats().count for s in stores.values())
        assert held > 0  # the line kept logging; those records wait in the outboxes
        broker.start()  # same port, same persistence
        for line in lines:
            line.join()
        wait_for(
            lambda: all(Outbox(s).stats().count == 0 for s in stores.values()),
            timeout_s=30,
            what="outboxes drained",
        )
        wait_for(
            lambda: len({m["id"] for m in _inspections(collector)}) == 2 * n_per_station,
            timeout_s=20,
            what="all inspections at the collector",
        )
    finally:
        for pub in pubs:
            pub.stop()
        collector.close()
        for store in stores.values():
            store.close()
    got = _inspections(collector)
    assert len({m["id"] for m in got}) == 2 * n_per_station  # exactly N after dedup
    for station, ids in logged.items():
        first_seen = list(dict.fromkeys(m["id"] for m in got if m["station_id"] == station))
        assert first_seen == ids  # order kept per station
        seqs = [m["seq"] for m in got if m["station_id"] == station]
        assert sorted(set(seqs)) == list(range(1, n_per_station + 1))


def test_retained_status_last_will_and_counts(tmp_path: Path, broker: Mosquitto) -> None:
    store = QCStore(tmp_path / "qc.sqlite3")
    fill(store, 3, codes=("width",), verdict="reject")
    store.start_batch("atelier-a", batch_id="B1")
    pub = _publisher(store, _mqtt(broker.port))
    pub.start()
    try:
        wait_for(lambda: Outbox(store).stats().count == 0, what="delivered")
        time.sleep(0.3)  # one counts refresh
        late = Collector(broker.port, "qc/atelier-a/st-1/#", client_id="late-joiner")
        wait_for(lambda: len([m for m in late.snapshot() if m[2]]) >= 2, what="retained")
        retained = {t.rsplit("/", 1)[1]: p for t, p, r in late.snapshot() if r}
        late.close()
        assert retained["status"] == b"online"
        counts = json.loads(retained["counts"])
        assert counts["station_id"] == "st-1" and counts["batch_id"] == "B1"
        assert counts["batch"]["rejected"] == 3
        assert counts["today_utc"]["total"] >= 0
    finally:
        pub.stop()
        store.close()
    after = Collector(broker.port, "qc/atelier-a/st-1/status", client_id="after-stop")
    wait_for(lambda: after.snapshot(), what="status after stop")
    assert after.snapshot()[-1][1] == b"offline"  # clean stop says offline too
    after.close()


def test_last_will_offline_when_the_station_dies(tmp_path: Path, broker: Mosquitto) -> None:
    """A station that loses power (kill -9) is shown offline by the broker itself."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from station.config.export import ExportConfig
        from station.export.publisher import Publisher
        from station.store import QCStore
        store = QCStore({str(tmp_path / "qc.sqlite3")!r})
        cfg = ExportConfig.model_validate({{"sinks": [{_mqtt(broker.port)!r}]}})
        pub = Publisher.from_config(store, cfg, station_id="st-9", workshop="atelier-a")
        pub.start()
        while not pub.health()["sinks"]["broker"]["connected"]:
            time.sleep(0.05)
        print("up", flush=True)
        time.sleep(60)
        """
    )
    watcher = Collector(broker.port, "qc/atelier-a/st-9/status", client_id="watcher")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        wait_for(lambda: b"online" in [p for _, p, _ in watcher.snapshot()], what="online")
        child.kill()
        wait_for(lambda: watcher.snapshot()[-1][1] == b"offline", what="last will")
    finally:
        child.kill()
        child.wait()
        watcher.close()


# -- TLS and credentials ------------------------------------------------------------
@pytest.fixture
def tls_broker(tmp_path: Path, in_ci: bool) -> Iterator[tuple[Mosquitto, int, Path]]:
    import shutil

    check_mosquitto(in_ci)
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    work = tmp_path / "tls"
    work.mkdir()
    ca, cert, key = make_tls(work)
    pwfile = work / "passwd"
    pwfile.write_text("station:s3cret\ncentral:c3ntral\n")
    subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True, capture_output=True)
    pwfile.chmod(0o644)
    from test_export_support import free_port

    plain, tls = free_port(), free_port()
    conf = textwrap.dedent(
        f"""
        per_listener_settings false
        allow_anonymous false
        password_file {pwfile}
        persistence false
        listener {plain} 127.0.0.1
        listener {tls} 127.0.0.1
        cafile {ca}
        certfile {cert}
        keyfile {key}
        """
    )
    server = Mosquitto.from_conf(work, conf, plain).start()
    yield server, tls, ca
    server.stop()


def test_tls_and_password(tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path]) -> None:
    server, tls_port, ca = tls_broker
    collector = Collector(server.port, "qc/#", "central", username="central", password="c3ntral")
    (tmp_path / "pw").write_text("s3cret\n")
    good = _mqtt(
        tls_port,
        tls_enabled=True,
        tls_ca_path=str(ca),
        username="station",
        password_file=str(tmp_path / "pw"),
    )
    store = QCStore(tmp_path / "qc.sqlite3")
    recs = fill(store, 5)
    pub = _publisher(store, good)
    pub.start()
    try:
        wait_for(lambda: len(_inspections(collector)) == 5, what="TLS delivery")
    finally:
        pub.stop()
    assert [m["id"] for m in _inspections(collector)] == [r.id for r in recs]
    collector.close()

    bad = dict(good, password="wrong", password_file=None, name="bad")
    fill(store, 1, batch="B2")
    pub = _publisher(store, bad)
    pub.start()
    try:
        # The refusal's own reason. A first attempt may instead be cut before the
        # broker answers (TLS on a loaded machine): the sink retries, then shows it.
        wait_for(
            lambda: (
                "authori" in (pub.health()["sinks"]["bad"].get("connection_error") or "").lower()
            ),
            what="refusal in health",
        )
    finally:
        pub.stop()
    health = pub.health()["sinks"]["bad"]
    assert health["connected"] is False
    assert "authori" in health["connection_error"].lower()
    # Nothing lost: the refused sink acknowledged nothing, so every row still in the
    # outbox (at least the new one; the first five may already be pruned once the
    # good sink acknowledged them) waits for it.
    outbox = Outbox(store)
    assert outbox.cursor("bad") == 0
    assert outbox.pending_count("bad") >= 1
    store.close()
