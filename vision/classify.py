"""Defect classifier, the pure part: tiles in, ``hole``/``stain``/``anomaly`` defects out.

Geometry cannot see a hole or a stain; a small CNN can. It looks at the rectified
body, never at camera pixels, so what it learns is in millimetres:

    rectified image ─▶ canvas: the body alone, axis-aligned in mask mm, ≈ 0.5 mm/px,
    always the same size (the measured body is stretched onto it by a few % at most)
    ─▶ loop tacks painted over, divided by the fabric's own median colour (exposure,
    white balance and dye cancel; a stain or the belt seen through a hole stays a
    relative change) ─▶ overlapping tiles, one preallocated batch ─▶ ``run(batch)``
    (the ONNX model, passed in as a callable: no session, thread or global here)
    ─▶ per tile: class probabilities and an embedding ─▶ defects in mask mm.

The tiling (canvas, normalisation, batch) is :mod:`vision.tiles`; this module is
the decision on the model's outputs.

Outliers: the model's embedding output is whitened on good tiles at export, so a
tile's anomaly score is the mean of its squared embedding: about 1 on good cloth,
large on anything unlike it. Such a tile, if not already a hole or a stain, is
reported ``anomaly``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vision.belt_cue import belt_colour
from vision.canvas import body_canvas
from vision.tiles import TileGrid, TileWorkspace, prepare_batch
from vision.types import Defect

#: The model's classes, in the order of its logits. ``good`` must be first.
CLASSES: tuple[str, ...] = ("good", "hole", "stain")
#: Codes the classifier reports (all in :data:`vision.types.DEFECT_CODES`).
CLASSIFIER_CODES: tuple[str, ...] = ("hole", "stain", "anomaly")
#: Supervisor-facing text per code (French first, like the rest of the vision core).
MESSAGES: dict[str, str] = {
    "hole": "trou ou déchirure",
    "stain": "tache ou marque",
    "anomaly": "zone inhabituelle (inconnue du modèle)",
}

#: ``run(batch) -> (logits (N, C), embeddings (N, D))``; may return views of its own buffers.
RunFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Decision thresholds; chosen on validation at training, overridable in config.

    A flaw code has two: one for the body's inner tiles and one for its rim (the
    outer ring of tiles, :attr:`vision.tiles.TileGrid.rim_tiles`), where seams, loop
    tacks and the cut edge can look like a flaw and would otherwise set the one
    threshold for the whole body. The rim's is never below the inner one, so that
    raising ``hole`` raises it everywhere; ``None`` (cards before it) means the same.
    """

    #: A tile whose likelier flaw is a hole is one when ``1 − p(good)`` reaches this.
    hole: float = 0.5
    #: The same for stains (see :func:`code_scores`).
    stain: float = 0.5
    #: Tile anomaly score (mean squared whitened embedding) at or above which the
    #: mask is rejected ``anomaly``; good cloth scores about 1.
    anomaly: float = 50.0
    #: ``hole`` for the rim tiles (at least ``hole``); None: ``hole``.
    hole_rim: float | None = None
    #: ``stain`` for the rim tiles (at least ``stain``); None: ``stain``.
    stain_rim: float | None = None

    def for_code(self, code: str) -> float:
        """The inner tiles' threshold of ``code``."""
        return float(getattr(self, code))

    def rim_for(self, code: str) -> float:
        """The rim tiles' threshold of ``code`` (the inner one for ``anomaly``)."""
        inner = self.for_code(code)
        rim = getattr(self, f"{code}_rim", None)
        return inner if rim is None else max(float(rim), inner)

    def per_tile(self, code: str, rim: np.ndarray) -> np.ndarray:
        """(N,) threshold of each tile, given the grid's ``rim_tiles``."""
        return np.where(rim, self.rim_for(code), self.for_code(code))

    def as_dict(self) -> dict[str, float]:
        """Every threshold in effect, the rim ones resolved (status page, card figures)."""
        out = {c: self.for_code(c) for c in ("hole", "stain", "anomaly")}
        return out | {f"{c}_rim": self.rim_for(c) for c in ("hole", "stain")}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def anomaly_scores(embeddings: np.ndarray) -> np.ndarray:
    """Per tile: mean squared whitened embedding (≈ 1 on good cloth)."""
    e = np.asarray(embeddings, np.float32)
    return np.mean(e * e, axis=1)


