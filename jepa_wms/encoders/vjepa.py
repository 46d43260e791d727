"""Frozen V-JEPA (1) and V-JEPA 2 video ViTs used as frame encoders, with the official parameter names.

Both families share one trunk (facebookresearch/jepa and facebookresearch/vjepa2 ``VisionTransformer``):
``patch_embed.proj`` is a Conv3d over tubelets of 2 frames × 16 × 16 pixels, then pre-norm blocks
``blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`` (LayerNorm eps 1e-6, qkv bias, GELU, no
LayerScale) and a final ``norm``. They differ only in how positions enter:

- V-JEPA 2 (``vjepa2_vitl16``, ``vjepa2_vitg16``): 3-axis RoPE inside every attention layer, the original
  non-rotation variant (``RotaryEmbedding3D(head_dim, legacy=True)``), at integer positions (frame, row, col);
  no position table in the state dict.
- V-JEPA (``vjepa_vitl16``): a fixed 3-D sin-cos table ``pos_embed (1, 8·14·14, D)`` built for the 16-frame,
  224 px pretraining clips (``uniform_power``: equal time/row/col shares) and saved in the checkpoint. Other
  grids get it by trilinear ``F.interpolate`` with the scale factors ``(tubelets / 8, rows / 14, cols / 14)``,
  as the original ``interpolate_pos_encoding`` does (for one tubelet that samples between the stored time
  slices 3 and 4).

Frame encoding (the JEPA-WMs ``dup_image`` + ``batchify_video`` mode): each frame is duplicated into one
tubelet of 2, so a frame gives one token grid ``(B, (img/16)², D)``, final-normed, row-major.

Official checkpoints are training states: ``{"encoder", "predictor", "target_encoder", "opt", ...}`` with keys
prefixed ``module.backbone.``. The JEPA-WMs original loaded ``pretrain_enc_ckpt_key`` (``target_encoder``, the
EMA encoder) and stripped the prefix with ``str.replace`` anywhere in the key; here prefixes are stripped only at
the start of a key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder
from jepa_wms.encoders.loading import load_weights
from jepa_wms.layers import Attention, Mlp, RotaryEmbedding3D, grid_positions
from jepa_wms.weights import resolve_weights

__all__ = [
    "VJEPA_MODELS",
    "VJepaEncoder",
    "VJepaSpec",
    "build_vjepa",
    "load_vjepa_weights",
    "sincos_pos_embed_3d",
    "strip_key_prefixes",
]

PATCH_SIZE = 16
TUBELET_SIZE = 2
_LN_EPS = 1e-6
CHECKPOINT_PREFIXES = ("module.", "backbone.")


@dataclass(frozen=True)
class VJepaSpec:
    """Architecture of one released V-JEPA / V-JEPA 2 encoder.

    ``pos_frames`` / ``pos_grid`` / ``uniform_power`` describe the stored sin-cos table (``pos="sincos"`` only):
    the pretraining clip length in frames and its patch grid side. ``img_size`` is the pretraining resolution,
    used as the default input size.
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    pos: Literal["rope", "sincos"] = "rope"
    img_size: int = 256
    pos_frames: int = 16
    pos_grid: int = 14
    uniform_power: bool = True


VJEPA_MODELS: dict[str, VJepaSpec] = {
    "vjepa_vitl16": VJepaSpec(1024, 24, 16, pos="sincos", img_size=224),
    "vjepa2_vitl16": VJepaSpec(1024, 24, 16),
    "vjepa2_vitg16": VJepaSpec(1408, 40, 22, mlp_ratio=48 / 11),
}


def sincos_pos_embed_3d(embed_dim: int, frames: int, grid: int, uniform_power: bool = True) -> torch.Tensor:
    """Fixed V-JEPA position table ``(frames·grid·grid, embed_dim)`` float32, tokens frame-major then row-major.

    Each axis gets a 1-D table ``[sin(p·ω_0) .. sin(p·ω_{d/2-1}), cos(p·ω_0) ..]`` with ``ω_i = 10000^(-i/(d/2))``;
    the three are concatenated time|row|col and cut to ``embed_dim``. ``uniform_power`` gives every axis
    ``2·ceil(D/6)`` channels (so the column part loses its last ones when 3 of those exceed D), otherwise
    time D/2 and row, col D/4 each. Computed in float64 like the original NumPy code, then rounded.
    """
    if uniform_power:
        widths = (int(math.ceil(embed_dim / 6) * 2),) * 3
    else:
        if embed_dim % 4:
            raise ValueError(f"sincos_pos_embed_3d: embed_dim must be a multiple of 4, got {embed_dim}")
        widths = (embed_dim // 2, embed_dim // 4, embed_dim // 4)
    pos = grid_positions(frames, grid, grid).to(torch.float64)  # (N, 3) = (frame, row, col)
    parts = []
    for axis, width in enumerate(widths):
        omega = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float64) / (width / 2.0))
        angles = pos[:, axis, None] * omega
        parts += [angles.sin(), angles.cos()]
    table = torch.cat([torch.cat(parts[i : i + 2], dim=1) for i in (0, 2, 4)], dim=1)
    return table[:, :embed_dim].float()


