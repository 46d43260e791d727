import math

import pytest
import torch

from jepa_wms.predictors import DinoWMPredictor, WindowCache
from tests.predictors.predictor_helpers import assert_frame_causal, inputs, mix_weights

B, GRID, D, A, E, AE = 2, (2, 3), 8, 3, 4, 5
N = GRID[0] * GRID[1]


def _model(proprio_dim: int = E, **kwargs) -> DinoWMPredictor:
    torch.manual_seed(0)
    args = dict(
        embed_dim=D,
        action_dim=A,
        proprio_emb_dim=proprio_dim,
        grid_size=GRID,
        num_frames=4,
        action_emb_dim=AE,
        depth=2,
        num_heads=2,
        dim_head=6,
        ffn_dim=24,
    )
    return mix_weights(DinoWMPredictor(**{**args, **kwargs}))


def test_official_names_and_shapes_at_paper_size():
    """DINOv2 ViT-S features (384) + proprio 16 + action 10 = 410 channels, 16 heads × 64, FFN 2048, 4 frames of
    16×16 patches: the parameter tree of the original ``ViTPredictor`` plus the in-module action encoder."""
    model = DinoWMPredictor(
        embed_dim=384, action_dim=10, proprio_emb_dim=16, grid_size=(16, 16), num_frames=4, action_emb_dim=10, depth=2
    )
    dim = 410
    want = {"pos_embedding": (1, 1024, dim), "action_encoder.weight": (10, 10), "action_encoder.bias": (10,)}
    for i in range(2):
        layer = f"transformer.layers.{i}"
        want |= {
            f"{layer}.0.norm.weight": (dim,),
            f"{layer}.0.norm.bias": (dim,),
            f"{layer}.0.to_qkv.weight": (3072, dim),
            f"{layer}.0.to_out.0.weight": (dim, 1024),
            f"{layer}.0.to_out.0.bias": (dim,),
            f"{layer}.1.net.0.weight": (dim,),
            f"{layer}.1.net.0.bias": (dim,),
            f"{layer}.1.net.1.weight": (2048, dim),
            f"{layer}.1.net.1.bias": (2048,),
            f"{layer}.1.net.4.weight": (dim, 2048),
            f"{layer}.1.net.4.bias": (dim,),
        }
    want |= {"transformer.norm.weight": (dim,), "transformer.norm.bias": (dim,)}
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == want  # no mask buffers, no qkv bias
    model.load_state_dict({k: torch.randn(s) for k, s in want.items()}, strict=True)
    assert model.context_window == 4  # 0 means the whole position table


def _reference(model: DinoWMPredictor, z, a, p):
    """The original computation written out: concat channels, add positions, masked softmax attention. Proprio
    ``(B, T, E)`` is tiled and predicted as the patch mean; per patch ``(B, T, N, E)`` it stays per patch."""
    frames = z.shape[1]
    act = model.action_encoder(a)[:, :, None].expand(-1, -1, N, -1)
    per_patch = p if p.dim() == 4 else p[:, :, None].expand(-1, -1, N, -1)
    x = torch.cat([z, per_patch, act], -1).flatten(1, 2)
    x = x + model.pos_embedding[:, : frames * N]
    frame = torch.arange(frames).repeat_interleave(N)
    allowed = frame[None, :] <= frame[:, None]
    for attn, ff in model.transformer.layers:
        h = attn.norm(x)
        q, k, v = attn.to_qkv(h).chunk(3, -1)
        q, k, v = (t.unflatten(-1, (attn.heads, -1)).transpose(1, 2) for t in (q, k, v))
        dots = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        out = dots.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
        x = x + attn.to_out(out.transpose(1, 2).flatten(2))
        x = x + ff(x)
    x = model.transformer.norm(x).unflatten(1, (frames, N))
    return x[..., :D], x[..., D : D + E] if p.dim() == 4 else x[..., D : D + E].mean(2)


@pytest.mark.parametrize("per_patch", [False, True])
def test_forward_matches_written_out_reference(per_patch):
    model = _model()
    z, a, p = inputs(B, 3, N, D, A, E)
    if per_patch:  # a different proprio embedding on every patch, as fed back by the original's rollouts
        p = torch.randn(B, 3, N, E, generator=torch.Generator().manual_seed(3))
    got_z, got_p = model(z, a, p)
    want_z, want_p = _reference(model, z, a, p)
    assert got_p.shape == p.shape
    torch.testing.assert_close(got_z, want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_p, want_p, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("t", [0, 1, 2])
def test_frame_causal(t):
    z, a, p = inputs(B, 4, N, D, A, E)
    assert_frame_causal(_model(), z, a, p, t)


def test_without_proprio():
    model = _model(proprio_dim=0)
    assert model.dim == D + AE
    z, a, _ = inputs(B, 2, N, D, A, 0)
    z_pred, p_pred = model(z, a)
    assert z_pred.shape == (B, 2, N, D) and p_pred is None
    assert_frame_causal(model, z, a, None, 0)


def test_position_table_bounds_the_window_not_the_rollout():
    model = _model(context_window=2)
    z, a, p = inputs(B, 5, N, D, A, E)
    with pytest.raises(ValueError, match="position table"):
        model(z, a, p)
    # Step-by-step rollouts may run past num_frames: the window slides.
    out, p_out = model.rollout(z[:, :1], a[:, :0], p[:, :1], torch.randn(B, 6, A))
    assert out.shape == (B, 6, N, D) and p_out.shape == (B, 6, E) and torch.isfinite(out).all()
    assert isinstance(model.new_cache(B), WindowCache)
    with pytest.raises(ValueError, match="exceeds num_frames"):
        _model(context_window=5)


def test_dropout_only_in_training():
    model = _model(dropout=0.5)
    z, a, p = inputs(B, 2, N, D, A, E)
    torch.testing.assert_close(model(z, a, p)[0], model(z, a, p)[0])
    model.train()
    assert not torch.allclose(model(z, a, p)[0], model(z, a, p)[0])


def test_gradients_reach_every_parameter_through_a_rollout():
    model = _model().train()
    z, a, p = inputs(B, 2, N, D, A, E)
    out, p_out = model.rollout(z, a[:, :1], p, torch.randn(B, 3, A))
    (out[:, -1].pow(2).mean() + p_out[:, -1].pow(2).mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
