"""Bodies in memory and the tiles cut from them for training (numpy, no torch).

A :class:`Bodies` holds the canvases of a rendered set (and any real station
frames), their reference colours and flaw maps. :func:`sample_groups` draws one
epoch of tiles: every flaw several times at random offsets (so the model sees
flaws anywhere in a tile, at borders too), and random tiles of cloth from
everywhere, each flipped at random. :func:`grid_tiles` gives the station's own
tiling, used for validation, thresholds and quantisation.

``Holdout`` removes whole bodies from training (a print, a hole shape, a stain
tint): the honest measure of how the model does on cloth and flaws it never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.belt_cue import belt_fallback, belt_lut, stored_belt
from vision.classify import CLASSES
from vision.tiles import (
    TileGrid,
    TileParams,
    divisor,
    make_grid,
    neutralise,
    reference_colour,
    reference_step_px,
)
from vision.training.dataset import read_index, read_manifest
from vision.training.labels import IGNORE, FlawMap, LabelParams, crop_labels, flaw_map

#: ``bag`` of a synthetic body: tile labels come from its flaws.
SYNTHETIC = -1


@dataclass(frozen=True)
class Holdout:
    """Bodies left out of training: prints, hole shapes and stain tints."""

    prints: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    tints: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.prints or self.shapes or self.tints)

    def matches(self, meta: dict[str, Any]) -> bool:
        if meta.get("cloth", {}).get("print_kind") in self.prints:
            return True
        for f in meta.get("flaws", []):
            if f.get("shape") in self.shapes or f.get("tint") in self.tints:
                return True
        return False

    @classmethod
    def parse(cls, text: str | None) -> Holdout:
        """``"print=floral,check;shape=tear;tint=coffee"`` → Holdout."""
        if not text:
            return cls()
        parts: dict[str, tuple[str, ...]] = {}
        for item in text.split(";"):
            if not item.strip():
                continue
            key, _, values = item.partition("=")
            key = {"print": "prints", "shape": "shapes", "tint": "tints"}.get(key.strip(), "")
            if not key:
                raise ValueError(f"holdout: expected print=…;shape=…;tint=…, got {item!r}")
            parts[key] = tuple(v.strip() for v in values.split(",") if v.strip())
        return cls(**parts)


@dataclass
class Bodies:
    """Canvases with what is known about them, all the same size."""

    grid: TileGrid
    canvases: np.ndarray  # (M, rows, cols, 3) uint8
    refs: np.ndarray  # (M, 3) float32
    metas: list[dict[str, Any]]
    maps: list[FlawMap | None]
    #: SYNTHETIC, or the class index of a real frame's whole-mask label.
    bags: np.ndarray
    label_params: LabelParams = field(default_factory=LabelParams)
    #: (M, 3) float32: the belt beside each body (:func:`vision.belt_cue.belt_fallback`
    #: of what was measured), used when the tiling has belt channels.
    belts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.belts is None:
            pairs = zip(self.metas, self.refs, strict=True)
            belts = [belt_fallback(stored_belt(m), r) for m, r in pairs]
            self.belts = np.stack(belts) if belts else np.zeros((0, 3), np.float32)

    def __len__(self) -> int:
        return len(self.metas)

    def select(self, keep: np.ndarray) -> Bodies:
        idx = np.flatnonzero(keep)
        return Bodies(
            self.grid,
            self.canvases[idx],
            self.refs[idx],
            [self.metas[i] for i in idx],
            [self.maps[i] for i in idx],
            self.bags[idx],
            self.label_params,
            self.belts[idx],
        )

    def where(self, pred: Callable[[dict[str, Any]], bool]) -> np.ndarray:
        return np.array([bool(pred(m)) for m in self.metas], bool)

    def normalised(self, normalisation: str, belt_channels: bool = False) -> Bodies:
        """The same bodies, cut into tiles with another input (see :class:`TileParams`)."""
        g = self.grid
        params = replace(g.params, normalisation=normalisation, belt_channels=belt_channels)
        grid = make_grid(g.cols * params.mm_per_px, g.rows * params.mm_per_px, params)
        return replace(self, grid=grid)

    def concat(self, other: Bodies) -> Bodies:
        return Bodies(
            self.grid,
            np.concatenate([self.canvases, other.canvases]),
            np.concatenate([self.refs, other.refs]),
            self.metas + other.metas,
            self.maps + other.maps,
            np.concatenate([self.bags, other.bags]),
            self.label_params,
            np.concatenate([self.belts, other.belts]),
        )


def tile_params_of(manifest: dict[str, Any]) -> TileParams:
    """The set's tiling (its canvas size); tack zones are the classifier's current ones."""
    t = manifest["synth"]["tiles"]
    return TileParams(float(t["mm_per_px"]), int(t["tile_px"]), int(t["max_stride_px"]))


def _prepare_canvases(canvases: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Each canvas's reference colour (float32, (n, 3)); tack zones painted in place."""
    step = reference_step_px(grid.params)
    refs = np.zeros((len(canvases), 3), np.float32)
    for i, canvas in enumerate(canvases):
        refs[i] = reference_colour(canvas, step)
        neutralise(canvas, refs[i], grid)
    return refs


