"""Frozen DINOv2 ViT backbone in plain torch whose parameter names equal the official checkpoints.

``DinoV2Encoder.state_dict()`` has exactly the keys and shapes of the released ``dinov2_vit{s,b,l,g}14[_reg]``
files, so they load with ``load_state_dict(strict=True)`` and no key remapping: ``cls_token``, ``pos_embed``
(37×37 grid + cls, trained at 518 px), ``register_tokens`` (``_reg`` only), ``mask_token``, ``patch_embed.proj``,
``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.*,ls2.gamma}`` and ``norm``.

Token layout inside the trunk is ``[cls, registers..., patches...]``; the position embedding is added to cls and
patches only (registers carry no position), and the world model consumes the final-LayerNorm'd patch tokens
(``x_norm_patchtokens``), row-major, exactly as the original JEPA-WMs ``DinoEncoder`` did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder
from jepa_wms.encoders.loading import load_weights
from jepa_wms.layers import Attention, LayerScale, Mlp, PatchEmbed

__all__ = ["DINOV2_MODELS", "DinoV2Encoder", "DinoV2Spec", "build_dinov2", "load_dinov2_weights", "swiglu_hidden_dim"]

PATCH_SIZE = 14
PRETRAIN_GRID = 37  # the released models were trained at 518 px = 37 patches of 14 px
_LN_EPS = 1e-6


def swiglu_hidden_dim(embed_dim: int, mlp_ratio: float = 4.0) -> int:
    """Hidden width of DINOv2's SwiGLU FFN: 2/3 of the GELU MLP's, rounded up to a multiple of 8 (4096 for ViT-g)."""
    return (int(embed_dim * mlp_ratio * 2 / 3) + 7) // 8 * 8


class _SwiGLU(nn.Module):
    """ViT-g feed-forward: ``w3(silu(a) · b)`` with ``[a, b] = w12(x)``; one fused input matrix as in the files."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden_dim)
        self.w3 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)


class _Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, ffn: Literal["mlp", "swiglu"], init_values: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = Mlp(dim, 4 * dim) if ffn == "mlp" else _SwiGLU(dim, swiglu_hidden_dim(dim))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


@dataclass(frozen=True)
class DinoV2Spec:
    """Architecture of one released DINOv2 model.

    The interpolation settings are part of the model, not a free choice: the original checkpoints were trained
    with a +0.1 grid offset and no antialiasing, the register models with neither offset and antialiasing on,
    and features only match the official ones when resizing the position embedding the same way.
    """

    embed_dim: int
    depth: int
    num_heads: int
    ffn: Literal["mlp", "swiglu"] = "mlp"
    num_register_tokens: int = 0
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False


def _size_variants(base: str, embed_dim: int, depth: int, heads: int, ffn: Literal["mlp", "swiglu"]) -> dict:
    return {
        base: DinoV2Spec(embed_dim, depth, heads, ffn),
        f"{base}_reg": DinoV2Spec(embed_dim, depth, heads, ffn, 4, interpolate_offset=0.0, interpolate_antialias=True),
    }


DINOV2_MODELS: dict[str, DinoV2Spec] = {
    **_size_variants("dinov2_vits14", 384, 12, 6, "mlp"),
    **_size_variants("dinov2_vitb14", 768, 12, 12, "mlp"),
    **_size_variants("dinov2_vitl14", 1024, 24, 16, "mlp"),
    **_size_variants("dinov2_vitg14", 1536, 40, 24, "swiglu"),
}


