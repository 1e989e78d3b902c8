"""Counts as series: per hour, per shift, per batch, per defect (Pareto).

The log is in UTC; shifts are in the workshop's local time. Hourly tallies come
from SQL and shifts are assembled from them in Python with the configured time
zone, which is exact for every zone whose offset is a whole number of hours
(France and its neighbours) and keeps daylight-saving changes right.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from station.store import QCStore
from station.store.timeutil import format_utc

COUNT_KEYS: tuple[str, ...] = ("total", "accepted", "rejected", "no_mask", "errors")


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNT_KEYS, 0)


def _add(into: dict[str, Any], row: dict[str, Any]) -> None:
    for key in COUNT_KEYS:
        into[key] += int(row[key])


def hour_series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per UTC hour that saw inspections, oldest first."""
    out = []
    for row in rows:
        start = datetime.fromisoformat(row["hour_utc"])
        out.append(
            {
                "key": row["hour_utc"],
                "start_utc": row["hour_utc"],
                "end_utc": format_utc(start + timedelta(hours=1)),
                **{k: row[k] for k in COUNT_KEYS},
            }
        )
    return out


def shift_of(moment: datetime, tz: ZoneInfo, start_hours: tuple[int, ...]) -> tuple[date, int]:
    """The (production day, start hour) of the shift ``moment`` falls in.

    A shift that crosses midnight (22–06) belongs to the day it started on.
    """
    local = moment.astimezone(tz)
    earlier = [h for h in start_hours if h <= local.hour]
    if earlier:
        return local.date(), earlier[-1]
    return local.date() - timedelta(days=1), start_hours[-1]


def shift_bounds(
    day: date, start_h: int, tz: ZoneInfo, start_hours: tuple[int, ...]
) -> tuple[datetime, datetime]:
    """UTC start and end of the shift starting at ``start_h`` local time on ``day``."""
    index = start_hours.index(start_h)
    if index + 1 < len(start_hours):
        end_day, end_h = day, start_hours[index + 1]
    else:
        end_day, end_h = day + timedelta(days=1), start_hours[0]
    start = datetime.combine(day, time(start_h), tz).astimezone(UTC)
    end = datetime.combine(end_day, time(end_h), tz).astimezone(UTC)
    return start, end


def shift_series(
    rows: list[dict[str, Any]], tz: ZoneInfo, start_hours: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Hourly tallies summed into shifts, oldest first; keys like ``2025-03-01/06``."""
    shifts: dict[tuple[date, int], dict[str, Any]] = {}
    for row in rows:
        day, start_h = shift_of(datetime.fromisoformat(row["hour_utc"]), tz, start_hours)
        entry = shifts.get((day, start_h))
        if entry is None:
            start, end = shift_bounds(day, start_h, tz, start_hours)
            end_h = end.astimezone(tz).hour
            entry = {
                "key": f"{day.isoformat()}/{start_h:02d}",
                "date": day.isoformat(),
                "shift": f"{start_h:02d}-{end_h:02d}",
                "start_utc": format_utc(start),
                "end_utc": format_utc(end),
                **_zero(),
            }
            shifts[(day, start_h)] = entry
        _add(entry, row)
    return [shifts[k] for k in sorted(shifts)]


def batch_series(store: QCStore, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tallies per batch with the batch's order and dates; ``key`` null outside batches."""
    out = []
    for row in rows:
        batch = store.get_batch(row["batch_id"]) if row["batch_id"] is not None else None
        out.append(
            {
                "key": row["batch_id"],
                "order_number": batch.order_number if batch else None,
                "spec_name": batch.spec_name if batch else None,
                "started_utc": batch.started_utc if batch else row["first_utc"],
                "closed_utc": batch.closed_utc if batch else None,
                **{k: row[k] for k in COUNT_KEYS},
            }
        )
    return out


def defect_series(by_defect: dict[str, int]) -> list[dict[str, Any]]:
    """A Pareto: codes by decreasing count, each with its share and the running share."""
    total = sum(by_defect.values())
    out, running = [], 0
    for code, n in sorted(by_defect.items(), key=lambda item: (-item[1], item[0])):
        running += n
        out.append(
            {
                "key": code,
                "count": n,
                "pct": 100.0 * n / total if total else 0.0,
                "cumulative_pct": 100.0 * running / total if total else 0.0,
            }
        )
    return out
