"""Transformer feed-forward block with the official parameter names ``fc1`` / ``fc2``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """``(..., dim) -> (..., dim)`` through ``fc1 -> GELU -> fc2``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        if dim < 1 or hidden_dim < 1:
            raise ValueError(f"Mlp: dim and hidden_dim must be >= 1, got dim={dim}, hidden_dim={hidden_dim}")
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