def load_bodies(
    data_dir: Path,
    splits: tuple[str, ...] = ("train", "val"),
    label_params: LabelParams | None = None,
    progress: Callable[[int], None] | None = None,
    tack_fill: str | None = None,
) -> Bodies:
    """Read the measured bodies of a rendered set (those of the given splits).

    Their tack zones are painted at load (``tack_fill``: the model's, see
    :class:`vision.tiles.TileParams`; None: the default).
    """
    manifest = read_manifest(data_dir)
    tiles = tile_params_of(manifest)
    if tack_fill is not None:
        tiles = replace(tiles, tack_fill=tack_fill)
    cols, rows = manifest["canvas_px"]
    metas = [m for m in read_index(data_dir) if m["status"] == "ok" and m["split"] in splits]
    grid = make_grid(cols * tiles.mm_per_px, rows * tiles.mm_per_px, tiles)
    if (grid.cols, grid.rows) != (cols, rows):
        raise ValueError(f"{data_dir}: canvas {cols}x{rows} does not match its tiling")
    lp = label_params or LabelParams()
    canvases = np.zeros((len(metas), rows, cols, 3), np.uint8)
    maps: list[FlawMap | None] = []
    for i, m in enumerate(metas):
        img = cv2.imread(str(Path(data_dir) / m["file"]), cv2.IMREAD_COLOR)
        if img is None or img.shape != (rows, cols, 3):
            raise ValueError(f"{data_dir}/{m['file']}: missing or not {cols}x{rows}")
        canvases[i] = img
        w, h = m["body_mm"]
        maps.append(flaw_map(m["flaws"], w, h, cols, rows, lp) if m["flaws"] else None)
        if progress:
            progress(1)
    refs = _prepare_canvases(canvases, grid)
    bags = np.full(len(metas), SYNTHETIC, np.int64)
    return Bodies(grid, canvases, refs, metas, maps, bags, lp)


def real_bodies(grid: TileGrid, real: list[Any], label_params: LabelParams) -> Bodies:
    """Measured station frames (:class:`vision.training.real.RealBody`) as bodies."""
    from vision.training.real import split_of

    usable = [r for r in real if r.canvas is not None]
    canvases = np.zeros((len(usable), grid.rows, grid.cols, 3), np.uint8)
    metas = []
    for i, r in enumerate(usable):
        canvases[i] = r.canvas
        metas.append(
            {
                "id": f"real:{r.id}",
                "kind": r.label,
                "split": split_of(r.id),
                "flaws": [],
                "cloth": {},
                "body_mm": list(r.body_mm),
                "belt_bgr": list(r.belt_bgr) if r.belt_bgr else None,
                "real": True,
            }
        )
    refs = _prepare_canvases(canvases, grid)
    bags = np.array([CLASSES.index(r.label) for r in usable], np.int64)
    return Bodies(grid, canvases, refs, metas, [None] * len(usable), bags, label_params)


