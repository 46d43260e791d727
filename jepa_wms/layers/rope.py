"""Three-axis rotary position embedding (time, row, column) for ViT attention.

Contract: ``RotaryEmbedding3D(head_dim, legacy=False)(x (..., N, hd), pos (N, 3)) -> same shape as x``.

The head dimension is cut into three equal chunks of ``d = 2 * ((head_dim // 3) // 2)`` channels, one per axis
(frame, row, col); the leftover channels pass through unrotated. Every chunk uses the frequencies
``f_i = theta ** (-2i / d)``, ``i < d/2``, times the token's coordinate on that axis.

Default mode: the channel pair ``(2i, 2i + 1)`` is rotated by the angle ``pos · f_i``. Every pair undergoes a
true 2-D rotation, so the transform preserves norms and ``<R(p) q, R(p') k>`` depends only on ``p - p'``. It is
applied as one small matrix per token, ``x @ R(pos)`` with ``R`` block-diagonal: a single batched matmul reads
q/k once, where a split/rotate/stack/concatenate formulation made ~10 strided passes (measured 1.9 ms vs 7 ms
for a (128, 4, 96, 32) tensor on one CPU thread).

Legacy mode (``legacy=True``) reproduces the original JEPA-WMs / V-JEPA 2 ``rotate_queries_or_keys``, which all
released weights were trained with. It pairs the same adjacent channels but tiles the angle table as
``[f_0 .. f_{d/2-1}, f_0 .. f_{d/2-1}]`` over the chunk's d channels, so channel ``c`` uses ``f_{c mod d/2}``:

    out[2i]     = x[2i]   · cos(p f_{2i mod d/2})   - x[2i+1] · sin(p f_{2i mod d/2})
    out[2i + 1] = x[2i+1] · cos(p f_{2i+1 mod d/2}) + x[2i]   · sin(p f_{2i+1 mod d/2})

The two rows of a pair use different angles, so this is not a rotation: it changes norms and attention scores
depend on absolute positions. It is computed elementwise exactly like the original (same frequency formula,
same operation order), so fp32 results match it bit for bit. The original crashes when a chunk holds a single
pair (``d = 2``, head_dim 6..11); legacy mode refuses those head dims with a ValueError instead.

Positions: the original formed ``(frame, row, col)`` as floats from the token index inside the forward window
(frames restart at 0 every call) and multiplied row/col by ``grid_size / H`` and ``grid_size / W``, where every
predictor passed ``grid_size = H``: the factors are 1 for square grids and col is scaled by ``H / W`` otherwise.
:meth:`RotaryEmbedding3D.grid_positions` returns those positions in legacy mode. Conditioning tokens (action /
proprio tokens of V-JEPA-2-AC) got only the temporal rotation at their frame index, which equals position
``(t, 0, 0)`` here since a zero angle leaves channels unchanged in both modes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RotaryEmbedding3D", "grid_positions"]


def grid_positions(
    num_frames: int,
    grid_h: int,
    grid_w: int,
    frame_offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Integer (frame, row, col) of every token, frame-major then row-major: ``(T·h·w, 3)`` long."""
    for name, value in (("num_frames", num_frames), ("grid_h", grid_h), ("grid_w", grid_w)):
        if value < 1:
            raise ValueError(f"grid_positions: {name} must be >= 1, got {value}")
    if frame_offset < 0:
        raise ValueError(f"grid_positions: frame_offset must be >= 0, got {frame_offset}")
    frames = torch.arange(frame_offset, frame_offset + num_frames, device=device)
    rows = torch.arange(grid_h, device=device)
    cols = torch.arange(grid_w, device=device)
    t, r, c = torch.meshgrid(frames, rows, cols, indexing="ij")
    return torch.stack([t, r, c], dim=-1).reshape(-1, 3)


