"""`qc-station batch` and `status` against a running demo: a recipe change, no restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers.ctrl_c import sigint_as_from_a_terminal

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station.cli", *args], capture_output=True, text=True, timeout=60
    )


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_batch_start_switches_recipe_and_close(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    url = f"http://127.0.0.1:{port}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "station.cli", "demo", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{url}/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline and demo.poll() is None
                time.sleep(0.3)
        # without the token a write is refused
        refused = cli("batch", "start", "--url", url, "--spec", "resilience-child")
        assert refused.returncode == 1 and "401" in refused.stderr
        started = cli(
            "batch",
            "start",
            "--url",
            url,
            "--data-dir",
            str(data),
            "--order",
            "OF-2026-118",
            "--spec",
            "resilience-child",
        )
        assert started.returncode == 0, started.stderr
        batch = json.loads(started.stdout)
        assert batch["order_number"] == "OF-2026-118"
        status = cli("status", "--url", url, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["spec"]["name"] == "resilience-child"
        deadline = time.monotonic() + 60
        while get(f"{url}/api/v1/counts?batch={batch['id']}")["total"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        counts = get(f"{url}/api/v1/counts?batch={batch['id']}")
        # adult-size masks measured against the child prototype: all out of tolerance
        assert counts["by_defect"].get("dimension", 0) == counts["total"] - counts["no_mask"]
        closed = cli("batch", "close", "--url", url, "--data-dir", str(data))
        assert closed.returncode == 0, closed.stderr
        assert json.loads(closed.stdout)["closed_utc"]
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
    assert demo.returncode == 0