class DinoV2Encoder(Encoder):
    """DINOv2 ViT with patch size 14: ``(B, 3, img, img) -> (B, (img/14)², D)`` normed patch tokens.

    Any input side that is a multiple of 14 works in :meth:`forward_features` (the 37×37 position grid is resized
    bicubically and cached per grid size); :meth:`forward` keeps the :class:`Encoder` contract of ``img_size``.
    ``init_values`` is the LayerScale start value; 1.0 makes a randomly initialised model a plain ViT, and loaded
    checkpoints overwrite it anyway.
    """

    def __init__(
        self,
        spec: DinoV2Spec,
        img_size: int = 224,
        trainable: bool = False,
        init_values: float = 1.0,
        pos_grid: int = PRETRAIN_GRID,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if img_size < PATCH_SIZE or img_size % PATCH_SIZE:
            raise ValueError(f"DinoV2Encoder: img_size must be a positive multiple of {PATCH_SIZE}, got {img_size}")
        if spec.ffn not in ("mlp", "swiglu"):
            raise ValueError(f"DinoV2Encoder: spec.ffn must be 'mlp' or 'swiglu', got {spec.ffn!r}")
        if spec.depth < 1 or spec.num_register_tokens < 0 or pos_grid < 1:
            raise ValueError(
                f"DinoV2Encoder: need depth >= 1, num_register_tokens >= 0 and pos_grid >= 1, got {spec.depth}, "
                f"{spec.num_register_tokens}, {pos_grid}"
            )
        dim = spec.embed_dim
        super().__init__(dim, img_size // PATCH_SIZE, img_size, trainable=trainable, mean=mean, std=std)
        self.spec = spec
        self.patch_size = PATCH_SIZE
        self.pos_grid = pos_grid
        self.num_register_tokens = spec.num_register_tokens
        self.patch_embed = PatchEmbed(dim, PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.empty(1, 1 + pos_grid * pos_grid, dim))
        # Absent (not an empty tensor) without registers, so the state dict matches the non-reg files exactly.
        self.register_tokens = (
            nn.Parameter(torch.empty(1, spec.num_register_tokens, dim)) if spec.num_register_tokens else None
        )
        # Unused at inference; kept because every official checkpoint stores it and strict loading needs it.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(_Block(dim, spec.num_heads, spec.ffn, init_values) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)
        # (rows, cols, device, dtype) -> (pos_embed version, resized embedding); not a buffer, never saved.
        self._pos_cache: dict[tuple, tuple[int, torch.Tensor]] = {}
        self._init_weights()
        self.set_trainable(trainable)

    def _init_weights(self) -> None:
        # DINOv2's own initialisation, so an unloaded model starts like a freshly built official one.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def pos_embed_for_grid(self, rows: int, cols: int) -> torch.Tensor:
        """Position embedding for a ``rows × cols`` patch grid: ``(1, 1 + rows·cols, D)``, cls entry first."""
        stored = self.pos_grid
        if (rows, cols) == (stored, stored):
            # The original returns the stored table untouched here; resizing with the +0.1 offset would not.
            return self.pos_embed
        needs_graph = self.pos_embed.requires_grad and torch.is_grad_enabled()
        key = (rows, cols, self.pos_embed.device, self.pos_embed.dtype)
        # The version counter moves on every in-place write (load_state_dict, optimizer steps), so a cached
        # table can never outlive the weights it was computed from.
        version = self.pos_embed._version
        hit = None if needs_graph else self._pos_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed.float()
        grid = table[:, 1:].reshape(1, stored, stored, dim).permute(0, 3, 1, 2)
        offset = self.spec.interpolate_offset
        if offset:
            # Legacy DINOv2 behaviour: the scale factor (not the output size) drives the sampling positions.
            sizing = {"scale_factor": ((rows + offset) / stored, (cols + offset) / stored)}
        else:
            sizing = {"size": (rows, cols)}
        grid = F.interpolate(grid, mode="bicubic", antialias=self.spec.interpolate_antialias, **sizing)
        if grid.shape[-2:] != (rows, cols):
            raise ValueError(
                f"DinoV2Encoder: resizing the {stored}×{stored} position grid gave {tuple(grid.shape[-2:])}, "
                f"expected ({rows}, {cols}); interpolate_offset {offset} is too large"
            )
        patches = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        resized = torch.cat((table[:, :1], patches), dim=1).to(self.pos_embed.dtype)
        if not needs_graph:
            self._pos_cache[key] = (version, resized)
        return resized

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed images ``(B, 3, H, W)`` (H, W multiples of 14) -> dict of token tensors.

        ``x_norm_clstoken (B, D)``, ``x_norm_regtokens (B, R, D)``, ``x_norm_patchtokens (B, N, D)`` with
        N = (H/14)·(W/14) row-major, and ``x_prenorm (B, 1 + R + N, D)`` before the final LayerNorm.
        """
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % PATCH_SIZE or x.shape[3] % PATCH_SIZE:
            raise ValueError(
                f"DinoV2Encoder: expected images (B, 3, H, W) with H and W multiples of {PATCH_SIZE}, "
                f"got {tuple(x.shape)}"
            )
        batch, rows, cols = x.shape[0], x.shape[2] // PATCH_SIZE, x.shape[3] // PATCH_SIZE
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(batch, -1, -1), tokens), dim=1)
        tokens = tokens + self.pos_embed_for_grid(rows, cols)
        if self.register_tokens is not None:
            # Registers go between cls and patches after the position embedding: they have no position.
            tokens = torch.cat((tokens[:, :1], self.register_tokens.expand(batch, -1, -1), tokens[:, 1:]), dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        normed = self.norm(tokens)
        first_patch = 1 + self.num_register_tokens
        return {
            "x_norm_clstoken": normed[:, 0],
            "x_norm_regtokens": normed[:, 1:first_patch],
            "x_norm_patchtokens": normed[:, first_patch:],
            "x_prenorm": tokens,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``(B, 3, img, img)`` -> normed patch tokens ``(B, N, D)``, no cls/registers."""
        if x.dim() != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f"DinoV2Encoder: expected (B, 3, {self.img_size}, {self.img_size}) images, got {tuple(x.shape)}"
            )
        return self.forward_features(x)["x_norm_patchtokens"]


def load_dinov2_weights(model: DinoV2Encoder, path: str | Path) -> DinoV2Encoder:
    """Load an official-format state dict file (local path or URL, see ``resolve_weights``) into ``model`` strictly.

    Raises FileNotFoundError for a missing file and ValueError naming the file when it holds code or other objects
    (it is read with the shared ``weights_only`` reader), or the first missing, unexpected and wrongly shaped keys
    when it does not fit the architecture.
    """
    description = (
        f"this DINOv2 model (D={model.embed_dim}, depth={len(model.blocks)}, registers={model.num_register_tokens})"
    )
    load_weights(model, path, description, "official DINOv2 files are flat state dicts")
    return model


def build_dinov2(
    name: str,
    img_size: int = 224,
    trainable: bool = False,
    weights: str | Path | None = None,
) -> DinoV2Encoder:
    """Build the named DINOv2 model (see ``DINOV2_MODELS``), frozen by default, optionally loading a local file."""
    if name not in DINOV2_MODELS:
        raise ValueError(f"unknown DINOv2 model {name!r}; expected one of {sorted(DINOV2_MODELS)}")
    model = DinoV2Encoder(DINOV2_MODELS[name], img_size=img_size, trainable=trainable)
    if weights is not None:
        load_dinov2_weights(model, weights)
    return model
