"""``qc-station train`` end to end: data → network → ONNX (int8 if it holds) → model card.

    bodies (rendered set ∪ labelled station frames) ─▶ train (torch, fp32)
    ─▶ export fp32 ONNX, check against torch ─▶ quantise int8 (static, calibrated on
    station tiles) ─▶ for each of int8 / fp32: fit the anomaly whitening on good
    training tiles, choose thresholds on validation, score validation
    ─▶ keep int8 unless it loses accuracy ─▶ NAME.onnx + NAME.json (card) + NAME.pt

The ``.pt`` (fp32 weights, a few tens of kB) is only for comparisons such as
:func:`station.model.bench_classifier`; the station runs the ONNX file alone.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from vision.belt_cue import BELT_FLOOR_LEVEL, BELT_LOG_RANGE, BELT_STRIP_INSET_MM, BELT_STRIP_MM
from vision.classify import CLASSES, CLASSIFIER_CODES, MESSAGES
from vision.tiles import TileParams
from vision.training.data import Bodies, Holdout, cut, grid_tiles, load_bodies, real_bodies
from vision.training.export import (
    INPUT,
    OUTPUTS,
    add_whitening,
    check_export,
    export_onnx,
    fit_whitening,
    ort_predict,
    quantise,
    session,
    sha256_of,
)
from vision.training.model import NetParams, TileNet, count_macs
from vision.training.thresholds import batches, validation_report
from vision.training.train import (
    TrainParams,
    body_kinds,
    train,
)

CARD_FORMAT = 1
NORMALISATION_TEXT = {
    "channel": "pixel / per-channel median of the canvas (a pixel every 2 mm) - 1",
    "level": "pixel / mean of the per-channel medians of the canvas (a pixel every 2 mm) - 1",
}
BELT_CHANNELS_TEXT = (
    f"clip(ln(max(pixel, {BELT_FLOOR_LEVEL:g}) / belt), {BELT_LOG_RANGE[0]:g}, "
    f"{BELT_LOG_RANGE[1]:g}) per channel; belt: per-channel median of the rectified image "
    f"{BELT_STRIP_MM[0]:g}-{BELT_STRIP_MM[1]:g} mm beyond the body's long sides, "
    f"{BELT_STRIP_INSET_MM:g} mm in from the short sides"
)
#: int8 is kept if its validation recall per class is at most this much lower…
INT8_MAX_RECALL_LOSS = 0.01
#: …and it flags at most this much more of the good bodies than fp32.
INT8_MAX_FA_GAIN = 0.005
#: Bodies whose tiles calibrate int8 activations / fit the anomaly whitening.
N_CALIBRATION_BODIES = 48
N_WHITENING_BODIES = 240


@dataclass(frozen=True)
class RunOptions:
    name: str
    version: str = "1.0.0"
    holdout: Holdout = field(default_factory=Holdout)
    train: TrainParams = field(default_factory=TrainParams)
    command: str = ""
    #: fp32 weights (``NAME.pt``) of a trained model to fine-tune; None: from scratch.
    init: Path | None = None
    #: Canvas normalisation (:class:`vision.tiles.TileParams`), recorded in the card.
    normalisation: str = "channel"
    #: Three more input channels relative to the belt (:mod:`vision.belt_cue`); the
    #: network (``train.net.in_channels``) must have 6 input channels then.
    belt_channels: bool = False
    #: How the loop tacks are painted over (:class:`vision.tiles.TileParams`), in the card.
    tack_fill: str = TileParams().tack_fill


def _subset(bodies: Bodies, n: int, seed: int, pred: Callable[[int], bool]) -> Bodies:
    idx = [i for i in range(len(bodies)) if pred(i)]
    rng = np.random.default_rng(seed)
    pick = rng.permutation(idx)[:n] if idx else np.array([], np.int64)
    keep = np.zeros(len(bodies), bool)
    keep[pick.astype(np.int64)] = True
    return bodies.select(keep)


def evaluate_candidate(
    path: Path, train_set: Bodies, val_set: Bodies, seed: int, threads: int
) -> tuple[Path, dict[str, Any]]:
    """Whiten on good training tiles, choose thresholds and score on validation."""
    sess = session(path, threads)
    kinds_train = body_kinds(train_set)
    clean = _subset(train_set, N_WHITENING_BODIES, seed, lambda i: kinds_train[i] == "good")
    w, o, _ = grid_tiles(clean)
    _, emb = ort_predict(sess, batches(clean, w, o, clean.grid.n_tiles))
    mean, whiten = fit_whitening(emb)
    final = path.with_name(path.stem + ".whitened.onnx")
    add_whitening(path, final, mean, whiten)
    return final, validation_report(session(final, threads), val_set)


def _holds(int8: dict[str, Any], fp32: dict[str, Any]) -> tuple[bool, str]:
    for c in ("hole", "stain"):
        a, b = int8["bodies"][c]["recall"], fp32["bodies"][c]["recall"]
        if a is not None and b is not None and a < b - INT8_MAX_RECALL_LOSS:
            return False, f"int8 {c} recall {a:.3f} < fp32 {b:.3f} − {INT8_MAX_RECALL_LOSS}"
    a, b = int8["bodies"]["good"]["false_alarm"], fp32["bodies"]["good"]["false_alarm"]
    if a is not None and b is not None and a > b + INT8_MAX_FA_GAIN:
        return False, f"int8 flags {a:.3%} of good bodies vs fp32 {b:.3%}"
    return True, "int8 holds the validation accuracy"


def _counts(bodies: Bodies) -> dict[str, int]:
    kinds = body_kinds(bodies)
    return {k: int((kinds == k).sum()) for k in sorted(set(kinds.tolist()))}


def _init_weights(path: Path | None, p: TrainParams) -> tuple[dict | None, dict | None]:
    """The state dict to fine-tune from and what the card says about it (or None, None)."""
    if path is None:
        return None, None
    saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    if NetParams.from_dict(saved["net"]) != p.net:
        raise ValueError(f"{path}: network {saved.get('net')} is not the one trained here")
    info: dict[str, Any] = {"weights": Path(path).name, "sha256": sha256_of(Path(path))}
    card = Path(path).with_suffix(".json")
    if card.is_file():
        c = json.loads(card.read_text(encoding="utf-8"))
        info["model"] = f"{c.get('name')} {c.get('version')}"
        info["model_sha256"] = c.get("sha256")
    return saved["state_dict"], info


def train_classifier(
    data_dir: Path,
    out: Path,
    options: RunOptions,
    real: list[Any] | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, str], Any] | None = None,
    pretrained: TileNet | None = None,
) -> dict[str, Any]:
    """Train, export, quantise and write ``out`` (.onnx) with its card; returns the card.

    ``pretrained`` skips the training (re-export of a network trained before with
    the same data and options, e.g. after a change of the export or the thresholds).
    """
    t_start = time.perf_counter()
    p = options.train
    if p.net.in_channels != (6 if options.belt_channels else 3):
        raise ValueError(f"network with {p.net.in_channels} input channels for this input")
    all_bodies = load_bodies(
        Path(data_dir), ("train", "val"), tack_fill=options.tack_fill
    ).normalised(options.normalisation, options.belt_channels)
    p = replace(p, net=p.net.for_tile(all_bodies.grid.params.tile_px))
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    held = all_bodies.where(options.holdout.matches) if options.holdout else np.zeros(0, bool)
    if options.holdout:
        all_bodies = all_bodies.select(~held)
    real_used, real_skipped = 0, {}
    if real:
        rb = real_bodies(all_bodies.grid, real, all_bodies.label_params)
        all_bodies = all_bodies.concat(rb)
        real_used = len(rb)
        for r in real:
            if r.canvas is None:
                real_skipped[r.reason] = real_skipped.get(r.reason, 0) + 1
    is_val = all_bodies.where(lambda m: m["split"] == "val")
    train_set, val_set = all_bodies.select(~is_val), all_bodies.select(is_val)
    log(
        f"bodies: train {len(train_set)} {_counts(train_set)}, val {len(val_set)} "
        f"{_counts(val_set)}, held out {int(held.sum())}, real {real_used}"
    )
    if not len(train_set):
        raise ValueError(f"{data_dir}: no training bodies")
    init_state, init_info = _init_weights(options.init, p)
    if pretrained is None:
        model, history = train(train_set, val_set, p, log, progress, init_state)
    else:
        model, history = pretrained, []
    t_trained = time.perf_counter()

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tile_px = all_bodies.grid.params.tile_px
    with tempfile.TemporaryDirectory(prefix="qc-train-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, fp32, tile_px)
        probe_set = val_set if len(val_set) else train_set
        w, o, _ = grid_tiles(probe_set.select(np.arange(len(probe_set)) < 1))
        diff = check_export(fp32, model, cut(probe_set, w, o))
        log(f"ONNX export matches PyTorch (max |diff| {diff:.1e})")
        calib = _subset(train_set, N_CALIBRATION_BODIES, p.seed + 1, lambda i: True)
        real_first = [i for i in range(len(train_set)) if train_set.metas[i].get("real")]
        if real_first:  # real station frames calibrate first, then rendered ones
            keep = np.zeros(len(train_set), bool)
            keep[real_first[:N_CALIBRATION_BODIES]] = True
            calib = train_set.select(keep).concat(calib)
        w, o, _ = grid_tiles(calib)
        calib_batches = list(batches(calib, w, o, all_bodies.grid.n_tiles))
        int8 = Path(tmp) / "int8.onnx"
        quantise(fp32, int8, calib_batches)
        eval_set = val_set if len(val_set) else train_set
        fp32_final, fp32_rep = evaluate_candidate(fp32, train_set, eval_set, p.seed, p.threads)
        int8_final, int8_rep = evaluate_candidate(int8, train_set, eval_set, p.seed, p.threads)
        keep_int8, why = _holds(int8_rep, fp32_rep)
        log(f"int8: {why}; keeping {'int8' if keep_int8 else 'fp32'}")
        chosen, rep = (int8_final, int8_rep) if keep_int8 else (fp32_final, fp32_rep)
        shutil.copyfile(chosen, out)
    pt = out.with_suffix(".pt")
    torch.save({"state_dict": model.state_dict(), "net": p.net.to_dict(), "tile_px": tile_px}, pt)
    grid = all_bodies.grid
    card = {
        "card_format": CARD_FORMAT,
        "name": options.name,
        "version": options.version,
        "file": out.name,
        "sha256": sha256_of(out),
        "bytes": out.stat().st_size,
        "precision": "int8" if keep_int8 else "fp32",
        "quantisation": {
            "method": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, "
            "MinMax calibration",
            "calibration": f"station tiles of {len(calib)} training bodies"
            + (f" ({len(real_first[:N_CALIBRATION_BODIES])} real)" if real_first else ""),
            "kept": keep_int8,
            "reason": why,
            "validation_fp32": {k: fp32_rep[k] for k in ("thresholds", "bodies")},
        },
        "classes": list(CLASSES),
        "codes": list(CLASSIFIER_CODES),
        "messages": MESSAGES,
        "input": {
            "name": INPUT,
            "shape": ["n", tile_px, tile_px, grid.params.channels],
            "dtype": "float32",
            "layout": "NHWC, channels B, G, R"
            + (", then B, G, R relative to the belt" if grid.params.belt_channels else ""),
        },
        "outputs": {
            OUTPUTS[0]: "class logits (good, hole, stain)",
            OUTPUTS[1]: "embedding whitened on good tiles: anomaly score = mean of squares",
        },
        "preprocessing": {
            "canvas": "measured body, axis-aligned in mask mm, stretched to the canvas: "
            "2x2 area average of the rectified body when a canvas pixel spans two "
            "rectified pixels or more (not at 0.25 mm/px), then one bilinear affine warp",
            "mm_per_px": grid.params.mm_per_px,
            "canvas_px": [grid.cols, grid.rows],
            "normalisation": grid.params.normalisation,
            "normalisation_text": NORMALISATION_TEXT[grid.params.normalisation],
            "belt_channels": grid.params.belt_channels,
            **({"belt_channels_text": BELT_CHANNELS_TEXT} if grid.params.belt_channels else {}),
        },
        "tiling": {
            "tile_px": tile_px,
            "max_stride_px": grid.params.max_stride_px,
            "tack_depth_mm": grid.params.tack_depth_mm,
            "tack_span_mm": list(grid.params.tack_span_mm),
            "tack_fill": grid.params.tack_fill,
            "nx": grid.nx,
            "ny": grid.ny,
            "stride_px": list(grid.stride_px),
            "n_tiles": grid.n_tiles,
            "body_mm": [grid.cols * grid.params.mm_per_px, grid.rows * grid.params.mm_per_px],
        },
        "thresholds": rep["thresholds"],
        "network": {
            **p.net.to_dict(),
            "parameters": int(sum(t.numel() for t in model.parameters())),
            "macs_per_tile": count_macs(p.net, tile_px),
        },
        "training": {
            "data": {
                "dir": Path(data_dir).name,
                "seed": manifest["seed"],
                "rendered": manifest["n"],
                "synth": manifest["synth"],
                "train_bodies": _counts(train_set),
                "val_bodies": _counts(val_set),
                "held_out": {**asdict(options.holdout), "bodies": int(held.sum())},
                "real_frames": real_used,
                "real_skipped": real_skipped,
            },
            "params": {k: v for k, v in asdict(p).items() if k != "net"},
            "command": options.command,
            "fine_tuned_from": init_info,
            "seconds": round(t_trained - t_start, 1),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "machine": platform.machine(),
        },
        "metrics": {
            "validation": rep,
            "history": [
                {
                    "epoch": h["epoch"],
                    "loss": h["loss"],
                    **({"bodies": h["bodies"], "tiles": h["tiles"]} if "bodies" in h else {}),
                }
                for h in history
            ],
        },
        "torch_weights": {"file": pt.name, "sha256": sha256_of(pt)},
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    log(
        f"wrote {out} ({card['bytes'] / 1024:.0f} kB, {card['precision']}), card "
        f"{out.with_suffix('.json').name}; {time.perf_counter() - t_start:.0f} s in all"
    )
    return card
