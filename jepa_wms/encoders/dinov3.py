"""Frozen DINOv3 ViT backbone (patch 16, RoPE, storage tokens) in plain torch with the official parameter names.

``DinoV3Encoder.state_dict()`` has exactly the keys and shapes of the released ``dinov3_vit{s,l}16`` LVD-1689M
files, so they load with ``load_state_dict(strict=True)``: ``cls_token (1, 1, D)``, ``storage_tokens (1, 4, D)``,
``mask_token (1, D)``, ``rope_embed.periods (head_dim/4,)`` (a buffer), ``patch_embed.proj``,
``blocks.{i}.{norm1, attn.qkv.{weight, bias, bias_mask}, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``
and ``norm``. Both sizes use one final norm for all tokens (no ``cls_norm`` / ``local_cls_norm``).

Facts of the official implementation (facebookresearch/dinov3, ``hub/backbones.py`` and ``layers/``):
- LayerNorm eps 1e-5 everywhere ("layernormbf16"), LayerScale on both branches, GELU MLP of ratio 4.
- The qkv bias is multiplied by the stored ``bias_mask`` buffer: ones with the key third zeroed, so keys get no
  bias. The product is taken at every forward, as officially, so whatever the file stores is what applies.
- No learned position embedding. Axial 2-D RoPE on the patch tokens only (cls and storage tokens are not
  rotated): patch centres are normalised per axis to [-1, 1] (``(i + 0.5) / n * 2 - 1``), the angle of
  frequency j is ``2π · coord / periods[j]`` with ``periods[j] = 100 ** (j / (head_dim / 4))``, the first
  head_dim/4 angles come from the row coordinate and the next head_dim/4 from the column, and the table is tiled
  twice and applied "rotate-half" style (channel c pairs with c + head_dim/2), in float32.
  The released files store bf16-rounded periods (1.0, 1.3359375, ...); the forward uses the loaded buffer,
  never a recomputed one. The coordinate rescaling augmentation (training only) is not implemented.
- Token layout ``[cls, storage..., patches...]``; the world model consumes the final-normed patch tokens
  (``x_norm_patchtokens``), row-major, as the original JEPA-WMs ``DinoEncoder`` did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from jepa_wms.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder
from jepa_wms.encoders.loading import load_weights
from jepa_wms.layers import LayerScale, Mlp, PatchEmbed
from jepa_wms.weights import WeightsUnavailableError, resolve_weights

__all__ = ["DINOV3_MODELS", "DinoV3Encoder", "DinoV3Spec", "build_dinov3", "dinov3_rope_sincos", "load_dinov3_weights"]

PATCH_SIZE = 16
_LN_EPS = 1e-5
ACCESS_URL = "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/"


@dataclass(frozen=True)
class DinoV3Spec:
    """Architecture of one released DINOv3 ViT (LVD-1689M pretrain)."""

    embed_dim: int
    depth: int
    num_heads: int
    ffn_ratio: float = 4.0
    num_storage_tokens: int = 4
    rope_base: float = 100.0


DINOV3_MODELS: dict[str, DinoV3Spec] = {
    "dinov3_vits16": DinoV3Spec(384, 12, 6),
    "dinov3_vitl16": DinoV3Spec(1024, 24, 16),
}


def dinov3_rope_sincos(periods: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DINOv3 RoPE tables for a ``rows × cols`` patch grid: ``(sin, cos)``, each ``(rows·cols, 4·len(periods))``
    float32, patches row-major. Same operation order as the official ``RopePositionEmbedding`` (eval mode)."""
    kwargs = {"device": periods.device, "dtype": torch.float32}
    coords_h = torch.arange(0.5, rows, **kwargs) / rows
    coords_w = torch.arange(0.5, cols, **kwargs) / cols
    coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1)
    coords = 2.0 * coords - 1.0  # (N, 2) in [-1, 1]
    angles = 2 * math.pi * coords.unsqueeze(-1) / periods.float()  # (N, 2, head_dim/4): row angles, then col
    angles = angles.flatten(-2).tile(2)  # (N, head_dim)
    return angles.sin(), angles.cos()


