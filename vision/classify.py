"""Defect classifier, the pure part: tiles in, ``hole``/``stain``/``anomaly`` defects out.

Geometry cannot see a hole or a stain; a small CNN can. It looks at the *rectified*
body, never at camera pixels, so what it learns is in millimetres and does not
depend on the lens, the mounting height or where on the belt the mask lies:

    rectified image ─▶ canvas: the body alone, axis-aligned in mask mm, at ≈ 0.5 mm/px
    (a 2×2 area average of the body's region against aliasing of the weave, then one
    bilinear affine warp) ─▶ normalised by the fabric's own median colour (so
    exposure, white balance and the fabric's colour cancel; a stain or the belt seen
    through a hole stays a relative change) ─▶ overlapping square tiles in one
    preallocated batch ─▶ ``run(batch)`` (the ONNX model, passed in as a callable so
    this module holds no session, thread or global) ─▶ per tile: class probabilities
    and an embedding ─▶ defects in mask mm.

The canvas always has the same size (the spec's nominal body at ``mm_per_px``): the
measured body is stretched onto it (a few % at most, less than the scale changes
the model is trained on), so the batch shape never changes and its buffers are
allocated once (:class:`TileWorkspace`).

Outliers: the model's embedding output is *whitened* on good tiles at export (mean
removed, covariance made the identity), so a tile's anomaly score is simply the mean
of its squared embedding — about 1 on good cloth, large on anything unlike it. A
tile over the anomaly threshold that is not already a hole or a stain is reported
``anomaly``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

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
class TileParams:
    """How the body is cut into tiles; stored in the model card, fixed at training."""

    #: Canvas scale: holes of 2 mm are still 4 px, the tiny CNN stays a few ms.
    mm_per_px: float = 0.5
    #: Tile side (16 mm at 0.5 mm/px: room for a hole and the cloth around it).
    tile_px: int = 32
    #: Largest step between tiles; the overlap (here ≥ 4 mm) keeps every small flaw
    #: whole in at least one tile.
    max_stride_px: int = 24
    #: Ear-loop bar tacks: the cloth this deep from each short side, this far from the
    #: long sides (mm), is painted the fabric's own colour before tiling. A dark tack
    #: looks like a hole to a 16 mm tile that cannot know it sits in a corner; the
    #: loop check owns that place.
    tack_depth_mm: float = 5.0
    tack_span_mm: tuple[float, float] = (1.0, 11.0)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Decision thresholds; chosen on validation at training, overridable in config."""

    #: Tile probability of ``hole`` at or above which the mask is rejected.
    hole: float = 0.5
    #: Tile probability of ``stain`` at or above which the mask is rejected.
    stain: float = 0.5
    #: Tile anomaly score (mean squared whitened embedding) at or above which the
    #: mask is rejected ``anomaly``; good cloth scores about 1.
    anomaly: float = 50.0

    def for_code(self, code: str) -> float:
        return float(getattr(self, code))


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles lie on the canvas, and the canvas itself.

    Tiles start every ``stride_px`` = (col step, row step) canvas pixels, ``nx`` ×
    ``ny`` of them, the last flush with the canvas edge: the canvas is exactly
    ``(n − 1)·stride + tile`` pixels on each axis, so that the batch is one strided
    view of it. The canvas spans the body exactly: canvas pixel ``(c, r)`` has its
    centre at mask mm ``((c + 0.5)·W/cols, (r + 0.5)·H/rows)`` for a measured body
    W × H, whatever the body's size (hence ≈ ``mm_per_px``, not exactly).
    """

    params: TileParams
    nx: int
    ny: int
    stride_px: tuple[int, int]

    @property
    def cols(self) -> int:
        return (self.nx - 1) * self.stride_px[0] + self.params.tile_px

    @property
    def rows(self) -> int:
        return (self.ny - 1) * self.stride_px[1] + self.params.tile_px

    @property
    def n_tiles(self) -> int:
        return self.nx * self.ny

    @property
    def batch_shape(self) -> tuple[int, int, int, int]:
        """(N, T, T, 3): tiles channel-last, as the canvas is (no transposition)."""
        t = self.params.tile_px
        return (self.n_tiles, t, t, 3)

    @property
    def origins_px(self) -> np.ndarray:
        """(N, 2) ``(col, row)`` of each tile's top-left canvas pixel, row-major."""
        gx, gy = np.meshgrid(
            np.arange(self.nx) * self.stride_px[0], np.arange(self.ny) * self.stride_px[1]
        )
        return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.int32)

    def tack_zones(self) -> tuple[tuple[slice, slice], ...]:
        """(rows, cols) slices of the canvas where the loop tacks are, four corners."""
        p = self.params
        if p.tack_depth_mm <= 0:
            return ()
        d = int(np.ceil(p.tack_depth_mm / p.mm_per_px))
        r0 = int(np.floor(p.tack_span_mm[0] / p.mm_per_px))
        r1 = int(np.ceil(p.tack_span_mm[1] / p.mm_per_px))
        rows = (slice(r0, r1), slice(self.rows - r1, self.rows - r0))
        cols = (slice(0, d), slice(self.cols - d, self.cols))
        return tuple((r, c) for r in rows for c in cols)

    def tile_boxes_mm(self, body_w_mm: float, body_h_mm: float) -> np.ndarray:
        """(N, 4) ``x0, y0, x1, y1`` of every tile in mask mm for a body W × H."""
        sx, sy = body_w_mm / self.cols, body_h_mm / self.rows
        t = self.params.tile_px
        o = self.origins_px.astype(np.float64)
        return np.stack([o[:, 0] * sx, o[:, 1] * sy, (o[:, 0] + t) * sx, (o[:, 1] + t) * sy], 1)


