"""Multi-head self-attention with optional 3-D RoPE and a key/value cache for incremental decoding.

Contract: ``Attention(dim, num_heads)(x (B, N, D), pos (N, 3) | (B, N, 3) | None, mask (N, Nk) | None,
cache) -> (B, N, D)``. Parameter names ``qkv`` / ``proj`` follow the official ViT checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.layers.rope import RotaryEmbedding3D

__all__ = ["Attention", "KVCache"]


class KVCache:
    """Keys and values of one attention layer for all tokens seen so far: ``(B, heads, L, hd)`` each.

    ``append`` replaces the stored tensors by concatenations instead of writing into them, so a cache derived
    with :meth:`copy`, :meth:`expand` or :meth:`repeat_interleave` never changes the cache it came from: a
    planner can encode the context once and reuse it for every CEM iteration. Concatenation keeps autograd
    intact, so a rollout through the cache can be trained with backpropagation through time.
    """

    def __init__(
        self, batch_size: int, keys: torch.Tensor | None = None, values: torch.Tensor | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"KVCache: batch_size must be >= 1, got {batch_size}")
        if (keys is None) != (values is None):
            raise ValueError("KVCache: keys and values must be given together")
        if keys is not None and (
            keys.shape != values.shape or keys.dim() != 4 or keys.shape[0] != batch_size
        ):
            raise ValueError(
                f"KVCache: keys/values must both be (batch={batch_size}, heads, L, hd), got "
                f"{tuple(keys.shape)} and {tuple(values.shape)}"
            )
        self.batch_size = batch_size
        self.keys = keys
        self.values = values

    def __repr__(self) -> str:
        return f"KVCache(batch_size={self.batch_size}, num_tokens={self.num_tokens})"

    @property
    def num_tokens(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``(B, heads, n, hd)`` keys/values after the cached ones; return all keys and values."""
        if keys.shape[0] != self.batch_size:
            raise ValueError(
                f"KVCache.append: cache holds batch {self.batch_size}, got keys {tuple(keys.shape)}"
            )
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            # Follow the incoming dtype so a cache filled in fp32 can be continued under bf16 autocast.
            self.keys = torch.cat((self.keys.to(keys.dtype), keys), dim=2)
            self.values = torch.cat((self.values.to(values.dtype), values), dim=2)
        return self.keys, self.values

    def copy(self) -> KVCache:
        """A new cache sharing the current tensors; appending to either leaves the other unchanged."""
        return KVCache(self.batch_size, self.keys, self.values)

    def expand(self, batch_size: int) -> KVCache:
        """Broadcast a batch-1 cache to ``batch_size`` rows without copying (like ``Tensor.expand``)."""
        if self.batch_size == batch_size:
            return self.copy()
        if self.batch_size != 1:
            raise ValueError(
                f"KVCache.expand: only a batch-1 cache can be expanded, this one has batch {self.batch_size} "
                f"(use repeat_interleave to repeat every row)"
            )
        if self.keys is None:
            return KVCache(batch_size)
        shape = (batch_size, *self.keys.shape[1:])
        return KVCache(batch_size, self.keys.expand(shape), self.values.expand(shape))

    def repeat_interleave(self, repeats: int) -> KVCache:
        """Repeat every batch row ``repeats`` times, row b becoming rows ``[b·repeats, (b+1)·repeats)``."""
        if repeats < 1:
            raise ValueError(f"KVCache.repeat_interleave: repeats must be >= 1, got {repeats}")
        if self.keys is None:
            return KVCache(self.batch_size * repeats)
        return KVCache(
            self.batch_size * repeats,
            self.keys.repeat_interleave(repeats, dim=0),
            self.values.repeat_interleave(repeats, dim=0),
        )


class Attention(nn.Module):
    """Multi-head attention on ``F.scaled_dot_product_attention``; optional RoPE on queries and keys."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, rope: RotaryEmbedding3D | None = None
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(f"Attention: dim {dim} must be a positive multiple of num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        if rope is not None and rope.head_dim != self.head_dim:
            raise ValueError(f"Attention: rope.head_dim {rope.head_dim} != dim/num_heads = {self.head_dim}")
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``x (B, N, D)`` -> ``(B, N, D)``.

        ``mask`` is boolean ``(N, Nk)`` (True = may attend) where ``Nk`` counts cached plus new keys; None
        means every query sees every key. With a ``cache`` this call's rotated keys/values are appended to it
        first.
        """
        batch, num_tokens, dim = x.shape
        if dim != self.dim:
            raise ValueError(f"Attention: expected width {self.dim}, got input {tuple(x.shape)}")
        # (B, N, 3, heads, hd) -> 3 x (B, heads, N, hd)
        q, k, v = self.qkv(x).view(batch, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rope is not None:
            if pos is None:
                raise ValueError("Attention: this layer uses RoPE, so token positions `pos` are required")
            q, k = self.rope(q, pos), self.rope(k, pos)
        if cache is not None:
            k, v = cache.append(k, v)
        if mask is not None and mask.shape != (num_tokens, k.shape[2]):
            raise ValueError(
                f"Attention: mask must be (queries={num_tokens}, keys={k.shape[2]}), got {tuple(mask.shape)}"
            )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(batch, num_tokens, dim))
