"""Small robust statistics used on every frame, without NumPy's per-call overhead."""

from __future__ import annotations

import numpy as np


def median(values: np.ndarray) -> float:
    """``np.median`` of a 1-D float array by one partition: the same value, bit for bit.

    ``np.median`` spends most of its time on dispatch and NaN checks for the small
    arrays the pose and pleat steps pass it (four calls made up half of the pose
    stage).
    """
    n = values.size
    h = n // 2
    if n % 2:
        return float(np.partition(values, h)[h])
    part = np.partition(values, (h - 1, h))
    return 0.5 * (float(part[h - 1]) + float(part[h]))
