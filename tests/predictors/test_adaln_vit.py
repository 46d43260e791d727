import pytest
import torch

from jepa_wms.predictors import AdaLNPredictor

B, T, GRID, D, A, E = 2, 4, (2, 3), 8, 3, 4
N = GRID[0] * GRID[1]


def _model(proprio_dim: int = E, mixing: bool = True, **kwargs) -> AdaLNPredictor:
    """A small predictor. With ``mixing`` its weights are re-drawn at unit gain: at the official init the
    residual gates are ~0.05, so cross-frame influence is ~1e-6 and a broken cache or mask would hide in it.
    """
    torch.manual_seed(0)
    args = dict(
        embed_dim=D,
        action_dim=A,
        proprio_emb_dim=proprio_dim,
        pred_dim=12,
        depth=2,
        num_heads=2,
        grid_size=GRID,
    )
    model = AdaLNPredictor(**{**args, **kwargs}).eval()
    if mixing:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "norm" in name:
                    param.add_(0.1 * torch.randn_like(param))
                elif param.dim() == 2:
                    param.normal_(0.0, param.shape[1] ** -0.5)
                else:
                    param.normal_(0.0, 0.1)
    return model


def _inputs(frames: int = T, proprio_dim: int = E, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, frames, N, D, generator=g)
    a = torch.randn(B, frames, A, generator=g)
    p = torch.randn(B, frames, proprio_dim, generator=g) if proprio_dim else None
    return z, a, p


def test_official_parameter_names():
    names = {n for n, _ in _model().named_parameters()}
    official = {
        "predictor_embed.weight",
        "predictor_embed.bias",
        "action_encoder.weight",
        "action_encoder.bias",
        "predictor_norm.weight",
        "predictor_norm.bias",
        "predictor_proj.weight",
        "predictor_proj.bias",
    }
    for i in range(2):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"):
            official |= {f"predictor_blocks.{i}.{part}.weight", f"predictor_blocks.{i}.{part}.bias"}
    assert names == official
    m = _model()
    assert m.predictor_embed.weight.shape == (12, D)
    assert m.action_encoder.weight.shape == (12 + E, A)
    assert m.predictor_blocks[0].adaLN_modulation[1].weight.shape == (6 * (12 + E), 12 + E)
    assert m.predictor_proj.weight.shape == (D, 12)


