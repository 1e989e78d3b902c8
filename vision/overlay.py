"""The annotated image supervisors look at: outline, size, seams, defects labelled.

Drawn on a half-size copy of the frame (nearest-neighbour, one cheap pass): a
supervisor's screen does not need the full 2028×1520 and the overlay must not cost
more than a fraction of the inspection. Everything measured in mask millimetres is
carried back to pixels through the same geometry the measurement used (mask frame →
belt → calibration), so what is drawn is exactly what was measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vision.types import Defect, Measurements

GREEN = (60, 200, 60)
RED = (40, 40, 230)
AMBER = (0, 170, 255)
CYAN = (220, 200, 0)
WHITE = (255, 255, 255)
DARK = (30, 30, 30)


@dataclass(frozen=True, slots=True)
class OverlayParams:
    #: Size of the overlay relative to the frame.
    scale: float = 0.5
    #: Points per mm when outlines in mask mm are carried to pixels (lens curvature).
    outline_step_mm: float = 5.0


def base_image(image: np.ndarray, params: OverlayParams) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(int(w * params.scale), 1), max(int(h * params.scale), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def _poly(canvas: np.ndarray, pts_px: np.ndarray, colour, thick: int, closed: bool = True) -> None:
    pts = np.round(np.asarray(pts_px) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], closed, colour, thick, cv2.LINE_AA, 4)


def _label(canvas: np.ndarray, text: str, org: tuple[int, int], colour, scale: float) -> None:
    thick = max(1, round(scale * 2))
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, DARK, thick + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def rect_outline(x0: float, y0: float, x1: float, y1: float, step: float) -> np.ndarray:
    """Points along a box (mask mm), dense enough to follow lens distortion."""
    nx = max(int(np.ceil((x1 - x0) / step)), 1)
    ny = max(int(np.ceil((y1 - y0) / step)), 1)
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    return np.concatenate(
        [
            np.stack([xs, np.full_like(xs, y0)], 1),
            np.stack([np.full_like(ys, x1), ys], 1),
            np.stack([xs[::-1], np.full_like(xs, y1)], 1),
            np.stack([np.full_like(ys, x0), ys[::-1]], 1),
        ]
    )


def draw_mask(
    canvas: np.ndarray,
    verdict: str,
    to_px: Callable[[np.ndarray], np.ndarray],
    width_mm: float,
    height_mm: float,
    seam_lines_mm: Sequence[np.ndarray],
    defects: Sequence[Defect],
    params: OverlayParams,
) -> None:
    """Body outline, seam lines and defect boxes; ``to_px`` maps mask mm → overlay px."""
    thick = max(1, round(canvas.shape[1] / 500))
    colour = GREEN if verdict == "accept" else RED
    _poly(
        canvas,
        to_px(rect_outline(0, 0, width_mm, height_mm, params.outline_step_mm)),
        colour,
        thick,
    )
    for line in seam_lines_mm:
        if len(line) >= 2:
            _poly(canvas, to_px(line), CYAN, 1, closed=False)
    font = canvas.shape[1] / 1400
    for d in defects:
        if d.x_mm is None or d.y_mm is None or d.w_mm is None or d.h_mm is None:
            continue
        x0, y0 = d.x_mm - d.w_mm / 2, d.y_mm - d.h_mm / 2
        box = to_px(rect_outline(x0, y0, x0 + d.w_mm, y0 + d.h_mm, params.outline_step_mm))
        _poly(canvas, box, AMBER, thick)
        top = box[np.argmin(box[:, 1])]
        _label(canvas, d.code, (int(top[0]), max(int(top[1]) - 4, 12)), AMBER, font)


def draw_blobs(canvas: np.ndarray, outlines_px: Sequence[np.ndarray], scale: float) -> None:
    """Outlines of what was found when nothing could be measured (partial, multiple)."""
    thick = max(1, round(canvas.shape[1] / 500))
    for c in outlines_px:
        _poly(canvas, np.asarray(c) * scale, RED, thick)


def draw_summary(
    canvas: np.ndarray, verdict: str, m: Measurements, defects: Sequence[Defect]
) -> None:
    """Verdict, size, pleats and loops, and each defect's code and value, top left."""
    font = canvas.shape[1] / 1400
    colour = GREEN if verdict == "accept" else (AMBER if verdict == "no_mask" else RED)
    lines: list[tuple[str, tuple[int, int, int]]] = [(verdict.upper(), colour)]
    if m.width_mm is not None and m.height_mm is not None:
        lines.append((f"{m.width_mm:.1f} x {m.height_mm:.1f} mm", WHITE))
    if m.pleats is not None:
        lines.append((f"plis {m.pleats}  elastiques {m.ear_loops}", WHITE))
    if m.stitch_length_mm is not None:
        lines.append((f"point {m.stitch_length_mm:.2f} mm", WHITE))
    for d in defects[:6]:
        val = f" {d.value:g}" if d.value is not None else ""
        lim = f" ({d.limit})" if d.limit else ""
        lines.append((f"{d.code}{val}{lim}", AMBER))
    y = int(34 * font / 0.72)
    for text, col in lines:
        _label(canvas, text, (int(14 * font / 0.72), y), col, font * 1.1)
        y += int(30 * font / 0.72)


def draw_failure(canvas: np.ndarray, message: str) -> None:
    """A line at the bottom saying why the full overlay could not be drawn."""
    font = canvas.shape[1] / 1400
    _label(canvas, message[:90], (int(14 * font / 0.72), canvas.shape[0] - 12), RED, font)