class _RopePositionEmbedding(nn.Module):
    """Holds the ``periods`` buffer (saved in the official files, hence persistent); see :func:`dinov3_rope_sincos`."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"DINOv3 RoPE needs a head dim divisible by 4, got {head_dim}")
        self.base = float(base)
        self.register_buffer("periods", torch.empty(head_dim // 4))
        self.reset_periods()

    def reset_periods(self) -> None:
        quarter = self.periods.numel()
        periods = self.base ** (2 * torch.arange(quarter, dtype=torch.float32) / (2 * quarter))
        with torch.no_grad():
            self.periods.copy_(periods)

    def forward(self, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        return dinov3_rope_sincos(self.periods, rows, cols)


class _MaskedBiasLinear(nn.Linear):
    """The qkv projection: its bias is multiplied by the stored 0/1 ``bias_mask`` (official ``LinearKMaskedBias``)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=True)
        if out_features % 3:
            raise ValueError(f"qkv projection width must be divisible by 3, got {out_features}")
        mask = torch.ones(out_features)
        mask[out_features // 3 : 2 * out_features // 3] = 0.0  # the official init: no key bias
        self.register_buffer("bias_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias * self.bias_mask.to(self.bias.dtype))


def _apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate the last ``len(sin)`` tokens of ``x (B, heads, N, hd)``; the leading (cls, storage) ones stay as is."""
    prefix = x.shape[-2] - sin.shape[-2]
    tail = x[..., prefix:, :].to(sin.dtype)
    first, second = tail.chunk(2, dim=-1)
    tail = tail * cos + torch.cat((-second, first), dim=-1) * sin
    return torch.cat((x[..., :prefix, :], tail.to(x.dtype)), dim=-2)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"DinoV3Encoder: embed_dim {dim} must be a positive multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = _MaskedBiasLinear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        batch, num_tokens, dim = x.shape
        q, k, v = self.qkv(x).view(batch, num_tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, num_tokens, dim))


class _Block(nn.Module):
    """Pre-norm block with LayerScale: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float, init_values: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = _Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = Mlp(dim, int(dim * ffn_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV3Encoder(Encoder):
    """DINOv3 ViT with patch size 16: ``(B, 3, img, img) -> (B, (img/16)², D)`` normed patch tokens.

    RoPE needs no resizing, so :meth:`forward_features` takes any side that is a multiple of 16; :meth:`forward`
    keeps the :class:`Encoder` contract of ``img_size``. ``init_values`` is the LayerScale start value (1.0 makes
    a random model a plain ViT; loaded weights overwrite it).
    """

    def __init__(
        self,
        spec: DinoV3Spec,
        img_size: int = 224,
        trainable: bool = False,
        init_values: float = 1.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if img_size < PATCH_SIZE or img_size % PATCH_SIZE:
            raise ValueError(f"DinoV3Encoder: img_size must be a positive multiple of {PATCH_SIZE}, got {img_size}")
        if spec.depth < 1 or spec.num_storage_tokens < 0:
            raise ValueError(
                f"DinoV3Encoder: need depth >= 1 and num_storage_tokens >= 0, got {spec.depth}, "
                f"{spec.num_storage_tokens}"
            )
        dim = spec.embed_dim
        super().__init__(dim, img_size // PATCH_SIZE, img_size, trainable=trainable, mean=mean, std=std)
        self.spec = spec
        self.patch_size = PATCH_SIZE
        self.num_storage_tokens = spec.num_storage_tokens
        self.patch_embed = PatchEmbed(dim, PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        # Absent (not an empty tensor) without storage tokens, as in the official model.
        self.storage_tokens = (
            nn.Parameter(torch.empty(1, spec.num_storage_tokens, dim)) if spec.num_storage_tokens else None
        )
        # Unused at inference; kept because every official checkpoint stores it and strict loading needs it.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(_Block(dim, spec.num_heads, spec.ffn_ratio, init_values) for _ in range(spec.depth))
        self.rope_embed = _RopePositionEmbedding(dim // spec.num_heads, spec.rope_base)
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self._init_weights()
        self.set_trainable(trainable)

    def _init_weights(self) -> None:
        # DINOv3's own initialisation (the conv keeps torch's default, which is what the official reset uses).
        nn.init.normal_(self.cls_token, std=0.02)
        if self.storage_tokens is not None:
            nn.init.normal_(self.storage_tokens, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed images ``(B, 3, H, W)`` (H, W multiples of 16) -> dict of token tensors (official keys).

        ``x_norm_clstoken (B, D)``, ``x_storage_tokens (B, S, D)``, ``x_norm_patchtokens (B, N, D)`` with
        N = (H/16)·(W/16) row-major, and ``x_prenorm (B, 1 + S + N, D)`` before the final LayerNorm.
        """
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % PATCH_SIZE or x.shape[3] % PATCH_SIZE:
            raise ValueError(
                f"DinoV3Encoder: expected images (B, 3, H, W) with H and W multiples of {PATCH_SIZE}, "
                f"got {tuple(x.shape)}"
            )
        batch, rows, cols = x.shape[0], x.shape[2] // PATCH_SIZE, x.shape[3] // PATCH_SIZE
        prefix = [self.cls_token.expand(batch, -1, -1)]
        if self.storage_tokens is not None:
            prefix.append(self.storage_tokens.expand(batch, -1, -1))
        # The official `cls_token + 0 * mask_token` only ties the mask token into the autograd graph; no effect here.
        tokens = torch.cat((*prefix, self.patch_embed(x)), dim=1)
        rope = self.rope_embed(rows, cols)
        for block in self.blocks:
            tokens = block(tokens, rope)
        normed = self.norm(tokens)
        first_patch = 1 + self.num_storage_tokens
        return {
            "x_norm_clstoken": normed[:, 0],
            "x_storage_tokens": normed[:, 1:first_patch],
            "x_norm_patchtokens": normed[:, first_patch:],
            "x_prenorm": tokens,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``(B, 3, img, img)`` -> normed patch tokens ``(B, N, D)``, no cls/storage tokens."""
        if x.dim() != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f"DinoV3Encoder: expected (B, 3, {self.img_size}, {self.img_size}) images, got {tuple(x.shape)}"
            )
        return self.forward_features(x)["x_norm_patchtokens"]


def _resolve(spec: str | Path) -> Path:
    try:
        return resolve_weights(spec)
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(
            f"{exc}. DINOv3 weights are gated: request access at {ACCESS_URL}, then pass the signed download URL "
            "from the e-mail or the downloaded .pth file as model.encoder.weights"
        ) from exc


def load_dinov3_weights(model: DinoV3Encoder, path: str | Path) -> DinoV3Encoder:
    """Load an official DINOv3 state dict file (local path or URL, see ``resolve_weights``) into ``model`` strictly.

    Raises WeightsUnavailableError (a FileNotFoundError) saying where to put the file when it is neither on disk
    nor downloadable (the official URLs are gated), and ValueError naming the file and the first missing,
    unexpected and wrongly shaped keys when it does not fit the architecture.
    """
    spec = model.spec
    description = (
        f"this DINOv3 model (D={spec.embed_dim}, depth={spec.depth}, heads={spec.num_heads}, "
        f"storage tokens={spec.num_storage_tokens})"
    )
    load_weights(model, _resolve(path), description, "official DINOv3 files are flat state dicts")
    return model


def build_dinov3(
    name: str,
    img_size: int = 224,
    trainable: bool = False,
    weights: str | Path | None = None,
) -> DinoV3Encoder:
    """Build the named DINOv3 model (see ``DINOV3_MODELS``), frozen by default, optionally loading a weight file."""
    if name not in DINOV3_MODELS:
        raise ValueError(f"unknown DINOv3 model {name!r}; expected one of {sorted(DINOV3_MODELS)}")
    # Resolved (downloaded) before building, so a missing file fails fast instead of after a large allocation.
    path = _resolve(weights) if weights is not None else None
    model = DinoV3Encoder(DINOV3_MODELS[name], img_size=img_size, trainable=trainable)
    if path is not None:
        load_dinov3_weights(model, path)
    return model
