"""A short soak: the whole station on the simulated belt, watched for leaks.

The full simulated hour is a command (``qc-station soak``, figures in
docs/PERFORMANCE.md); this runs one simulated minute (about half a minute of wall
time at the default speed-up) and asserts what a short run can show: no file
descriptor or thread left behind, the outbox drained to the export sink, every
mask exported once, the API answering throughout. Memory is reported by the long
run, not asserted here: a minute is all warm-up.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from station.commands.soak import run_soak
from station.commands.soak_report import FD_SLACK, leaks

pytestmark = pytest.mark.slow

#: One simulated minute of the default line (a mask every 2 s).
SIM_MINUTES = 1.0
#: Outbox rows allowed to wait at any sample: the file sink sends every 0.5 s.
OUTBOX_BOUND_ROWS = 50


def test_short_soak_leaks_no_descriptor_thread_or_outbox_row(tmp_path: Path) -> None:
    report = run_soak(SIM_MINUTES, tmp_path, sample_s=1.0, poll_api=True)
    # What a failure shows: every figure but the samples (asserted where they matter).
    brief = {k: v for k, v in asdict(report).items() if k != "samples"}
    assert report.masks_fed == round(SIM_MINUTES * 30)
    # Two masks touching at the photo-eye make one edge.
    assert report.masks >= report.masks_fed * 0.9, brief
    assert leaks(report) == [], brief
    assert report.records == report.verdicts["total"] == report.masks, brief
    assert report.fds_end <= report.fds_start + FD_SLACK, report.samples
    assert report.fds_max <= report.fds_start + FD_SLACK, report.samples
    assert report.threads_end == report.threads_start, brief
    assert report.outbox_max_rows <= OUTBOX_BOUND_ROWS, brief
    assert report.outbox_end_rows == 0 and report.outbox_end_pending == 0, brief
    assert report.exported_ids == report.masks, brief
    assert report.api_requests > 0 and report.api_failures == 0, report.api_errors
    # Rows that met another writer at their deadline are written just after: none lost.
    assert report.samples[-1].record_backlog == 0
