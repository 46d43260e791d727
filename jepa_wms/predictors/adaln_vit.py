"""JEPA-WM predictor: a frame-causal ViT whose blocks are modulated by the frame's action (DiT-style AdaLN).

Token layout: a window of T frames with N = h·w patch tokens each is flattened frame-major, row-major. Visual
tokens are embedded to ``pred_dim``; the frame's proprio embedding (width E, may be 0) is concatenated to
every token's channels, giving width ``D_tot = pred_dim + E``. The frame's action embedding never enters the
sequence: it produces per-frame shift/scale/gate vectors shared by all tokens of that frame. Positions come
only from 3-D RoPE.

Causality is unconditional: a token of frame t attends to frames <= t, so output t (the prediction of frame
t+1) never sees later latents, actions or proprio. The original made this depend on an unrelated
``local_window`` knob and trained bidirectionally when it was missing.

Parameter names match the official checkpoints (``predictor_embed``, ``action_encoder``,
``predictor_blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2,adaLN_modulation.1}``,
``predictor_norm``, ``predictor_proj``). The RoPE is the corrected rotation, so official weights would also
need the legacy RoPE mode.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from jepa_wms.layers import Attention, KVCache, Mlp, RotaryEmbedding3D, frame_causal_mask, grid_positions

__all__ = ["AdaLNBlock", "AdaLNPredictor", "PredictorCache"]


class PredictorCache:
    """Per-block key/value caches of every frame processed so far (``num_frames`` of them).

    Derived caches (:meth:`copy`, :meth:`expand`, :meth:`repeat_interleave`) never write into the one they
    came from, so a planner can encode a context once and roll out many candidate batches from it.
    """

    def __init__(self, layers: list[KVCache], num_frames: int = 0) -> None:
        if not layers:
            raise ValueError("PredictorCache: needs one KVCache per block, got none")
        sizes = {c.batch_size for c in layers}
        if len(sizes) != 1:
            raise ValueError(f"PredictorCache: block caches disagree on batch size: {sorted(sizes)}")
        self.layers = layers
        self.num_frames = num_frames

    def __repr__(self) -> str:
        depth = len(self.layers)
        return f"PredictorCache(batch_size={self.batch_size}, num_frames={self.num_frames}, depth={depth})"

    @property
    def batch_size(self) -> int:
        return self.layers[0].batch_size

    def copy(self) -> PredictorCache:
        return PredictorCache([c.copy() for c in self.layers], self.num_frames)

    def reserve(self, num_tokens: int) -> None:
        """Room for ``num_tokens`` more tokens per block, filled in place while autograd is off."""
        for layer in self.layers:
            layer.reserve(num_tokens)

    def expand(self, batch_size: int) -> PredictorCache:
        """Broadcast a batch-1 cache to ``batch_size`` rows without copying (one context, S candidates)."""
        return PredictorCache([c.expand(batch_size) for c in self.layers], self.num_frames)

    def repeat_interleave(self, repeats: int) -> PredictorCache:
        """Row b becomes rows ``[b·repeats, (b+1)·repeats)`` (B contexts, S candidates each: B·S rows)."""
        return PredictorCache([c.repeat_interleave(repeats) for c in self.layers], self.num_frames)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # One fused pass over the (B, T, N, D) tensor; shift/scale are per frame (B, T, 1, D).
    return torch.addcmul(shift, x, 1 + scale)


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block; ``adaLN_modulation(cond)`` gives shift/scale/gate for attention and MLP.

    ``forward(x (B, T, N, D), cond (B, T, D), pos (T·N, 3), mask, cache) -> (B, T, N, D)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RotaryEmbedding3D | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=True, rope=rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        pos: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        batch, frames, tokens, dim = x.shape
        # (B, T, 1, D) each: one modulation per frame, broadcast over that frame's tokens.
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.adaLN_modulation(cond).unsqueeze(2).chunk(6, dim=-1)
        )
        h = _modulate(self.norm1(x), shift_msa, scale_msa).flatten(1, 2)
        x = torch.addcmul(x, gate_msa, self.attn(h, pos, mask, cache).view(batch, frames, tokens, dim))
        return torch.addcmul(x, gate_mlp, self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp)))


class AdaLNPredictor(nn.Module):
    """Action-conditioned, frame-causal latent predictor.

    Args:
        embed_dim: encoder token width D.
        action_dim: model action width A (frameskip · env action dim, e.g. 10).
        proprio_emb_dim: proprio embedding width E; 0 means the model takes no proprio.
        pred_dim: internal width of the visual channels.
        depth, num_heads, mlp_ratio: transformer size; ``(pred_dim + E)`` must divide by ``num_heads``.
        grid_size: ``(h, w)`` token grid of one frame, N = h·w.
        init_scale_adaln: std of the modulation weights is ``0.02 · init_scale_adaln`` (0 = AdaLN-zero).
    """

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        proprio_emb_dim: int,
        pred_dim: int,
        depth: int,
        num_heads: int,
        grid_size: tuple[int, int],
        mlp_ratio: float = 4.0,
        init_scale_adaln: float = 10.0,
    ) -> None:
        super().__init__()
        grid = tuple(grid_size)
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"AdaLNPredictor: grid_size must be (h, w) with h, w >= 1, got {grid_size}")
        for name, value in (
            ("embed_dim", embed_dim),
            ("action_dim", action_dim),
            ("pred_dim", pred_dim),
            ("depth", depth),
        ):
            if value < 1:
                raise ValueError(f"AdaLNPredictor: {name} must be >= 1, got {value}")
        if proprio_emb_dim < 0:
            raise ValueError(f"AdaLNPredictor: proprio_emb_dim must be >= 0, got {proprio_emb_dim}")
        total_dim = pred_dim + proprio_emb_dim
        if num_heads < 1 or total_dim % num_heads != 0:
            raise ValueError(
                f"AdaLNPredictor: pred_dim + proprio_emb_dim = {total_dim} must be a multiple of num_heads {num_heads}"
            )
        if init_scale_adaln < 0:
            raise ValueError(f"AdaLNPredictor: init_scale_adaln must be >= 0, got {init_scale_adaln}")
        self.embed_dim = embed_dim
        self.action_dim = action_dim
        self.proprio_emb_dim = proprio_emb_dim
        self.pred_dim = pred_dim
        self.total_dim = total_dim
        self.grid_size: tuple[int, int] = (int(grid[0]), int(grid[1]))
        self.num_tokens = self.grid_size[0] * self.grid_size[1]

        self.predictor_embed = nn.Linear(embed_dim, pred_dim)
        self.action_encoder = nn.Linear(action_dim, total_dim)
        # One parameter-free RoPE shared by all blocks: it only turns positions into rotations.
        rope = RotaryEmbedding3D(total_dim // num_heads)
        self.predictor_blocks = nn.ModuleList(AdaLNBlock(total_dim, num_heads, mlp_ratio, rope) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(total_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, embed_dim)
        self._init_weights(init_scale_adaln)

    def _init_weights(self, init_scale_adaln: float) -> None:
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
                # Residual branches shrink with depth so the stream's variance does not grow with layer count.
                block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
                modulation = block.adaLN_modulation[1]
                if init_scale_adaln == 0:
                    nn.init.zeros_(modulation.weight)
                else:
                    nn.init.trunc_normal_(modulation.weight, std=0.02 * init_scale_adaln)

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return (
            f"embed_dim={self.embed_dim}, action_dim={self.action_dim}, "
            f"proprio_emb_dim={self.proprio_emb_dim}, "
            f"pred_dim={self.pred_dim}, grid={self.grid_size}, params={params / 1e6:.2f}M"
        )

    # ----------------------------------------------------------------------------------------------------
    # Shared core: T new frames after the cached ones.

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
        elif proprio is None or proprio.shape != (batch, frames, self.proprio_emb_dim):
            got = None if proprio is None else tuple(proprio.shape)
            raise ValueError(f"{where}: proprio must be (B={batch}, T={frames}, E={self.proprio_emb_dim}), got {got}")

    def _run(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None,
        cache: PredictorCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        frames, tokens = z.shape[1:3]
        past = 0 if cache is None else cache.num_frames
        x = self.predictor_embed(z)
        if proprio is not None:
            x = torch.cat((x, proprio.to(x.dtype).unsqueeze(2).expand(-1, -1, tokens, -1)), dim=-1)
        cond = self.action_encoder(actions)
        pos = grid_positions(frames, *self.grid_size, frame_offset=past, device=z.device)
        # A single new frame may attend to everything (all keys are earlier frames or its own): no mask lets
        # SDPA use its fastest kernel during rollouts.
        mask = frame_causal_mask(frames, tokens, z.device, past_frames=past) if frames > 1 else None
        for i, block in enumerate(self.predictor_blocks):
            x = block(x, cond, pos, mask, None if cache is None else cache.layers[i])
        if cache is not None:
            cache.num_frames += frames
        x = self.predictor_norm(x)
        z_pred = self.predictor_proj(x[..., : self.pred_dim])
        p_pred = x[..., self.pred_dim :].mean(dim=2) if self.proprio_emb_dim else None
        return z_pred, p_pred

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
        self._check_frames(z, actions, proprio_emb, "AdaLNPredictor.forward")
        return self._run(z, actions, proprio_emb, None)

    def new_cache(self, batch: int) -> PredictorCache:
        """An empty cache for ``batch`` sequences (one KVCache per block)."""
        return PredictorCache([KVCache(batch) for _ in self.predictor_blocks])

    def extend(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio_emb: torch.Tensor | None,
        cache: PredictorCache,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Process T new frames placed after the ``cache.num_frames`` cached ones and append them to
        ``cache``.

        Shapes as :meth:`forward`. Filling an empty cache with a whole window returns exactly ``forward``.
        """
        self._check_frames(z, actions, proprio_emb, "AdaLNPredictor.extend")
        if cache.batch_size != z.shape[0] or len(cache.layers) != len(self.predictor_blocks):
            raise ValueError(
                f"AdaLNPredictor.extend: {cache} does not fit batch {z.shape[0]} and depth {len(self.predictor_blocks)}"
            )
        return self._run(z, actions, proprio_emb, cache)

    def step(
        self,
        z_t: torch.Tensor,
        a_t: torch.Tensor,
        p_t: torch.Tensor | None,
        cache: PredictorCache,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Process one frame: ``z_t (B, N, D)``, ``a_t (B, A)``, ``p_t (B, E) | None`` ->
        ``(z_next (B, N, D), p_next (B, E) | None)``.

        The frame gets index ``cache.num_frames``; its keys/values are appended to ``cache``.
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
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Autoregressive prediction of H future frames, feeding predictions back (differentiable, for BPTT).

        Time indexing:
          - context frames are 0..C-1: ``z_ctx (B, C, N, D)``, ``p_ctx (B, C, E) | None``;
          - ``a_ctx (B, C-1, A)`` holds the actions taken at frames 0..C-2;
          - ``actions (B, H, A)``: ``actions[:, h]`` is taken at frame C-1+h, so ``actions[:, 0]`` is the
            action at the last context frame;
          - output h is frame C+h: ``(z (B, H, N, D), p (B, H, E) | None)``.
        """
        if z_ctx.dim() != 4 or z_ctx.shape[1] < 1:
            raise ValueError(f"AdaLNPredictor.rollout: z_ctx must be (B, C>=1, N, D), got {tuple(z_ctx.shape)}")
        batch, context = z_ctx.shape[:2]
        if a_ctx.dim() != 3 or a_ctx.shape[:2] != (batch, context - 1):
            raise ValueError(
                f"AdaLNPredictor.rollout: a_ctx must be (B={batch}, C-1={context - 1}, A), got {tuple(a_ctx.shape)}"
            )
        cache = self.new_cache(batch)
        if context > 1:
            p_prefix = None if p_ctx is None else p_ctx[:, :-1]
            self.extend(z_ctx[:, :-1], a_ctx, p_prefix, cache)
        p_last = None if p_ctx is None else p_ctx[:, -1]
        return self.rollout_from_cache(cache, z_ctx[:, -1], p_last, actions)

    def rollout_from_cache(
        self,
        cache: PredictorCache,
        z_last: torch.Tensor,
        p_last: torch.Tensor | None,
        actions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Roll out from a cache of context frames 0..K-1 plus the latest frame at index K.

        ``z_last (B, N, D)`` / ``p_last (B, E) | None`` is frame K, ``actions[:, h]`` of ``actions (B, H, A)``
        is taken at frame K+h; returns frames K+1..K+H as in :meth:`rollout`.

        ``cache`` itself is left unchanged, so one encoded context (expanded to the candidate batch) can serve
        every planner iteration.
        """
        if actions.dim() != 3 or actions.shape[0] != z_last.shape[0] or actions.shape[1] < 1:
            raise ValueError(
                f"AdaLNPredictor.rollout: actions must be (B={z_last.shape[0]}, H>=1, A), got {tuple(actions.shape)}"
            )
        cache = cache.copy()
        # The private copy can grow in place: no re-copying of the whole cache at every planning step.
        cache.reserve(actions.shape[1] * self.num_tokens)
        z, p = z_last, p_last
        z_out, p_out = [], []
        for h in range(actions.shape[1]):
            z, p = self.step(z, actions[:, h], p, cache)
            z_out.append(z)
            p_out.append(p)
        return torch.stack(z_out, dim=1), None if p is None else torch.stack(p_out, dim=1)
