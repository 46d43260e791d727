import math

import pytest
import torch
import torch.nn.functional as F

from jepa_wms.layers import Attention, KVCache, Mlp, RotaryEmbedding3D, frame_causal_mask, grid_positions


def _manual_attention(attn: Attention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    b, n, d = x.shape
    h, hd = attn.num_heads, attn.head_dim
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(d, dim=-1)
    q, k, v = (t.view(b, n, h, hd).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    return out @ attn.proj.weight.T + attn.proj.bias


def test_matches_manual_softmax_attention():
    torch.manual_seed(0)
    attn = Attention(16, 4)
    x = torch.randn(2, 6, 16)
    mask = frame_causal_mask(3, 2)
    torch.testing.assert_close(attn(x, mask=mask), _manual_attention(attn, x, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn(x), _manual_attention(attn, x, None), atol=1e-5, rtol=1e-5)


def test_parameter_names():
    names = {n for n, _ in Attention(8, 2).named_parameters()} | {n for n, _ in Mlp(8, 32).named_parameters()}
    assert names == {
        "qkv.weight",
        "qkv.bias",
        "proj.weight",
        "proj.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    }


def test_mlp_is_fc1_gelu_fc2():
    torch.manual_seed(0)
    mlp = Mlp(4, 8)
    x = torch.randn(3, 4)
    torch.testing.assert_close(mlp(x), mlp.fc2(F.gelu(mlp.fc1(x))))


def test_cached_chunks_equal_one_causal_pass():
    torch.manual_seed(1)
    tokens, frames = 4, 5
    attn = Attention(24, 2, rope=RotaryEmbedding3D(12))
    x = torch.randn(3, frames * tokens, 24)
    pos = grid_positions(frames, 2, 2)
    full = attn(x, pos, frame_causal_mask(frames, tokens))

    cache = KVCache(3)
    parts, start = [], 0
    for chunk in (2, 1, 2):  # frames per call
        sl = slice(start * tokens, (start + chunk) * tokens)
        mask = frame_causal_mask(chunk, tokens, past_frames=start)
        parts.append(attn(x[:, sl], pos[sl], mask, cache))
        start += chunk
    assert cache.num_tokens == frames * tokens
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_expand_and_repeat_do_not_touch_the_parent():
    keys = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)
    parent = KVCache(2, keys, keys + 100)
    rep = parent.repeat_interleave(3)
    assert rep.batch_size == 6
    assert torch.equal(rep.keys[0], keys[0]) and torch.equal(rep.keys[2], keys[0]) and torch.equal(rep.keys[3], keys[1])
    rep.append(torch.zeros(6, 1, 1, 2), torch.zeros(6, 1, 1, 2))
    assert rep.num_tokens == 4 and parent.num_tokens == 3
    assert torch.equal(parent.keys, keys)

    single = KVCache(1, keys[:1], keys[:1])
    wide = single.expand(5)
    assert wide.batch_size == 5 and torch.equal(wide.keys[4], keys[0])
    wide.append(torch.ones(5, 1, 2, 2), torch.ones(5, 1, 2, 2))
    assert single.num_tokens == 3 and wide.num_tokens == 5
    assert KVCache(1).expand(4).batch_size == 4
    with pytest.raises(ValueError, match="batch-1"):
        parent.expand(4)
    with pytest.raises(ValueError, match="batch 2"):
        parent.append(torch.zeros(3, 1, 1, 2), torch.zeros(3, 1, 1, 2))


def test_bad_mask_and_missing_positions_raise():
    attn = Attention(8, 2, rope=RotaryEmbedding3D(4))
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="positions"):
        attn(x)
    with pytest.raises(ValueError, match="mask must be"):
        attn(x, grid_positions(1, 2, 2), frame_causal_mask(1, 2))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        Attention(10, 3)


def test_reserved_cache_grows_in_place_without_touching_derived_caches():
    torch.manual_seed(2)
    chunks = [torch.randn(2, 1, 3, 4) for _ in range(4)]
    plain, fast = KVCache(2), KVCache(2)
    with torch.no_grad():
        fast.reserve(6)  # room for two chunks, then it must reallocate
        snapshots = []
        for chunk in chunks:
            plain.append(chunk, -chunk)
            keys, values = fast.append(chunk, -chunk)
            assert torch.equal(keys, plain.keys) and torch.equal(values, plain.values)
            snapshots.append((fast.copy(), keys.clone()))
    assert fast.num_tokens == 12
    # Copies taken along the way still hold exactly the prefix they saw, and can grow on their own.
    for copy, keys in snapshots:
        assert torch.equal(copy.keys, keys)
    grown = snapshots[0][0]
    with torch.no_grad():
        grown.append(torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4))
    assert torch.equal(fast.keys, plain.keys)
    # With autograd on, reserve is ignored so backward still works.
    k = torch.randn(2, 1, 3, 4, requires_grad=True)
    cache = KVCache(2)
    cache.reserve(9)
    for _ in range(3):
        keys, _ = cache.append(k * 2, k)
    keys.sum().backward()
    assert torch.equal(k.grad, torch.full_like(k, 6.0))
