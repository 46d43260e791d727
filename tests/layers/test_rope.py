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
