"""The classifier's training data, rendered by the simulator (no torch needed).

Rendering a frame costs most of a second, so each mask is rendered once, measured
by the real pipeline (:func:`vision.pipeline.analyse_frame`, so the data went
through exactly what the station does) and only its *canvas* is kept: the body at
the classifier's scale, as :func:`vision.canvas.body_canvas` makes it at run
time. Training then cuts as many tiles from each canvas as it likes.

Folder format (``qc-station dataset --out DIR``)::

    DIR/manifest.json        seed, counts, randomisation, canvas size and tiling
    DIR/index.jsonl          one line per body: id, file, split, kind, flaws (mask mm),
                             belt_bgr (the belt beside the body, :func:`vision.tiles.belt_colour`),
                             cloth, look, camera, measured body size, status
    DIR/bodies/NNNNNN.png    the canvas (BGR, lossless)

Randomisation is deliberately wider than the demo's: fabric colours (a palette and,
for a share, any hue), the five prints, print scale and colour, weave scale, thread
colour, light, blur, noise, JPEG quality, lens (a share of randomized camera units),
hole size (log-uniform from 2 mm), round holes and tears, stain size (from 5 mm) and
five stain tints, one to three flaws per mask. A share of masks carry a geometric
defect instead: for the classifier their tiles are cloth like any other.

Every body has its own seed (``SeedSequence([seed, i])``), so the set is the same
whatever ``jobs`` and an interrupted run resumes where it stopped. Every
``val_every``-th body is validation (thresholds are chosen on it); a test set is
the same format rendered with another seed and ``split="test"``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.belt_cue import belt_colour
from vision.canvas import body_canvas
from vision.spec import PrototypeSpec
from vision.synth import DefectParams, LookParams, MaskParams, sample_look, sample_mask
from vision.tiles import TileParams, TileWorkspace, make_grid

FORMAT_VERSION = 2  # 2: belt_bgr per body
MANIFEST = "manifest.json"
INDEX = "index.jsonl"
BODIES = "bodies"

#: Defects the measurement checks own; their masks are "good cloth" to the classifier.
GEOMETRIC_KINDS: tuple[str, ...] = (
    "seam_gap",
    "seam_offset",
    "stitch_length",
    "pleats",
    "dimension",
    "ear_loop",
)
HOLE_SHAPES: tuple[str, ...] = ("hole", "tear")
STAIN_TINTS: tuple[str, ...] = ("oil", "grease", "ink", "red", "coffee")


@dataclass(frozen=True)
class SynthParams:
    """What the rendered set contains; recorded in the manifest."""

    good_share: float = 0.3
    hole_share: float = 0.3
    stain_share: float = 0.3
    #: Up to this many flaws of the mask's kind (1 … max_flaws, uniform).
    max_flaws: int = 3
    #: Round holes: diameter, mm (log-uniform: small ones are the hard ones).
    hole_mm: tuple[float, float] = (2.0, 10.0)
    #: Tears: length, mm.
    tear_mm: tuple[float, float] = (6.0, 22.0)
    tear_share: float = 0.35
    #: Stains: largest extent, mm (log-uniform).
    stain_mm: tuple[float, float] = (5.0, 28.0)
    #: Least distance from a flaw's outline to the body edge, mm.
    hole_edge_mm: float = 4.0
    stain_edge_mm: float = 2.0
    #: Least distance between two flaws' outlines, mm.
    flaw_gap_mm: float = 3.0
    #: Share of masks whose cloth, print and thread colours are any colour at all.
    random_cloth_share: float = 0.4
    #: Share of frames from randomized camera units, and how many such units.
    randomized_share: float = 0.3
    n_cameras: int = 4
    #: Every n-th body is validation (0: none, e.g. for a test set).
    val_every: int = 5
    #: "train" (train/val by val_every) or "test" (every body).
    split: str = "train"
    tiles: TileParams = field(default_factory=TileParams)


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _any_bgr(rng: np.random.Generator, sat: float, v_lo: float, v_hi: float) -> tuple:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, sat) * 255, rng.uniform(v_lo, v_hi)]]])
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(float(v) for v in bgr)


def vary_cloth(params: MaskParams, rng: np.random.Generator, p: SynthParams) -> MaskParams:
    """Wider cloth variety than the demo's palette: weave, print scale, any colours."""
    changes: dict[str, Any] = {
        "weave_mm": float(rng.uniform(0.4, 1.2)),
        "print_scale_mm": float(rng.uniform(4.0, 20.0)),
    }
    if rng.random() < p.random_cloth_share:
        changes["fabric_bgr"] = _any_bgr(rng, 0.7, 70, 240)
        changes["print_bgr"] = _any_bgr(rng, 0.9, 30, 220)
        changes["thread_bgr"] = _any_bgr(rng, 0.6, 40, 240)
    return replace(params, **changes)