def code_scores(probs: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Per flaw code, per tile: ``1 − p(good)`` where that code is the likelier flaw, else 0.

    Whether a tile is flawed and which flaw it is are separate questions: a large
    hole and a dark grease stain can share their probability between the two
    classes, and neither share alone would reach its threshold although the tile is
    clearly not good. The decision is on "not good"; the code is the likelier flaw.
    """
    flaw = 1.0 - probs[:, 0]
    which = np.argmax(probs[:, 1:], axis=1) + 1
    return {c: np.where(which == i, flaw, 0.0) for i, c in enumerate(classes) if i > 0}


@dataclass(frozen=True)
class ClassifierResult:
    """What the classifier found on one body.

    ``probs`` (N, C) and ``anomaly`` (N,) are per tile (overlay, evaluation);
    ``scores`` is the body's worst tile per code (each tile is compared with its own
    threshold, the rim's or the inner one); ``defects`` are the rejections with their
    place in mask mm.
    """

    defects: list[Defect]
    scores: dict[str, float]
    probs: np.ndarray
    anomaly: np.ndarray


def _groups(boxes: np.ndarray) -> list[list[int]]:
    """Flagged tiles grouped by overlap (connected components; a handful of tiles)."""
    groups: list[list[int]] = []
    for i, a in enumerate(boxes):
        touching = [
            g
            for g in groups
            if any(
                a[0] < boxes[j][2]
                and boxes[j][0] < a[2]
                and a[1] < boxes[j][3]
                and boxes[j][1] < a[3]
                for j in g
            )
        ]
        merged = [i] + [j for g in touching for j in g]
        groups = [g for g in groups if g not in touching] + [merged]
    return groups


def _region(boxes: np.ndarray) -> tuple[float, float, float, float]:
    """Where overlapping flagged tiles point: their common part, else their union.

    A small flaw lights every tile that holds it, so their intersection is tighter
    than any one tile; a large one lights tiles that do not all overlap.
    """
    x0, y0, x1, y1 = boxes[:, 0].max(), boxes[:, 1].max(), boxes[:, 2].min(), boxes[:, 3].min()
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()
    return float(x0), float(y0), float(x1), float(y1)


def _defect(
    code: str, members: np.ndarray, score: np.ndarray, limit: np.ndarray, boxes: np.ndarray
) -> Defect:
    """The defect of one group of overlapping flagged tiles, at their common place."""
    x0, y0, x1, y1 = _region(boxes[members])
    worst = members[np.argmax(score[members])]
    return Defect(
        code,
        MESSAGES[code],
        x_mm=round((x0 + x1) / 2, 1),
        y_mm=round((y0 + y1) / 2, 1),
        w_mm=round(x1 - x0, 1),
        h_mm=round(y1 - y0, 1),
        value=round(float(score[worst]), 4),
        limit=f"< {float(limit[worst]):g}",
    )


def _flaw_defects(
    per_code: dict[str, np.ndarray], limits: dict[str, np.ndarray], boxes: np.ndarray
) -> tuple[list[Defect], np.ndarray]:
    """One defect per group of overlapping tiles flagged for any flaw code; (defects, flagged).

    A flaw can light tiles of both codes (the edge of a dark stain read as a hole in
    one tile, as a stain in the next): the group is one flaw, named after its most
    certain tile, with that tile's score and threshold.
    """
    codes = list(per_code)
    stacked = np.stack([per_code[c] for c in codes])  # one code > 0 per tile: 1 − p(good)
    code_of = np.argmax(stacked, axis=0)
    score = stacked[code_of, np.arange(stacked.shape[1])]
    limit = np.choose(code_of, [limits[c] for c in codes])
    flagged = score >= limit
    idx = np.flatnonzero(flagged)
    out = []
    for group in _groups(boxes[idx]):
        members = idx[group]
        worst = members[np.argmax(score[members])]
        out.append(_defect(codes[code_of[worst]], members, score, limit, boxes))
    return out, flagged


def interpret(
    logits: np.ndarray,
    embeddings: np.ndarray,
    grid: TileGrid,
    body_w_mm: float,
    body_h_mm: float,
    classes: Sequence[str],
    thresholds: Thresholds,
) -> ClassifierResult:
    """Model outputs of one body's batch → :class:`ClassifierResult`.

    ``anomaly`` is reported only for tiles no flaw class claims (a hole is a hole).
    ``value`` of a defect is its worst tile's score, ``limit`` that tile's threshold
    (the rim's or the inner one), and its code that tile's likelier flaw.
    """
    probs = softmax(logits)
    anomaly = anomaly_scores(embeddings)
    boxes = grid.tile_boxes_mm(body_w_mm, body_h_mm)
    per_code = code_scores(probs, classes)
    rim = grid.rim_tiles
    limits = {c: thresholds.per_tile(c, rim) for c in per_code}
    defects, claimed = _flaw_defects(per_code, limits, boxes)
    unclaimed = np.where(claimed, 0.0, anomaly)
    a_limit = thresholds.per_tile("anomaly", rim)
    idx = np.flatnonzero(unclaimed >= a_limit)
    defects += [_defect("anomaly", idx[g], unclaimed, a_limit, boxes) for g in _groups(boxes[idx])]
    scores = {c: float(v.max()) for c, v in per_code.items()} | {"anomaly": float(anomaly.max())}
    return ClassifierResult(defects, scores, probs, anomaly)


def classify_canvas(
    work: TileWorkspace,
    run: RunFn,
    body_w_mm: float,
    body_h_mm: float,
    classes: Sequence[str] = CLASSES,
    thresholds: Thresholds | None = None,
    belt_bgr: np.ndarray | None = None,
) -> ClassifierResult:
    """Classify the body already in ``work.canvas`` (evaluation reuses saved canvases).

    ``belt_bgr``: the belt measured beside the body (stored with a saved canvas);
    None keeps ``work.belt_bgr`` (set by :func:`classify_body`).
    """
    if belt_bgr is not None:
        work.belt_bgr[:] = belt_bgr
    logits, embeddings = run(prepare_batch(work))
    return interpret(
        logits, embeddings, work.grid, body_w_mm, body_h_mm, classes, thresholds or Thresholds()
    )


def classify_body(
    rect_image: np.ndarray,
    mask_to_rect: np.ndarray,
    body_w_mm: float,
    body_h_mm: float,
    run: RunFn,
    work: TileWorkspace,
    classes: Sequence[str] = CLASSES,
    thresholds: Thresholds | None = None,
) -> ClassifierResult:
    """The whole classifier step on one measured body.

    ``mask_to_rect`` is ``body.mask_to_rect_affine(rectified)``; ``run`` executes
    the model on ``work.batch`` (all tiles of the body in one call).
    """
    body_canvas(rect_image, mask_to_rect, body_w_mm, body_h_mm, work)
    if work.grid.params.belt_channels:
        work.belt_bgr[:] = belt_colour(rect_image, mask_to_rect, body_w_mm, body_h_mm)
    return classify_canvas(work, run, body_w_mm, body_h_mm, classes, thresholds)


class BodyClassifier(Protocol):
    """What the pipeline needs from a loaded model (``station.model.Classifier``)."""

    def classify(
        self, rect_image: np.ndarray, mask_to_rect: np.ndarray, body_w_mm: float, body_h_mm: float
    ) -> ClassifierResult: ...

    def describe(self) -> dict[str, Any]: ...
