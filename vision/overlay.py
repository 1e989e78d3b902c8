"""The annotated image supervisors look at: outline, size, defects labelled."""

from __future__ import annotations

import cv2
import numpy as np

from vision.types import Defect, Measurements

GREEN = (60, 200, 60)
RED = (40, 40, 230)
WHITE = (255, 255, 255)


def draw_overlay(
    image: np.ndarray,
    verdict: str,
    measurements: Measurements,
    defects: list[Defect],
    outline_px: np.ndarray | None,
    defect_boxes_px: list[tuple[Defect, np.ndarray]] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the verdict, the body outline and labelled defects."""
    out = image.copy()
    colour = GREEN if verdict == "accept" else RED
    scale = max(out.shape[1] / 1400.0, 0.5)
    thick = max(2, int(round(2 * scale)))
    if outline_px is not None:
        cv2.polylines(out, [np.round(outline_px).astype(np.int32)], True, colour, thick)
    for defect, box in defect_boxes_px or []:
        pts = np.round(box).astype(np.int32)
        cv2.polylines(out, [pts], True, RED, thick)
        x, y = pts.min(axis=0)
        cv2.putText(
            out,
            defect.code,
            (int(x), int(y) - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8 * scale,
            RED,
            thick,
            cv2.LINE_AA,
        )
    lines = [verdict.upper()]
    if measurements.width_mm is not None and measurements.height_mm is not None:
        lines.append(f"{measurements.width_mm:.1f} x {measurements.height_mm:.1f} mm")
    if measurements.pleats is not None:
        lines.append(f"plis {measurements.pleats}  elastiques {measurements.ear_loops}")
    lines += [d.code + (f" {d.value:g}" if d.value is not None else "") for d in defects[:6]]
    y = int(40 * scale)
    for i, text in enumerate(lines):
        cv2.putText(
            out,
            text,
            (int(20 * scale), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0 * scale,
            WHITE if i else colour,
            thick + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            out,
            text,
            (int(20 * scale), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0 * scale,
            colour if i == 0 else (30, 30, 30),
            thick,
            cv2.LINE_AA,
        )
        y += int(38 * scale)
    return out
