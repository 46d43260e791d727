"""The shared predictor machinery (``predictors.base``) exercised through all three predictors."""

import functools

import pytest
import torch

from jepa_wms.predictors import (
    AdaLNPredictor,
    DinoWMPredictor,
    LatentPredictor,
    PredictorCache,
    VJepa2ACPredictor,
    WindowCache,
)
from tests.predictors.predictor_helpers import inputs, mix_weights, window_rollout

B, GRID, D, A, E = 2, (2, 3), 8, 3, 4
N = GRID[0] * GRID[1]


def _make(kind: str, context_window: int, rope: str = "standard") -> LatentPredictor:
    torch.manual_seed(0)
    common = dict(embed_dim=D, action_dim=A, proprio_emb_dim=E, grid_size=GRID, context_window=context_window)
    if kind == "adaln":
        model = AdaLNPredictor(pred_dim=20, depth=2, num_heads=2, rope=rope, **common)
    elif kind == "vjepa2_ac":
        model = VJepa2ACPredictor(pred_dim=24, depth=2, num_heads=2, rope=rope, **common)
    else:
        model = DinoWMPredictor(num_frames=5, action_emb_dim=4, depth=2, num_heads=2, dim_head=8, ffn_dim=32, **common)
    return mix_weights(model)


KINDS = ["adaln", "vjepa2_ac", "dino_wm"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [1, 2, 3])
def test_window_extend_equals_forward_over_the_last_w_frames(kind, window):
    model = _make(kind, window, rope="legacy" if kind == "adaln" else "standard")
    z, a, p = inputs(B, 5, N, D, A, E)
    # Reference: each frame's prediction from a fresh window ending at it, positions from 0.
    want_z, want_p = [], []
    for t in range(5):
        lo = max(t + 1 - window, 0)
        zt, pt = model(z[:, lo : t + 1], a[:, lo : t + 1], p[:, lo : t + 1])
        want_z.append(zt[:, -1])
        want_p.append(pt[:, -1])
    want_z, want_p = torch.stack(want_z, 1), torch.stack(want_p, 1)
    # Chunked extends (2 frames, then 3) and single steps give the same predictions.
    cache = model.new_cache(B)
    assert isinstance(cache, WindowCache)
    z1, p1 = model.extend(z[:, :2], a[:, :2], p[:, :2], cache)
    z2, p2 = model.extend(z[:, 2:], a[:, 2:], p[:, 2:], cache)
    torch.testing.assert_close(torch.cat([z1, z2], 1), want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([p1, p2], 1), want_p, atol=1e-5, rtol=1e-5)
    assert cache.num_frames == 5 and cache.num_kept == window - 1
    steps = model.new_cache(B)
    outs = [model.step(z[:, t], a[:, t], p[:, t], steps)[0] for t in range(5)]
    torch.testing.assert_close(torch.stack(outs, 1), want_z, atol=1e-5, rtol=1e-5)
    if window >= 2:  # the window really drops old frames: a full-context forward differs at the last frame
        full, _ = model(z, a, p)
        if window < 5:
            assert (full[:, -1] - want_z[:, -1]).abs().max() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("context", [1, 3])
def test_window_rollout_matches_reference_and_backpropagates(kind, context):
    model = _make(kind, 2)
    z, a, p = inputs(B, context, N, D, A, E)
    z.requires_grad_(True)
    actions = torch.randn(B, 4, A, requires_grad=True)
    got_z, got_p = model.rollout(z, a[:, : context - 1], p, actions)
    want_z, want_p = window_rollout(model, 2, z, a[:, : context - 1], p, actions)
    torch.testing.assert_close(got_z, want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_p, want_p, atol=1e-5, rtol=1e-5)
    # Reaching actions[:, 0] from the last step requires going through the fed-back predictions.
    got_z[:, -1].pow(2).mean().backward()
    assert actions.grad[:, 0].abs().sum() > 0 and z.grad.abs().sum() > 0


