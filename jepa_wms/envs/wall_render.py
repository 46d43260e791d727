"""Wall frames, in two styles chosen by ``WallConfig.render``.

``default``: our drawing at any ``img_size``. The arena [0, arena_size]² is sampled at pixel centres, so pixel i
shows coordinate (i + 0.5)·arena_size/img_size; everything outside the free square is black; the dot's intensity is
rounded to uint8 and drawn over the walls too (the red channel), so it stays visible when pressed against one.

``reference``: the original DotWall's 65-px canvas, reproduced bit for bit (checked against frames of the original
code in ``tests/fixtures/wall_reference.npz``). Pixel i shows coordinate i; the borders are 1-px black lines on the
collision lines (4 and 60) with white outside them; the wall covers the pixel columns x0..x1 and the door the rows
d0..d1, both ends included (7 columns and 9 rows by default); the dot's intensity is normalised to its maximum over
the canvas and truncated to uint8, and black pixels hide it. Released Wall models were trained on these frames
resized to 224 px; that resize is left to `jepa_wms.encoders.base.Encoder.preprocess`, whose antialiased bilinear
resize is the call torchvision's ``Resize`` makes on the original eval's tensors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jepa_wms.envs.wall import WallConfig

__all__ = ["make_renderer", "DefaultRenderer", "ReferenceRenderer"]


class DefaultRenderer:
    """Our frames: pixel-centre sampling at any size, black outside the free square, rounded dot intensity."""

    def __init__(self, cfg: WallConfig) -> None:
        self.cfg = cfg
        self._centres = (np.arange(cfg.img_size) + 0.5) * (cfg.arena_size / cfg.img_size)
        x, y = self._centres[None, :], self._centres[:, None]
        lo, hi = cfg.free_low, cfg.free_high
        outside = (x < lo) | (x > hi) | (y < lo) | (y > hi)
        in_wall = (x >= cfg.wall_x[0]) & (x <= cfg.wall_x[1]) & ~((y > cfg.door_y[0]) & (y < cfg.door_y[1]))
        # The static walls are drawn once and copied per frame.
        self._background = np.full((cfg.img_size, cfg.img_size, 3), 255, dtype=np.uint8)
        self._background[outside | in_wall] = 0
        # Beyond 4 std the dot changes no pixel after rounding (255·exp(-8) < 0.5), so only a window is drawn.
        self._radius = 4.0 * cfg.dot_std

    def __call__(self, x: float, y: float) -> np.ndarray:
        img = self._background.copy()
        cols = np.flatnonzero(np.abs(self._centres - x) <= self._radius)
        rows = np.flatnonzero(np.abs(self._centres - y) <= self._radius)
        if len(cols) == 0 or len(rows) == 0:
            return img
        inv = -0.5 / self.cfg.dot_std**2
        # The Gaussian is separable: an outer product of 1-D profiles instead of a 2-D exp.
        intensity = (
            np.exp(inv * (self._centres[rows] - y) ** 2)[:, None]
            * np.exp(inv * (self._centres[cols] - x) ** 2)[None, :]
        )
        patch = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
        patch[..., 0] = np.maximum(patch[..., 0], 255.0 * intensity)  # keeps the dot visible against a wall
        patch[..., 1:] *= (1.0 - intensity)[..., None]
        img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = np.rint(patch).astype(np.uint8)
        return img


class ReferenceRenderer:
    """The original's canvas: one pixel per arena unit, pixel i at coordinate i (see the module docstring).

    Every float operation follows the original's order in float64 (it squares a Euclidean norm, divides by the
    Gaussian's normaliser and then by the canvas maximum), because the final truncation to uint8 turns a last-bit
    difference into a whole grey level.
    """

    def __init__(self, cfg: WallConfig) -> None:
        self.cfg = cfg
        self._coords = np.arange(cfg.img_size, dtype=np.float64)
        x, y = self._coords[None, :], self._coords[:, None]
        (x0, x1), (d0, d1) = cfg.wall_x, cfg.door_y
        wall = (x >= x0) & (x <= x1) & ~((y >= d0) & (y <= d1))
        lines = (x == cfg.free_low) | (x == cfg.free_high) | (y == cfg.free_low) | (y == cfg.free_high)
        self._black = wall | lines
        self._background = np.full((cfg.img_size, cfg.img_size, 3), 255, dtype=np.uint8)
        self._background[self._black] = 0

    def __call__(self, x: float, y: float) -> np.ndarray:
        std = self.cfg.dot_std
        dx = self._coords[None, :] - x
        dy = self._coords[:, None] - y
        dist_sq = np.sqrt(dx * dx + dy * dy) ** 2
        dot = np.exp(-dist_sq / (2 * std * std)) / (2 * math.pi * std * std)
        dot = dot / dot.max()
        red = (dot * 255).astype(np.uint8)  # a truncating cast, as the original's
        img = self._background.copy()
        free = ~self._black
        img[free, 1] = 255 - red[free]
        img[free, 2] = 255 - red[free]
        return img


def make_renderer(cfg: WallConfig) -> DefaultRenderer | ReferenceRenderer:
    """The renderer ``cfg.render`` names (the config has validated it)."""
    return ReferenceRenderer(cfg) if cfg.render == "reference" else DefaultRenderer(cfg)