def vary_look(look: LookParams, rng: np.random.Generator) -> LookParams:
    """Wider light, blur, noise and JPEG ranges than :func:`sample_look`."""
    return replace(
        look,
        exposure=float(rng.uniform(0.75, 1.15)),
        light_gradient=float(rng.uniform(0.0, 0.4)),
        blur_px=float(rng.uniform(0.3, 1.5)),
        read_noise=float(rng.uniform(0.8, 3.5)),
        shot_noise=float(rng.uniform(0.02, 0.12)),
        jpeg_quality=None if rng.random() < 0.4 else int(rng.integers(60, 96)),
    )


def _place(
    params: MaskParams,
    rng: np.random.Generator,
    radius: float,
    edge: float,
    taken: list[tuple[float, float, float]],
    gap: float,
) -> tuple[float, float] | None:
    m = radius + edge
    if 2 * m >= min(params.width_mm, params.height_mm):
        return None
    for _ in range(60):
        x = float(rng.uniform(m, params.width_mm - m))
        y = float(rng.uniform(m, params.height_mm - m))
        if all(np.hypot(x - tx, y - ty) >= radius + tr + gap for tx, ty, tr in taken):
            return x, y
    return None


def add_flaws(
    params: MaskParams, kind: str, rng: np.random.Generator, p: SynthParams
) -> MaskParams:
    """One to ``max_flaws`` holes/tears or stains, apart from each other and the edge."""
    flaws: list[DefectParams] = []
    taken: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, p.max_flaws + 1))):
        if kind == "hole":
            tear = rng.random() < p.tear_share
            size = float(rng.uniform(*p.tear_mm)) if tear else _log_uniform(rng, p.hole_mm)
            extra = {"shape": "tear" if tear else "hole", "angle_deg": float(rng.uniform(0, 180))}
            edge = p.hole_edge_mm
        else:
            size = _log_uniform(rng, p.stain_mm)
            extra = {"tint": str(rng.choice(STAIN_TINTS))}
            edge = p.stain_edge_mm
        at = _place(params, rng, size / 2, edge, taken, p.flaw_gap_mm)
        if at is None:
            continue
        taken.append((*at, size / 2))
        flaws.append(DefectParams(kind, at[0], at[1], size, extra))
    if not flaws:  # the body is always big enough for one small flaw
        return add_flaws(params, kind, rng, replace(p, max_flaws=1))
    return replace(params, defects=(*params.defects, *flaws))


def sample_body(
    rng: np.random.Generator, spec: PrototypeSpec, camera: Any, p: SynthParams
) -> tuple[str, MaskParams]:
    """The kind ("good", "hole", "stain", or a geometric code) and the mask."""
    r = rng.random()
    if r < p.good_share:
        kind = "good"
    elif r < p.good_share + p.hole_share:
        kind = "hole"
    elif r < p.good_share + p.hole_share + p.stain_share:
        kind = "stain"
    else:
        kind = str(rng.choice(GEOMETRIC_KINDS))
    geometric = kind if kind in GEOMETRIC_KINDS else None
    params = vary_cloth(sample_mask(rng, spec, geometric, camera=camera), rng, p)
    if kind in ("hole", "stain"):
        params = add_flaws(params, kind, rng, p)
    return kind, params


