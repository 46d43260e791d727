"""Multi-head self-attention with optional 3-D RoPE and a key/value cache for incremental decoding.

Contract: ``Attention(dim, num_heads)(x, pos, mask, cache) -> (B, N, D)`` with ``x (B, N, D)``,
``pos (N, 3) | None``, ``mask (N, Nk) | None``. Parameter names ``qkv`` / ``proj`` follow the official ViT
checkpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.layers.rope import RotaryEmbedding3D

__all__ = ["Attention", "KVCache", "head_padding", "padded_head_dim", "set_head_padding"]


def padded_head_dim(head_dim: int, multiple: int) -> int:
    """``head_dim`` rounded up to a multiple of ``multiple`` (0 = no padding)."""
    if multiple < 0:
        raise ValueError(f"padded_head_dim: multiple must be >= 0 (0 = off), got {multiple}")
    return head_dim if multiple == 0 else -(-head_dim // multiple) * multiple


class KVCache:
    """Keys and values of one attention layer for all tokens seen so far: ``(B, heads, L, hd)`` each.

    By default ``append`` replaces the stored tensors by concatenations instead of writing into them, so a
    cache derived with :meth:`copy`, :meth:`expand` or :meth:`repeat_interleave` never changes the cache it
    came from (a planner encodes the context once and reuses it for every CEM iteration), and autograd stays
    intact for backpropagation through time.

    Concatenating re-copies the whole cache at every step, which costs as much as the attention itself during
    long candidate rollouts. :meth:`reserve` therefore lets a cache that nobody else shares grow inside a
    private buffer, written in place; it only takes effect while autograd is off (in-place writes would
    invalidate tensors saved for backward), and derived caches only ever see the filled prefix.
    """

    def __init__(self, batch_size: int, keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"KVCache: batch_size must be >= 1, got {batch_size}")
        if (keys is None) != (values is None):
            raise ValueError("KVCache: keys and values must be given together")
        if keys is not None and (keys.shape != values.shape or keys.dim() != 4 or keys.shape[0] != batch_size):
            raise ValueError(
                f"KVCache: keys/values must both be (batch={batch_size}, heads, L, hd), got "
                f"{tuple(keys.shape)} and {tuple(values.shape)}"
            )
        self.batch_size = batch_size
        self.keys = keys
        self.values = values
        self._reserve = 0  # tokens of room to allocate at the next append (see `reserve`)
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # private, (B, heads, capacity, hd)

    def __repr__(self) -> str:
        return f"KVCache(batch_size={self.batch_size}, num_tokens={self.num_tokens})"

    @property
    def num_tokens(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``(B, heads, n, hd)`` keys/values after the cached ones; return all keys and values."""
        if keys.shape[0] != self.batch_size:
            raise ValueError(f"KVCache.append: cache holds batch {self.batch_size}, got keys {tuple(keys.shape)}")
        if torch.is_grad_enabled():
            self._reserve, self._buffers = 0, None
        elif self._reserve or self._buffers is not None:
            return self._append_in_place(keys, values)
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            # Follow the incoming dtype so a cache filled in fp32 can be continued under bf16 autocast.
            self.keys = torch.cat((self.keys.to(keys.dtype), keys), dim=2)
            self.values = torch.cat((self.values.to(values.dtype), values), dim=2)
        return self.keys, self.values

    def reserve(self, num_tokens: int) -> None:
        """Make room for ``num_tokens`` more tokens so the next appends write in place (autograd off only).

        Call it only on a cache no other cache derives from while it grows, e.g. a private :meth:`copy`.
        """
        if num_tokens < 0:
            raise ValueError(f"KVCache.reserve: num_tokens must be >= 0, got {num_tokens}")
        self._reserve = num_tokens

    def _append_in_place(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, new = self.num_tokens, keys.shape[2]
        buffers = self._buffers
        if buffers is None or buffers[0].shape[2] < start + new or buffers[0].dtype != keys.dtype:
            capacity = start + max(new, self._reserve)
            shape = (self.batch_size, keys.shape[1], capacity, keys.shape[3])
            buffers = (keys.new_empty(shape), values.new_empty(shape))
            if start:
                buffers[0][:, :, :start] = self.keys
                buffers[1][:, :, :start] = self.values
            self._buffers, self._reserve = buffers, 0
        buffers[0][:, :, start : start + new] = keys
        buffers[1][:, :, start : start + new] = values
        self.keys, self.values = buffers[0][:, :, : start + new], buffers[1][:, :, : start + new]
        return self.keys, self.values

    def keep_last(self, num_tokens: int) -> None:
        """Evict all but the last ``num_tokens`` tokens (a sliding key/value window).

        The kept keys were rotated at their own absolute positions when appended, so eviction never shifts
        them. The kept tensors are views of the current ones; the next append concatenates into fresh
        tensors, so nothing larger than the window stays alive (and the in-place buffer is dropped).
        """
        if num_tokens < 0:
            raise ValueError(f"KVCache.keep_last: num_tokens must be >= 0, got {num_tokens}")
        self._reserve, self._buffers = 0, None
        if self.keys is None or self.num_tokens <= num_tokens:
            return
        if num_tokens == 0:
            self.keys = self.values = None
        else:
            self.keys, self.values = self.keys[:, :, -num_tokens:], self.values[:, :, -num_tokens:]

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

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, rope: RotaryEmbedding3D | None = None) -> None:
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
        # Inference-time head padding (see `set_head_padding`); a plain attribute, never in the state dict.
        self.pad_heads_to = 0

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
        # (B, N, 3, heads, hd) -> (3, B, heads, N, hd)
        qkv = self.qkv(x).view(batch, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rope is None:
            q, k, v = qkv.unbind(0)
        else:
            if pos is None:
                raise ValueError("Attention: this layer uses RoPE, so token positions `pos` are required")
            # Rotating q and k in one call reads them once and builds the rotation matrices once.
            q, k = self.rope(qkv[:2], pos).unbind(0)
            v = qkv[2]
        pad = padded_head_dim(self.head_dim, self.pad_heads_to) - self.head_dim
        if pad:
            # Zero channels are exact: they add 0 to every q·k, and the output's extra channels (weighted sums
            # of zero values) are sliced off below. Keys/values are padded before the cache so each step does
            # not re-pad the whole cache.
            q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
        if cache is not None and cache.keys is not None and cache.keys.shape[3] != k.shape[3]:
            raise ValueError(
                f"Attention: the cache holds head size {cache.keys.shape[3]}, this layer now makes "
                f"{k.shape[3]}: change head padding only between rollouts, on a fresh cache"
            )
        # The softmax scale stays 1/sqrt(original head size): SDPA's default would read the padded size.
        scale = self.head_dim**-0.5 if pad else None
        if cache is not None:
            k, v = cache.append(k, v)
        if mask is not None and mask.shape != (num_tokens, k.shape[2]):
            raise ValueError(
                f"Attention: mask must be (queries={num_tokens}, keys={k.shape[2]}), got {tuple(mask.shape)}"
            )
        if q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_grad_enabled():
            # The CPU bf16 SDPA backward is ~6x slower than fp32 (torch 2.13: 750 vs 127 ms in a Wall-size
            # training step) while the forward costs the same, so training on CPU attends in fp32.
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=scale)
            out = out.to(torch.bfloat16)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        if pad:
            out = out[..., : self.head_dim]
        return self.proj(out.transpose(1, 2).reshape(batch, num_tokens, dim))


