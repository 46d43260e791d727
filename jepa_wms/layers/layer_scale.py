"""LayerScale with the official parameter name ``gamma`` (DINOv2 and DINOv3 blocks store it as ``ls{1,2}.gamma``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerScale"]


class LayerScale(nn.Module):
    """Per-channel residual-branch gain: ``x * gamma``, ``gamma`` (D,) starting at ``init_value``."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
