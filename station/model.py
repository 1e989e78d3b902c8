"""The defect classifier at the station: one ONNX Runtime session, checked and warm.

A model is a pair: ``NAME.onnx`` and its card ``NAME.json`` beside it (classes,
tiling, preprocessing, thresholds, training data, metrics, sha256). Loading refuses,
with the reason, a model whose card is missing or unreadable, whose sha256 or file
name does not match the card, whose classes the vision core does not know, or whose
graph does not have the input and outputs the card describes: a station must
never run a model other than the one its card (and the QC log) names.

At load the session is created once (graph optimisations on, intra-op threads from
the configuration), the input and output buffers are allocated once and bound to
the session (``IOBinding``), and a few runs warm it up. Per frame, the rectified
body is written into the same buffers and the session runs on them: nothing large
is allocated in the hot path. The decision thresholds come from the card and can be
overridden by the configuration without retraining.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from vision.classify import ClassifierResult, Thresholds, classify_body
from vision.tiles import (
    NORMALISATIONS,
    TACK_FILLS,
    TileGrid,
    TileParams,
    TileWorkspace,
    make_grid,
)
from vision.types import DEFECT_CODES

INPUT = "tiles"
OUTPUTS = ("logits", "embedding")
#: Runs at load, so the first mask does not pay for lazy initialisation.
WARMUP_RUNS = 3
REQUIRED_KEYS = ("name", "version", "file", "sha256", "classes", "tiling", "thresholds", "input")


class ModelError(RuntimeError):
    """A model the station refuses to run; the message says why."""


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (what the model card records)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_card(model_path: Path) -> dict[str, Any]:
    """The card beside ``model_path``, checked against the file; ModelError if not."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"model file not found: {model_path}")
    cp = card_path(model_path)
    if not cp.is_file():
        raise ModelError(f"model card not found: {cp} (every model needs its card beside it)")
    try:
        card = json.loads(cp.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"model card {cp.name} is not valid JSON: {err}") from None
    if not isinstance(card, dict):
        raise ModelError(f"model card {cp.name}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise ModelError(f"model card {cp.name}: missing {', '.join(missing)}")
    if card["file"] != model_path.name:
        raise ModelError(
            f"model card {cp.name} describes {card['file']!r}, not {model_path.name!r}"
        )
    digest = sha256_file(model_path)
    if digest != card["sha256"]:
        raise ModelError(
            f"sha256 of {model_path.name} is {digest[:12]}…, its card says "
            f"{str(card['sha256'])[:12]}…: the file was changed or corrupted "
            "(restore it, or retrain to get a matching card)"
        )
    classes = card["classes"]
    if not classes or classes[0] != "good":
        raise ModelError(f"model card {cp.name}: classes must start with 'good', got {classes}")
    unknown = [c for c in classes[1:] if c not in DEFECT_CODES]
    if unknown:
        raise ModelError(f"model card {cp.name}: classes unknown to the station: {unknown}")
    return card


def thresholds_from(card: dict[str, Any], overrides: dict[str, float] | None = None) -> Thresholds:
    """The card's thresholds, with any configured ones replacing them."""
    names = {f.name for f in fields(Thresholds)}
    values = {k: float(v) for k, v in card["thresholds"].items() if k in names}
    t = Thresholds(**values)
    if overrides:
        bad = [k for k in overrides if k not in names]
        if bad:
            raise ModelError(f"unknown threshold(s) {bad}; known: {sorted(names)}")
        t = replace(t, **{k: float(v) for k, v in overrides.items() if v is not None})
    return t


def _normalisation(card: dict[str, Any]) -> str:
    """The card's canvas normalisation; cards before it was a choice are ``"channel"``."""
    value = card.get("preprocessing", {}).get("normalisation", "channel")
    if value not in NORMALISATIONS:  # a card of the first format: a sentence, per channel
        if not str(value).startswith("pixel / per-channel median"):
            raise ModelError(f"model card: unknown normalisation {value!r}")
        value = "channel"
    return str(value)


def grid_from(card: dict[str, Any], body_mm: tuple[float, float] | None = None) -> TileGrid:
    """The station's tiling: the card's tile size and scale over the spec's nominal body."""
    t = card["tiling"]
    fill = str(t.get("tack_fill", "colour"))
    if fill not in TACK_FILLS:
        raise ModelError(f"model card: unknown tack_fill {fill!r} (known: {', '.join(TACK_FILLS)})")
    params = TileParams(
        mm_per_px=float(card.get("preprocessing", {}).get("mm_per_px", 0.5)),
        tile_px=int(t["tile_px"]),
        max_stride_px=int(t["max_stride_px"]),
        tack_depth_mm=float(t.get("tack_depth_mm", 0.0)),
        tack_span_mm=tuple(float(v) for v in t.get("tack_span_mm", (0.0, 0.0))),  # type: ignore[arg-type]
        # Cards without it (tilenet 1.0.0) painted the zones the fabric's colour.
        tack_fill=fill,
        normalisation=_normalisation(card),
        belt_channels=bool(card.get("preprocessing", {}).get("belt_channels", False)),
    )
    w, h = body_mm or tuple(t["body_mm"])
    return make_grid(float(w), float(h), params)


class Classifier:
    """One loaded, checked, warmed-up model; thread-safe (one frame at a time).

    Args:
        path: the ``.onnx`` file (its card ``.json`` beside it).
        intra_op_threads: onnxruntime threads for one inference (config).
        thresholds: overrides of the card's thresholds (config), e.g. ``{"hole": 0.6}``.
        body_mm: the spec's nominal body (W, H); the card's when None.
    """

    def __init__(
        self,
        path: Path,
        intra_op_threads: int = 1,
        thresholds: dict[str, float] | None = None,
        body_mm: tuple[float, float] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.card = load_card(self.path)
        self.classes: tuple[str, ...] = tuple(self.card["classes"])
        self.thresholds = thresholds_from(self.card, thresholds)
        self.grid = grid_from(self.card, body_mm)
        self.work = TileWorkspace(self.grid)
        self.threads = max(int(intra_op_threads), 1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.path), so, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - any load failure is a refusal
            raise ModelError(f"{self.path.name}: onnxruntime cannot load it: {err}") from None
        self._check_graph()
        n = self.grid.n_tiles
        emb_dim = self._embedding_dim()
        self.logits = np.zeros((n, len(self.classes)), np.float32)
        self.embedding = np.zeros((n, emb_dim), np.float32)
        self._binding = self.session.io_binding()
        self._binding.bind_ortvalue_input(INPUT, ort.OrtValue.ortvalue_from_numpy(self.work.batch))
        self._binding.bind_ortvalue_output(
            OUTPUTS[0], ort.OrtValue.ortvalue_from_numpy(self.logits)
        )
        self._binding.bind_ortvalue_output(
            OUTPUTS[1], ort.OrtValue.ortvalue_from_numpy(self.embedding)
        )
        self._lock = threading.Lock()
        #: Bodies classified / classifications that raised (health and metrics).
        self.runs = 0
        self.failures = 0
        self.last_error: str | None = None
        t0 = time.perf_counter()
        for _ in range(WARMUP_RUNS):
            self.run(self.work.batch)
        self.warmup_ms = (time.perf_counter() - t0) * 1000 / WARMUP_RUNS

    def _check_graph(self) -> None:
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        t = int(self.card["tiling"]["tile_px"])
        if len(inputs) != 1 or inputs[0].name != INPUT:
            raise ModelError(
                f"{self.path.name}: expected one input {INPUT!r}, got {[i.name for i in inputs]}"
            )
        shape = inputs[0].shape
        c = self.grid.params.channels
        if len(shape) != 4 or list(shape[1:]) != [t, t, c]:
            raise ModelError(
                f"{self.path.name}: input shape {shape} does not match the "
                f"card's tiles (n, {t}, {t}, {c})"
            )
        if list(OUTPUTS) != outputs[:2]:
            raise ModelError(f"{self.path.name}: outputs {outputs}, expected {list(OUTPUTS)}")

    def _embedding_dim(self) -> int:
        probe = np.zeros((1, *self.grid.batch_shape[1:]), np.float32)
        logits, emb = self.session.run(list(OUTPUTS), {INPUT: probe})
        if logits.shape[1] != len(self.classes):
            raise ModelError(
                f"{self.path.name}: {logits.shape[1]} logits for "
                f"{len(self.classes)} classes in the card"
            )
        return int(emb.shape[1])

    # -- inference ----------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and embeddings of a batch of tiles.

        The station's own batch (``self.work.batch``) runs on the bound buffers and the
        returned arrays are those buffers (valid until the next call); any other batch
        (tests, evaluation) takes the ordinary, allocating path.
        """
        if batch is self.work.batch:
            self.session.run_with_iobinding(self._binding)
            return self.logits, self.embedding
        logits, emb = self.session.run(list(OUTPUTS), {INPUT: np.ascontiguousarray(batch)})
        return logits, emb

    def classify(
        self, rect_image: np.ndarray, mask_to_rect: np.ndarray, body_w_mm: float, body_h_mm: float
    ) -> ClassifierResult:
        """Classify one measured body (see :func:`vision.classify.classify_body`).

        A failure is counted for health and re-raised: the pipeline turns it into a
        ``model`` reject, so a broken session can never let a mask through.
        """
        with self._lock:
            try:
                result = classify_body(
                    rect_image,
                    mask_to_rect,
                    body_w_mm,
                    body_h_mm,
                    self.run,
                    self.work,
                    self.classes,
                    self.thresholds,
                )
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.runs += 1
            self.last_error = None  # health is the latest run's; ``failures`` keeps the count
            return result

    def classify_mask(self, analysis: Any) -> ClassifierResult:
        """Classify a :class:`vision.pipeline.MaskAnalysis` (its rectified body)."""
        rect, body = analysis.rectified, analysis.body
        return self.classify(
            rect.image, body.mask_to_rect_affine(rect), body.width_mm, body.height_mm
        )

    def describe(self) -> dict[str, Any]:
        """What the page and ``/api/v1/status`` show about the running model."""
        c = self.card
        return {
            "name": c["name"],
            "version": c["version"],
            "sha256": c["sha256"],
            "hash": str(c["sha256"])[:12],
            "label": self.label,
            "file": c["file"],
            "classes": list(self.classes),
            "precision": c.get("precision"),
            "thresholds": self.thresholds.as_dict(),
            "tiles": self.grid.n_tiles,
            "intra_op_threads": self.threads,
            "warmup_ms": round(self.warmup_ms, 2),
            "runs": self.runs,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    @property
    def label(self) -> str:
        """``name@version+sha256[:12]``: what each QC record says it was judged by."""
        c = self.card
        return f"{c['name']}@{c['version']}+{str(c['sha256'])[:12]}"


def load_classifier(
    path: Path, intra_op_threads: int = 1, thresholds: dict[str, float] | None = None
) -> Classifier:
    """The station's model, checked against its card and warmed up; ModelError if refused.

    The tiling is the card's (the canvas the model was trained on), whatever the
    recipe: the body is stretched onto it, so a recipe change needs no new session.
    """
    return Classifier(path, intra_op_threads=intra_op_threads, thresholds=thresholds)


def _median_ms(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def bench_classifier(
    model_path: Path,
    threads: int = 1,
    repeats: int = 50,
    batch: np.ndarray | None = None,
    rect: tuple[np.ndarray, np.ndarray, float, float] | None = None,
) -> dict[str, Any]:
    """Timings of the classifier: onnxruntime (as loaded at the station) vs PyTorch eager.

    Both run the same batch (one body's tiles; pseudo-random if ``batch`` is None,
    which costs the same as real cloth) with the same number of threads. PyTorch
    runs the fp32 network the model was exported from (``NAME.pt`` beside it); its
    figure is None when torch or the weights are missing. ``rect`` = (rectified
    image, mask→rect affine, W mm, H mm) also times the whole step
    (preprocessing + inference + post-processing).
    """
    clf = Classifier(model_path, intra_op_threads=threads)
    if batch is None:
        batch = np.random.default_rng(0).normal(0, 0.3, clf.grid.batch_shape).astype(np.float32)
    np.copyto(clf.work.batch, batch)
    out: dict[str, Any] = {
        "model": clf.describe(),
        "tiles": int(batch.shape[0]),
        "threads": clf.threads,
        "ort_ms": _median_ms(lambda: clf.run(clf.work.batch), repeats),
        "torch_eager_fp32_ms": None,
        "speedup": None,
    }
    if rect is not None:
        out["classify_ms"] = _median_ms(lambda: clf.classify(*rect), repeats)
    pt = Path(model_path).with_suffix(".pt")
    try:
        import torch

        from vision.training.model import NetParams, TileNet
    except ImportError:
        out["torch_note"] = "torch not installed (pip install '.[train]')"
        return out
    if not pt.is_file():
        out["torch_note"] = f"no fp32 weights {pt.name}"
        return out
    saved = torch.load(pt, map_location="cpu", weights_only=True)
    net = TileNet(NetParams.from_dict(saved["net"]))
    net.load_state_dict(saved["state_dict"])
    net.eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(clf.threads)
    try:
        x = torch.from_numpy(batch.copy())
        with torch.inference_mode():
            out["torch_eager_fp32_ms"] = _median_ms(lambda: net(x), repeats)
    finally:
        torch.set_num_threads(previous)
    out["speedup"] = round(out["torch_eager_fp32_ms"] / max(out["ort_ms"], 1e-9), 2)
    return out
