"""The shipped Mosquitto configs run as documented: TLS, passwords, ACL, the bridge."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_export_support import (
    REPO_ROOT,
    Collector,
    Mosquitto,
    check_mosquitto,
    fill,
    free_port,
    make_tls,
    wait_for,
)

from station.config.export import ExportConfig
from station.export.publisher import Publisher
from station.store import QCStore

CENTRAL_DIR = REPO_ROOT / "firmware_config" / "central"


def adapt(text: str, replacements: dict[str, str]) -> str:
    """Point a shipped config at test ports and directories; every key must occur."""
    for old, new in replacements.items():
        assert re.search(re.escape(old), text), f"config no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def test_configs_reference_each_other_consistently() -> None:
    central = (CENTRAL_DIR / "mosquitto-central.conf").read_text()
    bridge = (CENTRAL_DIR / "mosquitto-station-bridge.conf").read_text()
    acl = (CENTRAL_DIR / "acl").read_text()
    assert "acl_file /etc/mosquitto/qc/acl" in central
    assert "allow_anonymous false" in central
    assert "cleansession false" in bridge and "topic qc/# out 1" in bridge
    assert "pattern write qc/%u/#" in acl and "topic read qc/#" in acl


@pytest.mark.slow
def test_station_through_bridge_to_central_with_tls_and_acl(tmp_path: Path, in_ci: bool) -> None:
    check_mosquitto(in_ci)
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    work = tmp_path / "central"
    work.mkdir()
    ca, _cert, _key = make_tls(work)
    passwd = work / "passwd"
    passwd.write_text("atelier-a:pw-a\natelier-b:pw-b\nqc-central:pw-c\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
    shutil.copy(CENTRAL_DIR / "acl", work / "acl")
    plain, tls, local = free_port(), free_port(), free_port()
    central_conf = adapt(
        (CENTRAL_DIR / "mosquitto-central.conf").read_text(),
        {
            "/etc/mosquitto/qc/": f"{work}/",
            "persistence_location /var/lib/mosquitto/": f"persistence_location {work}/",
            "listener 8883": f"listener {tls} 127.0.0.1",
            "listener 1883 127.0.0.1": f"listener {plain} 127.0.0.1",
        },
    )
    central = Mosquitto.from_conf(work, central_conf, plain).start()
    bwork = tmp_path / "bridge"
    bwork.mkdir()
    bridge_conf = adapt(
        (CENTRAL_DIR / "mosquitto-station-bridge.conf").read_text(),
        {
            "listener 1883 127.0.0.1": f"listener {local} 127.0.0.1",
            "persistence_location /var/lib/mosquitto/": f"persistence_location {bwork}/",
            "address central.example.org:8883": f"address 127.0.0.1:{tls}",
            "remote_username atelier-roubaix": "remote_username atelier-a",
            "remote_clientid qc-bridge-atelier-roubaix": "remote_clientid qc-bridge-atelier-a",
            "remote_password CHANGE-ME": "remote_password pw-a",
            "bridge_cafile /etc/mosquitto/qc/ca.pem": f"bridge_cafile {ca}",
        },
    )
    bridge = Mosquitto.from_conf(bwork, bridge_conf, local).start()
    consumer = Collector(plain, "qc/#", "qc-central-test", username="qc-central", password="pw-c")
    store = QCStore(tmp_path / "qc.sqlite3")
    pub = None
    try:
        wait_for(lambda: "Connecting bridge" in bridge.log_text(), what="bridge up")
        recs = fill(store, 20)
        cfg = ExportConfig.model_validate(
            {
                "sinks": [
                    {
                        "type": "mqtt",
                        "name": "local",
                        "host": "127.0.0.1",
                        "port": local,
                        "backoff_initial_s": 0.05,
                        "backoff_max_s": 0.5,
                    }
                ]
            }
        )
        pub = Publisher.from_config(store, cfg, station_id="st-1", workshop="atelier-a")
        pub.start()

        def records() -> list[dict[str, object]]:
            return [json.loads(p) for t, p, _ in consumer.snapshot() if t.endswith("inspections")]

        wait_for(lambda: len(records()) >= 20, timeout_s=20, what="records via the bridge")
        assert list(dict.fromkeys(r["id"] for r in records())) == [r.id for r in recs]
        assert any(t == "qc/atelier-a/st-1/status" for t, _, _ in consumer.snapshot())

        # Workshop b tries to write as workshop a: the broker must drop it (and may
        # disconnect b); b's own topic still works.
        _publish_as("atelier-b", "pw-b", plain, "qc/atelier-a/st-1/inspections", b"forged")
        _publish_as("atelier-b", "pw-b", plain, "qc/atelier-b/st-7/status", b"online")
        wait_for(
            lambda: any(t == "qc/atelier-b/st-7/status" for t, _, _ in consumer.snapshot()),
            what="workshop b's own topic",
        )
        assert all(p != b"forged" for _, p, _ in consumer.snapshot())  # ACL denied it
    finally:
        if pub is not None:
            pub.stop()
        store.close()
        consumer.close()
        bridge.stop()
        central.stop()


def _publish_as(user: str, password: str, port: int, topic: str, payload: bytes) -> None:
    """Publish once with QoS 1 as ``user``; a denial may end the connection, that is fine."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-test")
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(client.is_connected, what=f"{user} connected")
        info = client.publish(topic, payload, qos=1)
        # Mosquitto 2 may disconnect a client writing where the ACL forbids it.
        with contextlib.suppress(RuntimeError):
            info.wait_for_publish(2)
    finally:
        client.disconnect()
        client.loop_stop()