class RotaryEmbedding3D(nn.Module):
    """3-D RoPE; holds no parameters and no length-dependent tables (angles come from the positions)."""

    def __init__(self, head_dim: int, theta: float = 10000.0, legacy: bool = False) -> None:
        super().__init__()
        if head_dim < 1:
            raise ValueError(f"RotaryEmbedding3D: head_dim must be >= 1, got {head_dim}")
        if theta <= 0:
            raise ValueError(f"RotaryEmbedding3D: theta must be > 0, got {theta}")
        self.head_dim = head_dim
        self.theta = float(theta)
        self.legacy = bool(legacy)
        # A chunk may be empty (head_dim < 6): then the embedding is the identity rather than an error.
        self.chunk_dim = 2 * ((head_dim // 3) // 2)
        self.rotated_dim = 3 * self.chunk_dim
        if self.legacy and self.chunk_dim == 2:
            raise ValueError(
                f"RotaryEmbedding3D(legacy=True): head_dim {head_dim} gives one channel pair per axis, where the "
                "original rotate_queries_or_keys crashes (its sin/cos tiling squeezes the single frequency away); "
                "use head_dim < 6 or >= 12, or the standard RoPE"
            )

    def extra_repr(self) -> str:
        legacy = ", legacy=True" if self.legacy else ""
        return f"head_dim={self.head_dim}, chunk_dim={self.chunk_dim}, theta={self.theta:g}{legacy}"

    # ----------------------------------------------------------------------------------------------------
    # Positions and angles.

    def grid_positions(
        self,
        num_frames: int,
        grid_h: int,
        grid_w: int,
        frame_offset: int = 0,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Positions of a ``num_frames × grid_h × grid_w`` token block as this mode expects them: ``(N, 3)``.

        Default: integer :func:`grid_positions`. Legacy: the original's float32 positions, col scaled by
        ``grid_h / grid_w`` (exactly 1 on square grids).
        """
        pos = grid_positions(num_frames, grid_h, grid_w, frame_offset, device)
        if not self.legacy:
            return pos
        pos = pos.to(torch.float32)
        if grid_h != grid_w:
            # Same operation as the original's in-place `w_mask *= grid_size / W` with grid_size = H.
            pos[:, 2] *= grid_h / grid_w
        return pos

    def inv_freq(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Per-chunk frequencies ``(chunk_dim // 2,)`` float32."""
        half = self.chunk_dim // 2
        if self.legacy:
            # The original's exact operation sequence (arange / (d/2), then 1 / theta**·) for bitwise equality.
            exponent = torch.arange(half, dtype=torch.float32, device=device) / (self.chunk_dim / 2.0)
            return 1.0 / self.theta**exponent
        exponent = torch.arange(half, device=device, dtype=torch.float32) * (2.0 / max(self.chunk_dim, 1))
        return self.theta ** (-exponent)

    def _check_pos(self, pos: torch.Tensor) -> None:
        if pos.dim() != 2 or pos.shape[-1] != 3:
            raise ValueError(f"RotaryEmbedding3D: positions must be (N, 3) = (frame, row, col), got {tuple(pos.shape)}")

    def angles(self, pos: torch.Tensor) -> torch.Tensor:
        """Angle of every channel pair (default mode): ``(N, 3) -> (N, rotated_dim // 2)`` in float32.

        Computed in float32 even under autocast: bf16 angles of a few radians would already be off by ~1e-2.
        """
        self._check_pos(pos)
        # (N, 3, 1) * (half,) -> (N, 3, half): axis-major, matching the channel layout time|row|col.
        return (pos.to(torch.float32).unsqueeze(-1) * self.inv_freq(pos.device)).flatten(-2)

    def channel_angles(self, pos: torch.Tensor) -> torch.Tensor:
        """Angle used by every rotated channel: ``(N, 3) -> (N, rotated_dim)`` float32.

        Default: each pair's angle on both its channels. Legacy: the original's tiled table, channel ``c`` of a
        chunk using frequency ``c mod (chunk_dim / 2)``.
        """
        self._check_pos(pos)
        freq = pos.to(torch.float32).unsqueeze(-1) * self.inv_freq(pos.device)  # (N, 3, half)
        if self.legacy:
            return torch.cat((freq, freq), dim=-1).flatten(-2)
        return freq.repeat_interleave(2, dim=-1).flatten(-2)

    def matrices(self, pos: torch.Tensor) -> torch.Tensor:
        """Per-token maps ``(N, head_dim, head_dim)`` (float32) acting on row vectors: ``x_rot = x @ R``.

        For pair ``(2i, 2i+1)`` whose channels use the angles a (row 2i) and b (row 2i+1):
        ``x_rot[2i] = x[2i] cos a - x[2i+1] sin a`` and ``x_rot[2i+1] = x[2i] sin b + x[2i+1] cos b``; a = b in
        the default mode. Unrotated channels keep a 1 on the diagonal.
        """
        angles = self.channel_angles(pos)
        num = angles.shape[0]
        mats = torch.eye(self.head_dim, device=pos.device).repeat(num, 1, 1)
        if self.rotated_dim:
            cos, sin = angles.cos(), angles.sin()
            even = torch.arange(0, self.rotated_dim, 2, device=pos.device)
            mats[:, even, even] = cos[:, even]
            mats[:, even + 1, even] = -sin[:, even]
            mats[:, even + 1, even + 1] = cos[:, even + 1]
            mats[:, even, even + 1] = sin[:, even + 1]
        return mats

    # ----------------------------------------------------------------------------------------------------
    # Application.

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Rotate queries and/or keys ``x (..., N, hd)`` (e.g. ``(B, heads, N, hd)``) at ``pos (N, 3)``."""
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"RotaryEmbedding3D: expected head dim {self.head_dim}, got input {tuple(x.shape)}")
        if pos.dim() != 2 or pos.shape[0] != x.shape[-2]:
            raise ValueError(
                f"RotaryEmbedding3D: positions must be (N, 3) with N = {x.shape[-2]} tokens of input "
                f"{tuple(x.shape)}, got {tuple(pos.shape)}"
            )
        if self.rotated_dim == 0:
            return x
        if self.legacy:
            return self._legacy_forward(x, pos)
        return torch.einsum("...nd,nde->...ne", x, self.matrices(pos).to(x.dtype))

    def _legacy_forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # Elementwise like the original (a matmul would fuse the two products differently and differ in the last
        # bit). Tables are float32 and then cast, where the original computed them in x's dtype (bf16 under
        # autocast): more accurate, and identical in fp32.
        angles = self.channel_angles(pos)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        rot = x[..., : self.rotated_dim]
        pairs = rot.unflatten(-1, (-1, 2))
        partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (-x1, x0, -x3, x2, ...)
        out = (rot * cos) + (partner * sin)
        if self.rotated_dim == self.head_dim:
            return out
        return torch.cat((out, x[..., self.rotated_dim :]), dim=-1)
