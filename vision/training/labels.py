"""Tile labels from the simulator's flaws (no torch).

A rendered body knows where its holes and stains are (mask mm); a tile's label
follows from how much of a flaw it holds:

- the flaw's class when the tile holds at least ``min_share`` of the flaw's area,
  or at least ``min_area_mm2`` of it (a large stain or a long tear never fits one
  tile whole, yet any tile well inside it must say "stain");
- ``good`` when no flaw, grown by its halo (frayed fibres, the lighter ring around
  a hole, a stain's wicked edge), reaches the tile;
- ``IGNORE`` in between (a sliver of a flaw at the tile's border): such tiles
  teach nothing reliable and are left out of the loss and the tile metrics.

The flaws are drawn once per body into a small id map at canvas resolution, so a
tile's label is a histogram of the ids under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vision.classify import CLASSES

IGNORE = -1


@dataclass(frozen=True, slots=True)
class LabelParams:
    min_share: float = 0.6
    min_area_mm2: float = 12.0
    #: Opening of a tear (the renderer draws 1–2.5 mm), mm.
    tear_open_mm: float = 2.0
    #: Halo around a hole / a stain beyond its drawn outline, mm (+ share of its size).
    hole_halo_mm: float = 1.5
    stain_halo_mm: float = 1.5
    stain_halo_share: float = 0.12


@dataclass(frozen=True)
class FlawMap:
    """One body's flaws at canvas resolution.

    ``ids`` is 0 on cloth and ``k + 1`` on flaw ``k``; ``halo`` is 1 wherever a flaw
    or its halo lies; ``areas_px`` and ``classes`` are per flaw.
    """

    ids: np.ndarray
    halo: np.ndarray
    areas_px: np.ndarray
    classes: np.ndarray
    px_area_mm2: float


def _outline_mm(flaw: dict[str, Any], grow_mm: float, p: LabelParams) -> np.ndarray:
    """Polygon (mask mm) of a flaw grown by ``grow_mm``."""
    cx, cy, size = float(flaw["x_mm"]), float(flaw["y_mm"]), float(flaw["size_mm"])
    if flaw["kind"] == "hole" and flaw.get("shape") == "tear":
        a = np.deg2rad(float(flaw.get("angle_deg", 0.0)))
        u, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        half_l, half_w = size / 2 + grow_mm, p.tear_open_mm / 2 + grow_mm
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        return np.array([[cx, cy] + i * half_l * u + j * half_w * n for i, j in corners])
    theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    r = size / 2 + grow_mm
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], 1)


def flaw_map(
    flaws: list[dict[str, Any]],
    body_w_mm: float,
    body_h_mm: float,
    cols: int,
    rows: int,
    p: LabelParams | None = None,
) -> FlawMap:
    """Draw a body's flaws on an id map the size of its canvas."""
    p = p or LabelParams()
    sx, sy = body_w_mm / cols, body_h_mm / rows
    ids = np.zeros((rows, cols), np.uint8)
    halo = np.zeros((rows, cols), np.uint8)
    classes = np.zeros(len(flaws), np.int64)

    def to_px(pts: np.ndarray) -> np.ndarray:
        px = np.stack([pts[:, 0] / sx - 0.5, pts[:, 1] / sy - 0.5], 1)
        return np.round(px * 16).astype(np.int32).reshape(-1, 1, 2)

    for k, f in enumerate(flaws):
        classes[k] = CLASSES.index(f["kind"])
        if f["kind"] == "hole":
            grow = p.hole_halo_mm
        else:
            grow = p.stain_halo_mm + p.stain_halo_share * float(f["size_mm"])
        cv2.fillPoly(halo, [to_px(_outline_mm(f, grow, p))], 1, cv2.LINE_8, 4)
        cv2.fillPoly(ids, [to_px(_outline_mm(f, 0.0, p))], k + 1, cv2.LINE_8, 4)
    areas = np.bincount(ids.ravel(), minlength=len(flaws) + 1)[1:].astype(np.float64)
    return FlawMap(ids, halo, np.maximum(areas, 1.0), classes, sx * sy)


def crop_labels(
    fm: FlawMap | None, origins: np.ndarray, tile_px: int, p: LabelParams
) -> np.ndarray:
    """Label (class index or IGNORE) of each ``(col, row)`` tile origin on one body."""
    out = np.zeros(len(origins), np.int64)
    if fm is None or len(fm.classes) == 0:
        return out
    n = len(fm.classes)
    min_px = p.min_area_mm2 / fm.px_area_mm2
    for i, (c0, r0) in enumerate(origins):
        win = fm.ids[r0 : r0 + tile_px, c0 : c0 + tile_px]
        inside = np.bincount(win.ravel(), minlength=n + 1)[1:]
        if not inside.any():
            if fm.halo[r0 : r0 + tile_px, c0 : c0 + tile_px].any():
                out[i] = IGNORE
            continue
        share = inside / fm.areas_px
        ok = (share >= p.min_share) | (inside >= min_px)
        if ok.any():
            out[i] = fm.classes[int(np.argmax(np.where(ok, inside, -1)))]
        else:
            out[i] = IGNORE
    return out