# -- tiles -------------------------------------------------------------------------------
def cut(
    bodies: Bodies,
    which: np.ndarray,
    origins: np.ndarray,
    flips: np.ndarray | None = None,
    gains: np.ndarray | None = None,
) -> np.ndarray:
    """(B, T, T, C) float32 normalised tiles: body ``which[k]`` at ``origins[k]`` (col, row).

    Same normalisation as :func:`vision.tiles.normalise` (with belt channels: the
    same table, :func:`vision.belt_cue.belt_lut`); ``flips`` (B, 2) bools mirror a
    tile left–right / top–bottom, ``gains`` (B, 3) scale its channels (and shift
    the belt channels by their logarithm: an error of the measured belt alike).
    """
    t = bodies.grid.params.tile_px
    d = np.arange(t)
    rows = origins[:, 1, None, None] + d[None, :, None]
    cols = origins[:, 0, None, None] + d[None, None, :]
    raw = bodies.canvases[which[:, None, None], rows, cols]  # B,T,T,3 uint8
    tiles = raw.astype(np.float32)
    scale = 1.0 / divisor(bodies.refs[which], bodies.grid.params.normalisation)
    if gains is not None:
        scale = scale * gains
    tiles *= scale[:, None, None, :]
    tiles -= 1.0
    if bodies.grid.params.belt_channels:
        assert bodies.belts is not None
        rel = np.empty(raw.shape, np.float32)
        for b in np.unique(which):
            sel = which == b
            lut = belt_lut(bodies.belts[b])
            rel[sel] = lut[raw[sel], np.arange(3)]
        if gains is not None:
            rel += np.log(gains)[:, None, None, :]
        tiles = np.concatenate([tiles, rel], axis=3)
    if flips is not None:
        tiles[flips[:, 0]] = tiles[flips[:, 0], :, ::-1]
        tiles[flips[:, 1]] = tiles[flips[:, 1], ::-1]
    return tiles