@pytest.mark.parametrize("t", [0, 1, 2])
def test_frame_causal_prediction_ignores_the_future(t):
    model = _model()
    z, a, p = _inputs()
    z_pred, p_pred = model(z, a, p)
    z2, a2, p2 = z.clone(), a.clone(), p.clone()
    z2[:, t + 1 :] += 5 * torch.randn_like(z2[:, t + 1 :])
    a2[:, t + 1 :] += 5
    p2[:, t + 1 :] -= 5
    z_pred2, p_pred2 = model(z2, a2, p2)
    torch.testing.assert_close(z_pred2[:, : t + 1], z_pred[:, : t + 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(p_pred2[:, : t + 1], p_pred[:, : t + 1], atol=1e-6, rtol=0)
    # The future inputs did reach the later outputs, so the test is not vacuous.
    assert (z_pred2[:, t + 1 :] - z_pred[:, t + 1 :]).abs().max() > 1e-3


def test_each_input_influences_its_own_and_later_frames():
    model = _model()
    z, a, p = _inputs()
    z_pred, p_pred = model(z, a, p)
    for name, idx in (("z", 0), ("a", 1), ("p", 2)):
        args = [z.clone(), a.clone(), p.clone()]
        args[idx][:, 1] += 1.0
        changed, _ = model(*args)
        delta = (changed - z_pred).abs().amax(dim=(0, 2, 3))
        assert delta[0] == 0, name
        assert (delta[1:] > 1e-2).all(), (name, delta)


def test_step_with_cache_equals_forward():
    model = _model()
    z, a, p = _inputs()
    z_pred, p_pred = model(z, a, p)
    cache = model.new_cache(B)
    steps = [model.step(z[:, t], a[:, t], p[:, t], cache) for t in range(T)]
    assert cache.num_frames == T
    torch.testing.assert_close(torch.stack([s[0] for s in steps], 1), z_pred, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack([s[1] for s in steps], 1), p_pred, atol=1e-5, rtol=1e-5)
    # Chunked prefill (3 frames, then 1) gives the same answer.
    cache = model.new_cache(B)
    first, _ = model.extend(z[:, :3], a[:, :3], p[:, :3], cache)
    last, _ = model.extend(z[:, 3:], a[:, 3:], p[:, 3:], cache)
    torch.testing.assert_close(torch.cat([first, last], 1), z_pred, atol=1e-5, rtol=1e-5)


def _naive_rollout(model, z_ctx, a_ctx, p_ctx, actions):
    """Re-run `forward` on the growing window and keep its last output."""
    z_win, p_win, a_win = z_ctx, p_ctx, a_ctx
    zs, ps = [], []
    for h in range(actions.shape[1]):
        a_win = torch.cat([a_win, actions[:, h : h + 1]], 1)
        z_pred, p_pred = model(z_win, a_win, p_win)
        zs.append(z_pred[:, -1])
        z_win = torch.cat([z_win, z_pred[:, -1:]], 1)
        if p_win is not None:
            ps.append(p_pred[:, -1])
            p_win = torch.cat([p_win, p_pred[:, -1:]], 1)
    return torch.stack(zs, 1), torch.stack(ps, 1) if ps else None


@pytest.mark.parametrize(("context", "proprio_dim"), [(1, E), (3, E), (2, 0)])
def test_rollout_equals_naive_loop(context, proprio_dim):
    model = _model(proprio_dim)
    z, a, p = _inputs(context, proprio_dim)
    actions = torch.randn(B, 4, A)
    p_ctx = p if proprio_dim else None
    got_z, got_p = model.rollout(z, a[:, : context - 1], p_ctx, actions)
    want_z, want_p = _naive_rollout(model, z, a[:, : context - 1], p_ctx, actions)
    assert got_z.shape == (B, 4, N, D)
    torch.testing.assert_close(got_z, want_z, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # planning path: the cache grows in place
        torch.testing.assert_close(model.rollout(z, a[:, : context - 1], p_ctx, actions)[0], got_z)
    if proprio_dim:
        torch.testing.assert_close(got_p, want_p, atol=1e-5, rtol=1e-5)
    else:
        assert got_p is None


def test_expanded_cache_serves_many_candidates_and_stays_intact():
    model = _model()
    z, a, p = _inputs(3)
    samples = 5
    base = model.new_cache(B)
    model.extend(z[:, :2], a[:, :2], p[:, :2], base)
    keys_before = base.layers[0].keys.clone()
    actions = torch.randn(B * samples, 3, A)
    cache = base.repeat_interleave(samples)
    with torch.no_grad():  # the in-place (planning) path must not write into `cache` or `base` either
        got_z, got_p = model.rollout_from_cache(
            cache, z[:, 2].repeat_interleave(samples, 0), p[:, 2].repeat_interleave(samples, 0), actions
        )
    want_z, want_p = model.rollout(
        z.repeat_interleave(samples, 0),
        a[:, :2].repeat_interleave(samples, 0),
        p.repeat_interleave(samples, 0),
        actions,
    )
    torch.testing.assert_close(got_z, want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_p, want_p, atol=1e-5, rtol=1e-5)
    # Neither the candidate cache nor the context cache was extended.
    assert cache.num_frames == 2 and base.num_frames == 2 and cache.layers[0].num_tokens == 2 * N
    assert torch.equal(base.layers[0].keys, keys_before)
    # expand() on a batch-1 context equals repeat_interleave.
    single = model.new_cache(1)
    model.extend(z[:1, :2], a[:1, :2], p[:1, :2], single)
    z_e, _ = model.rollout_from_cache(
        single.expand(samples),
        z[:1, 2].expand(samples, -1, -1),
        p[:1, 2].expand(samples, -1),
        actions[:samples],
    )
    torch.testing.assert_close(z_e, got_z[:samples], atol=1e-5, rtol=1e-5)


def test_gradients_flow_through_rollout():
    model = _model().train()
    z, a, p = _inputs(2)
    z.requires_grad_(True)
    actions = torch.randn(B, 3, A, requires_grad=True)
    z_out, p_out = model.rollout(z, a[:, :1], p, actions)
    # Loss on the last step only: reaching actions[:, 0] requires going through the fed-back predictions.
    (z_out[:, -1].pow(2).mean() + p_out[:, -1].pow(2).mean()).backward()
    assert actions.grad[:, 0].abs().sum() > 0 and z.grad.abs().sum() > 0
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_init_scales():
    model = _model(mixing=False, depth=3, init_scale_adaln=10.0, pred_dim=60)
    mod_std = torch.cat([b.adaLN_modulation[1].weight.flatten() for b in model.predictor_blocks]).std()
    assert 0.17 < mod_std < 0.23
    stds = [b.mlp.fc2.weight.std().item() for b in model.predictor_blocks]
    for layer_id, std in enumerate(stds, start=1):
        assert abs(std * (2 * layer_id) ** 0.5 - 0.02) < 0.002
    assert all(b.attn.qkv.bias.abs().sum() == 0 for b in model.predictor_blocks)
    zero = _model(mixing=False, init_scale_adaln=0.0)
    z, a, p = _inputs()
    # AdaLN-zero: every gate is 0 at init, so blocks are identities.
    assert all(b.adaLN_modulation[1].weight.abs().sum() == 0 for b in zero.predictor_blocks)
    x = zero.predictor_embed(z)
    expect = zero.predictor_proj(zero.predictor_norm(torch.cat([x, p[:, :, None].expand(-1, -1, N, -1)], -1))[..., :12])
    torch.testing.assert_close(zero(z, a, p)[0], expect, atol=1e-6, rtol=1e-6)


def test_bf16_autocast_close_to_fp32():
    model = _model(mixing=False)
    z, a, p = _inputs()
    ref, _ = model(z, a, p)
    with torch.autocast("cpu", torch.bfloat16):
        out, p_out = model(z, a, p)
        roll, _ = model.rollout(z[:, :2], a[:, :1], p[:, :2], a[:, 1:])
    assert out.dtype == torch.bfloat16 and roll.shape == (B, 3, N, D)
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
    # Planning path: no autograd, bf16 attention and an in-place cache.
    ref_roll, _ = model.rollout(z[:, :2], a[:, :1], p[:, :2], a[:, 1:])
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        fast, _ = model.rollout(z[:, :2], a[:, :1], p[:, :2], a[:, 1:])
    assert (fast.float() - ref_roll).abs().max() < 0.05 * ref_roll.abs().max()


def test_shape_errors_name_the_problem():
    model = _model()
    z, a, p = _inputs()
    with pytest.raises(ValueError, match="latents must be"):
        model(z[:, :, :5], a, p)
    with pytest.raises(ValueError, match="actions must be"):
        model(z, a[:, :3], p)
    with pytest.raises(ValueError, match="proprio must be"):
        model(z, a, None)
    with pytest.raises(ValueError, match="proprio_emb_dim=0"):
        _model(0)(z, a, p)
    with pytest.raises(ValueError, match="a_ctx must be"):
        model.rollout(z, a, p, a)
    with pytest.raises(ValueError, match="multiple of"):
        _model(pred_dim=11)
    with pytest.raises(ValueError, match="does not fit batch"):
        model.extend(z, a, p, model.new_cache(B + 1))
