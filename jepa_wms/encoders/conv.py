"""Small convolutional encoder trained end to end (the offline default; cheap enough for a 2-core CPU)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jepa_wms.encoders.base import Encoder

__all__ = ["ConvEncoder"]


def num_groups(channels: int) -> int:
    """GroupNorm groups for a conv stage: the largest of 8, 4, 2, 1 that divides ``channels``."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def conv_block(in_ch: int, out_ch: int, stride: int) -> list[nn.Module]:
    """3×3 conv (padding 1) + GroupNorm + GELU, as a flat list so stage parameters keep their Sequential names."""
    return [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), nn.GroupNorm(num_groups(out_ch), out_ch), nn.GELU()]


class ConvEncoder(Encoder):
    """``(B, 3, img, img) -> (B, grid², embed_dim)``: stride-2 3×3 conv + GroupNorm + GELU per entry of
    ``channels`` (each halves the side), then a 1×1 conv to ``embed_dim``.

    ``img_size`` must equal ``grid_size · 2 ** len(channels)`` (32 = 4 · 2³ by default). A 3×3 kernel at
    stride 2 still covers every input pixel, so a one-pixel dot cannot fall between taps. With ``stem_patch``
    = p > 0 the first stage is a p×p convolution at stride p instead (a patchify stem): it reads full-size
    frames without a resize and is the cheapest way down from 64 px (``img_size = grid · p · 2**(len−1)``).
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: Sequence[int] = (32, 64, 128),
        embed_dim: int = 64,
        grid_size: int = 4,
        stem_patch: int = 0,
        trainable: bool = True,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__(embed_dim, grid_size, img_size, trainable=trainable, mean=mean, std=std)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"ConvEncoder: channels must be a non-empty list of positive ints, got {channels}")
        first = stem_patch if stem_patch > 0 else 2
        expected = grid_size * first * 2 ** (len(channels) - 1)
        if img_size != expected:
            raise ValueError(
                f"ConvEncoder: img_size {img_size} must equal grid_size {grid_size} × {first} (first stage) × "
                f"2**{len(channels) - 1} (later stages) = {expected}"
            )
        self.channels = channels
        stages: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(channels):
            if i == 0 and stem_patch > 0:
                conv = nn.Conv2d(in_ch, out_ch, kernel_size=stem_patch, stride=stem_patch)
                stages += [conv, nn.GroupNorm(num_groups(out_ch), out_ch), nn.GELU()]
            else:
                stages += conv_block(in_ch, out_ch, stride=2)
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(in_ch, embed_dim, kernel_size=1)
        self.set_trainable(trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f"ConvEncoder: expected (B, 3, {self.img_size}, {self.img_size}) images, got {tuple(x.shape)}"
            )
        # (B, D, h, w) -> (B, h·w, D), row-major like ViT patch tokens.
        return self.head(self.stages(x)).flatten(2).transpose(1, 2)
