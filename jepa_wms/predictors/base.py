"""What every latent predictor shares: the frame-causal contract, input checks, caches and autoregressive rollouts.

Contract (what ``WorldModel`` and the planners rely on)::

    forward(z (B, T, N, D), actions (B, T, A), proprio_emb (B, T, E) | None) -> (z_pred (B, T, N, D), p_pred | None)

Output t predicts frame t+1 from frames <= t only. ``p_pred (B, T, E)`` is None when the predictor has no proprio
input or does not predict it (:attr:`LatentPredictor.predicts_proprio`).

Predictors that put proprio on the channels of every patch token (:attr:`LatentPredictor.proprio_per_patch`:
AdaLN, DINO-WM) also take it per patch, ``(B, T, N, E)``, and then return ``p_pred`` per patch too: each patch's
proprio channels are predicted separately, and the original fed those per-patch values back in rollouts. Given
``(B, T, E)`` (the same embedding on every patch) they return the patch mean ``(B, T, E)``.

Incremental prediction keeps one of two caches, chosen by ``context_window``:
- ``0``: :class:`PredictorCache`, the keys/values of every frame seen so far. Each step costs one frame and is
  exact: ``extend`` over a whole window equals ``forward``. Positions keep growing (frame index = cache length),
  which relative RoPE does not notice. ``new_cache(batch, kv_window=W)`` keeps only the last W frames' keys and
  values (sliding-window attention, for planning memory): positions stay absolute frame indices, and the result
  equals ``forward`` with a frame-causal mask restricted to W frames (``frame_causal_mask(..., window=W)``).
- ``W >= 1``: :class:`WindowCache`, the *inputs* of the last frames. Each step re-runs ``forward`` on the last W
  frames with positions restarting at 0, which is what the original planner did (``ctxt_window = 2``). Needed
  for absolute (learned) positions, and to reproduce released models whose legacy RoPE is not relative.

A subclass implements :meth:`LatentPredictor._run` (T frames after ``cache.num_frames`` cached ones, or a plain
window when the cache is None) and, if it supports key/value caching, :meth:`LatentPredictor._cache_depth`.
"""

from __future__ import annotations

import math
import typing

import torch
from torch import nn

from jepa_wms.config import RopeMode
from jepa_wms.layers import KVCache
from jepa_wms.predictors.caches import Cache, PredictorCache, WindowCache

__all__ = ["ROPE_MODES", "Cache", "LatentPredictor", "PredictorCache", "WindowCache"]

#: RoPE variants of the RoPE predictors: the true rotation, or the original's (see ``layers.rope``).
ROPE_MODES: tuple[str, ...] = typing.get_args(RopeMode)


