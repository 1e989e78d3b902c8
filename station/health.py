"""Machine health the supervisor needs: disk space and the Pi's CPU temperature."""

from __future__ import annotations

import shutil
from pathlib import Path

#: Where Raspberry Pi OS (and most Linux boards) expose the SoC temperature.
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def disk_usage(path: Path) -> dict[str, float]:
    """Free and total space of the filesystem holding ``path``, in MiB."""
    usage = shutil.disk_usage(path)
    return {
        "free_mb": round(usage.free / 2**20, 1),
        "total_mb": round(usage.total / 2**20, 1),
        "used_pct": round(100 * (usage.total - usage.free) / usage.total, 1),
    }


def cpu_temperature_c(zone: Path = THERMAL_ZONE) -> float | None:
    """SoC temperature in °C, or None where the machine does not expose one."""
    try:
        return round(int(zone.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None
