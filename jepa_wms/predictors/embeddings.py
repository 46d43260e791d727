"""Proprioception embedding and its inverse.

The predictor works on proprio *embeddings* (width E). Our models also decode the predicted embedding back to
the normalised proprio vector, so the proprio loss and the planning cost can be measured in a space the
trainable encoder cannot shrink to a point (a loss on embeddings alone is minimised by collapsing them).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProprioDecoder", "ProprioEncoder"]


class _PerStepLinear(nn.Module):
    """One Linear ``proj`` applied to every time step: ``(..., in_dim) -> (..., out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ValueError(f"{type(self).__name__}: dims must be >= 1, got in={in_dim}, out={out_dim}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"{type(self).__name__}: expected last dim {self.in_dim}, got {tuple(x.shape)}")
        return self.proj(x)


class ProprioEncoder(_PerStepLinear):
    """Normalised proprio ``(..., P)`` -> embedding ``(..., E)``."""

    def __init__(self, proprio_dim: int, emb_dim: int) -> None:
        super().__init__(proprio_dim, emb_dim)


class ProprioDecoder(_PerStepLinear):
    """Proprio embedding ``(..., E)`` -> normalised proprio ``(..., P)``."""

    def __init__(self, emb_dim: int, proprio_dim: int) -> None:
        super().__init__(emb_dim, proprio_dim)
