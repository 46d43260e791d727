"""Pixel decoder: latent tokens back to a frame, for a reconstruction term next to the anti-collapse loss.

A small encoder trained end to end only has to keep what the predictor needs and what the regulariser counts. On
Push-T that is the agent: it moves with every action, and its position alone spreads the latents, so the block's
pose ends up barely encoded (a linear probe on the `--quick` latents reads the agent's xy with R² 0.99 but the
block's with 0.5, and its angle not at all) and the planning cost cannot see the block. A reconstruction term asks
the encoder to keep whatever covers pixels, the large T included. Measured on the `--quick` recipes it did not
change that probe (block xy 0.45) nor help planning (Push-T 30.2 → 26.0 %; reach-wall 22.9 / 29.2 → 32.3 / 26.0 %
on two eval seeds), so it is off by default; it is here for encoders and tasks where it does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jepa_wms.encoders.conv import num_groups

__all__ = ["PixelDecoder"]


class PixelDecoder(nn.Module):
    """``(B, N, D)`` tokens on an ``(h, w)`` grid → ``(B, 3, img, img)`` frames in the encoder's normalised space.

    A 1×1 conv to ``channels[0]``, then one 4×4 stride-2 transposed conv + GroupNorm + GELU per doubling of the side
    (``img_size / h`` must be a power of two, and equal ``img_size / w``); stage k has ``channels[min(k, len − 1)]``
    channels. A 3×3 conv makes the RGB output.
    """

    def __init__(self, embed_dim: int, grid_size: tuple[int, int], img_size: int, channels: Sequence[int]) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"PixelDecoder: channels must be a non-empty list of positive ints, got {channels}")
        grid_h, grid_w = grid_size
        scale = img_size // grid_h
        if img_size != scale * grid_h or img_size != scale * grid_w or scale & (scale - 1):
            raise ValueError(
                f"PixelDecoder: img_size {img_size} must be a power-of-two multiple of the token grid {grid_size}"
            )
        self.embed_dim, self.grid_size, self.img_size = embed_dim, (grid_h, grid_w), img_size
        self.stem = nn.Conv2d(embed_dim, channels[0], kernel_size=1)
        stages: list[nn.Module] = []
        in_ch = channels[0]
        for k in range(scale.bit_length() - 1):
            out_ch = channels[min(k, len(channels) - 1)]
            stages += [
                nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1),
                nn.GroupNorm(num_groups(out_ch), out_ch),
                nn.GELU(),
            ]
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(in_ch, 3, kernel_size=3, padding=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, num_tokens, dim = tokens.shape
        if (num_tokens, dim) != (self.grid_size[0] * self.grid_size[1], self.embed_dim):
            raise ValueError(
                f"PixelDecoder: expected (B, {self.grid_size[0] * self.grid_size[1]}, {self.embed_dim}) tokens, "
                f"got {tuple(tokens.shape)}"
            )
        x = tokens.transpose(1, 2).reshape(batch, dim, *self.grid_size)
        return self.head(self.stages(self.stem(x)))
