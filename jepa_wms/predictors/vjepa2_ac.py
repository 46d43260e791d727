"""V-JEPA-2-AC predictor: a frame-causal ViT where each frame's action and proprio enter as extra tokens.

Token layout per frame: ``[action token, proprio token, N patch tokens]`` (no proprio token when E = 0), all of
width ``pred_dim``: patches come from ``predictor_embed`` (D -> pred_dim), the action token from
``action_encoder`` (A -> pred_dim), the proprio token from ``proprio_encoder`` (E -> pred_dim). Frames are
flattened frame-major; a token of frame t attends to every token of frames <= t.

Blocks are plain pre-LN ViT blocks with 3-D RoPE attention. Patch tokens sit at (frame, row, col); the
conditioning tokens get only the temporal rotation at their frame index, i.e. position (t, 0, 0), as in the
original (``ACRoPEAttention`` rotates their first chunk with the frame index and leaves the rest). After
``predictor_norm``, patch outputs go through ``predictor_proj`` (pred_dim -> D); conditioning outputs are
dropped, except that the optional ``proprio_head`` (pred_dim -> E, absent from the original checkpoints) reads
the proprio token's output so the model can predict the next proprio embedding like the other predictors.
``normalize_reps`` applies a parameter-free LayerNorm to the predicted latents (V-JEPA-2-AC's
``normalize_reps``).

Official names: ``predictor_embed``, ``action_encoder``, ``proprio_encoder``,
``predictor_blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``predictor_norm``,
``predictor_proj``. Released weights need ``rope="legacy"`` and ``predict_proprio=False``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.layers import Attention, KVCache, Mlp, RotaryEmbedding3D, frame_causal_mask
from jepa_wms.predictors.base import LatentPredictor
from jepa_wms.predictors.caches import PredictorCache

__all__ = ["ACBlock", "VJepa2ACPredictor"]


class ACBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RotaryEmbedding3D) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=True, rope=rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos, mask, cache)
        return x + self.mlp(self.norm2(x))


class VJepa2ACPredictor(LatentPredictor):
    """Token-conditioned, frame-causal latent predictor.

    Args:
        embed_dim: encoder token width D.
        action_dim: model action width A.
        proprio_emb_dim: proprio embedding width E; 0 means no proprio token.
        pred_dim: width of every predictor token; must divide by ``num_heads``.
        depth, num_heads, mlp_ratio: transformer size.
        grid_size: ``(h, w)`` token grid of one frame, N = h·w.
        predict_proprio: add ``proprio_head`` and return the next proprio embedding (needs E > 0).
        normalize_reps: LayerNorm (no parameters) on the predicted latents.
        rope: ``"standard"`` (true rotation) or ``"legacy"`` (the original's, for released weights).
        context_window: 0 = key/value cache; W >= 1 = re-run the last W frames per step (see ``base``).
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
        predict_proprio: bool = True,
        normalize_reps: bool = False,
        rope: str = "standard",
        context_window: int = 0,
    ) -> None:
        super().__init__(embed_dim, action_dim, proprio_emb_dim, grid_size, context_window)
        self._check_transformer(depth, pred_dim, "pred_dim", num_heads, rope)
        self.pred_dim = pred_dim
        self.normalize_reps = normalize_reps
        self.cond_tokens = 1 + (proprio_emb_dim > 0)
        self.tokens_per_frame = self.cond_tokens + self.num_tokens

        self.predictor_embed = nn.Linear(embed_dim, pred_dim)
        self.action_encoder = nn.Linear(action_dim, pred_dim)
        self.proprio_encoder = nn.Linear(proprio_emb_dim, pred_dim) if proprio_emb_dim else None
        self.rope = RotaryEmbedding3D(pred_dim // num_heads, legacy=rope == "legacy")
        self.predictor_blocks = nn.ModuleList(ACBlock(pred_dim, num_heads, mlp_ratio, self.rope) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(pred_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, embed_dim)
        self.proprio_head = nn.Linear(pred_dim, proprio_emb_dim) if predict_proprio and proprio_emb_dim else None
        self._init_vit_weights()

    @property
    def predicts_proprio(self) -> bool:
        return self.proprio_head is not None

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return (
            f"embed_dim={self.embed_dim}, action_dim={self.action_dim}, proprio_emb_dim={self.proprio_emb_dim}, "
            f"pred_dim={self.pred_dim}, grid={self.grid_size}, cond_tokens={self.cond_tokens}, "
            f"context_window={self.context_window}, params={params / 1e6:.2f}M"
        )

    def _cache_depth(self) -> int:
        return len(self.predictor_blocks)

    def _positions(self, frames: int, past: int, device: torch.device) -> torch.Tensor:
        """``(T·(K+N), 3)``: conditioning tokens at (t, 0, 0), then the frame's patches at (t, row, col)."""
        patches = self.rope.grid_positions(frames, *self.grid_size, frame_offset=past, device=device)
        patches = patches.view(frames, self.num_tokens, 3)
        cond = torch.zeros(frames, self.cond_tokens, 3, dtype=patches.dtype, device=device)
        cond[..., 0] = patches[:, :1, 0]
        return torch.cat((cond, patches), dim=1).flatten(0, 1)

    def _run(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None,
        cache: PredictorCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, frames = z.shape[:2]
        past = 0 if cache is None else cache.num_frames  # absolute index of the first new frame (RoPE time)
        # Frames whose keys are stored (fewer than `past` once a windowed cache has evicted some).
        kept, window = (0, 0) if cache is None else (cache.num_kept, cache.window)
        patches = self.predictor_embed(z)
        tokens = [self.action_encoder(actions).unsqueeze(2)]
        if self.proprio_encoder is not None:
            tokens.append(self.proprio_encoder(proprio).unsqueeze(2))
        x = torch.cat([t.to(patches.dtype) for t in tokens] + [patches], dim=2)  # (B, T, K+N, pred_dim)
        x = x.flatten(1, 2)
        pos = self._positions(frames, past, z.device)
        mask = frame_causal_mask(frames, self.tokens_per_frame, z.device, kept, window) if frames > 1 else None
        for i, block in enumerate(self.predictor_blocks):
            x = block(x, pos, mask, None if cache is None else cache.layers[i])
        if cache is not None:
            cache.advance(frames)
        x = self.predictor_norm(x).view(batch, frames, self.tokens_per_frame, self.pred_dim)
        z_pred = self.predictor_proj(x[:, :, self.cond_tokens :])
        if self.normalize_reps:
            z_pred = F.layer_norm(z_pred, (self.embed_dim,))
        p_pred = None if self.proprio_head is None else self.proprio_head(x[:, :, 1])
        return z_pred, p_pred