def _axis(length_px: float, tile_px: int, max_stride_px: int) -> tuple[int, int]:
    """(tiles, stride) covering ``length_px`` with steps of at most ``max_stride_px``."""
    span = max(round(length_px) - tile_px, 0)
    if span == 0:
        return 1, max_stride_px
    n = int(np.ceil(span / max_stride_px)) + 1
    return n, max(span // (n - 1), 1)


def make_grid(body_w_mm: float, body_h_mm: float, params: TileParams | None = None) -> TileGrid:
    """The tiling of a body of nominal size W × H mm (the spec's, not a measured one)."""
    p = params or TileParams()
    nx, sx = _axis(body_w_mm / p.mm_per_px, p.tile_px, p.max_stride_px)
    ny, sy = _axis(body_h_mm / p.mm_per_px, p.tile_px, p.max_stride_px)
    return TileGrid(p, nx, ny, (sx, sy))


@dataclass(eq=False)
class TileWorkspace:
    """Buffers reused for every frame: nothing large is allocated per inspection.

    ``half`` holds the body's region of the rectified image at half resolution; its
    size follows the body, so it is a view on a flat buffer that only grows (once,
    if a larger body than any before comes by).
    """

    grid: TileGrid
    canvas: np.ndarray = field(init=False)  # (rows, cols, 3) uint8, the body in mask mm
    hwc: np.ndarray = field(init=False)  # (rows, cols, 3) float32, normalised
    batch: np.ndarray = field(init=False)  # (N, T, T, 3) float32, the model input
    _half: np.ndarray = field(init=False, repr=False)
    _tiles: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g = self.grid
        self.canvas = np.zeros((g.rows, g.cols, 3), np.uint8)
        self.hwc = np.zeros((g.rows, g.cols, 3), np.float32)
        self.batch = np.zeros(g.batch_shape, np.float32)
        # A nominal body at 0.2 mm/px, halved, with room to spare.
        self._half = np.zeros(g.rows * g.cols * 3 * 4, np.uint8)
        t = g.params.tile_px
        st = self.hwc.strides
        sx, sy = g.stride_px
        self._tiles = np.lib.stride_tricks.as_strided(
            self.hwc,
            shape=(g.ny, g.nx, t, t, 3),
            strides=(sy * st[0], sx * st[1], st[0], st[1], st[2]),
            writeable=False,
        )

    def half_view(self, rows: int, cols: int) -> np.ndarray:
        """A C-contiguous (rows, cols, 3) uint8 view for the half-resolution body."""
        n = rows * cols * 3
        if n > self._half.size:
            self._half = np.zeros(n, np.uint8)
        return self._half[:n].reshape(rows, cols, 3)

    @property
    def tiles(self) -> np.ndarray:
        """(ny, nx, T, T, 3) strided view of ``hwc``: every tile, no copy."""
        return self._tiles


#: Pixels of rectified image kept around the body's bounding box before halving.
ROI_PAD_PX = 4


def canvas_affine(
    mask_to_rect: np.ndarray,
    body_w_mm: float,
    body_h_mm: float,
    cols: int,
    rows: int,
    roi_origin_px: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """2×3 map from a canvas pixel to the half-resolution rectified region.

    ``mask_to_rect`` is the 2×3 affine mask mm → rectified pixel
    (:meth:`vision.edges.BodyFrame.mask_to_rect_affine`). Canvas pixel ``c`` is
    centred at ``(c + 0.5)·W/cols`` mm; a 2×2 area-averaged pixel ``i`` of the region
    starting at rectified pixel ``o`` is centred at rectified ``o + 2i + 0.5``.
    """
    sx, sy = body_w_mm / cols, body_h_mm / rows
    canvas_to_mask = np.array([[sx, 0.0, 0.5 * sx], [0.0, sy, 0.5 * sy], [0.0, 0.0, 1.0]])
    ox, oy = roi_origin_px
    rect_to_half = np.array([[0.5, 0.0, -(ox + 0.5) / 2], [0.0, 0.5, -(oy + 0.5) / 2]])
    m3 = np.vstack([np.asarray(mask_to_rect, np.float64), [0.0, 0.0, 1.0]])
    return rect_to_half @ m3 @ canvas_to_mask


def body_roi(
    mask_to_rect: np.ndarray, body_w_mm: float, body_h_mm: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Even-sized ``(x0, y0, x1, y1)`` rectified-pixel box around the body, in the image."""
    corners = np.array([[0, 0, 1], [body_w_mm, 0, 1], [body_w_mm, body_h_mm, 1], [0, body_h_mm, 1]])
    px = corners @ np.asarray(mask_to_rect, np.float64).T
    h, w = shape
    x0 = max(int(np.floor(px[:, 0].min())) - ROI_PAD_PX, 0)
    y0 = max(int(np.floor(px[:, 1].min())) - ROI_PAD_PX, 0)
    x1 = min(int(np.ceil(px[:, 0].max())) + ROI_PAD_PX, w)
    y1 = min(int(np.ceil(px[:, 1].max())) + ROI_PAD_PX, h)
    x1 -= (x1 - x0) % 2
    y1 -= (y1 - y0) % 2
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError("body outside the rectified image")
    return x0, y0, x1, y1


def body_canvas(
    rect_image: np.ndarray,
    mask_to_rect: np.ndarray,
    body_w_mm: float,
    body_h_mm: float,
    work: TileWorkspace,
) -> np.ndarray:
    """Fill ``work.canvas`` with the body, axis-aligned in mask mm; returns it.

    The body's region is first halved by a 2×2 area average (against aliasing of the
    weave, and cheap), then warped once, bilinearly, onto the canvas. Training
    renders its data set through this very function, so the model sees at training
    exactly what it sees at the station.
    """
    g = work.grid
    x0, y0, x1, y1 = body_roi(mask_to_rect, body_w_mm, body_h_mm, rect_image.shape[:2])
    half = work.half_view((y1 - y0) // 2, (x1 - x0) // 2)
    cv2.resize(
        rect_image[y0:y1, x0:x1],
        (half.shape[1], half.shape[0]),
        dst=half,
        interpolation=cv2.INTER_AREA,
    )
    m = canvas_affine(mask_to_rect, body_w_mm, body_h_mm, g.cols, g.rows, (x0, y0))
    cv2.warpAffine(
        half,
        m,
        (g.cols, g.rows),
        dst=work.canvas,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return work.canvas


#: Every this many canvas pixels (both axes) enter the fabric's reference colour.
REFERENCE_STEP_PX = 4


def reference_colour(canvas: np.ndarray) -> np.ndarray:
    """Per-channel median of the body (subsampled): the fabric's own colour, BGR.

    The median ignores a print's ink (less than half the cloth) and any flaw, so
    dividing by it removes exposure, white balance and the fabric's dye together.
    """
    sub = canvas[::REFERENCE_STEP_PX, ::REFERENCE_STEP_PX].reshape(-1, 3)
    return np.maximum(np.median(sub, axis=0), 1.0).astype(np.float32)


def neutralise(canvas: np.ndarray, ref: np.ndarray, grid: TileGrid) -> None:
    """Paint the loop-tack zones of ``canvas`` (in place) the fabric's reference colour."""
    colour = np.round(ref).astype(np.uint8)
    for rows, cols in grid.tack_zones():
        canvas[rows, cols] = colour


def normalise(canvas: np.ndarray, out_hwc: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Tack zones neutralised, then ``canvas / reference − 1`` into ``out_hwc``; returns it.

    Good cloth is ≈ 0, the belt seen through a hole ≈ −0.8, a stain a negative
    change in one or more channels: the same numbers on any fabric and any light.
    """
    ref = reference_colour(canvas)
    neutralise(canvas, ref, grid)
    inv = np.float32(1.0) / ref
    np.multiply(canvas, inv, out=out_hwc)
    out_hwc -= np.float32(1.0)
    return out_hwc


def fill_batch(work: TileWorkspace) -> np.ndarray:
    """Copy every tile of ``work.hwc`` into ``work.batch`` (one strided copy)."""
    g = work.grid
    t = g.params.tile_px
    np.copyto(work.batch.reshape(g.ny, g.nx, t, t, 3), work.tiles)
    return work.batch


def prepare_batch(
    rect_image: np.ndarray,
    mask_to_rect: np.ndarray,
    body_w_mm: float,
    body_h_mm: float,
    work: TileWorkspace,
) -> np.ndarray:
    """Rectified image → model input, all in ``work``'s buffers; returns ``work.batch``."""
    body_canvas(rect_image, mask_to_rect, body_w_mm, body_h_mm, work)
    normalise(work.canvas, work.hwc, work.grid)
    return fill_batch(work)


# -- post-processing ------------------------------------------------------------------
def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def anomaly_scores(embeddings: np.ndarray) -> np.ndarray:
    """Per tile: mean squared whitened embedding (≈ 1 on good cloth)."""
    e = np.asarray(embeddings, np.float32)
    return np.mean(e * e, axis=1)


@dataclass(frozen=True)
class ClassifierResult:
    """What the classifier found on one body.

    ``probs`` (N, C) and ``anomaly`` (N,) are per tile, for the overlay and the
    evaluation; ``scores`` is the body's worst tile per code (what the thresholds are
    compared with), ``defects`` the rejections with their place in mask mm.
    """

    defects: list[Defect]
    scores: dict[str, float]
    probs: np.ndarray
    anomaly: np.ndarray


def body_scores(probs: np.ndarray, anomaly: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """The body's worst tile per classifier code."""
    out = {c: float(probs[:, i].max()) for i, c in enumerate(classes) if c in CLASSIFIER_CODES}
    out["anomaly"] = float(anomaly.max())
    return out


def _groups(boxes: np.ndarray) -> list[list[int]]:
    """Indices of flagged tiles grouped by overlap (connected components)."""
    n = len(boxes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = boxes[i], boxes[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                parent[find(i)] = find(j)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def _region(boxes: np.ndarray) -> tuple[float, float, float, float]:
    """Where a group of overlapping flagged tiles points: their common part if any.

    A small flaw lights every tile that contains it, so their intersection is a
    tighter box than any one tile; a large one lights tiles that do not all overlap,
    and their union is the flaw's extent.
    """
    x0, y0 = boxes[:, 0].max(), boxes[:, 1].max()
    x1, y1 = boxes[:, 2].min(), boxes[:, 3].min()
    if x1 <= x0 or y1 <= y0:
        x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
        x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    return float(x0), float(y0), float(x1), float(y1)


def tile_defects(
    probs: np.ndarray,
    anomaly: np.ndarray,
    boxes_mm: np.ndarray,
    classes: Sequence[str],
    thresholds: Thresholds,
) -> list[Defect]:
    """One defect per group of overlapping tiles flagged for the same code.

    ``hole`` and ``stain`` come from the class probabilities; ``anomaly`` from tiles
    over the anomaly threshold that neither class claims (a hole is a hole, not an
    anomaly). ``value`` is the group's worst score, ``limit`` the threshold.
    """
    defects: list[Defect] = []
    claimed = np.zeros(len(probs), bool)
    for code in ("hole", "stain"):
        if code not in classes:
            continue
        score = probs[:, list(classes).index(code)]
        flagged = score >= thresholds.for_code(code)
        claimed |= flagged
        defects += _as_defects(code, score, flagged, boxes_mm, thresholds.for_code(code))
    flagged = (anomaly >= thresholds.anomaly) & ~claimed
    defects += _as_defects("anomaly", anomaly, flagged, boxes_mm, thresholds.anomaly)
    return defects


def _as_defects(
    code: str, score: np.ndarray, flagged: np.ndarray, boxes_mm: np.ndarray, limit: float
) -> list[Defect]:
    idx = np.flatnonzero(flagged)
    out = []
    for group in _groups(boxes_mm[idx]):
        members = idx[group]
        x0, y0, x1, y1 = _region(boxes_mm[members])
        out.append(
            Defect(
                code,
                MESSAGES[code],
                x_mm=round((x0 + x1) / 2, 1),
                y_mm=round((y0 + y1) / 2, 1),
                w_mm=round(x1 - x0, 1),
                h_mm=round(y1 - y0, 1),
                value=round(float(score[members].max()), 3),
                limit=f"< {limit:g}",
            )
        )
    return out


def interpret(
    logits: np.ndarray,
    embeddings: np.ndarray,
    grid: TileGrid,
    body_w_mm: float,
    body_h_mm: float,
    classes: Sequence[str],
    thresholds: Thresholds,
) -> ClassifierResult:
    """Model outputs of one body's batch → :class:`ClassifierResult`."""
    probs = softmax(logits)
    anomaly = anomaly_scores(embeddings)
    boxes = grid.tile_boxes_mm(body_w_mm, body_h_mm)
    defects = tile_defects(probs, anomaly, boxes, classes, thresholds)
    return ClassifierResult(defects, body_scores(probs, anomaly, classes), probs, anomaly)


def classify_canvas(
    work: TileWorkspace,
    run: RunFn,
    body_w_mm: float,
    body_h_mm: float,
    classes: Sequence[str] = CLASSES,
    thresholds: Thresholds | None = None,
) -> ClassifierResult:
    """Classify the body already in ``work.canvas`` (evaluation reuses saved canvases)."""
    normalise(work.canvas, work.hwc, work.grid)
    logits, embeddings = run(fill_batch(work))
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
    return classify_canvas(work, run, body_w_mm, body_h_mm, classes, thresholds)


class BodyClassifier(Protocol):
    """What the pipeline needs from a loaded model (``station.model.Classifier``)."""

    def classify(
        self, rect_image: np.ndarray, mask_to_rect: np.ndarray, body_w_mm: float, body_h_mm: float
    ) -> ClassifierResult: ...
