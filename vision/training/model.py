"""The tile network: a patchify layer, two 3×3 convolutions, pooled two ways (PyTorch).

Sized for a Raspberry Pi: ~20 k parameters and ~0.4 M multiply-adds per 32 px
tile, so the ~140 tiles of a body cost well under a few ms in int8. Choices made
for onnxruntime's int8 kernels, which are fast on wide matrix products and slow on
thin ones:

- the input is channel-last (N, T, T, 3), as the canvas is: no transposition in
  the graph, none in the preprocessing;
- the first layer is a 4×4 stride-4 "patchify" convolution (each 2 mm patch of
  48 values → 24 channels): a 3-channel 3×3 convolution at full resolution costs
  most of the time in int8 for little gain;
- then a 3×3 stride-2 and a 3×3 stride-1 convolution (receptive field 28 px =
  14 mm: a flaw and the weave or print around it), a 1×1 to the embedding width,
  and a mean *and* a max over the 4×4 cells: the mean alone would dilute a 2 mm
  hole (one cell) among sixteen. Their concatenation is the embedding the anomaly
  score is computed on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetParams:
    """Architecture; stored in the model card so the network can be rebuilt."""

    #: (out channels, kernel, stride) of each convolution; even kernels are unpadded.
    layers: tuple[tuple[int, int, int], ...] = ((24, 4, 4), (32, 3, 2), (32, 3, 1))
    embed: int = 32
    n_classes: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetParams:
        return cls(
            layers=tuple(tuple(int(v) for v in layer) for layer in d["layers"]),  # type: ignore[misc]
            embed=int(d["embed"]),
            n_classes=int(d["n_classes"]),
        )


def _conv(ci: int, co: int, k: int, stride: int) -> nn.Sequential:
    pad = k // 2 if k % 2 else 0
    return nn.Sequential(
        nn.Conv2d(ci, co, k, stride, pad, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)
    )


class TileNet(nn.Module):
    """(N, T, T, 3) → (logits (N, C), embedding (N, 2·embed))."""

    def __init__(self, p: NetParams | None = None) -> None:
        super().__init__()
        p = p or NetParams()
        self.params = p
        layers, ci = [], 3
        for co, k, stride in p.layers:
            layers.append(_conv(ci, co, k, stride))
            ci = co
        layers.append(_conv(ci, p.embed, 1, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * p.embed, p.n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x.permute(0, 3, 1, 2))
        pooled = [nn.functional.adaptive_avg_pool2d(f, 1), nn.functional.adaptive_max_pool2d(f, 1)]
        emb = torch.flatten(torch.cat(pooled, dim=1), 1)
        return self.head(emb), emb


def count_macs(p: NetParams, tile_px: int) -> int:
    """Multiply-adds of one tile (convolutions and the head)."""
    macs, ci, size = 0, 3, tile_px
    for co, k, stride in p.layers:
        pad = k // 2 if k % 2 else 0
        size = (size + 2 * pad - k) // stride + 1
        macs += size * size * co * ci * k * k
        ci = co
    macs += size * size * p.embed * ci
    return macs + 2 * p.embed * p.n_classes
