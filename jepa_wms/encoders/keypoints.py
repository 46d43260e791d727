"""Keypoint encoder: a frame as the image coordinates of K learned keypoints, and the decoder that pretrains it.

A planning cost compares latents with a plain L2 distance, so it measures how far apart two scenes are only if the
latent is (close to) linear in the objects' poses. A global conv or autoencoder latent keeps Push-T's block, but not
linearly: a linear probe reads its angle with R² 0.02 (README, "Pretrained, frozen encoder"). Here every latent
coordinate *is* a position. Each of K conv feature maps goes through a spatial softmax and becomes the expected
(x, y) of its activation (Levine et al. 2016, "deep spatial autoencoders"); a point fixed on a rigid body at pose
(c, θ) sits at c + R(θ)·o, linear in (c, cos θ, sin θ), so two keypoints on the block carry its position and angle
linearly, and L2 between latents is a distance between poses.

The encoder is pretrained alone (``jepa-wms pretrain``, ``training/pretrain.py``): ``KeypointDecoder`` draws a
Gaussian blob at each keypoint on a coarse grid and must redraw the frame from the blobs alone, so the keypoints must
sit on whatever covers pixels and moves (the agent, the T's bar and stem) and nothing else reaches the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.conv import conv_block, num_groups

__all__ = ["KeypointDecoder", "KeypointEncoder", "render_keypoints"]


def _coords(side: int, device: torch.device) -> torch.Tensor:
    """Pixel-centre coordinates of a ``side``-long axis in [-1, 1] (align_corners=False convention)."""
    return (torch.arange(side, device=device, dtype=torch.float32) + 0.5) * (2.0 / side) - 1.0


class KeypointEncoder(Encoder):
    """``(B, 3, img, img) -> (B, 1, 2K)``: K keypoints' (x, y) in [-1, 1] (x = column, y = row), interleaved.

    One stride-2 3×3 conv, then stride-1 3×3 convs (one per further entry of ``channels``; each + GroupNorm + GELU),
    a 1×1 conv to K maps at half the input side, and a spatial softmax per map. Half resolution keeps the expected
    positions sub-pixel on a 64-px frame, where Push-T's success radius is 2.5 px.
    """

    def __init__(
        self,
        img_size: int = 64,
        channels: Sequence[int] = (32, 32, 64, 64),
        embed_dim: int = 32,
        trainable: bool = True,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__(embed_dim, 1, img_size, trainable=trainable, mean=mean, std=std)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"KeypointEncoder: channels must be a non-empty list of positive ints, got {channels}")
        if embed_dim % 2 or img_size % 2:
            raise ValueError(
                f"KeypointEncoder: embed_dim (2 × keypoints) and img_size must be even, got {embed_dim}, {img_size}"
            )
        self.channels = channels
        self.num_keypoints = embed_dim // 2
        layers: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(channels):
            layers += conv_block(in_ch, out_ch, stride=2 if i == 0 else 1)
            in_ch = out_ch
        self.stages = nn.Sequential(*layers)
        self.head = nn.Conv2d(in_ch, self.num_keypoints, kernel_size=1)
        self.set_trainable(trainable)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images -> ``(B, K, h, w)`` spatial-softmax weights (each map sums to 1)."""
        logits = self.head(self.stages(x))
        return logits.flatten(2).softmax(-1).view_as(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f"KeypointEncoder: expected (B, 3, {self.img_size}, {self.img_size}) images, got {tuple(x.shape)}"
            )
        weights = self.heatmaps(x)
        height, width = weights.shape[-2:]
        x_pos = (weights.sum(-2) * _coords(width, x.device)).sum(-1)
        y_pos = (weights.sum(-1) * _coords(height, x.device)).sum(-1)
        return torch.stack([x_pos, y_pos], dim=-1).flatten(1)[:, None]


def render_keypoints(keypoints: torch.Tensor, side: int, sigma: float) -> torch.Tensor:
    """``(B, 2K)`` interleaved (x, y) in [-1, 1] -> ``(B, K, side, side)`` Gaussian blobs of std ``sigma`` (same
    units), peak 1; separable, so differentiable in the positions at the cost of two outer products."""
    points = keypoints.unflatten(-1, (-1, 2))
    grid = _coords(side, keypoints.device)
    gx = torch.exp(-((grid - points[..., :1]) ** 2) / (2 * sigma**2))  # (B, K, side) over columns
    gy = torch.exp(-((grid - points[..., 1:]) ** 2) / (2 * sigma**2))  # over rows
    return gy[..., :, None] * gx[..., None, :]


class KeypointDecoder(nn.Module):
    """``(B, 1, 2K)`` keypoints -> ``(B, 3, img, img)`` frames in the encoder's normalised pixel space.

    Blobs (std ``sigma``) on a grid of ``img / 4`` with two coordinate channels (the static scene is drawn from
    those), two 3×3 convs of ``channels[0]`` (their reach spans a Push-T block from any blob on it), then two
    stride-2 transposed convs (``channels[1]``, ``channels[2]``, or the last entry) and a 3×3 conv to RGB.
    """

    def __init__(self, embed_dim: int, img_size: int, channels: Sequence[int], sigma: float = 0.1) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1 or embed_dim % 2 or img_size % 4:
            raise ValueError(
                f"KeypointDecoder: needs positive channels, an even embed_dim and img_size divisible by 4, got "
                f"{channels}, {embed_dim}, {img_size}"
            )
        self.embed_dim, self.img_size, self.sigma = embed_dim, img_size, sigma
        widths = [channels[min(k, len(channels) - 1)] for k in range(3)]
        self.body = nn.Sequential(
            *conv_block(embed_dim // 2 + 2, widths[0], stride=1), *conv_block(widths[0], widths[0], stride=1)
        )
        up: list[nn.Module] = []
        for in_ch, out_ch in zip(widths[:2], widths[1:], strict=True):
            up += [nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1), nn.GroupNorm(num_groups(out_ch), out_ch)]
            up.append(nn.GELU())
        self.up = nn.Sequential(*up)
        self.head = nn.Conv2d(widths[2], 3, kernel_size=3, padding=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3 or tokens.shape[1:] != (1, self.embed_dim):
            raise ValueError(f"KeypointDecoder: expected (B, 1, {self.embed_dim}) keypoints, got {tuple(tokens.shape)}")
        side = self.img_size // 4
        blobs = render_keypoints(tokens[:, 0], side, self.sigma)
        grid = _coords(side, tokens.device)
        coords = torch.stack(torch.meshgrid(grid, grid, indexing="xy"))  # (2, side, side): x then y
        x = torch.cat([blobs, coords.expand(len(blobs), -1, -1, -1)], dim=1)
        return self.head(self.up(self.body(x)))
