"""Image patchify stem with the official parameter name ``proj`` (DINOv2 and DINOv3 files share it)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchEmbed"]


class PatchEmbed(nn.Module):
    """``(B, 3, H, W) -> (B, (H/p)·(W/p), D)`` with one strided convolution named ``proj``; patches row-major."""

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)