def test_window_cache_derivations_leave_the_source_intact():
    model = _make("adaln", 3)
    z, a, p = inputs(B, 4, N, D, A, E)
    base = model.new_cache(B)
    model.prefill(z[:, :3], a[:, :3], p[:, :3], base)
    assert base.num_frames == 3 and base.num_kept == 2
    kept = base.frames[0].clone()
    samples, actions = 3, torch.randn(B * 3, 2, A)
    cache = base.repeat_interleave(samples)
    got, _ = model.rollout_from_cache(
        cache, z[:, 3].repeat_interleave(samples, 0), p[:, 3].repeat_interleave(samples, 0), actions
    )
    want, _ = model.rollout(
        z.repeat_interleave(samples, 0),
        a[:, :3].repeat_interleave(samples, 0),
        p.repeat_interleave(samples, 0),
        actions,
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert cache.num_frames == 3 and torch.equal(base.frames[0], kept)
    single = model.new_cache(1)
    model.prefill(z[:1, :3], a[:1, :3], p[:1, :3], single)
    got1, _ = model.rollout_from_cache(
        single.expand(samples), z[:1, 3].expand(samples, -1, -1), p[:1, 3].expand(samples, -1), actions[:samples]
    )
    torch.testing.assert_close(got1, got[:samples], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="only a batch-1 cache"):
        base.expand(5)


def test_window_of_one_keeps_no_frames():
    cache = WindowCache(2, 1)
    cache.append(torch.randn(2, 3, N, D), torch.randn(2, 3, A), None)
    assert cache.frames is None and cache.num_frames == 3


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
def test_context_window_selects_the_cache(kind):
    kv, window = _make(kind, 0), _make(kind, 2)
    assert isinstance(kv.new_cache(B), PredictorCache) and isinstance(window.new_cache(B), WindowCache)
    z, a, p = inputs(B, 2, N, D, A, E)
    with pytest.raises(ValueError, match="use new_cache"):
        kv.extend(z, a, p, window.new_cache(B))
    with pytest.raises(ValueError, match="use new_cache"):
        window.extend(z, a, p, kv.new_cache(B))
    with pytest.raises(ValueError, match="context_window must be >= 0"):
        _make(kind, -1)


def _shifted(positions, frames, h, w, frame_offset=0, device=None):
    return positions(frames, h, w, frame_offset + 5, device)


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
def test_only_true_rope_is_blind_to_a_frame_offset(kind):
    """The same frames placed at frame indices 5.. instead of 0..: true RoPE gives the same predictions, the
    legacy RoPE does not, which is why reproducing the original needs the window with positions from 0."""
    z, a, p = inputs(B, 3, N, D, A, E)
    for rope, blind in (("standard", True), ("legacy", False)):
        model = _make(kind, 0, rope)
        want, _ = model(z, a, p)
        model.rope.grid_positions = functools.partial(_shifted, model.rope.grid_positions)
        got, _ = model(z, a, p)
        assert torch.allclose(got, want, atol=1e-5) == blind, rope


@pytest.mark.parametrize(("kind", "window"), [("adaln", 0), ("vjepa2_ac", 0), ("vjepa2_ac", 2), ("dino_wm", 2)])
def test_bf16_planning_rollout_close_to_fp32(kind, window):
    model = _make(kind, window)
    z, a, p = inputs(B, 2, N, D, A, E)
    actions = torch.randn(B, 4, A)
    with torch.no_grad():
        ref, _ = model.rollout(z, a[:, :1], p, actions)
        with torch.autocast("cpu", torch.bfloat16):
            fast, _ = model.rollout(z, a[:, :1], p, actions)
    assert (fast.float() - ref).abs().max() < 0.05 * ref.abs().max()


@pytest.mark.parametrize(("kind", "window"), [("adaln", 0), ("adaln", 2), ("dino_wm", 2)])
def test_per_patch_proprio_is_predicted_and_fed_back_per_patch(kind, window):
    """Proprio on every patch's channels: given per patch it is predicted per patch, and rollouts feed those values
    back (the original's unroll); given per frame, the patch mean of the same prediction comes out and is fed back."""
    model = _make(kind, window)
    assert model.proprio_per_patch
    z, a, p = inputs(B, 3, N, D, A, E)
    tiled = p[:, :, None].expand(-1, -1, N, -1)
    z_frame, p_frame = model(z, a, p)
    z_patch, p_patch = model(z, a, tiled)
    assert p_patch.shape == (B, 3, N, E)
    torch.testing.assert_close(z_patch, z_frame, atol=1e-6, rtol=0)
    torch.testing.assert_close(p_patch.mean(2), p_frame, atol=1e-6, rtol=0)
    assert (p_patch - p_frame[:, :, None]).abs().max() > 1e-2, "the patches' predictions must differ"
    # Cached paths (key/value or window) fed per-patch proprio equal the hand-written loop over `forward`.
    actions = torch.randn(B, 4, A)
    ctx_p = torch.randn(B, 2, N, E)
    got_z, got_p = model.rollout(z[:, :2], a[:, :1], ctx_p, actions)
    want_z, want_p = window_rollout(model, window or 99, z[:, :2], a[:, :1], ctx_p, actions)
    assert got_p.shape == (B, 4, N, E)
    torch.testing.assert_close(got_z, want_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_p, want_p, atol=1e-5, rtol=1e-5)
    # From a tiled context the first step agrees with the per-frame rollout; then the fed-back proprio differs.
    frame_z, frame_p = model.rollout(z[:, :2], a[:, :1], p[:, :2], actions)
    patch_z, patch_p = model.rollout(z[:, :2], a[:, :1], tiled[:, :2], actions)
    torch.testing.assert_close(patch_z[:, 0], frame_z[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(patch_p[:, 0].mean(1), frame_p[:, 0], atol=1e-5, rtol=0)
    assert (patch_z[:, 1:] - frame_z[:, 1:]).abs().max() > 1e-3


def test_per_patch_proprio_is_refused_as_a_token_and_cannot_join_per_frame_frames():
    z, a, p = inputs(B, 2, N, D, A, E)
    tiled = p[:, :, None].expand(-1, -1, N, -1)
    with pytest.raises(ValueError, match=r"proprio must be \(B=2, T=2, E=4\), got"):
        _make("vjepa2_ac", 0)(z, a, tiled)
    model = _make("dino_wm", 2)
    with pytest.raises(ValueError, match=r"or per patch \(B, T, N=6, E\)"):
        model(z, a, tiled[:, :, :3])
    cache = model.new_cache(B)
    model.prefill(z[:, :1], a[:, :1], p[:, :1], cache)
    with pytest.raises(ValueError, match="does not continue the kept frames' proprio"):
        model.step(z[:, 1], a[:, 1], tiled[:, 1], cache)
