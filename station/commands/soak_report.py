"""What a soak measured (:class:`SoakReport`) and what it calls a leak (:func:`leaks`).

Split from :mod:`station.commands.soak`, which runs the station and samples it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.store.readpool import DEFAULT_IDLE_READERS

#: Descriptors that may come and go between two samples (an API connection, a JPEG).
FD_SLACK = 4
#: A SQLite connection in WAL mode holds the database file and its WAL open.
FDS_PER_READ_CONNECTION = 2


@dataclass
class SoakSample:
    """One look at the process while the belt runs."""

    wall_s: float
    sim_s: float
    masks: int
    rss_mib: float
    fds: int
    threads: int
    outbox_rows: int
    outbox_pending: int
    in_flight: int
    record_backlog: int
    #: The QC log's read connections (two descriptors each), pooled and bounded.
    read_connections: int = 0

    @property
    def fds_net(self) -> int:
        """Descriptors other than the QC log's pooled read connections: the pool may
        keep a few more idle later in the run, which is not a leak (it is bounded)."""
        return self.fds - FDS_PER_READ_CONNECTION * self.read_connections


@dataclass
class SoakReport:
    """What a soak measured; slopes are per simulated hour, over the run's second half."""

    sim_minutes: float
    scale: float
    masks_fed: int
    masks: int
    frames: int
    wall_s: float
    verdicts: dict[str, int]
    late: int
    record_failures: int
    api_requests: int
    api_failures: int
    api_errors: list[str]
    rss_start_mib: float
    rss_end_mib: float
    rss_max_mib: float
    rss_slope_mib_per_sim_h: float
    #: 95 % confidence interval of the slope above (ordinary least squares).
    rss_slope_ci95_mib_per_sim_h: tuple[float, float]
    #: Slope of the per-window minimum RSS over the second half.
    rss_floor_slope_mib_per_sim_h: float
    #: Descriptors at the first sample, before any work.
    fds_first: int
    #: At the baseline, after :data:`WARMUP_SHARE` of the masks; ``fds_max`` is from there
    #: on. These three leave out the QC log's pooled read connections
    #: (:attr:`SoakSample.fds_net`), counted apart in ``read_connections_max``.
    fds_start: int
    fds_end: int
    fds_max: int
    read_connections_max: int
    #: Once the station has closed (no read in progress): at most the pool's idle cap.
    read_connections_end: int
    #: What the descriptors point to (kind → count) at the baseline and at the end.
    fd_kinds_start: dict[str, int]
    fd_kinds_end: dict[str, int]
    fd_slope_per_sim_h: float
    threads_start: int
    threads_end: int
    #: Names of the threads alive at the end that were not at the start.
    threads_left: list[str]
    outbox_max_rows: int
    outbox_end_rows: int
    outbox_end_pending: int
    exported_lines: int
    #: Distinct inspection ids among them: delivery is at least once, so a batch whose
    #: acknowledgement was lost is written again, and readers deduplicate on ``id``.
    exported_ids: int
    #: Inspections in the QC log at the end.
    records: int
    samples: list[SoakSample] = field(default_factory=list)


def leaks(report: SoakReport) -> list[str]:
    """What the run shows leaking (empty: none). RSS is reported, not judged here:
    its slope needs the long run, and the figure goes to docs/PERFORMANCE.md."""
    found = []
    if report.fds_end > report.fds_start + FD_SLACK:
        grown = {
            kind: n - report.fd_kinds_start.get(kind, 0)
            for kind, n in report.fd_kinds_end.items()
            if n > report.fd_kinds_start.get(kind, 0)
        }
        found.append(f"file descriptors {report.fds_start} -> {report.fds_end} (more: {grown})")
    if report.read_connections_end > DEFAULT_IDLE_READERS:
        found.append(
            f"{report.read_connections_end} QC-log read connections open at rest"
            f" (the pool keeps {DEFAULT_IDLE_READERS})"
        )
    if report.threads_end != report.threads_start:
        found.append(
            f"threads {report.threads_start} -> {report.threads_end} ({report.threads_left})"
        )
    if report.outbox_end_rows or report.outbox_end_pending:
        found.append(f"outbox not drained: {report.outbox_end_rows} rows left")
    if report.exported_ids != report.records:
        found.append(f"{report.exported_ids} records exported of {report.records} logged")
    return found
