"""Storage section: where the QC log and the image archive live."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from station.config.base import Section


class StorageConfig(Section):
    """The QC log (SQLite, WAL) and image archive directory."""

    data_dir: Path | None = Field(
        default=None,
        description="Directory for qc.sqlite3 and images; None: a temporary one (demo only).",
    )
    db_filename: str = Field(default="qc.sqlite3", description="SQLite file inside data_dir.")
    archive_quota_mb: float = Field(
        default=2048.0, gt=0, description="Disk quota for archived images; oldest go first."
    )
    archive_accept_sample: float = Field(
        default=0.02, ge=0, le=1, description="Share of accepted masks whose images are kept."
    )
