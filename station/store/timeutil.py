"""Timestamps for the QC log: one text format, UTC, millisecond resolution.

Every ``ts_utc`` column holds ``YYYY-MM-DDTHH:MM:SS.mmmZ``. A fixed-width UTC string
sorts lexicographically in time order, so SQLite can range-scan the text index and a
person reading the raw file still understands it.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: What the log accepts wherever a point in time is expected.
Timestamp = str | datetime

_EXAMPLE = "2025-03-01T08:00:00Z"


def format_utc(dt: datetime) -> str:
    """An aware datetime as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (truncated to the millisecond)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"datetime {dt!r} has no timezone")
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    """The current wall-clock time in the log's format."""
    return format_utc(datetime.now(UTC))


def parse_timestamp(value: Timestamp, name: str = "timestamp") -> datetime:
    """An ISO-8601 string or datetime as an aware datetime.

    Naive values are refused rather than guessed: the station runs on French local
    time while the log is UTC, and guessing would shift a supervisor's query by one or
    two hours without anyone noticing.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(
                f"invalid {name} {value!r}: expected ISO-8601 such as {_EXAMPLE}"
            ) from exc
    else:
        raise TypeError(f"{name} must be an ISO-8601 string or a datetime, not {type(value)!r}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(
            f"{name} {value!s} has no timezone: add Z (UTC) or an offset such as +01:00"
        )
    return dt


def to_utc_iso(value: Timestamp, name: str = "timestamp") -> str:
    """Normalise a string or datetime to the log's UTC text format."""
    return format_utc(parse_timestamp(value, name))
