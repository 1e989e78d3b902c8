"""The soak's memory verdict: slope, its confidence interval and the RSS floor.

A leak of a few MiB an hour hides under frames that come and go (tens of MiB
between two samples); these check, on synthetic series, that the interval covers
the truth and that the floor sees through the transient buffers.
"""

from __future__ import annotations

import numpy as np
import pytest

from station.commands.soak_stats import floor_slope, second_half_slope, slope_ci95


def _series(slope: float, noise_mib: float, n: int = 120, seed: int = 0) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    xs = np.linspace(0.0, 1.0, n)  # one simulated hour
    ys = 250.0 + slope * xs + rng.uniform(0.0, noise_mib, n)  # transients only add
    return xs.tolist(), ys.tolist()


def test_interval_covers_a_flat_series_and_excludes_a_real_leak() -> None:
    xs, ys = _series(0.0, 20.0)
    s, lo, hi = slope_ci95(xs, ys)
    assert lo < 0.0 < hi
    assert s == pytest.approx(second_half_slope(xs, ys))
    xs, ys = _series(60.0, 20.0)  # 60 MiB an hour: a leak
    _, lo, hi = slope_ci95(xs, ys)
    assert lo > 20.0 and hi < 100.0


def test_floor_ignores_transient_peaks() -> None:
    xs, ys = _series(0.0, 40.0, n=240)
    ys = [y + (80.0 if i % 7 == 0 else 0.0) for i, y in enumerate(ys)]  # frame bursts
    assert abs(floor_slope(xs, ys)) < 25.0
    xs, ys = _series(30.0, 40.0, n=240, seed=1)
    assert floor_slope(xs, ys) == pytest.approx(30.0, abs=20.0)


def test_too_few_samples_say_nothing() -> None:
    s, lo, hi = slope_ci95([0.0, 1.0], [1.0, 2.0])
    assert np.isnan(s) and np.isnan(lo) and np.isnan(hi)
    assert np.isnan(floor_slope([0.0, 0.5, 1.0], [1.0, 1.0, 1.0]))
