import pytest
import torch
import torch.nn.functional as F

from jepa_wms.layers import frame_causal_mask
from jepa_wms.predictors import VJepa2ACPredictor
from tests.layers.test_rope import _original_chunk, _original_rope
from tests.predictors.predictor_helpers import assert_frame_causal, inputs, mix_weights, window_rollout

B, GRID, D, A, E, PD = 2, (2, 3), 8, 3, 4, 24
N = GRID[0] * GRID[1]


def _model(proprio_dim: int = E, **kwargs) -> VJepa2ACPredictor:
    torch.manual_seed(0)
    args = dict(
        embed_dim=D, action_dim=A, proprio_emb_dim=proprio_dim, pred_dim=PD, depth=2, num_heads=2, grid_size=GRID
    )
    return mix_weights(VJepa2ACPredictor(**{**args, **kwargs}))


def test_official_parameter_names():
    shapes = {k: tuple(v.shape) for k, v in _model().state_dict().items()}
    want = {
        "predictor_embed.weight": (PD, D),
        "predictor_embed.bias": (PD,),
        "action_encoder.weight": (PD, A),
        "action_encoder.bias": (PD,),
        "proprio_encoder.weight": (PD, E),
        "proprio_encoder.bias": (PD,),
        "predictor_norm.weight": (PD,),
        "predictor_norm.bias": (PD,),
        "predictor_proj.weight": (D, PD),
        "predictor_proj.bias": (D,),
        "proprio_head.weight": (E, PD),
        "proprio_head.bias": (E,),
    }
    for i in range(2):
        for part, out_dim in (("norm1", None), ("attn.qkv", 3 * PD), ("attn.proj", PD), ("norm2", None)):
            want[f"predictor_blocks.{i}.{part}.weight"] = (PD,) if out_dim is None else (out_dim, PD)
            want[f"predictor_blocks.{i}.{part}.bias"] = (out_dim or PD,)
        want |= {
            f"predictor_blocks.{i}.mlp.fc1.weight": (4 * PD, PD),
            f"predictor_blocks.{i}.mlp.fc1.bias": (4 * PD,),
            f"predictor_blocks.{i}.mlp.fc2.weight": (PD, 4 * PD),
            f"predictor_blocks.{i}.mlp.fc2.bias": (PD,),
        }
    assert shapes == want
    # Original checkpoints: no proprio head; without proprio: no proprio token either.
    assert not any(k.startswith("proprio_head") for k in _model(predict_proprio=False).state_dict())
    bare = _model(proprio_dim=0)
    assert bare.cond_tokens == 1 and not any(k.startswith("proprio_") for k in bare.state_dict())


@pytest.mark.parametrize("past", [0, 2])
def test_token_positions(past):
    """Per frame: conditioning tokens at (t, 0, 0), then patches at (t, row, col)."""
    pos = _model()._positions(2, past, torch.device("cpu")).view(2, 2 + N, 3)
    for t in range(2):
        assert pos[t, :2].tolist() == [[past + t, 0, 0]] * 2
        assert pos[t, 2:].tolist() == [[past + t, r, c] for r in range(GRID[0]) for c in range(GRID[1])]


def test_legacy_attention_matches_the_original_token_rotation():
    """Written-out original: patch q/k rotated per (frame, row, col) chunk with the tiled sin/cos; action and proprio
    tokens only in the temporal chunk at their frame index (the remainder channels never rotate)."""
    pd, heads, frames, k_cond = 28, 2, 3, 2  # head_dim 14: chunks of 4, 2 channels left over
    model = _model(pred_dim=pd, num_heads=heads, rope="legacy")
    attn = model.predictor_blocks[0].attn
    x = torch.randn(B, frames * (k_cond + N), pd)
    mask = frame_causal_mask(frames, k_cond + N)
    got = attn(x, model._positions(frames, 0, x.device), mask)

    q, k, v = attn.qkv(x).unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4)  # (B, heads, L, hd) each
    frame_idx = torch.arange(frames)
    patch_pos = torch.stack(torch.meshgrid(frame_idx, torch.arange(GRID[0]), torch.arange(GRID[1]), indexing="ij"), -1)
    patch_pos = patch_pos.reshape(-1, 3).float()
    patch_pos[:, 2] *= GRID[0] / GRID[1]  # the original's `w *= grid_size / W` with grid_size = H (non-square grid)

    def rotate(t: torch.Tensor) -> torch.Tensor:
        t = t.unflatten(2, (frames, k_cond + N))
        cond = t[:, :, :, :k_cond].transpose(2, 3)  # (B, heads, K, T, hd): each cond slot over the frames
        cond = torch.cat([_original_chunk(cond[..., :4], frame_idx), cond[..., 4:]], -1).transpose(2, 3)
        patches = _original_rope(t[:, :, :, k_cond:].flatten(2, 3), patch_pos).unflatten(2, (frames, N))
        return torch.cat([cond, patches], 3).flatten(2, 3)

    out = F.scaled_dot_product_attention(rotate(q), rotate(k), v, attn_mask=mask)
    want = attn.proj(out.transpose(1, 2).flatten(2))
    assert (got - want).abs().max() <= 1e-5


