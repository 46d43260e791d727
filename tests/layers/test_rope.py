import math

import pytest
import torch

from jepa_wms.layers import RotaryEmbedding3D, grid_positions


def _reference_rope(x: torch.Tensor, pos: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Brute-force definition: each (time|row|col) chunk's channel pairs rotate as complex numbers."""
    head_dim = x.shape[-1]
    chunk = 2 * ((head_dim // 3) // 2)
    out = x.clone()
    for n in range(x.shape[-2]):
        for axis in range(3):
            for i in range(chunk // 2):
                angle = float(pos[n, axis]) * theta ** (-2 * i / chunk)
                c = axis * chunk + 2 * i
                pair = torch.complex(x[..., n, c], x[..., n, c + 1]) * complex(math.cos(angle), math.sin(angle))
                out[..., n, c], out[..., n, c + 1] = pair.real, pair.imag
    return out


def test_grid_positions_frame_major_row_major():
    pos = grid_positions(2, 2, 3, frame_offset=5)
    assert pos.shape == (12, 3)
    assert pos[:4].tolist() == [[5, 0, 0], [5, 0, 1], [5, 0, 2], [5, 1, 0]]
    assert pos[6].tolist() == [6, 0, 0]
    assert pos[-1].tolist() == [6, 1, 2]


@pytest.mark.parametrize("head_dim", [14, 25, 32])
def test_matches_brute_force_rotation(head_dim):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, head_dim)
    pos = grid_positions(1, 2, 3, frame_offset=4)
    got = RotaryEmbedding3D(head_dim)(x, pos)
    torch.testing.assert_close(got, _reference_rope(x, pos), atol=1e-5, rtol=1e-5)
    # Channels beyond the three chunks are untouched.
    rotated = 3 * 2 * ((head_dim // 3) // 2)
    assert torch.equal(got[..., rotated:], x[..., rotated:])


@pytest.mark.parametrize("head_dim", [6, 10, 25, 32])
def test_norm_preserving(head_dim):
    torch.manual_seed(1)
    x = torch.randn(3, 2, 8, head_dim)
    pos = torch.randint(0, 20, (8, 3))
    out = RotaryEmbedding3D(head_dim)(x, pos)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, x)  # it does rotate


@pytest.mark.parametrize("head_dim", [10, 32])
def test_dot_product_depends_only_on_relative_offset(head_dim):
    torch.manual_seed(2)
    rope = RotaryEmbedding3D(head_dim)
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)
    p, p2 = torch.tensor([[2, 1, 3]]), torch.tensor([[0, 3, 1]])

    def dot(a, b):
        return (rope(q, a) * rope(k, b)).sum()

    base = dot(p, p2)
    for delta in ([1, 0, 0], [0, 2, 0], [3, 1, 5], [-2, -1, -1]):
        d = torch.tensor([delta])
        torch.testing.assert_close(dot(p + d, p2 + d), base, atol=1e-5, rtol=1e-5)
    # ...and it does depend on the offset along every axis.
    for axis in range(3):
        shifted = p.clone()
        shifted[0, axis] += 1
        assert not torch.allclose(dot(shifted, p2), base, atol=1e-4)


@pytest.mark.parametrize("head_dim", [1, 2, 4, 5, 6, 7])
def test_tiny_head_dims_do_not_crash(head_dim):
    x = torch.randn(1, 1, 3, head_dim)
    out = RotaryEmbedding3D(head_dim)(x, grid_positions(3, 1, 1))
    assert out.shape == x.shape
    if head_dim < 6:  # every chunk is empty: identity
        assert torch.equal(out, x)


def test_leading_dims_and_bf16():
    torch.manual_seed(3)
    rope = RotaryEmbedding3D(12)
    x = torch.randn(2, 3, 2, 4, 12)  # e.g. (q|k, B, heads, N, hd)
    pos = grid_positions(1, 2, 2, frame_offset=7)
    out = rope(x, pos)
    torch.testing.assert_close(out[1, 2], rope(x[1, 2], pos))
    out_bf16 = rope(x.bfloat16(), pos)
    assert out_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(out_bf16.float(), out, atol=3e-2, rtol=3e-2)


def test_bad_inputs_raise():
    rope = RotaryEmbedding3D(12)
    with pytest.raises(ValueError, match="head dim 12"):
        rope(torch.randn(1, 1, 4, 10), grid_positions(1, 2, 2))
    with pytest.raises(ValueError, match="positions"):
        rope(torch.randn(1, 1, 4, 12), grid_positions(1, 1, 2))
    with pytest.raises(ValueError, match=r"positions must be \(N, 3\)"):
        rope(torch.randn(1, 1, 4, 12), grid_positions(1, 2, 2)[None])
    with pytest.raises(ValueError, match="head_dim"):
        RotaryEmbedding3D(0)


# ---------------------------------------------------------------------------------------------------------------
# Legacy mode: the original JEPA-WMs / V-JEPA 2 formula.


def _original_chunk(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Re-statement of the original per-chunk formula: sin/cos of ``pos · 10000^(-i/(d/2))`` tiled as
    ``[f_0..f_{d/2-1}, f_0..f_{d/2-1}]``, partner vector ``(-x1, x0, -x3, x2, ...)``."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32) / (d / 2.0))
    freq = pos.to(torch.float32)[:, None] * omega[None, :]
    sin, cos = freq.sin().repeat(1, 2), freq.cos().repeat(1, 2)
    partner = torch.empty_like(x)
    partner[..., 0::2] = -x[..., 1::2]
    partner[..., 1::2] = x[..., 0::2]
    return x * cos + partner * sin


def _original_rope(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Depth, height and width chunks rotated independently; remainder channels copied."""
    d = 2 * ((x.shape[-1] // 3) // 2)
    parts = [_original_chunk(x[..., a * d : (a + 1) * d], pos[:, a]) for a in range(3)]
    return torch.cat([*parts, x[..., 3 * d :]], dim=-1)


@pytest.mark.parametrize("head_dim", [12, 16, 25, 32, 64])
def test_legacy_matches_original_formula(head_dim):
    torch.manual_seed(4)
    x = torch.randn(2, 3, 2 * 3 * 4, head_dim)
    pos = grid_positions(2, 3, 4, frame_offset=1)
    rope = RotaryEmbedding3D(head_dim, legacy=True)
    got = rope(x, pos)
    want = _original_rope(x, pos.float())
    assert (got - want).abs().max() <= 1e-6
    # The per-token matrix form describes the same map (up to the rounding of the matmul).
    via_mats = torch.einsum("...nd,nde->...ne", x, rope.matrices(pos))
    torch.testing.assert_close(via_mats, want, atol=1e-5, rtol=1e-5)
    # It really differs from the standard rotation.
    assert not torch.allclose(got, RotaryEmbedding3D(head_dim)(x, pos), atol=1e-3)


def test_legacy_brute_force_channel_formula():
    """Channel c of a chunk uses frequency index c mod (d/2): checked one scalar at a time."""
    torch.manual_seed(5)
    head_dim, d = 16, 4
    x = torch.randn(1, 1, 2, head_dim, dtype=torch.float64)
    pos = torch.tensor([[3, 1, 2], [0, 4, 7]])
    got = RotaryEmbedding3D(head_dim, legacy=True)(x.float(), pos).double()
    for n in range(2):
        for axis in range(3):
            for c in range(d):
                a = float(pos[n, axis]) * 10000 ** (-(c % (d // 2)) / (d / 2))
                ch = axis * d + c
                partner = -x[0, 0, n, ch + 1] if c % 2 == 0 else x[0, 0, n, ch - 1]
                want = x[0, 0, n, ch] * math.cos(a) + partner * math.sin(a)
                assert abs(float(got[0, 0, n, ch]) - float(want)) < 1e-5
    assert torch.equal(got[..., 3 * d :], x.float().double()[..., 3 * d :])


def test_legacy_is_not_norm_preserving_nor_relative():
    torch.manual_seed(6)
    head_dim = 32
    x = torch.randn(4, 2, 8, head_dim)
    pos = torch.randint(1, 20, (8, 3))
    legacy, standard = RotaryEmbedding3D(head_dim, legacy=True), RotaryEmbedding3D(head_dim)
    torch.testing.assert_close(standard(x, pos).norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)
    norm_change = (legacy(x, pos).norm(dim=-1) - x.norm(dim=-1)).abs().max()
    assert norm_change > 1e-2
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)
    p, p2, shift = torch.tensor([[2, 1, 3]]), torch.tensor([[0, 3, 1]]), torch.tensor([[3, 2, 1]])

    def dot(a, b):
        return float((legacy(q, a) * legacy(k, b)).sum())

    assert abs(dot(p + shift, p2 + shift) - dot(p, p2)) > 1e-3


def test_legacy_cond_token_position_rotates_only_time():
    """The original rotated action/proprio tokens only in the temporal chunk: position (t, 0, 0)."""
    torch.manual_seed(7)
    head_dim, d = 20, 6
    x = torch.randn(2, 2, 3, head_dim)
    frames = torch.arange(3)
    pos = torch.stack([frames, torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)], -1)
    got = RotaryEmbedding3D(head_dim, legacy=True)(x, pos)
    want = torch.cat([_original_chunk(x[..., :d], frames), x[..., d:]], dim=-1)
    assert (got - want).abs().max() <= 1e-6
    assert torch.equal(got[..., d:], x[..., d:])


def test_legacy_positions_follow_the_original_scaling():
    rope = RotaryEmbedding3D(12, legacy=True)
    square = rope.grid_positions(2, 3, 3, frame_offset=0)
    assert square.dtype == torch.float32 and torch.equal(square, grid_positions(2, 3, 3).float())
    wide = rope.grid_positions(1, 2, 4)
    assert wide[:, 2].tolist() == [0.0, 0.5, 1.0, 1.5] * 2  # col · H/W (the original's grid_size = H)
    assert torch.equal(wide[:, :2], grid_positions(1, 2, 4)[:, :2].float())
    assert RotaryEmbedding3D(12).grid_positions(1, 2, 4).dtype == torch.long


@pytest.mark.parametrize("head_dim", [6, 8, 11])
def test_legacy_single_pair_chunk_is_refused(head_dim):
    with pytest.raises(ValueError, match="one channel pair per axis"):
        RotaryEmbedding3D(head_dim, legacy=True)


@pytest.mark.parametrize("head_dim", [1, 4, 5])
def test_legacy_empty_chunks_are_identity(head_dim):
    x = torch.randn(1, 1, 3, head_dim)
    assert torch.equal(RotaryEmbedding3D(head_dim, legacy=True)(x, grid_positions(3, 1, 1)), x)


def test_legacy_bf16_close_to_fp32():
    torch.manual_seed(8)
    rope = RotaryEmbedding3D(24, legacy=True)
    x = torch.randn(2, 4, 24)
    pos = grid_positions(1, 2, 2, frame_offset=3)
    out = rope(x.bfloat16(), pos)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), rope(x, pos), atol=5e-2, rtol=3e-2)