def flaw_records(params: MaskParams) -> list[dict[str, Any]]:
    """The mask's holes and stains as JSON-ready dicts (mask mm)."""
    out = []
    for d in params.defects:
        if d.kind in ("hole", "stain"):
            out.append(
                {
                    "kind": d.kind,
                    "x_mm": d.x_mm,
                    "y_mm": d.y_mm,
                    "size_mm": d.size_mm,
                    **{k: v for k, v in d.extra.items()},
                }
            )
    return out


# -- rendering ------------------------------------------------------------------------
class BodyRenderer:
    """Renders, measures and cuts the canvas of body ``i`` of a set (one per process).

    Keeps one :class:`vision.synth.Renderer` per camera unit it has used (building
    one costs about a second), so it belongs to one worker process.
    """

    def __init__(self, seed: int, p: SynthParams, spec: PrototypeSpec, out_dir: Path) -> None:
        self.seed, self.p, self.spec, self.out_dir = seed, p, spec, Path(out_dir)
        self.grid = make_grid(spec.body.width_mm.nominal, spec.body.height_mm.nominal, p.tiles)
        self.work = TileWorkspace(self.grid)
        self._units: dict[int, tuple[Any, Any]] = {}

    def _unit(self, index: int) -> tuple[Any, Any]:
        from vision.pipeline import InspectionContext
        from vision.synth import Renderer, SimCamera

        if index not in self._units:
            cam = SimCamera()
            if index > 0:
                cam = SimCamera.randomized(np.random.default_rng([self.seed, 1_000_000 + index]))
            renderer = Renderer(cam)
            ctx = InspectionContext.create(renderer.calibration, self.spec, annotate=False)
            self._units[index] = (renderer, ctx)
        return self._units[index]

    def __call__(self, i: int) -> dict[str, Any]:
        from vision.pipeline import analyse_frame

        p = self.p
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        unit = 0 if rng.random() >= p.randomized_share else 1 + int(rng.integers(p.n_cameras))
        renderer, ctx = self._unit(unit)
        kind, params = sample_body(rng, self.spec, renderer.calibration, p)
        look = vary_look(sample_look(rng), rng)
        image, truth = renderer.render([params], look, rng, self.spec)
        if p.split == "test":
            split = "test"
        else:
            split = "val" if p.val_every and i % p.val_every == 0 else "train"
        meta: dict[str, Any] = {
            "id": i,
            "file": f"{BODIES}/{i:06d}.png",
            "split": split,
            "kind": kind,
            "flaws": flaw_records(params),
            "truth_codes": truth.defect_codes,
            "cloth": {
                "print_kind": params.print_kind,
                "fabric_bgr": [round(v, 1) for v in params.fabric_bgr],
                "print_bgr": [round(v, 1) for v in params.print_bgr],
                "thread_bgr": [round(v, 1) for v in params.thread_bgr],
                "weave_mm": round(params.weave_mm, 3),
                "print_scale_mm": round(params.print_scale_mm, 2),
            },
            "look": {k: v for k, v in asdict(look).items() if k != "belt_seed"},
            "camera": unit,
            "truth_body_mm": [params.width_mm, params.height_mm],
        }
        fa = analyse_frame(image, ctx)
        meta["verdict"] = fa.result.verdict
        meta["measured_codes"] = fa.result.defect_codes
        if fa.mask is None:
            meta["status"] = f"unmeasured: {fa.result.message or fa.result.verdict}"
            return meta
        body, rect = fa.mask.body, fa.mask.rectified
        affine = body.mask_to_rect_affine(rect)
        canvas = body_canvas(rect.image, affine, body.width_mm, body.height_mm, self.work)
        cv2.imwrite(str(self.out_dir / meta["file"]), canvas, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        meta["body_mm"] = [round(body.width_mm, 3), round(body.height_mm, 3)]
        # The belt beside the body, measured as the classifier measures it at run time.
        belt = belt_colour(rect.image, affine, body.width_mm, body.height_mm)
        meta["belt_bgr"] = [round(float(v), 1) for v in belt] if np.isfinite(belt).all() else None
        meta["status"] = "ok"
        return meta


_WORKER: BodyRenderer | None = None  # one per worker process (multiprocessing needs it)


def _init_worker(seed: int, p: SynthParams, spec_data: dict, out_dir: str) -> None:
    global _WORKER
    cv2.setNumThreads(1)
    _WORKER = BodyRenderer(seed, p, PrototypeSpec.model_validate(spec_data), Path(out_dir))


def _render(i: int) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER(i)


def canvas_tiling(t: TileParams) -> dict[str, Any]:
    """The tiling fields that shape the stored canvases (the rest is the classifier's)."""
    return {"mm_per_px": t.mm_per_px, "tile_px": t.tile_px, "max_stride_px": t.max_stride_px}


def manifest_for(seed: int, n: int, p: SynthParams, spec: PrototypeSpec) -> dict[str, Any]:
    grid = make_grid(spec.body.width_mm.nominal, spec.body.height_mm.nominal, p.tiles)
    return {
        "format": FORMAT_VERSION,
        "seed": seed,
        "n": n,
        "spec": spec.label,
        "synth": {**asdict(p), "tiles": canvas_tiling(p.tiles)},
        "canvas_px": [grid.cols, grid.rows],
        "grid": {"nx": grid.nx, "ny": grid.ny, "stride_px": list(grid.stride_px)},
    }


def render_dataset(
    out_dir: Path,
    n: int,
    seed: int = 0,
    p: SynthParams | None = None,
    spec: PrototypeSpec | None = None,
    jobs: int = 1,
) -> Iterator[dict[str, Any]]:
    """Render bodies ``0 … n−1`` into ``out_dir``; yields each body's index line.

    Bodies already in the index are skipped (an interrupted run resumes); a folder
    rendered with another seed or other parameters is refused.
    """
    p = p or SynthParams()
    spec = spec or PrototypeSpec()
    out_dir = Path(out_dir)
    (out_dir / BODIES).mkdir(parents=True, exist_ok=True)
    manifest = manifest_for(seed, n, p, spec)
    path = out_dir / MANIFEST
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        same = {k: v for k, v in old.items() if k != "n"} == {
            k: v for k, v in json.loads(json.dumps(manifest)).items() if k != "n"
        }
        if not same:
            raise ValueError(f"{out_dir} holds a set rendered with other settings; use a new --out")
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    done = {m["id"] for m in read_index(out_dir)}
    todo = [i for i in range(n) if i not in done]
    with open(out_dir / INDEX, "a", encoding="utf-8") as index:
        if jobs <= 1:
            _init_worker(seed, p, spec.model_dump(), str(out_dir))
            results: Iterator[dict[str, Any]] = map(_render, todo)
            pool = None
        else:
            pool = mp.get_context("fork").Pool(
                jobs, _init_worker, (seed, p, spec.model_dump(), str(out_dir))
            )
            results = pool.imap(_render, todo, chunksize=2)
        try:
            for meta in results:
                index.write(json.dumps(meta) + "\n")
                index.flush()
                yield meta
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()


def read_index(data_dir: Path) -> list[dict[str, Any]]:
    """Index lines of a rendered set, last line per id wins, in id order."""
    path = Path(data_dir) / INDEX
    if not path.is_file():
        return []
    latest: dict[int, dict[str, Any]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            meta = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a line being written, or cut by a crash: redone
                break
            raise
        latest[int(meta["id"])] = meta
    return [latest[i] for i in sorted(latest)]


def read_manifest(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{data_dir}: no {MANIFEST} (render it with `qc-station dataset`)")
    return json.loads(path.read_text(encoding="utf-8"))
