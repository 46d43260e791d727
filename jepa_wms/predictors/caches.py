"""The two caches of incremental prediction (see ``predictors.base`` for when each is used).

- :class:`PredictorCache`: per-block keys/values of every frame seen (or of the last ``window`` frames);
  exact incremental decoding.
- :class:`WindowCache`: the inputs of the last frames, re-run as a window at every step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from jepa_wms.layers import KVCache

__all__ = ["Cache", "PredictorCache", "WindowCache"]


class PredictorCache:
    """Per-block key/value caches of the frames processed so far (``num_frames`` of them).

    ``window = W >= 1`` keeps only the keys/values of the last ``W - 1`` frames between calls, so a new frame
    attends to W frames (itself included) and the cache never holds more than W frames' worth: sliding-window
    attention. ``num_frames`` still counts every frame seen, since it is the absolute frame index (the RoPE
    time position) of the next frame; evicting old frames never shifts the positions of the kept ones.
    ``window = 0`` keeps everything.

    Derived caches (:meth:`copy`, :meth:`expand`, :meth:`repeat_interleave`) never write into the one they
    came from, so a planner can encode a context once and roll out many candidate batches from it.
    """

    def __init__(
        self, layers: list[KVCache], num_frames: int = 0, window: int = 0, num_kept: int | None = None
    ) -> None:
        if not layers:
            raise ValueError("PredictorCache: needs one KVCache per block, got none")
        sizes = {c.batch_size for c in layers}
        if len(sizes) != 1:
            raise ValueError(f"PredictorCache: block caches disagree on batch size: {sorted(sizes)}")
        if window < 0:
            raise ValueError(f"PredictorCache: window must be >= 0 (0 = keep every frame), got {window}")
        self.layers = layers
        self.num_frames = num_frames
        self.window = window
        # Frames whose keys/values are stored: the last `num_kept` of the `num_frames` seen.
        self.num_kept = num_frames if num_kept is None else num_kept

    def __repr__(self) -> str:
        depth = len(self.layers)
        return (
            f"PredictorCache(batch_size={self.batch_size}, num_frames={self.num_frames}, depth={depth}, "
            f"window={self.window}, kept={self.num_kept})"
        )

    @property
    def batch_size(self) -> int:
        return self.layers[0].batch_size

    def _derive(self, layers: list[KVCache]) -> PredictorCache:
        return PredictorCache(layers, self.num_frames, self.window, self.num_kept)

    def copy(self) -> PredictorCache:
        return self._derive([c.copy() for c in self.layers])

    def reserve(self, num_tokens: int) -> None:
        """Room for ``num_tokens`` more tokens per block, filled in place while autograd is off.

        A windowed cache ignores it: it evicts after every call, and a growing buffer is what it avoids.
        """
        if self.window:
            return
        for layer in self.layers:
            layer.reserve(num_tokens)

    def advance(self, frames: int) -> None:
        """Account for ``frames`` new frames whose keys/values the blocks just appended; evict beyond the window."""
        self.num_frames += frames
        self.num_kept += frames
        if not self.window or self.num_kept < self.window:
            return
        tokens_per_frame = self.layers[0].num_tokens // self.num_kept
        self.num_kept = self.window - 1
        for layer in self.layers:
            layer.keep_last(self.num_kept * tokens_per_frame)

    def expand(self, batch_size: int) -> PredictorCache:
        """Broadcast a batch-1 cache to ``batch_size`` rows without copying (one context, S candidates)."""
        return self._derive([c.expand(batch_size) for c in self.layers])

    def repeat_interleave(self, repeats: int) -> PredictorCache:
        """Row b becomes rows ``[b·repeats, (b+1)·repeats)`` (B contexts, S candidates each: B·S rows)."""
        return self._derive([c.repeat_interleave(repeats) for c in self.layers])


class WindowCache:
    """Inputs (latents, actions, proprio embeddings) of the last ``window - 1`` frames, for sliding-window steps.

    ``num_frames`` counts every frame seen; only the most recent ones are kept because the next step's window
    is those plus the new frame. Tensors are replaced, never written into, so derived caches stay independent
    and autograd reaches the stored inputs (backpropagation through time).
    """

    def __init__(
        self,
        batch_size: int,
        window: int,
        frames: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
        num_frames: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"WindowCache: batch_size must be >= 1, got {batch_size}")
        if window < 1:
            raise ValueError(f"WindowCache: window must be >= 1 frame, got {window}")
        self.batch_size = batch_size
        self.window = window
        self.frames = frames  # (z (B, k, N, D), actions (B, k, A), proprio (B, k, [N,] E) | None), k < window
        self.num_frames = num_frames

    def __repr__(self) -> str:
        return (
            f"WindowCache(batch_size={self.batch_size}, window={self.window}, num_frames={self.num_frames}, "
            f"kept={self.num_kept})"
        )

    @property
    def num_kept(self) -> int:
        return 0 if self.frames is None else self.frames[0].shape[1]

    def joined(
        self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The kept frames followed by the given new ones (the cache itself is unchanged)."""
        if self.frames is None:
            return z, actions, proprio
        kz, ka, kp = self.frames
        if (kp is None) != (proprio is None) or (kp is not None and kp.shape[2:] != proprio.shape[2:]):
            kept, new = (None if t is None else tuple(t.shape) for t in (kp, proprio))
            raise ValueError(
                f"WindowCache: new proprio {new} does not continue the kept frames' proprio {kept} (with and "
                "without proprio, or per frame (B, T, E) and per patch (B, T, N, E), cannot share one cache)"
            )
        joined_p = None if proprio is None else torch.cat((kp.to(proprio.dtype), proprio), dim=1)
        return torch.cat((kz.to(z.dtype), z), dim=1), torch.cat((ka.to(actions.dtype), actions), dim=1), joined_p

    def append(self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None) -> None:
        """Record T new frames and keep only the last ``window - 1``."""
        if z.shape[0] != self.batch_size:
            raise ValueError(f"WindowCache.append: cache holds batch {self.batch_size}, got latents {tuple(z.shape)}")
        jz, ja, jp = self.joined(z, actions, proprio)
        keep = self.window - 1
        start = max(jz.shape[1] - keep, 0)
        self.frames = None if keep == 0 else (jz[:, start:], ja[:, start:], None if jp is None else jp[:, start:])
        self.num_frames += z.shape[1]

    def reserve(self, num_tokens: int) -> None:
        """No-op: the window is rebuilt at every step anyway (kept for the :class:`PredictorCache` interface)."""

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> WindowCache:
        frames = None if self.frames is None else tuple(None if t is None else fn(t) for t in self.frames)
        batch = self.batch_size if frames is None else frames[0].shape[0]
        return WindowCache(batch, self.window, frames, self.num_frames)

    def copy(self) -> WindowCache:
        return WindowCache(self.batch_size, self.window, self.frames, self.num_frames)

    def expand(self, batch_size: int) -> WindowCache:
        """Broadcast a batch-1 cache to ``batch_size`` rows without copying."""
        if self.batch_size == batch_size:
            return self.copy()
        if self.batch_size != 1:
            raise ValueError(
                f"WindowCache.expand: only a batch-1 cache can be expanded, this one has batch {self.batch_size} "
                f"(use repeat_interleave to repeat every row)"
            )
        if self.frames is None:
            return WindowCache(batch_size, self.window, None, self.num_frames)
        return self._map(lambda t: t.expand(batch_size, *t.shape[1:]))

    def repeat_interleave(self, repeats: int) -> WindowCache:
        """Row b becomes rows ``[b·repeats, (b+1)·repeats)``."""
        if repeats < 1:
            raise ValueError(f"WindowCache.repeat_interleave: repeats must be >= 1, got {repeats}")
        if self.frames is None:
            return WindowCache(self.batch_size * repeats, self.window, None, self.num_frames)
        return self._map(lambda t: t.repeat_interleave(repeats, dim=0))


Cache = PredictorCache | WindowCache
