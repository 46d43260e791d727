"""DINO-WM predictor: a frame-causal ViT over visual tokens with proprio and action embeddings concatenated per token.

Token layout: every patch token of frame t carries ``[visual (D) | proprio_emb (E) | action_emb (A_e)]`` channels,
width ``dim = D + E + A_e`` (e.g. 384 + 16 + 10 = 410 for DINOv2 ViT-S features). The frame's action is embedded by
``action_encoder`` (Linear A -> A_e; the original kept it outside the predictor as a kernel-1 Conv1d, which the hub
loader maps here) and its proprio embedding is tiled over the frame's patches (or given per patch). A learned absolute
``pos_embedding (1, num_frames·N, dim)`` is added, then a pre-LN transformer runs with a frame-causal mask.
The prediction is read straight from the output channels, no projection back: visual from the first D, proprio
from the next E (per patch when proprio was given per patch, as the original fed it back; else the patch mean).

Parameter names follow the original (``pos_embedding``, ``transformer.layers.i.0.{norm, to_qkv, to_out.0}``,
``transformer.layers.i.1.net.{0, 1, 4}``, ``transformer.norm``) plus ``action_encoder``. The original also
stored its causal mask as a buffer ``transformer.layers.i.0.bias``; masks are built per call here instead.

Positions are absolute, so a key/value cache cannot continue past the table and a cached frame's keys would
depend on where the window started: incremental prediction always uses the sliding window (``context_window``
frames, at most ``num_frames``, recomputed with positions from 0 at every step — like the original planner).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.layers import frame_causal_mask
from jepa_wms.predictors.base import LatentPredictor
from jepa_wms.predictors.caches import PredictorCache

__all__ = ["DinoWMPredictor"]


class FeatureAttention(nn.Module):
    """Pre-LN multi-head attention with an inner width ``heads · dim_head`` that need not equal ``dim``."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dropout = dropout
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        # As the original: a single head as wide as the token needs no output projection.
        project = not (heads == 1 and dim_head == dim)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout)) if project else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, tokens, _ = x.shape
        # (B, L, 3, heads, hd) -> (3, B, heads, L, hd)
        qkv = self.to_qkv(self.norm(x)).view(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.to_out(out.transpose(1, 2).reshape(batch, tokens, -1))


class FeedForward(nn.Module):
    """``net = LN -> Linear -> GELU -> Dropout -> Linear -> Dropout`` (indices 0, 1, 4 hold parameters)."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """``layers.i = [attention, feed-forward]`` with residuals, then ``norm``."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([FeatureAttention(dim, heads, dim_head, dropout), FeedForward(dim, ffn_dim, dropout)])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for attn, ff in self.layers:
            x = x + attn(x, mask)
            x = x + ff(x)
        return self.norm(x)


class DinoWMPredictor(LatentPredictor):
    """DINO-WM feature-concat ViT predictor (frame-causal, learned positions, sliding-window rollouts).

    Args:
        embed_dim: encoder token width D (also the visual part of the predictor's tokens).
        action_dim: model action width A.
        proprio_emb_dim: proprio embedding width E; 0 means no proprio channels.
        grid_size: ``(h, w)`` token grid of one frame, N = h·w.
        num_frames: frames the position table holds: the longest window ``forward`` accepts.
        action_emb_dim: action channels per token A_e.
        depth: transformer layers.
        num_heads, dim_head: attention heads and per-head width (inner width ``num_heads · dim_head``).
        ffn_dim: feed-forward hidden width.
        dropout: attention and feed-forward dropout (the original trained with 0.1).
        context_window: frames per rollout step, 1..num_frames; 0 means num_frames.
    """

    supports_kv_cache = False
    proprio_per_patch = True

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        proprio_emb_dim: int,
        grid_size: tuple[int, int],
        num_frames: int,
        action_emb_dim: int = 10,
        depth: int = 6,
        num_heads: int = 16,
        dim_head: int = 64,
        ffn_dim: int = 2048,
        dropout: float = 0.0,
        context_window: int = 0,
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"DinoWMPredictor: num_frames (position table length) must be >= 1, got {num_frames}")
        window = num_frames if context_window == 0 else context_window
        if window > num_frames:
            raise ValueError(
                f"DinoWMPredictor: context_window {context_window} exceeds num_frames {num_frames}, the length of "
                "its learned position table"
            )
        super().__init__(embed_dim, action_dim, proprio_emb_dim, grid_size, window)
        for name, value in (
            ("action_emb_dim", action_emb_dim),
            ("depth", depth),
            ("num_heads", num_heads),
            ("dim_head", dim_head),
            ("ffn_dim", ffn_dim),
        ):
            if value < 1:
                raise ValueError(f"DinoWMPredictor: {name} must be >= 1, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"DinoWMPredictor: dropout must be in [0, 1), got {dropout}")
        self.num_frames = num_frames
        self.action_emb_dim = action_emb_dim
        self.dim = embed_dim + proprio_emb_dim + action_emb_dim

        self.action_encoder = nn.Linear(action_dim, action_emb_dim)
        # randn like the original (unit scale, comparable to normalised encoder features).
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames * self.num_tokens, self.dim))
        self.transformer = Transformer(self.dim, depth, num_heads, dim_head, ffn_dim, dropout)

    def extra_repr(self) -> str:
        params = sum(p.numel() for p in self.parameters())
        return (
            f"embed_dim={self.embed_dim}, action_dim={self.action_dim}, proprio_emb_dim={self.proprio_emb_dim}, "
            f"action_emb_dim={self.action_emb_dim}, dim={self.dim}, grid={self.grid_size}, "
            f"num_frames={self.num_frames}, context_window={self.context_window}, params={params / 1e6:.2f}M"
        )

    def _run(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None,
        cache: PredictorCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if cache is not None:
            raise ValueError("DinoWMPredictor: learned absolute positions admit no key/value cache")
        batch, frames, tokens, _ = z.shape
        if frames > self.num_frames:
            raise ValueError(
                f"DinoWMPredictor: a window of {frames} frames exceeds the position table of num_frames="
                f"{self.num_frames}; roll out longer sequences step by step (the sliding window)"
            )
        act = self.action_encoder(actions).to(z.dtype).unsqueeze(2).expand(-1, -1, tokens, -1)
        parts = [z] if proprio is None else [z, self._proprio_channels(proprio).to(z.dtype)]
        x = torch.cat((*parts, act), dim=-1).flatten(1, 2)  # (B, T·N, dim)
        x = x + self.pos_embedding[:, : frames * tokens]
        mask = frame_causal_mask(frames, tokens, z.device) if frames > 1 else None
        x = self.transformer(x, mask).view(batch, frames, tokens, self.dim)
        z_pred = x[..., : self.embed_dim]
        channels = x[..., self.embed_dim : self.embed_dim + self.proprio_emb_dim]
        p_pred = None if proprio is None else self._proprio_output(channels, proprio.dim() == 4)
        return z_pred, p_pred
