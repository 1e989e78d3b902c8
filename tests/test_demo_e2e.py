"""The demo end to end, as a user runs it: a subprocess, the real API, Ctrl-C.

This is the foundation's acceptance: `qc-station demo` shows `total` rising at
`/api/v1/counts`, and stopping it loses nothing that the API had reported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
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


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_demo_counts_rise_and_ctrl_c_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "station.cli",
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--seed",
            "7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=sigint_as_from_a_terminal,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        counts: dict = {}
        first_seen: float | None = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                counts = get_json(f"{base}/api/v1/counts")
            except OSError:
                time.sleep(0.5)
                continue
            if counts["total"] > 0 and first_seen is None:
                first_seen = time.monotonic()
            if counts["total"] >= 10:
                break
            time.sleep(0.5)
        assert counts.get("total", 0) >= 10, counts
        assert set(counts) >= {"total", "accepted", "rejected", "no_mask", "by_defect"}
        assert counts["accepted"] + counts["rejected"] + counts["no_mask"] == counts["total"]
        assert counts["accepted"] > 0, "a nominal simulated mask must pass"
        assert get_json(f"{base}/healthz")["ok"] is True
        page = urllib.request.urlopen(f"{base}/", timeout=5).read().decode()
        assert "<html" in page.lower()
        status = get_json(f"{base}/api/v1/status")
        assert status["state"] in ("running", "warning")
        reported = counts["total"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert "http://127.0.0.1:" in out
    db = sqlite3.connect(data / "qc.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (n,) = db.execute("SELECT COUNT(*) FROM inspections").fetchone()
    finally:
        db.close()
    assert n >= reported
