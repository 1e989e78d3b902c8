"""What the soak samples in its own process, and how it tells a leak from noise.

Probes read Linux ``/proc`` (resident memory, open descriptors and what they point
to). The statistics fit a line over the run's second half (after warm-up) and give
its 95 % interval, and the slope of the per-window minimum: transient buffers come
and go, a leak lifts the floor. ``tests/test_soak_stats.py`` checks them on
synthetic series.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_KIB = 1024
#: Samples per window whose minimum is the RSS floor (transient buffers stripped).
FLOOR_WINDOW_SAMPLES = 6
#: Two-sided 95 % quantile of the normal law, for the slope's confidence interval.
_Z95 = 1.96


def rss_mib() -> float:
    """Resident set size of this process, MiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / _KIB
    raise RuntimeError("no VmRSS in /proc/self/status")


def fd_kinds() -> dict[str, int]:
    """Open descriptors by what they point to: a file's name, ``socket``, ``pipe``..."""
    kinds: dict[str, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing (this very listing's own descriptor)
            continue
        kind = Path(target).name if target.startswith("/") else target.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def open_fds() -> int:
    """Open file descriptors of this process (Linux ``/proc``)."""
    return len(os.listdir("/proc/self/fd"))


def _second_half(xs: list[float], ys: list[float]) -> tuple[np.ndarray, np.ndarray]:
    half = xs[-1] / 2 if xs[0] < xs[-1] / 2 else xs[len(xs) // 2]
    keep = [(x, y) for x, y in zip(xs, ys, strict=True) if x >= half]
    if len(keep) < 3:
        keep = list(zip(xs, ys, strict=True))[len(xs) // 2 :]
    x, y = np.array(keep, dtype=float).T
    return x, y


def second_half_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``, fitted on the second half of ``xs``."""
    return slope_ci95(xs, ys)[0]


def slope_ci95(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(slope, low, high): the second half's least-squares slope and its 95 % interval.

    The interval uses the residuals' spread (normal approximation, fine for the tens
    of samples a soak takes); NaN when there are too few samples to say anything.
    """
    nan = float("nan")
    if len(xs) < 4:
        return nan, nan, nan
    x, y = _second_half(xs, ys)
    slope, intercept = np.polyfit(x, y, 1)
    sxx = float(np.sum((x - x.mean()) ** 2))
    if len(x) < 3 or sxx == 0:
        return float(slope), nan, nan
    resid = y - (slope * x + intercept)
    se = float(np.sqrt(np.sum(resid**2) / (len(x) - 2) / sxx))
    return float(slope), float(slope - _Z95 * se), float(slope + _Z95 * se)


def floor_slope(xs: list[float], ys: list[float], window: int = FLOOR_WINDOW_SAMPLES) -> float:
    """Slope of the lowest ``ys`` of each window of ``window`` samples (second half).

    Each window contributes its minimum at the window's mean ``x``: the frames and
    images alive at one instant are gone at another, memory that leaks never is.
    """
    x, y = _second_half(xs, ys)
    n = len(x) // window
    if n < 2:
        return float("nan")
    wx = x[: n * window].reshape(n, window).mean(axis=1)
    wy = y[: n * window].reshape(n, window).min(axis=1)
    return float(np.polyfit(wx, wy, 1)[0])