class LatentPredictor(nn.Module):
    """Base of the frame-causal latent predictors.

    Args:
        embed_dim: encoder token width D.
        action_dim: model action width A.
        proprio_emb_dim: proprio embedding width E; 0 means the model takes no proprio.
        grid_size: ``(h, w)`` token grid of one frame, N = h·w.
        context_window: 0 = unbounded key/value cache; W >= 1 = re-run the last W frames at every step.
    """

    #: Whether :meth:`_run` accepts a :class:`PredictorCache` (relative positions only).
    supports_kv_cache: bool = True
    #: Whether proprio is channels of every patch token, so it may be given and predicted per patch (B, T, N, E).
    proprio_per_patch: bool = False

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        proprio_emb_dim: int,
        grid_size: tuple[int, int],
        context_window: int = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        grid = tuple(grid_size)
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"{name}: grid_size must be (h, w) with h, w >= 1, got {grid_size}")
        for key, value in (("embed_dim", embed_dim), ("action_dim", action_dim)):
            if value < 1:
                raise ValueError(f"{name}: {key} must be >= 1, got {value}")
        if proprio_emb_dim < 0:
            raise ValueError(f"{name}: proprio_emb_dim must be >= 0, got {proprio_emb_dim}")
        if context_window < 0:
            raise ValueError(f"{name}: context_window must be >= 0 (0 = key/value cache), got {context_window}")
        if context_window == 0 and not self.supports_kv_cache:
            raise ValueError(f"{name}: needs a sliding window (context_window >= 1), it has no key/value cache")
        self.embed_dim = embed_dim
        self.action_dim = action_dim
        self.proprio_emb_dim = proprio_emb_dim
        self.grid_size: tuple[int, int] = (int(grid[0]), int(grid[1]))
        self.num_tokens = self.grid_size[0] * self.grid_size[1]
        # Sequence tokens per frame: more than N when a predictor adds conditioning tokens.
        self.tokens_per_frame = self.num_tokens
        self.context_window = context_window

    @property
    def predicts_proprio(self) -> bool:
        """Whether outputs include the next proprio embedding (else rollouts keep the last one)."""
        return self.proprio_emb_dim > 0

    def _check_transformer(self, depth: int, width: int, width_name: str, num_heads: int, rope: str) -> None:
        """Checks shared by the RoPE transformers: ``width`` (named ``width_name``) splits into ``num_heads``."""
        name = type(self).__name__
        for key, value in (("depth", depth), (width_name, width)):
            if value < 1:
                raise ValueError(f"{name}: {key} must be >= 1, got {value}")
        if num_heads < 1 or width % num_heads != 0:
            raise ValueError(f"{name}: {width_name} = {width} must be a multiple of num_heads {num_heads}")
        if rope not in ROPE_MODES:
            raise ValueError(f"{name}: rope must be one of {ROPE_MODES}, got {rope!r}")

    def _init_vit_weights(self) -> None:
        """Initialisation shared by the RoPE transformers: truncated-normal linears, unit norms, and residual
        branches shrunk with depth so the stream's variance does not grow with layer count."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            for layer_id, block in enumerate(self.predictor_blocks, start=1):
                block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    # ----------------------------------------------------------------------------------------------------
    # To implement.

    def _run(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None,
        cache: PredictorCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """T checked frames placed after ``cache.num_frames`` cached ones (positions from 0 without a cache);
        appends their keys/values to ``cache`` and advances ``cache.num_frames``."""
        raise NotImplementedError

    def _cache_depth(self) -> int:
        """Number of attention layers, i.e. of :class:`KVCache` a :class:`PredictorCache` holds."""
        raise NotImplementedError

    def _proprio_channels(self, proprio: torch.Tensor) -> torch.Tensor:
        """Proprio as channels of every patch (``proprio_per_patch`` predictors): ``(B, T, N, E)``, a per-frame
        ``(B, T, E)`` tiled over the patches."""
        return proprio if proprio.dim() == 4 else proprio.unsqueeze(2).expand(-1, -1, self.num_tokens, -1)

    @staticmethod
    def _proprio_output(channels: torch.Tensor, per_patch: bool) -> torch.Tensor:
        """Predicted proprio channels ``(B, T, N, E)`` in the layout the input had: as is, or their patch mean."""
        return channels if per_patch else channels.mean(dim=2)

    # ----------------------------------------------------------------------------------------------------
    # Checks.

    def _check_frames(self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None, where: str) -> None:
        if z.dim() != 4 or z.shape[2:] != (self.num_tokens, self.embed_dim):
            raise ValueError(
                f"{where}: latents must be (B, T, N={self.num_tokens}, D={self.embed_dim}), got {tuple(z.shape)}"
            )
        batch, frames = z.shape[:2]
        if actions.shape != (batch, frames, self.action_dim):
            raise ValueError(
                f"{where}: actions must be (B={batch}, T={frames}, A={self.action_dim}), got {tuple(actions.shape)}"
            )
        if self.proprio_emb_dim == 0:
            if proprio is not None:
                raise ValueError(f"{where}: this predictor has proprio_emb_dim=0 but proprio was given")
            return
        shapes = [(batch, frames, self.proprio_emb_dim)]
        expected = f"(B={batch}, T={frames}, E={self.proprio_emb_dim})"
        if self.proprio_per_patch:
            shapes.append((batch, frames, self.num_tokens, self.proprio_emb_dim))
            expected += f" or per patch (B, T, N={self.num_tokens}, E)"
        if proprio is None or proprio.shape not in shapes:
            got = None if proprio is None else tuple(proprio.shape)
            raise ValueError(f"{where}: proprio must be {expected}, got {got}")

    def _check_cache(self, cache: Cache, batch: int, where: str) -> None:
        if self.context_window == 0:
            fits = isinstance(cache, PredictorCache) and len(cache.layers) == self._cache_depth()
            expected = f"a PredictorCache of depth {self._cache_depth()}"
        else:
            fits = isinstance(cache, WindowCache) and cache.window == self.context_window
            expected = f"a WindowCache of window {self.context_window}"
        if not fits or cache.batch_size != batch:
            raise ValueError(f"{where}: {cache} does not fit batch {batch}; expected {expected} (use new_cache)")

    # ----------------------------------------------------------------------------------------------------
    # Public API.

    def forward(
        self, z: torch.Tensor, actions: torch.Tensor, proprio_emb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing over a whole window, one pass.

        ``z (B, T, N, D)``, ``actions (B, T, A)``, ``proprio_emb (B, T, E) | None`` ->
        ``(z_pred (B, T, N, D), p_pred (B, T, E) | None)``. Output t is the prediction of frame t+1 and
        depends only on latents, actions and proprio of frames <= t.
        """
        self._check_frames(z, actions, proprio_emb, f"{type(self).__name__}.forward")
        return self._run(z, actions, proprio_emb, None)

    def new_cache(self, batch: int, kv_window: int = 0) -> Cache:
        """An empty cache for ``batch`` sequences: key/values (``context_window=0``) or a frame window.

        ``kv_window = W >= 1`` makes the key/value cache keep only the last W frames (each frame then attends to
        at most W frames, itself included); a frame-window predictor (``context_window >= 1``) ignores it, as
        it keeps only its last inputs anyway.
        """
        if kv_window < 0:
            name = type(self).__name__
            raise ValueError(f"{name}.new_cache: kv_window must be >= 0 (0 = unlimited), got {kv_window}")
        if self.context_window == 0:
            return PredictorCache([KVCache(batch) for _ in range(self._cache_depth())], window=kv_window)
        return WindowCache(batch, self.context_window)

    def extend(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio_emb: torch.Tensor | None,
        cache: Cache,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Process T new frames placed after the ``cache.num_frames`` seen ones and add them to ``cache``.

        Shapes as :meth:`forward`. With a key/value cache, filling an empty cache with a whole window returns
        exactly ``forward``. With a window cache, output t is the last output of ``forward`` over the W frames
        ending at t (fewer at the start), positions from 0.
        """
        where = f"{type(self).__name__}.extend"
        self._check_frames(z, actions, proprio_emb, where)
        self._check_cache(cache, z.shape[0], where)
        if isinstance(cache, PredictorCache):
            return self._run(z, actions, proprio_emb, cache)
        return self._extend_window(z, actions, proprio_emb, cache)

    def _extend_window(
        self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None, cache: WindowCache
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        window, kept, new = cache.window, cache.num_kept, z.shape[1]
        seq_z, seq_a, seq_p = cache.joined(z, actions, proprio)
        total = kept + new

        def run(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            return self._run(
                seq_z[:, start:stop], seq_a[:, start:stop], None if seq_p is None else seq_p[:, start:stop], None
            )

        # Frames whose window starts at the first kept frame share one pass (causality makes their outputs
        # those of their own shorter windows); every later frame needs its own window.
        head = min(total, window)
        z_head, p_head = run(0, head)
        z_outs, p_outs = [z_head[:, kept:]], [None if p_head is None else p_head[:, kept:]]
        for end in range(head + 1, total + 1):
            z_win, p_win = run(end - window, end)
            z_outs.append(z_win[:, -1:])
            p_outs.append(None if p_win is None else p_win[:, -1:])
        cache.append(z, actions, proprio)
        z_pred = torch.cat(z_outs, dim=1)
        return z_pred, None if p_outs[0] is None else torch.cat(p_outs, dim=1)

    def prefill(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio_emb: torch.Tensor | None,
        cache: Cache,
    ) -> None:
        """Add context frames to ``cache`` without needing their predictions (a window cache only stores them)."""
        if isinstance(cache, WindowCache):
            where = f"{type(self).__name__}.prefill"
            self._check_frames(z, actions, proprio_emb, where)
            self._check_cache(cache, z.shape[0], where)
            cache.append(z, actions, proprio_emb)
        else:
            self.extend(z, actions, proprio_emb, cache)

    def step(
        self,
        z_t: torch.Tensor,
        a_t: torch.Tensor,
        p_t: torch.Tensor | None,
        cache: Cache,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Process one frame: ``z_t (B, N, D)``, ``a_t (B, A)``, ``p_t (B, E) | None`` ->
        ``(z_next (B, N, D), p_next (B, E) | None)``; ``p_t`` per patch ``(B, N, E)`` gives ``p_next`` per patch.

        The frame gets index ``cache.num_frames`` and is added to ``cache``.
        """
        z_next, p_next = self.extend(
            z_t.unsqueeze(1), a_t.unsqueeze(1), None if p_t is None else p_t.unsqueeze(1), cache
        )
        return z_next.squeeze(1), None if p_next is None else p_next.squeeze(1)

    def rollout(
        self,
        z_ctx: torch.Tensor,
        a_ctx: torch.Tensor,
        p_ctx: torch.Tensor | None,
        actions: torch.Tensor,
        kv_window: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Autoregressive prediction of H future frames, feeding predictions back (differentiable, for BPTT).

        Time indexing:
          - context frames are 0..C-1: ``z_ctx (B, C, N, D)``, ``p_ctx (B, C, E) | None``;
          - ``a_ctx (B, C-1, A)`` holds the actions taken at frames 0..C-2;
          - ``actions (B, H, A)``: ``actions[:, h]`` is taken at frame C-1+h, so ``actions[:, 0]`` is the
            action at the last context frame;
          - output h is frame C+h: ``(z (B, H, N, D), p (B, H, E) | None)``; p is None when the predictor
            does not predict proprio (its input then stays the last context proprio).

        A per-patch ``p_ctx (B, C, N, E)`` (``proprio_per_patch`` predictors) makes the proprio fed back and
        returned per patch, ``(B, H, N, E)``, as the original unrolled; per frame, the patch mean is fed back.
        ``kv_window`` as in :meth:`new_cache`.
        """
        name = type(self).__name__
        if z_ctx.dim() != 4 or z_ctx.shape[1] < 1:
            raise ValueError(f"{name}.rollout: z_ctx must be (B, C>=1, N, D), got {tuple(z_ctx.shape)}")
        batch, context = z_ctx.shape[:2]
        if a_ctx.dim() != 3 or a_ctx.shape[:2] != (batch, context - 1):
            raise ValueError(
                f"{name}.rollout: a_ctx must be (B={batch}, C-1={context - 1}, A), got {tuple(a_ctx.shape)}"
            )
        cache = self.new_cache(batch, kv_window)
        if context > 1:
            p_prefix = None if p_ctx is None else p_ctx[:, :-1]
            self.prefill(z_ctx[:, :-1], a_ctx, p_prefix, cache)
        p_last = None if p_ctx is None else p_ctx[:, -1]
        return self.rollout_from_cache(cache, z_ctx[:, -1], p_last, actions)

    def rollout_from_cache(
        self,
        cache: Cache,
        z_last: torch.Tensor,
        p_last: torch.Tensor | None,
        actions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Roll out from a cache of context frames 0..K-1 plus the latest frame at index K.

        ``z_last (B, N, D)`` / ``p_last (B, E) | None`` (or per patch ``(B, N, E)``) is frame K, ``actions[:, h]``
        of ``actions (B, H, A)`` is taken at frame K+h; returns frames K+1..K+H as in :meth:`rollout`.

        ``cache`` itself is left unchanged, so one encoded context (expanded to the candidate batch) can serve
        every planner iteration.
        """
        if actions.dim() != 3 or actions.shape[0] != z_last.shape[0] or actions.shape[1] < 1:
            raise ValueError(
                f"{type(self).__name__}.rollout: actions must be (B={z_last.shape[0]}, H>=1, A), "
                f"got {tuple(actions.shape)}"
            )
        cache = cache.copy()
        # The private copy can grow in place: no re-copying of the whole cache at every planning step.
        cache.reserve(actions.shape[1] * self.tokens_per_frame)
        z, p = z_last, p_last
        z_out, p_out = [], []
        for h in range(actions.shape[1]):
            z, p_next = self.step(z, actions[:, h], p, cache)
            z_out.append(z)
            p_out.append(p_next)
            p = p if p_next is None else p_next
        z_all = torch.stack(z_out, dim=1)
        return z_all, None if p_out[0] is None else torch.stack(p_out, dim=1)
