"""Tiles of the rectified body: the classifier's input, in millimetres (pure numpy/OpenCV).

    rectified image ─▶ canvas: the body alone, axis-aligned in mask mm, ≈ 0.5 mm/px,
    always the same size (the measured body is stretched onto it by a few % at most)
    ─▶ loop tacks painted over ─▶ divided by the fabric's own median colour ─▶
    overlapping tiles, one strided view of the canvas, copied into one preallocated
    batch.

The canvas itself is cut from the rectified image by :mod:`vision.canvas`. Training
renders its data set through these very functions (:mod:`vision.training.dataset`),
so the model sees at training exactly what it sees at the station. The decision on
the model's outputs is :mod:`vision.classify`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from vision.belt_cue import belt_fallback, belt_lut

#: The canvas is BGR.
CANVAS_CHANNELS = 3
#: A tile's side and the largest step between tiles, mm, whatever the canvas scale.
TILE_MM = 16.0
MAX_STRIDE_MM = 12.0


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
    #: How a tack zone is painted (:func:`neutralise`): ``"colour"``, the fabric's
    #: median colour (``tilenet`` 1.0.0); ``"mirror"``, the cloth just inside it
    #: reflected over it; ``"none"``, left as it is (the model learns the tacks, which
    #: every mask has four of). On stripes both fills leave a patch that can look like
    #: a stain (docs/ACCURACY.md).
    tack_fill: str = "colour"
    #: How the canvas is normalised (:func:`normalise`): ``"channel"`` divides each
    #: channel by its own median (exposure, white balance and the dye all cancel,
    #: and with them the hue); ``"level"`` divides all three by one level, the mean
    #: of the channel medians (exposure cancels, the hue stays: the belt seen through
    #: a hole is neutral dark on any fabric, a print's ink keeps its colour).
    normalisation: str = "channel"
    #: Three more input channels, the canvas relative to the belt measured beside the
    #: body (:func:`vision.belt_cue.belt_lut`): a hole shows the belt, so its pixels
    #: have the belt's colour there, where a spot of ink as dark as the belt does not.
    belt_channels: bool = False

    @property
    def channels(self) -> int:
        """Input channels of the model: B, G, R (and B, G, R relative to the belt)."""
        return 2 * CANVAS_CHANNELS if self.belt_channels else CANVAS_CHANNELS

    @classmethod
    def at_scale(cls, mm_per_px: float) -> TileParams:
        """The same tiles in millimetres (16 mm, steps of at most 12 mm) at another scale."""
        return cls(
            mm_per_px=mm_per_px,
            tile_px=round(TILE_MM / mm_per_px),
            max_stride_px=round(MAX_STRIDE_MM / mm_per_px),
        )


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
        """(N, T, T, C): tiles channel-last, as the canvas is (no transposition)."""
        t = self.params.tile_px
        return (self.n_tiles, t, t, self.params.channels)

    @property
    def origins_px(self) -> np.ndarray:
        """(N, 2) ``(col, row)`` of each tile's top-left canvas pixel, row-major."""
        gx, gy = np.meshgrid(
            np.arange(self.nx) * self.stride_px[0], np.arange(self.ny) * self.stride_px[1]
        )
        return np.stack([gx.ravel(), gy.ravel()], 1).astype(np.int32)

    @cached_property
    def rim_tiles(self) -> np.ndarray:
        """(N,) bool: the outer ring of tiles (first and last row and column), row-major.

        The body's own features that look most like flaws lie there: the seams (and the
        loose thread ends of a seam gap), the ear-loop tacks and the cut edge. A flaw
        threshold can be set apart for these tiles (:class:`vision.classify.Thresholds`)
        so that they do not raise the threshold of the plain cloth inside.
        """
        rim = np.zeros((self.ny, self.nx), bool)
        rim[[0, -1], :] = True
        rim[:, [0, -1]] = True
        rim.flags.writeable = False  # computed once per grid, shared by every body
        return rim.ravel()

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
    hwc: np.ndarray = field(init=False)  # (rows, cols, C) float32, normalised
    batch: np.ndarray = field(init=False)  # (N, T, T, C) float32, the model input
    #: The belt beside the body (BGR, :func:`vision.belt_cue.belt_colour`), set per
    #: body when the model has belt channels; ``nan``: not measured.
    belt_bgr: np.ndarray = field(init=False)
    #: (rows, cols, 2·3) uint8: the canvas twice, so one table lookup fills all channels.
    wide: np.ndarray | None = field(init=False, repr=False)
    _half: np.ndarray = field(init=False, repr=False)
    _tiles: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g = self.grid
        c = g.params.channels
        self.canvas = np.zeros((g.rows, g.cols, CANVAS_CHANNELS), np.uint8)
        self.hwc = np.zeros((g.rows, g.cols, c), np.float32)
        self.batch = np.zeros(g.batch_shape, np.float32)
        self.belt_bgr = np.full(CANVAS_CHANNELS, np.nan, np.float32)
        self.wide = np.zeros((g.rows, g.cols, c), np.uint8) if g.params.belt_channels else None
        # A nominal body at 0.2 mm/px, halved, with room to spare.
        self._half = np.zeros(g.rows * g.cols * 3 * 4, np.uint8)
        t = g.params.tile_px
        st = self.hwc.strides
        sx, sy = g.stride_px
        self._tiles = np.lib.stride_tricks.as_strided(
            self.hwc,
            shape=(g.ny, g.nx, t, t, c),
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
        """(ny, nx, T, T, C) strided view of ``hwc``: every tile, no copy."""
        return self._tiles


#: Every this many mm of canvas (both axes) a pixel enters the fabric's reference colour.
REFERENCE_STEP_MM = 2.0


def reference_step_px(params: TileParams) -> int:
    """The reference colour's sampling step in canvas pixels (4 at 0.5 mm/px)."""
    return max(1, round(REFERENCE_STEP_MM / params.mm_per_px))


def reference_colour(canvas: np.ndarray, step_px: int) -> np.ndarray:
    """Per-channel median of the body (every ``step_px``-th pixel): the fabric's colour, BGR.

    The median ignores a print's ink (less than half the cloth) and any flaw, so
    dividing by it removes exposure, white balance and the fabric's dye together.
    """
    sub = canvas[::step_px, ::step_px].reshape(-1, 3)
    return np.maximum(np.median(sub, axis=0), 1.0).astype(np.float32)


NORMALISATIONS: tuple[str, ...] = ("channel", "level")
TACK_FILLS: tuple[str, ...] = ("colour", "mirror", "none")


def divisor(ref: np.ndarray, normalisation: str) -> np.ndarray:
    """What each channel is divided by: its own median, or one level for all three."""
    ref = np.asarray(ref, np.float32)
    if normalisation == "channel":
        return ref
    if normalisation == "level":
        return np.repeat(ref.mean(axis=-1, keepdims=True), ref.shape[-1], axis=-1)
    raise ValueError(f"normalisation {normalisation!r}: expected one of {NORMALISATIONS}")


def neutralise(canvas: np.ndarray, ref: np.ndarray, grid: TileGrid) -> None:
    """Paint the loop-tack zones of ``canvas`` (in place) the fabric's reference colour."""
    fill = grid.params.tack_fill
    if fill not in TACK_FILLS:
        raise ValueError(f"tack_fill {fill!r}: expected one of {TACK_FILLS}")
    if fill == "none":
        return
    colour = np.round(ref).astype(np.uint8)
    for rows, cols in grid.tack_zones():
        if fill == "colour":
            canvas[rows, cols] = colour
            continue
        d = cols.stop - cols.start
        if cols.start == 0:  # left side: the cloth d..2d px in, reflected
            canvas[rows, 0:d] = canvas[rows, 2 * d - 1 : d - 1 : -1]
        else:
            canvas[rows, cols] = canvas[rows, cols.start - 1 : cols.start - d - 1 : -1]


#: ``cv2.mixChannels`` pairs: canvas channel k → wide channels k and k + 3.
WIDE_FROM_TO: list[int] = [
    v for k in range(CANVAS_CHANNELS) for v in (k, k, k, k + CANVAS_CHANNELS)
]


def normalise(
    canvas: np.ndarray,
    out_hwc: np.ndarray,
    grid: TileGrid,
    belt_bgr: np.ndarray | None = None,
    wide: np.ndarray | None = None,
) -> np.ndarray:
    """Tack zones neutralised, then ``canvas / divisor − 1`` into ``out_hwc``; returns it.

    With ``"channel"`` good cloth is ≈ 0, the belt seen through a hole ≈ −0.8, a
    stain a negative change in one or more channels: the same numbers on any fabric
    and any light. With ``"level"`` (see :class:`TileParams`) the cloth keeps its
    hue around 0 and the belt is the same neutral dark on every fabric. With belt
    channels, channels 3–5 are the canvas relative to ``belt_bgr``
    (:func:`vision.belt_cue.belt_lut`; ``wide`` is the (rows, cols, 6) uint8 buffer
    the canvas is doubled into, so that one table lookup fills all six).
    """
    ref = reference_colour(canvas, reference_step_px(grid.params))
    neutralise(canvas, ref, grid)
    inv = np.float32(1.0) / divisor(ref, grid.params.normalisation)
    # A 256-entry table per channel, then one cv2.LUT: the same float32 values as
    # ``canvas * inv - 1`` computed pixel by pixel, in a tenth of the time.
    lut = np.arange(256, dtype=np.float32)[:, None] * inv - np.float32(1.0)
    if not grid.params.belt_channels:
        cv2.LUT(canvas, lut.reshape(1, 256, CANVAS_CHANNELS), dst=out_hwc)
        return out_hwc
    belt = belt_fallback(belt_bgr, ref)
    if wide is None:
        wide = np.empty((*canvas.shape[:2], 2 * CANVAS_CHANNELS), np.uint8)
    cv2.mixChannels([canvas], [wide], WIDE_FROM_TO)
    table = np.concatenate([lut, belt_lut(belt)], axis=1)
    cv2.LUT(wide, table.reshape(1, 256, 2 * CANVAS_CHANNELS), dst=out_hwc)
    return out_hwc


def fill_batch(work: TileWorkspace) -> np.ndarray:
    """Copy every tile of ``work.hwc`` into ``work.batch`` (one strided copy)."""
    g = work.grid
    t = g.params.tile_px
    np.copyto(work.batch.reshape(g.ny, g.nx, t, t, g.params.channels), work.tiles)
    return work.batch


def prepare_batch(work: TileWorkspace) -> np.ndarray:
    """The body in ``work.canvas`` → the model input, in ``work``'s buffers."""
    normalise(work.canvas, work.hwc, work.grid, work.belt_bgr, work.wide)
    return fill_batch(work)


# -- post-processing ------------------------------------------------------------------