def labels_at(bodies: Bodies, which: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Tile labels (class or IGNORE) of synthetic bodies; real bags' tiles: IGNORE unless good."""
    out = np.zeros(len(which), np.int64)
    t = bodies.grid.params.tile_px
    for b in np.unique(which):
        sel = which == b
        if bodies.bags[b] == SYNTHETIC:
            out[sel] = crop_labels(bodies.maps[b], origins[sel], t, bodies.label_params)
        else:
            out[sel] = 0 if bodies.bags[b] == 0 else IGNORE
    return out


def grid_tiles(bodies: Bodies) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every body's station tiling: (body index, origin, label) per tile, body-major."""
    g = bodies.grid
    o = g.origins_px
    which = np.repeat(np.arange(len(bodies)), len(o))
    origins = np.tile(o, (len(bodies), 1))
    return which, origins, labels_at(bodies, which, origins)


@dataclass(frozen=True)
class EpochParams:
    """How an epoch's tiles are drawn: every training body once, as one group of tiles."""

    #: Tiles per body and step (the network compares each tile with its body's mean).
    group_tiles: int = 32
    #: Bodies per optimiser step.
    bodies_per_step: int = 8
    #: Tiles per flaw, each at another offset (at most half the group).
    per_flaw: int = 4
    #: A flaw lies at least this far inside its tile's border, mm (when it fits).
    flaw_margin_mm: float = 2.0
    #: Hardest cloth tiles of the station tiling kept per mined body, and how many
    #: bodies are mined per epoch (see :func:`vision.training.train.hard_negatives`).
    hard_per_body: int = 8
    hard_bodies: int = 1200
    #: Per-body channel gain jitter (a colour cast the reference does not cancel).
    gain_jitter: float = 0.04
    #: Share of an epoch's groups given to the bodies the model got most wrong in
    #: the previous epoch (drawn in proportion to their training loss, see
    #: :func:`epoch_order`); the rest is a random share of all bodies, so an epoch
    #: costs the same. Meant to spend the steps on small holes on dark prints rather
    #: than on plain cloth, learnt in a few epochs; 0.25 did not beat 0 on validation
    #: (docs/ACCURACY.md), so it is off.
    hard_body_share: float = 0.0


def _flaw_origins(
    bodies: Bodies, b: int, rng: np.random.Generator, p: EpochParams, cap: int
) -> np.ndarray:
    g = bodies.grid
    t = g.params.tile_px
    m = bodies.metas[b]
    sx, sy = m["body_mm"][0] / g.cols, m["body_mm"][1] / g.rows
    centres = [
        (f["x_mm"] / sx, f["y_mm"] / sy) for f in m.get("flaws", []) for _ in range(p.per_flaw)
    ]
    if not centres:
        return np.zeros((0, 2), np.int64)
    c = np.array(centres)[rng.permutation(len(centres))[:cap]]
    lo = min(round(p.flaw_margin_mm / g.params.mm_per_px), t // 2)
    return np.round(c - rng.uniform(lo, t - lo, size=c.shape)).astype(np.int64)


def epoch_order(
    n_bodies: int, rng: np.random.Generator, p: EpochParams, losses: np.ndarray | None = None
) -> np.ndarray:
    """The bodies of one epoch, one group each, shuffled: ``n_bodies`` groups in all.

    Without ``losses`` (the first epoch) every body once. With them, a share
    ``hard_body_share`` of the groups goes to bodies drawn (with replacement) in
    proportion to their loss of the previous epoch, the rest to a random subset of
    all bodies: the hard ones come back, possibly several times, at no extra cost.
    """
    if losses is None or p.hard_body_share <= 0 or n_bodies == 0:
        return rng.permutation(n_bodies)
    n_hard = round(p.hard_body_share * n_bodies)
    w = np.maximum(np.nan_to_num(np.asarray(losses, np.float64)), 0.0)
    if w.sum() <= 0:
        return rng.permutation(n_bodies)
    hard = rng.choice(n_bodies, size=n_hard, replace=True, p=w / w.sum())
    rest = rng.permutation(n_bodies)[: n_bodies - n_hard]
    return rng.permutation(np.concatenate([rest, hard]))


def sample_groups(
    bodies: Bodies,
    rng: np.random.Generator,
    p: EpochParams,
    hard: dict[int, np.ndarray] | None = None,
    picks: dict[int, tuple[np.ndarray, int]] | None = None,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch: (which, origins, labels, flips, gains), ``group_tiles`` per body, bodies shuffled.

    ``order`` is the epoch's bodies, one group each (:func:`epoch_order`); every
    body once, shuffled, when None.

    Each body's group holds its flaws (``per_flaw`` offsets each), its hard cloth
    tiles (``hard``: origins per body), for a real defect frame the tile the model
    picked as the flaw (``picks``: origins and class), and random tiles to fill up.
    Tiles labelled IGNORE stay in the group (they are part of the body the tile is
    compared with) but out of the loss.
    """
    g = bodies.grid
    t, k = g.params.tile_px, p.group_tiles
    hard, picks = hard or {}, picks or {}
    which, origins, labels = [], [], []
    for b in rng.permutation(len(bodies)) if order is None else order:
        # (origins, label or None: from the flaws) per part of the group
        parts = [(_flaw_origins(bodies, b, rng, p, k // 2), None)]
        if b in hard:
            parts.append((hard[b][: k // 4], None))
        if b in picks:
            parts.append((picks[b][0][: k // 4], picks[b][1]))
        n_fill = k - sum(len(o) for o, _ in parts)
        fill = np.stack(
            [rng.integers(0, g.cols - t + 1, n_fill), rng.integers(0, g.rows - t + 1, n_fill)], 1
        )
        parts.append((fill, None))
        o = np.concatenate([q for q, _ in parts])
        o[:, 0] = np.clip(o[:, 0], 0, g.cols - t)
        o[:, 1] = np.clip(o[:, 1], 0, g.rows - t)
        w = np.full(k, b, np.int64)
        lab = labels_at(bodies, w, o)
        at = 0
        for q, forced in parts:
            if forced is not None:
                lab[at : at + len(q)] = forced
            at += len(q)
        which.append(w)
        origins.append(o)
        labels.append(lab)
    n = len(which)
    flips = rng.random((n * k, 2)) < 0.5
    gains = np.repeat(rng.uniform(1 - p.gain_jitter, 1 + p.gain_jitter, (n, 3)), k, axis=0)
    return (
        np.concatenate(which),
        np.concatenate(origins),
        np.concatenate(labels),
        flips,
        gains.astype(np.float32),
    )
