"""From a trained network to the station's ONNX file (torch, onnx, onnxruntime).

1. :func:`export_onnx` — ``torch.onnx.export`` with the TorchScript-based exporter
   (``dynamo=False``: it needs only ``torch`` and ``onnx``, no ``onnxscript``, and
   works offline); batch-norm is folded into the convolutions.
2. :func:`check_export` — onnxruntime's output must equal PyTorch's within
   tolerance on real tiles, or the export is refused.
3. :func:`quantise` — static int8 (QDQ, per-channel weights) with
   ``onnxruntime.quantization``, calibrated on the data set's own station tiles.
4. :func:`add_whitening` — appends the anomaly whitening (``(e − mean) · W``, in
   float) to the graph's embedding output, fitted on good tiles of the *final*
   model, so the station computes the anomaly score from the file alone.

Whether int8 is kept is decided by the caller on validation figures.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper

from vision.training.model import TileNet

INPUT = "tiles"
OUTPUTS = ("logits", "embedding")
OPSET = 17
#: Largest |ORT − torch| accepted on logits and embeddings of the fp32 export.
EXPORT_ATOL = 1e-3
#: Shrinkage of the good-tile covariance towards a multiple of the identity: some
#: embedding channels are (almost) constant on good cloth.
WHITEN_SHRINK = 0.05


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (what the model card records)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _OneBody(torch.nn.Module):
    """The network as the station runs it: the batch is one body's tiles."""

    def __init__(self, net: TileNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x)


def export_onnx(model: TileNet, path: Path, tile_px: int) -> None:
    """fp32 ONNX with a dynamic batch axis (one body's tiles)."""
    model.eval()
    x = torch.zeros(2, tile_px, tile_px, model.params.in_channels)
    with warnings.catch_warnings():  # the legacy exporter is deprecated, and chosen: see above
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            _OneBody(model),
            (x,),
            str(path),
            dynamo=False,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_axes={INPUT: {0: "n"}, OUTPUTS[0]: {0: "n"}, OUTPUTS[1]: {0: "n"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    onnx.checker.check_model(onnx.load(str(path)))


def session(path: Path | bytes, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(int(threads), 1)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model = str(path) if isinstance(path, Path) else path
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_predict(
    sess: ort.InferenceSession, tiles: Iterator[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Run batches of tiles; concatenated (logits, embeddings)."""
    lo, em = [], []
    for x in tiles:
        a, b = sess.run(list(OUTPUTS), {INPUT: np.ascontiguousarray(x, np.float32)})
        lo.append(a)
        em.append(b)
    return np.concatenate(lo), np.concatenate(em)


def check_export(path: Path, model: TileNet, x: np.ndarray, atol: float = EXPORT_ATOL) -> float:
    """Largest difference between onnxruntime and PyTorch on ``x``; raises if over ``atol``."""
    model.eval()
    with torch.no_grad():
        t_lo, t_em = (v.numpy() for v in model(torch.from_numpy(x)))
    o_lo, o_em = ort_predict(session(path), iter([x]))
    diff = float(max(np.abs(t_lo - o_lo).max(), np.abs(t_em - o_em).max()))
    if diff > atol:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff:.2e} (> {atol:g})")
    return diff


class _Reader:
    """onnxruntime calibration reader over batches of station tiles."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {INPUT: np.ascontiguousarray(x, np.float32)}

    def rewind(self) -> None:  # pragma: no cover - only some calibrators call it
        pass


def quantise(fp32: Path, out: Path, calibration: list[np.ndarray]) -> None:
    """Static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Reader, CalibrationDataReader):
        pass

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(pre),
            str(out),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        pre.unlink(missing_ok=True)


def fit_whitening(emb: np.ndarray, shrink: float = WHITEN_SHRINK) -> tuple[np.ndarray, np.ndarray]:
    """Mean and symmetric whitening matrix of good-tile embeddings (shrunk covariance)."""
    e = np.asarray(emb, np.float64)
    mean = e.mean(0)
    cov = np.cov(e - mean, rowvar=False)
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * (np.trace(cov) / d + 1e-6) * np.eye(d)
    vals, vecs = np.linalg.eigh(cov)
    w = vecs @ np.diag(1.0 / np.sqrt(np.maximum(vals, 1e-9))) @ vecs.T
    return mean.astype(np.float32), w.astype(np.float32)


def add_whitening(src: Path, dst: Path, mean: np.ndarray, whiten: np.ndarray) -> None:
    """Rewrite the graph so its ``embedding`` output is ``(raw − mean) · whiten``."""
    m = onnx.load(str(src))
    g = m.graph
    raw = "embedding_raw"
    for node in g.node:
        node.output[:] = [raw if o == OUTPUTS[1] else o for o in node.output]
        node.input[:] = [raw if i == OUTPUTS[1] else i for i in node.input]
    g.initializer.extend(
        [
            numpy_helper.from_array(mean.reshape(1, -1).astype(np.float32), "anomaly_mean"),
            numpy_helper.from_array(whiten.astype(np.float32), "anomaly_whiten"),
        ]
    )
    g.node.extend(
        [
            helper.make_node("Sub", [raw, "anomaly_mean"], ["embedding_centred"], "anomaly_sub"),
            helper.make_node(
                "MatMul", ["embedding_centred", "anomaly_whiten"], [OUTPUTS[1]], "anomaly_whiten"
            ),
        ]
    )
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