def test_legacy_refuses_a_head_dim_the_original_crashes_on():
    with pytest.raises(ValueError, match="one channel pair per axis"):
        _model(pred_dim=16, num_heads=2, rope="legacy")  # head_dim 8


@pytest.mark.parametrize("t", [0, 1, 2])
def test_frame_causal(t):
    z, a, p = inputs(B, 4, N, D, A, E)
    assert_frame_causal(_model(), z, a, p, t)


def test_kv_cache_extend_and_step_equal_forward():
    model = _model()
    z, a, p = inputs(B, 4, N, D, A, E)
    want_z, want_p = model(z, a, p)
    cache = model.new_cache(B)
    steps = [model.step(z[:, t], a[:, t], p[:, t], cache) for t in range(4)]
    assert cache.num_frames == 4 and cache.layers[0].num_tokens == 4 * (2 + N)
    torch.testing.assert_close(torch.stack([s[0] for s in steps], 1), want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack([s[1] for s in steps], 1), want_p, atol=1e-5, rtol=1e-5)
    cache = model.new_cache(B)
    first, _ = model.extend(z[:, :3], a[:, :3], p[:, :3], cache)
    last, _ = model.extend(z[:, 3:], a[:, 3:], p[:, 3:], cache)
    torch.testing.assert_close(torch.cat([first, last], 1), want_z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("predict_proprio", [True, False])
def test_rollout_equals_naive_loop(predict_proprio):
    model = _model(predict_proprio=predict_proprio)
    z, a, p = inputs(B, 2, N, D, A, E)
    actions = torch.randn(B, 3, A)
    got_z, got_p = model.rollout(z, a[:, :1], p, actions)
    want_z, want_p = window_rollout(model, 100, z, a[:, :1], p, actions)  # a window that never slides
    torch.testing.assert_close(got_z, want_z, atol=1e-5, rtol=1e-5)
    if predict_proprio:
        torch.testing.assert_close(got_p, want_p, atol=1e-5, rtol=1e-5)
    else:  # no head: no proprio prediction, and every step is fed the last context proprio
        assert got_p is None and want_p is None and not model.predicts_proprio


def test_normalize_reps():
    z, a, p = inputs(B, 2, N, D, A, E)
    out, _ = _model(normalize_reps=True)(z, a, p)
    torch.testing.assert_close(out.mean(-1), torch.zeros(B, 2, N), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(B, 2, N), atol=1e-3, rtol=0)
    plain, _ = _model()(z, a, p)
    torch.testing.assert_close(out, F.layer_norm(plain, (D,)), atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter_through_a_rollout():
    model = _model().train()
    z, a, p = inputs(B, 2, N, D, A, E)
    actions = torch.randn(B, 3, A, requires_grad=True)
    out, p_out = model.rollout(z, a[:, :1], p, actions)
    (out[:, -1].pow(2).mean() + p_out[:, -1].pow(2).mean()).backward()
    assert actions.grad[:, 0].abs().sum() > 0
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_shape_errors():
    model = _model()
    z, a, p = inputs(B, 2, N, D, A, E)
    with pytest.raises(ValueError, match="proprio must be"):
        model(z, a, None)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        _model(pred_dim=25)
    with pytest.raises(ValueError, match="rope must be one of"):
        _model(rope="fixed")
