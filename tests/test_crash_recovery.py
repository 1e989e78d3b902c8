"""kill -9 mid-run loses no committed row, and every fired pulse has its row."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.store import QCStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def start(data: Path, fired: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.station_child", str(data), str(fired), str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def fired_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def wait_fired(path: Path, n: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(fired_ids(path)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fired_ids(path)) >= n


def db_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in conn.execute("SELECT id FROM inspections")}
    finally:
        conn.close()


def test_kill_9_loses_no_committed_row_and_counts_carry_on(tmp_path: Path) -> None:
    data, fired = tmp_path / "data", tmp_path / "fired.log"
    proc = start(data, fired, seed=11)
    try:
        wait_fired(fired, 4, timeout_s=90)
        time.sleep(0.37)  # land somewhere between two masks' events
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    before = fired_ids(fired)
    ids = db_ids(data / "qc.sqlite3")
    assert set(before) <= ids, "a pulse fired for a mask whose row is not in the log"

    proc = start(data, fired, seed=12)
    try:
        wait_fired(fired, len(before) + 2, timeout_s=90)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    after = db_ids(data / "qc.sqlite3")
    assert ids <= after and set(fired_ids(fired)) <= after
    with QCStore(data / "qc.sqlite3") as store:
        assert store.counts()["total"] == len(after) >= len(before) + 2
