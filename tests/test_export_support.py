"""Shared helpers for the export tests: records, and real servers started on free ports.

Imported by the other ``test_export*``, ``test_mqtt*``, ``test_http_push*`` and
``test_central*`` modules (``from test_export_support import ...``). The servers are
the Debian packages ``.ci/run`` installs; outside CI a missing one skips its tests,
in CI it fails them (see ``in_ci`` in conftest.py). Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from station.store import InspectionRecord, QCStore

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def make_record(
    i: int = 0,
    *,
    verdict: str = "accept",
    codes: tuple[str, ...] = (),
    batch: str | None = "B1",
    station_id: str = "st-1",
    workshop: str = "atelier-a",
    message: str = "",
) -> InspectionRecord:
    """Record number ``i``, one second after the previous, with realistic fields."""
    return InspectionRecord(
        verdict=verdict,
        station_id=station_id,
        workshop=workshop,
        ts_utc=T0 + timedelta(seconds=i),
        batch_id=batch,
        defects=[{"code": c, "message": f"{c} défaut"} for c in codes],
        measurements={"width_mm": 175.25 + i / 100, "height_mm": 95.5, "pleats": 3},
        stage_ms={"detect": 2.5},
        latency_ms=120.5,
        spec_version="resilience-adult-1",
        model_version="clf-1",
        calibration_version="cal-20250301-abcd1234",
        message=message,
    )


def fill(store: QCStore, n: int, **kwargs: Any) -> list[InspectionRecord]:
    recs = [make_record(i, **kwargs) for i in range(n)]
    for rec in recs:
        store.record(rec)
    return recs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def require(ok: bool, what: str, in_ci: bool) -> None:
    """Skip (dev machine) or fail (CI) when a real dependency is missing."""
    if ok:
        return
    if in_ci:
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} not installed")


def wait_for(predicate: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


#: As root mosquitto drops to user "mosquitto", who cannot read pytest's 0700 tmp dirs.
_USER_LINE = "user root\n" if os.geteuid() == 0 else ""


class Mosquitto:
    """A mosquitto broker in the foreground, with persistence, on a fixed port.

    ``stop()`` (SIGTERM: mosquitto saves its persistence file) and ``start()`` again
    on the same port simulate a broker outage.
    """

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        base = (
            _USER_LINE + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir / 'data'}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
        )
        self.conf.write_text(base + extra_conf)
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_conf(cls, workdir: Path, conf_text: str, port: int) -> Mosquitto:
        broker = cls.__new__(cls)
        broker.workdir, broker.port = workdir, port
        broker.conf = workdir / "mosquitto.conf"
        broker.conf.write_text(_USER_LINE + conf_text)
        broker.proc = None
        return broker

    def start(self) -> Mosquitto:
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise AssertionError(self.log_text()) from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def log_text(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def check_mosquitto(in_ci: bool) -> None:
    """Skip, or fail in CI, without the mosquitto binary or paho-mqtt."""
    require(shutil.which("mosquitto") is not None, "mosquitto", in_ci)
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        require(False, "paho-mqtt", in_ci)


@contextmanager
def running_broker(workdir: Path, in_ci: bool) -> Iterator[Mosquitto]:
    """A plain broker for one test (each test module wraps this in a fixture)."""
    check_mosquitto(in_ci)
    server = Mosquitto(workdir).start()
    try:
        yield server
    finally:
        server.stop()


class Collector:
    """A paho subscriber with a persistent session that records every message."""

    def __init__(
        self,
        port: int,
        topic: str,
        client_id: str = "test-collector",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(1, 1)
        if username is not None:
            self.client.username_pw_set(username, password)

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                c.subscribe(topic, qos=1)
                self.connected.set()

        def on_disconnect(*_a: Any) -> None:
            self.connected.clear()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_message = on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(10), "collector could not connect"

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_tls(dir_: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=dir_)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (dir_ / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    return dir_ / "ca.pem", dir_ / "server.pem", dir_ / "server.key"


class Postgres:
    """A throw-away PostgreSQL cluster (initdb refuses root: run as ``postgres``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qc-pg-"))
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *cmd: str) -> None:
        argv = ["runuser", "-u", "postgres", "--", *cmd] if self._as_root else list(cmd)
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        data = self.dir / "data"
        self._run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        return self

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def stop(self) -> None:
        try:
            self._run(
                str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"
            )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_postgres(in_ci: bool) -> Iterator[Postgres]:
    """A throw-away cluster for one test; skip (fail in CI) without PostgreSQL/psycopg."""
    require((PG_BIN / "initdb").exists(), "postgresql (initdb)", in_ci)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "psycopg", in_ci)
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()


def test_make_record_is_valid_and_fill_writes_rows(tmp_path: Path) -> None:
    with QCStore(tmp_path / "qc.sqlite3") as store:
        recs = fill(store, 3, codes=("width",))
        assert store.counts()["total"] == 3
        assert store.get(recs[0].id)["defects"][0]["code"] == "width"
