"""The tile network: a patchify layer, two 3×3 convolutions, pooled two ways (PyTorch).

Sized for a Raspberry Pi: ~40 k parameters and ~0.7 M multiply-adds per 32 px
tile, about 1 ms for the ~140 tiles of a body in int8 on one core here. Choices
made for onnxruntime's int8 kernels, fast on wide matrix products and slow on thin
ones:

- the input is channel-last (N, T, T, 3), as the canvas is: no transposition in
  the graph, none in the preprocessing;
- the first layer is a 4×4 stride-4 "patchify" convolution (each 2 mm patch of
  48 values → 32 channels): a 3-channel 3×3 convolution at full resolution costs
  most of the time in int8 for little gain;
- then a 3×3 stride-2 and a 3×3 stride-1 convolution (receptive field 28 px =
  14 mm: a flaw and the weave or print around it), a 1×1 to the embedding width,
  and a mean *and* a max over the 4×4 cells: the mean alone would dilute a 2 mm
  hole (one cell) among sixteen;
- body context: the batch is one body's tiles, and the head sees each tile's
  features next to how they differ from the body's mean tile. A dark dot is a hole
  on a plain mask and nothing special on a dotted one; a 16 mm tile cannot tell
  which, its body can. Training therefore draws tiles in groups, one body each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

#: Patches across a tile in the first (patchify) layer: 32 px tiles, 4 px patches.
PATCH_CELLS = 8


@dataclass(frozen=True)
class NetParams:
    """Architecture; stored in the model card so the network can be rebuilt."""

    #: (out channels, kernel, stride) of each convolution; even kernels are unpadded.
    layers: tuple[tuple[int, int, int], ...] = ((32, 4, 4), (48, 3, 2), (48, 3, 1))
    embed: int = 48
    n_classes: int = 3
    #: The head also sees how the tile differs from the body's mean tile.
    context: bool = True
    #: Input channels: B, G, R (3), and B, G, R relative to the belt (6, see
    #: :class:`vision.tiles.TileParams`).
    in_channels: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    def for_tile(self, tile_px: int) -> NetParams:
        """The patchify layer resized so that a tile is always ``PATCH_CELLS`` patches across.

        A finer canvas (0.25 mm/px, 64 px tiles) then gets 8×8 px patches that still
        cover 2 mm: the rest of the network, and its cost, stay those of 32 px tiles;
        only the first layer sees four times the pixels (the weave, a hole's torn rim).
        """
        co, k, stride = self.layers[0]
        if k != stride or tile_px % PATCH_CELLS:
            return self
        patch = tile_px // PATCH_CELLS
        return replace(self, layers=((co, patch, patch), *self.layers[1:]))

    @classmethod
    def from_dict(cls, d: dict) -> NetParams:
        return cls(
            layers=tuple(tuple(int(v) for v in layer) for layer in d["layers"]),  # type: ignore[misc]
            embed=int(d["embed"]),
            n_classes=int(d["n_classes"]),
            context=bool(d.get("context", False)),
            in_channels=int(d.get("in_channels", 3)),
        )


def _conv(ci: int, co: int, k: int, stride: int) -> nn.Sequential:
    pad = k // 2 if k % 2 else 0
    return nn.Sequential(
        nn.Conv2d(ci, co, k, stride, pad, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)
    )


class TileNet(nn.Module):
    """(N, T, T, in_channels) → (logits (N, C), embedding (N, 2·embed, or 4·embed with context)).

    With ``context`` the embedding is the tile's own features followed by how they
    differ from its body's mean tile: the anomaly score then sees both a tile unlike
    any good cloth and a tile unlike the rest of its own mask (a foreign object on a
    print the model knows well).
    """

    def __init__(self, p: NetParams | None = None) -> None:
        super().__init__()
        p = p or NetParams()
        self.params = p
        layers, ci = [], p.in_channels
        for co, k, stride in p.layers:
            layers.append(_conv(ci, co, k, stride))
            ci = co
        layers.append(_conv(ci, p.embed, 1, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear((4 if p.context else 2) * p.embed, p.n_classes)

    def forward(self, x: torch.Tensor, bodies: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` holds ``bodies`` bodies' tiles, body after body, as many per body.

        At the station (and in the exported graph) the batch is one body's tiles.
        """
        f = self.features(x.permute(0, 3, 1, 2))
        pooled = [nn.functional.adaptive_avg_pool2d(f, 1), nn.functional.adaptive_max_pool2d(f, 1)]
        emb = torch.flatten(torch.cat(pooled, dim=1), 1)
        if not self.params.context:
            return self.head(emb), emb
        grouped = emb.reshape(bodies, -1, emb.shape[1])
        diff = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(emb.shape)
        both = torch.cat([emb, diff], dim=1)
        return self.head(both), both


def count_macs(p: NetParams, tile_px: int) -> int:
    """Multiply-adds of one tile (convolutions and the head)."""
    macs, ci, size = 0, p.in_channels, tile_px
    for co, k, stride in p.layers:
        pad = k // 2 if k % 2 else 0
        size = (size + 2 * pad - k) // stride + 1
        macs += size * size * co * ci * k * k
        ci = co
    macs += size * size * p.embed * ci
    return macs + (4 if p.context else 2) * p.embed * p.n_classes
