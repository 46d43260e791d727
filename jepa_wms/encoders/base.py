"""Encoder base class: raw uint8 frames in, a row-major grid of patch tokens out.

Pixel preprocessing lives here, once, so training and planning cannot drift apart: uint8 -> [0, 1] -> centre
square crop (non-square frames only, as the original pipeline did) -> antialiased bilinear resize to
``img_size`` -> per-channel ``(x - mean) / std``. Plain ``F.interpolate``, no torchvision.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from jepa_wms.config import EncoderConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Encoder"]

# The pixel statistics every foundation encoder (DINOv2, DINOv3, V-JEPA) and the released models normalise with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Encoder(nn.Module, metaclass=abc.ABCMeta):
    """Image encoder ``(B, 3, img, img) -> (B, N, D)``, N = grid_h·grid_w tokens in row-major order.

    Attributes:
        embed_dim: token width D.
        grid_size: ``(grid_h, grid_w)`` token grid.
        img_size: side of the square input after preprocessing.
        trainable: False freezes the parameters, keeps the module in eval mode and encodes without autograd.
        mean, std: per-channel normalisation applied after scaling pixels to [0, 1].
        observation_key: the observation array ``encode_frames`` reads: ``"pixels"`` (every image encoder) or
            ``"state"`` (``StateEncoder``: the env's exact state).
        source_config: for an encoder taken from a checkpoint (``model.encoder.type: checkpoint``), the concrete
            config it was built from; a world model trained on it stores it, so it reloads without that file.
            None for every other encoder, whose own config is concrete.
    """

    observation_key: str = "pixels"

    def __init__(
        self,
        embed_dim: int,
        grid_size: int | tuple[int, int],
        img_size: int,
        trainable: bool = True,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__()
        grid = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"{type(self).__name__}: grid_size must be an int or (h, w) >= 1, got {grid_size}")
        if embed_dim < 1 or img_size < 1:
            raise ValueError(f"{type(self).__name__}: embed_dim and img_size must be >= 1, got {embed_dim}, {img_size}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"{type(self).__name__}: mean/std need 3 values with std > 0, got {mean}, {std}")
        self.embed_dim = embed_dim
        self.grid_size: tuple[int, int] = (int(grid[0]), int(grid[1]))
        self.img_size = img_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.trainable = trainable
        self.normalize_output = False  # parameter-free LayerNorm over D on the tokens (V-JEPA-2-AC)
        self.source_config: EncoderConfig | None = None

    @property
    def num_tokens(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def set_trainable(self, trainable: bool) -> Encoder:
        """Freeze (False) or unfreeze (True) every parameter; returns self."""
        self.trainable = trainable
        self.requires_grad_(trainable)
        return self.train(self.training)

    def train(self, mode: bool = True) -> Encoder:
        # A frozen encoder must behave identically at train and plan time, whatever its parent module does.
        return super().train(mode and self.trainable)

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``(B, 3, img, img)`` -> tokens ``(B, N, D)``."""

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``(..., H, W, 3)`` -> normalised float32 ``(..., 3, img, img)`` on the same device."""
        if pixels.dtype != torch.uint8 or pixels.dim() < 3 or pixels.shape[-1] != 3:
            raise ValueError(
                f"{type(self).__name__}.preprocess: expected uint8 frames (..., H, W, 3), "
                f"got {pixels.dtype} {tuple(pixels.shape)}"
            )
        lead, (height, width) = pixels.shape[:-3], pixels.shape[-3:-1]
        # A permuted (..., H, W, 3) view is already channels-last, the layout oneDNN convolutions prefer; the
        # scale and shift below keep it, and fold /255 and the normalisation into one pass over the pixels.
        x = pixels.reshape(-1, height, width, 3).permute(0, 3, 1, 2)
        if height != width:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            x = x[:, :, top : top + side, left : left + side]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        if x.shape[-1] != self.img_size:
            x = F.interpolate(
                x.float().div_(255.0),
                size=(self.img_size, self.img_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            x = (x - mean) / std
        else:
            x = x.float().mul_(1.0 / (255.0 * std)).sub_(mean / std)
        return x.reshape(*lead, 3, self.img_size, self.img_size)

    def encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 videos ``(B, T, H, W, 3)`` -> tokens ``(B, T, N, D)``; time is folded into the batch."""
        if pixels.dim() != 5:
            raise ValueError(
                f"{type(self).__name__}.encode_frames: expected (B, T, H, W, 3), got {tuple(pixels.shape)}"
            )
        param = next(self.parameters(), None)
        if param is not None:
            # Move uint8 before converting: 4x less to transfer than float.
            pixels = pixels.to(param.device)
        batch, frames = pixels.shape[:2]
        x = self.preprocess(pixels).flatten(0, 1)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            tokens = self(x)
        if tokens.shape != (batch * frames, self.num_tokens, self.embed_dim):
            raise ValueError(
                f"{type(self).__name__}.forward returned {tuple(tokens.shape)}, expected "
                f"(B·T={batch * frames}, N={self.num_tokens}, D={self.embed_dim})"
            )
        if self.normalize_output:
            tokens = F.layer_norm(tokens, tokens.shape[-1:])
        return tokens.unflatten(0, (batch, frames))
