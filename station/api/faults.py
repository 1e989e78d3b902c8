"""What in the station's status deserves the supervisor's attention.

The runtime reports raw figures; deciding what is a *fault* (red banner: the line
is not being inspected properly) versus a *warning* (look soon) is done once here,
so the page, the metrics and any future alerting agree.
"""

from __future__ import annotations

from typing import Any

#: States in which masks are not being inspected.
FAULT_STATES = frozenset({"error", "fault", "stopped", "offline"})
WARNING_STATES = frozenset({"warning", "paused", "starting", "unknown"})
CAMERA_FAULT_STATES = frozenset({"stalled", "reopening", "closed"})
DISK_FAULT_FREE_MB = 500.0
DISK_WARNING_USED_PCT = 90.0
TEMPERATURE_WARNING_C = 75.0
TEMPERATURE_FAULT_C = 85.0


def assess(status: dict[str, Any]) -> list[dict[str, str]]:
    """``[{"code", "severity"}]`` for every problem in ``status``, faults first.

    Codes are stable identifiers (the page translates ``fault.<code>``); severity is
    ``fault`` or ``warning``.
    """
    found: list[tuple[str, str]] = []
    state = str(status.get("state", "unknown"))
    if state in FAULT_STATES:
        found.append(("state", "fault"))
    elif state in WARNING_STATES:
        found.append(("state", "warning"))
    camera = status.get("camera")
    if isinstance(camera, dict) and camera.get("state") in CAMERA_FAULT_STATES:
        found.append(("camera", "fault"))
    model = status.get("model")
    if isinstance(model, dict) and model.get("state") == "failing":
        found.append(("model", "fault"))  # every mask is rejected until it runs again
    gpio = status.get("gpio")
    if isinstance(gpio, dict) and gpio.get("fault"):
        found.append(("gpio", "fault"))
    alarms = status.get("alarms")
    if isinstance(alarms, dict):  # the station's live alarms: a fault that cleared is gone
        for code, alarm in alarms.items():
            if isinstance(alarm, dict) and alarm.get("active"):
                severity = "fault" if alarm.get("severity") == "fault" else "warning"
                found.append((str(code), severity))
    elif _number(status.get("record_failures")) > 0:
        found.append(("record", "fault"))
    disk = status.get("disk")
    if isinstance(disk, dict):
        free_mb = disk.get("free_mb")
        if free_mb is not None and _number(free_mb) < DISK_FAULT_FREE_MB:
            found.append(("disk", "fault"))
        elif _number(disk.get("used_pct")) >= DISK_WARNING_USED_PCT:
            found.append(("disk", "warning"))
    temperature = status.get("temperature_c")
    if temperature is not None:
        if _number(temperature) >= TEMPERATURE_FAULT_C:
            found.append(("temperature", "fault"))
        elif _number(temperature) >= TEMPERATURE_WARNING_C:
            found.append(("temperature", "warning"))
    archive = status.get("archive")
    if isinstance(archive, dict) and archive.get("failing", archive.get("last_error")):
        found.append(("archive", "warning"))
    worst: dict[str, str] = {}  # one entry per code, its most severe
    for code, severity in found:
        if worst.get(code) != "fault":
            worst[code] = severity
    ordered = sorted(worst.items(), key=lambda item: item[1] != "fault")
    return [{"code": code, "severity": severity} for code, severity in ordered]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