def strip_key_prefixes(key: str, prefixes: Sequence[str] = CHECKPOINT_PREFIXES) -> str:
    """Remove the DDP / wrapper prefixes (``module.``, ``backbone.``) from the start of a key, and nowhere else."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


class _PatchEmbed3D(nn.Module):
    """``(B, 3, T, H, W) -> (B, (T/2)·(H/16)·(W/16), D)`` through one strided Conv3d named ``proj``."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        kernel = (TUBELET_SIZE, PATCH_SIZE, PATCH_SIZE)
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Block(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RotaryEmbedding3D | None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias=True, rope=rope)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class VJepaEncoder(Encoder):
    """V-JEPA / V-JEPA 2 ViT with patch 16 as a frame encoder: ``(B, 3, img, img) -> (B, (img/16)², D)``."""

    def __init__(
        self,
        spec: VJepaSpec,
        img_size: int | None = None,
        trainable: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        img_size = spec.img_size if img_size is None else img_size
        if img_size < PATCH_SIZE or img_size % PATCH_SIZE:
            raise ValueError(f"VJepaEncoder: img_size must be a positive multiple of {PATCH_SIZE}, got {img_size}")
        if spec.pos not in ("rope", "sincos"):
            raise ValueError(f"VJepaEncoder: spec.pos must be 'rope' or 'sincos', got {spec.pos!r}")
        if spec.depth < 1 or spec.pos_frames < TUBELET_SIZE or spec.pos_frames % TUBELET_SIZE or spec.pos_grid < 1:
            raise ValueError(
                f"VJepaEncoder: need depth >= 1, pos_frames a positive multiple of {TUBELET_SIZE} and pos_grid >= 1, "
                f"got {spec.depth}, {spec.pos_frames}, {spec.pos_grid}"
            )
        dim = spec.embed_dim
        super().__init__(dim, img_size // PATCH_SIZE, img_size, trainable=trainable, mean=mean, std=std)
        self.spec = spec
        self.patch_size = PATCH_SIZE
        self.patch_embed = _PatchEmbed3D(dim)
        if spec.pos == "sincos":
            table = sincos_pos_embed_3d(dim, spec.pos_frames // TUBELET_SIZE, spec.pos_grid, spec.uniform_power)
            # A Parameter that never trains, as in the original, so it is saved (and loaded) with the weights.
            self.pos_embed = nn.Parameter(table.unsqueeze(0), requires_grad=False)
            rope = None
        else:
            self.pos_embed = None
            if dim % spec.num_heads:
                raise ValueError(f"VJepaEncoder: embed_dim {dim} must be a multiple of num_heads {spec.num_heads}")
            # One stateless module shared by all blocks: it holds no tensors, so the state dict is unaffected.
            rope = RotaryEmbedding3D(dim // spec.num_heads, legacy=True)
        self.blocks = nn.ModuleList(_Block(dim, spec.num_heads, spec.mlp_ratio, rope) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)
        # (rows, cols, device, dtype) -> (pos_embed version, resized table); not a buffer, never saved.
        self._pos_cache: dict[tuple, tuple[int, torch.Tensor]] = {}
        self._init_weights()
        self.set_trainable(trainable)

    def _init_weights(self) -> None:
        # The original initialisation: trunc-normal 0.02 everywhere, residual projections shrunk by depth.
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv3d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            for layer_id, block in enumerate(self.blocks, start=1):
                block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    def set_trainable(self, trainable: bool) -> VJepaEncoder:
        super().set_trainable(trainable)
        if self.pos_embed is not None:
            self.pos_embed.requires_grad_(False)  # the sin-cos table is fixed even when fine-tuning
        return self

    def pos_embed_for_grid(self, rows: int, cols: int) -> torch.Tensor:
        """The sin-cos table for one tubelet of ``rows × cols`` patches: ``(1, rows·cols, D)``."""
        if self.pos_embed is None:
            raise ValueError("VJepaEncoder: this model uses RoPE and has no position table")
        frames, grid, dim = self.spec.pos_frames // TUBELET_SIZE, self.spec.pos_grid, self.embed_dim
        if (frames, grid, grid) == (1, rows, cols):
            return self.pos_embed
        key = (rows, cols, self.pos_embed.device, self.pos_embed.dtype)
        # The version counter moves on every in-place write (load_state_dict), so a cached table never outlives
        # the weights it was computed from.
        version = self.pos_embed._version
        hit = self._pos_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        table = self.pos_embed.reshape(1, frames, grid, grid, dim).permute(0, 4, 1, 2, 3)
        # scale_factor (not size) as in the original: it sets where the trilinear samples fall.
        table = F.interpolate(table, scale_factor=(1 / frames, rows / grid, cols / grid), mode="trilinear")
        if table.shape[-3:] != (1, rows, cols):
            raise ValueError(
                f"VJepaEncoder: resizing the {frames}×{grid}×{grid} position table gave {tuple(table.shape[-3:])}, "
                f"expected (1, {rows}, {cols})"
            )
        resized = table.permute(0, 2, 3, 4, 1).reshape(1, rows * cols, dim)
        self._pos_cache[key] = (version, resized)
        return resized

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``(B, 3, H, W)`` (H, W multiples of 16) -> normed tokens ``(B, (H/16)·(W/16), D)``."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % PATCH_SIZE or x.shape[3] % PATCH_SIZE:
            raise ValueError(
                f"VJepaEncoder: expected images (B, 3, H, W) with H and W multiples of {PATCH_SIZE}, "
                f"got {tuple(x.shape)}"
            )
        rows, cols = x.shape[2] // PATCH_SIZE, x.shape[3] // PATCH_SIZE
        # The frame fills a whole tubelet twice, as the original's dup_image mode feeds it.
        tokens = self.patch_embed(x.unsqueeze(2).expand(-1, -1, TUBELET_SIZE, -1, -1))
        pos = None
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed_for_grid(rows, cols)
        else:
            pos = grid_positions(1, rows, cols, device=x.device)
        for block in self.blocks:
            tokens = block(tokens, pos)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``(B, 3, img, img)`` -> normed patch tokens ``(B, N, D)``."""
        if x.dim() != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f"VJepaEncoder: expected (B, 3, {self.img_size}, {self.img_size}) images, got {tuple(x.shape)}"
            )
        return self.forward_tokens(x)


def load_vjepa_weights(model: VJepaEncoder, path: str | Path, checkpoint_key: str = "target_encoder") -> VJepaEncoder:
    """Load an official V-JEPA / V-JEPA 2 checkpoint (local path or URL, see ``resolve_weights``) strictly.

    Takes the ``checkpoint_key`` entry of a training checkpoint (or a flat encoder state dict), strips the
    ``module.`` / ``backbone.`` prefixes at the start of keys, and requires every key and shape to match. The only
    tolerated extra is a ``pos_embed`` in a file for a RoPE model (the official hub loader ignores it too).
    Raises WeightsUnavailableError (a FileNotFoundError) saying where to put an unavailable file and ValueError
    naming the file, entry and mismatched keys otherwise.
    """
    spec = model.spec
    description = (
        f"this V-JEPA encoder (D={spec.embed_dim}, depth={spec.depth}, heads={spec.num_heads}, positions={spec.pos})"
    )
    layout = "official V-JEPA checkpoints hold 'encoder' and 'target_encoder'"
    ignore = ("pos_embed",) if spec.pos == "rope" else ()
    load_weights(model, path, description, layout, entry=checkpoint_key, rename=strip_key_prefixes, ignore=ignore)
    return model


def build_vjepa(
    name: str,
    img_size: int | None = None,
    trainable: bool = False,
    weights: str | Path | None = None,
    checkpoint_key: str = "target_encoder",
) -> VJepaEncoder:
    """Build the named V-JEPA / V-JEPA 2 encoder (see ``VJEPA_MODELS``; ``img_size`` defaults to its pretraining
    resolution), frozen by default, optionally loading the ``checkpoint_key`` entry of a weight file."""
    if name not in VJEPA_MODELS:
        raise ValueError(f"unknown V-JEPA model {name!r}; expected one of {sorted(VJEPA_MODELS)}")
    # Resolved (downloaded) before building, so a missing file fails fast instead of after a large allocation.
    path = resolve_weights(weights) if weights is not None else None
    model = VJepaEncoder(VJEPA_MODELS[name], img_size=img_size, trainable=trainable)
    if path is not None:
        load_vjepa_weights(model, path, checkpoint_key)
    return model
