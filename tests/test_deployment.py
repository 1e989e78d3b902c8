"""Pi deployment files: the systemd unit verifies, install.sh parses, sd_notify works."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from station.paths import FIRMWARE_CONFIG_DIR
from station.systemd import Notifier

UNIT = FIRMWARE_CONFIG_DIR / "qc-station.service"


def test_unit_is_notify_with_watchdog_and_restart() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=on-failure", "SupplementaryGroups=gpio video"):
        assert line in text
    assert any(ln.startswith("WatchdogSec=") for ln in text.splitlines())


def test_unit_passes_systemd_analyze_verify(tmp_path: Path, in_ci: bool) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        if in_ci:
            pytest.fail("systemd-analyze missing: .ci/run installs the systemd package")
        pytest.skip("systemd-analyze not installed")
    # verify resolves ExecStart: point it at a real executable in a copy of the unit
    unit = tmp_path / "qc-station.service"
    unit.write_text(
        UNIT.read_text().replace(
            "/opt/qc-station/.venv/bin/qc-station", shutil.which("true") or "/bin/true"
        )
    )
    proc = subprocess.run(
        [exe, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [
        ln
        for ln in (proc.stdout + proc.stderr).splitlines()
        if "qc-station.service" in ln and "Unknown user" not in ln and "group" not in ln.lower()
    ]
    assert not problems, proc.stdout + proc.stderr


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(FIRMWARE_CONFIG_DIR / "install.sh")], check=True)


def test_notifier_sends_ready_and_rate_limited_heartbeats(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
        n.ready("inspecting")
        assert server.recv(1024).decode() == "READY=1\nSTATUS=inspecting"
        n.heartbeat()
        n.heartbeat()  # within half the watchdog period: not sent again
        assert server.recv(1024).decode() == "WATCHDOG=1"
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.recv(1024)


def test_notifier_is_silent_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled
    n.ready()
    n.heartbeat()
