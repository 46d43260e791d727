"""Image head: a world model's frame tokens back to the frame, trained on frozen latents, so imagined rollouts can be
looked at. The loss is an L1 or L2 pixel term plus ``1 − SSIM`` (plain torch, no download): a pixel loss alone
blurs the small moving objects (the Wall dot, the Push-T agent) into the background, which SSIM's local contrast and
structure terms penalise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..encoders import Encoder, PixelDecoder

__all__ = ["ImageHead", "image_loss", "ssim", "unit_to_uint8"]

# SSIM's constants for a data range of 1 (Wang et al. 2004: K1 = 0.01, K2 = 0.03).
_C1, _C2 = 0.01**2, 0.03**2


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of images ``(B, C, H, W)`` in [0, 1] (Wang et al. 2004: Gaussian window, valid
    positions only). The window shrinks to the largest odd size that fits images smaller than it."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim: expected two (B, C, H, W) images of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    size = min(window, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2
    channels = x.shape[1]
    kernel = _gaussian_window(size, sigma, x.device).to(x.dtype).expand(channels, 1, size, size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    # (Co)variances are shift-invariant: computed on images centred per channel, float32 keeps their digits
    # (E[x²] − E[x]² of raw intensities loses them to cancellation, against C2 = 9e-4).
    xc, yc = x - x.mean((2, 3), keepdim=True), y - y.mean((2, 3), keepdim=True)
    mu_xc, mu_yc = blur(xc), blur(yc)
    var_x = blur(xc * xc) - mu_xc**2
    var_y = blur(yc * yc) - mu_yc**2
    cov = blur(xc * yc) - mu_xc * mu_yc
    num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    den = (mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2)
    return (num / den).mean()


class ImageHead(nn.Module):
    """Tokens ``(B, N, D)`` of a square grid → frames ``(B, 3, img, img)`` in the encoder's normalised pixel space.

    A :class:`PixelDecoder` doubles the grid up to the first power-of-two multiple at or above ``img_size`` (a
    DINOv2 grid of 16 at 224 px decodes at 256), resized to ``img_size`` when that differs.
    """

    def __init__(self, encoder: Encoder, channels: Sequence[int]) -> None:
        super().__init__()
        if encoder.observation_key != "pixels":
            raise ValueError(
                f"an image head decodes image tokens, but this world model's encoder reads '{encoder.observation_key}'"
            )
        grid_h, grid_w = encoder.grid_size
        if grid_h != grid_w:
            raise ValueError(f"an image head needs a square token grid, this encoder's is {encoder.grid_size}")
        scale = 2 ** max(0, math.ceil(math.log2(encoder.img_size / grid_h)))
        self.img_size = encoder.img_size
        self.register_buffer("mean", torch.tensor(encoder.mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(encoder.std).view(3, 1, 1), persistent=False)
        self.decoder = PixelDecoder(encoder.embed_dim, encoder.grid_size, grid_h * scale, channels)

    def forward(self, tokens: Tensor) -> Tensor:
        out = self.decoder(tokens)
        if out.shape[-1] != self.img_size:
            out = F.interpolate(out, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        return out

    def to_unit(self, x: Tensor) -> Tensor:
        """Normalised frames ``(..., 3, S, S)`` → [0, 1] RGB (what SSIM, errors and videos read)."""
        return x * self.std + self.mean

    def to_uint8(self, x: Tensor) -> Tensor:
        """Normalised frames ``(..., 3, S, S)`` → uint8 ``(..., S, S, 3)`` for videos."""
        return unit_to_uint8(self.to_unit(x))


def unit_to_uint8(x: Tensor) -> Tensor:
    """[0, 1] RGB ``(..., 3, S, S)`` → uint8 ``(..., S, S, 3)`` (clipped)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1)


def image_loss(pred: Tensor, target: Tensor, head: ImageHead, pixel: str, ssim_weight: float) -> tuple[Tensor, dict]:
    """``pixel`` (``l1`` | ``l2``) distance in normalised pixels + ``ssim_weight`` × (1 − SSIM) in [0, 1] RGB."""
    pixel_term = F.l1_loss(pred, target) if pixel == "l1" else F.mse_loss(pred, target)
    similarity = ssim(head.to_unit(pred), head.to_unit(target))
    loss = pixel_term + ssim_weight * (1 - similarity)
    return loss, {"loss_pixel": float(pixel_term.detach()), "ssim": float(similarity.detach())}
