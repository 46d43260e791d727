"""Inference-time head padding (``layers.attention.set_head_padding``): exact, and scaled by the original head size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jepa_wms.layers import Attention, KVCache, RotaryEmbedding3D, grid_positions, head_padding, padded_head_dim
from jepa_wms.layers.attention import set_head_padding
from jepa_wms.predictors import AdaLNPredictor


def test_padded_head_dim():
    assert padded_head_dim(25, 0) == 25
    assert padded_head_dim(25, 8) == 32
    assert padded_head_dim(24, 8) == 24
    assert padded_head_dim(25, 32) == 32
    with pytest.raises(ValueError, match="multiple"):
        padded_head_dim(25, -1)


@pytest.mark.parametrize("multiple", [8, 32])
def test_padded_attention_equals_unpadded(multiple: int):
    torch.manual_seed(0)
    # Width 100 over 4 heads: head size 25, the paper predictor's (400 / 16), padded to 32.
    rope = RotaryEmbedding3D(25)
    attn = Attention(100, 4, rope=rope).eval()
    x = torch.randn(3, 2 * 6, 100)
    pos = grid_positions(2, 2, 3)
    with torch.no_grad():
        ref = attn(x, pos)
        with head_padding(attn, multiple):
            assert attn.pad_heads_to == multiple
            out = attn(x, pos)
    assert attn.pad_heads_to == 0
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_wrong_scale_is_caught():
    """Padding with SDPA's default scale (1/sqrt(padded size)) changes the output: the equality test above would
    fail for it, so the original head size's scale is what makes the padded path exact."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 10, 25) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v)
    padded = [F.pad(t, (0, 7)) for t in (q, k, v)]
    wrong = F.scaled_dot_product_attention(*padded)[..., :25]
    right = F.scaled_dot_product_attention(*padded, scale=25**-0.5)[..., :25]
    torch.testing.assert_close(right, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(wrong, ref, atol=1e-3, rtol=1e-3)


def test_wrong_scale_in_layer_fails(monkeypatch: pytest.MonkeyPatch):
    """The layer itself, with its scale replaced by SDPA's default, no longer matches the unpadded output."""
    torch.manual_seed(0)
    attn = Attention(100, 4).eval()
    x = torch.randn(2, 8, 100)
    with torch.no_grad():
        ref = attn(x)
        sdpa = F.scaled_dot_product_attention

        def default_scale(*args: torch.Tensor, scale: float | None = None, **kwargs: object) -> torch.Tensor:
            return sdpa(*args, **kwargs)  # drops the layer's scale

        monkeypatch.setattr(F, "scaled_dot_product_attention", default_scale)
        with head_padding(attn, 32):
            wrong = attn(x)
    assert not torch.allclose(wrong, ref, atol=1e-3, rtol=1e-3)


def test_cache_holds_padded_keys_and_refuses_a_switch():
    torch.manual_seed(0)
    attn = Attention(100, 4).eval()
    cache = KVCache(2)
    with torch.no_grad(), head_padding(attn, 8):
        attn(torch.randn(2, 4, 100), cache=cache)
        assert cache.keys.shape == (2, 4, 4, 32)
    for other in (0, 64):  # unpadded (25) or padded further (64)
        with torch.no_grad(), pytest.raises(ValueError, match="head size"), head_padding(attn, other):
            attn(torch.randn(2, 4, 100), cache=cache)


def _paper_like_predictor() -> AdaLNPredictor:
    # Width 84 + 16 proprio channels over 4 heads: head size 25, as in the paper's 384 + 16 over 16.
    return AdaLNPredictor(
        embed_dim=32, action_dim=10, proprio_emb_dim=16, pred_dim=84, depth=2, num_heads=4, grid_size=(2, 3)
    ).eval()


@pytest.mark.parametrize("kv_window", [0, 2])
def test_predictor_rollout_unchanged_by_padding(kv_window: int):
    torch.manual_seed(0)
    model = _paper_like_predictor()
    z = torch.randn(3, 2, 6, 32)
    a_ctx, p_ctx = torch.randn(3, 1, 10), torch.randn(3, 2, 16)
    actions = torch.randn(3, 4, 10)
    with torch.no_grad():
        ref_z, ref_p = model.rollout(z, a_ctx, p_ctx, actions, kv_window=kv_window)
        assert set_head_padding(model, 32) == 2
        out_z, out_p = model.rollout(z, a_ctx, p_ctx, actions, kv_window=kv_window)
        set_head_padding(model, 0)
    torch.testing.assert_close(out_z, ref_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_p, ref_p, atol=1e-5, rtol=1e-5)


def test_padding_is_not_in_the_state_dict():
    model = _paper_like_predictor()
    before = set(model.state_dict())
    set_head_padding(model, 8)
    assert set(model.state_dict()) == before