def set_head_padding(module: nn.Module, multiple: int) -> int:
    """Pad the attention heads of every :class:`Attention` in ``module`` to a multiple of ``multiple`` (0 = off).

    An exact transformation (zero channels on q, k and v; the softmax keeps the original head size's scale), for
    inference: head sizes such as 25 (width 400, 16 heads) are unfriendly to the fused SDPA kernels (flash and
    memory-efficient want multiples of 8), which then fall back to a kernel that materialises the score matrix.
    Costs (padded − original) / original more attention FLOPs and key/value cache memory. Set it between
    rollouts: a cache filled with one padding cannot be continued with another. Returns the layers changed.
    """
    padded_head_dim(1, multiple)  # validates `multiple`
    layers = [m for m in module.modules() if isinstance(m, Attention)]
    for layer in layers:
        layer.pad_heads_to = multiple
    return len(layers)


@contextlib.contextmanager
def head_padding(module: nn.Module, multiple: int) -> Iterator[nn.Module]:
    """:func:`set_head_padding` for the duration of a ``with`` block; the previous settings come back after."""
    previous = [(m, m.pad_heads_to) for m in module.modules() if isinstance(m, Attention)]
    set_head_padding(module, multiple)
    try:
        yield module
    finally:
        for layer, value in previous:
            layer.pad_heads_to = value
