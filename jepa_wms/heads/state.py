"""State head: a world model's frame tokens (and predicted proprio) → the env's true state (the dataset's ``/state``).

Read on imagined latents, it says in env units how far the world model's rollout has drifted from what happened, step
by step. Each token is first projected to a few channels and the grid is kept (flattened): the state is mostly where
things are, which pooling over tokens would discard.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["StateHead"]

TOKEN_CHANNELS = 16


class StateHead(nn.Module):
    """Tokens ``(B, N, D)`` [+ normalised proprio ``(B, P)``] → normalised state ``(B, S)``; ``denormalize`` gives
    env units. ``state_mean``/``state_std`` are the training dataset's (buffers, so the checkpoint carries them)."""

    def __init__(
        self, num_tokens: int, embed_dim: int, state: np.ndarray, proprio_dim: int = 0, hidden: int = 256
    ) -> None:
        super().__init__()
        state = np.asarray(state, dtype=np.float32)
        self.proprio_dim = proprio_dim
        self.project = nn.Linear(embed_dim, TOKEN_CHANNELS)
        self.mlp = nn.Sequential(
            nn.Linear(num_tokens * TOKEN_CHANNELS + proprio_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, state.shape[-1]),
        )
        # A constant state dimension (e.g. a fixed goal) gets std 1, not a division by zero.
        std = state.std(0)
        self.register_buffer("state_mean", torch.from_numpy(state.mean(0)))
        self.register_buffer("state_std", torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))

    @property
    def uses_proprio(self) -> bool:
        return self.proprio_dim > 0

    def forward(self, tokens: Tensor, proprio: Tensor | None = None) -> Tensor:
        x = self.project(tokens.float()).flatten(1)
        if self.uses_proprio:
            if proprio is None:
                raise ValueError("this state head reads proprio next to the tokens, and none was given")
            x = torch.cat([x, proprio.float()], -1)
        return self.mlp(x)

    def normalize(self, state: Tensor) -> Tensor:
        return (state - self.state_mean) / self.state_std

    def denormalize(self, state: Tensor) -> Tensor:
        return state * self.state_std + self.state_mean
