"""JEPA-WM predictor: a frame-causal ViT whose blocks are modulated by the frame's action (DiT-style AdaLN).

Token layout: a window of T frames with N = h·w patch tokens each is flattened frame-major, row-major. Visual
tokens are embedded to ``pred_dim``; the frame's proprio embedding (width E, may be 0; tiled, or one per patch)
is concatenated to every token's channels, giving width ``D_tot = pred_dim + E``, and the predicted proprio is
read back from those channels (per patch, or their mean). The frame's action embedding never enters the
sequence: it produces per-frame shift/scale/gate vectors shared by all tokens of that frame. Positions come
only from 3-D RoPE.

Causality is unconditional: a token of frame t attends to frames <= t, so output t (the prediction of frame
t+1) never sees later latents, actions or proprio. The original made this depend on an unrelated
``local_window`` knob and trained bidirectionally when it was missing.

Parameter names match the official checkpoints (``predictor_embed``, ``action_encoder``,
``predictor_blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2,adaLN_modulation.1}``,
``predictor_norm``, ``predictor_proj``). Official weights need ``rope="legacy"`` (the original's RoPE is not a
true rotation, see ``layers.rope``) and, to predict like the original planner, ``context_window=2``.
"""

from __future__ import annotations

import torch
from torch import nn

from jepa_wms.layers import Attention, KVCache, Mlp, RotaryEmbedding3D, frame_causal_mask
from jepa_wms.predictors.base import LatentPredictor
from jepa_wms.predictors.caches import PredictorCache

__all__ = ["AdaLNBlock", "AdaLNPredictor", "PredictorCache"]


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


class AdaLNPredictor(LatentPredictor):
    """Action-conditioned, frame-causal latent predictor (proprio per frame or per patch, see ``base``).

    Args:
        embed_dim: encoder token width D.
        action_dim: model action width A (frameskip · env action dim, e.g. 10).
        proprio_emb_dim: proprio embedding width E; 0 means the model takes no proprio.
        pred_dim: internal width of the visual channels.
        depth, num_heads, mlp_ratio: transformer size; ``(pred_dim + E)`` must divide by ``num_heads``.
        grid_size: ``(h, w)`` token grid of one frame, N = h·w.
        init_scale_adaln: std of the modulation weights is ``0.02 · init_scale_adaln`` (0 = AdaLN-zero).
        rope: ``"standard"`` (true rotation) or ``"legacy"`` (the original's, for released weights).
        context_window: 0 = key/value cache; W >= 1 = re-run the last W frames per step (see ``base``).
    """

    proprio_per_patch = True

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
        rope: str = "standard",
        context_window: int = 0,
    ) -> None:
        super().__init__(embed_dim, action_dim, proprio_emb_dim, grid_size, context_window)
        if pred_dim < 1:
            raise ValueError(f"AdaLNPredictor: pred_dim must be >= 1, got {pred_dim}")
        total_dim = pred_dim + proprio_emb_dim
        self._check_transformer(depth, total_dim, "pred_dim + proprio_emb_dim", num_heads, rope)
        if init_scale_adaln < 0:
            raise ValueError(f"AdaLNPredictor: init_scale_adaln must be >= 0, got {init_scale_adaln}")
        self.pred_dim = pred_dim
        self.total_dim = total_dim

        self.predictor_embed = nn.Linear(embed_dim, pred_dim)
        self.action_encoder = nn.Linear(action_dim, total_dim)
        # One parameter-free RoPE shared by all blocks: it only turns positions into rotations.
        self.rope = RotaryEmbedding3D(total_dim // num_heads, legacy=rope == "legacy")
        self.predictor_blocks = nn.ModuleList(
            AdaLNBlock(total_dim, num_heads, mlp_ratio, self.rope) for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(total_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, embed_dim)
        self._init_weights(init_scale_adaln)

    def _init_weights(self, init_scale_adaln: float) -> None:
        self._init_vit_weights()
        for block in self.predictor_blocks:
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
            f"pred_dim={self.pred_dim}, grid={self.grid_size}, context_window={self.context_window}, "
            f"params={params / 1e6:.2f}M"
        )

    def _cache_depth(self) -> int:
        return len(self.predictor_blocks)

    def _run(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None,
        cache: PredictorCache | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        frames, tokens = z.shape[1:3]
        past = 0 if cache is None else cache.num_frames  # absolute index of the first new frame (RoPE time)
        # Frames whose keys are stored (fewer than `past` once a windowed cache has evicted some).
        kept, window = (0, 0) if cache is None else (cache.num_kept, cache.window)
        x = self.predictor_embed(z)
        if proprio is not None:
            x = torch.cat((x, self._proprio_channels(proprio).to(x.dtype)), dim=-1)
        cond = self.action_encoder(actions)
        pos = self.rope.grid_positions(frames, *self.grid_size, frame_offset=past, device=z.device)
        # A single new frame may attend to everything (all keys are earlier frames or its own): no mask lets
        # SDPA use its fastest kernel during rollouts.
        mask = frame_causal_mask(frames, tokens, z.device, kept, window) if frames > 1 else None
        for i, block in enumerate(self.predictor_blocks):
            x = block(x, cond, pos, mask, None if cache is None else cache.layers[i])
        if cache is not None:
            cache.advance(frames)
        x = self.predictor_norm(x)
        z_pred = self.predictor_proj(x[..., : self.pred_dim])
        p_pred = None if proprio is None else self._proprio_output(x[..., self.pred_dim :], proprio.dim() == 4)
        return z_pred, p_pred
