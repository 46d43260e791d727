"""``kv_window``: a key/value cache that keeps only the last W frames (sliding-window attention for planning memory).

The reference is computed from scratch, without any cache: ``forward`` over the whole fed-back sequence with the
frame-causal mask restricted to W frames, positions the absolute frame indices. For a one-layer model that is
also exactly re-running the last W frames (the original planner's window), which a deeper model cannot match: its
cached keys of deeper layers carry what the kept frames saw of evicted ones.
"""

from __future__ import annotations

import pytest
import torch

from jepa_wms.layers import frame_causal_mask
from jepa_wms.predictors import AdaLNPredictor, DinoWMPredictor, VJepa2ACPredictor, WindowCache, adaln_vit, vjepa2_ac
from tests.predictors.predictor_helpers import inputs, mix_weights, window_rollout

B, GRID, D, A, E = 2, (2, 3), 8, 3, 4
N = GRID[0] * GRID[1]
C, H = 2, 5  # context frames, rollout steps: the cache sees C + H - 1 = 6 frames


def _model(kind: str, depth: int = 2, rope: str = "standard"):
    torch.manual_seed(0)
    if kind == "adaln":
        m = AdaLNPredictor(D, A, E, pred_dim=20, depth=depth, num_heads=2, grid_size=GRID, rope=rope)
    else:
        m = VJepa2ACPredictor(D, A, E, pred_dim=24, depth=depth, num_heads=2, grid_size=GRID, rope=rope)
    return mix_weights(m)


def _rollout_inputs():
    z, a, p = inputs(B, C, N, D, A, E)
    actions = torch.randn(B, H, A, generator=torch.Generator().manual_seed(3))
    return z, a[:, : C - 1], p, actions


def _banded_forward_rollout(model, window: int, z_ctx, a_ctx, p_ctx, actions, monkeypatch):
    """From scratch at every step: ``forward`` (no cache) on all frames so far with a W-frame banded mask."""
    module = adaln_vit if isinstance(model, AdaLNPredictor) else vjepa2_ac
    with monkeypatch.context() as patch:
        # The predictor asks for a plain causal mask (no cache); hand it the banded one instead.
        def banded(frames, tokens, device=None, past_frames=0, _window=0):
            return frame_causal_mask(frames, tokens, device, past_frames, window=window)

        patch.setattr(module, "frame_causal_mask", banded)
        z_seq, a_seq, p_seq = z_ctx, a_ctx, p_ctx
        zs, ps = [], []
        for h in range(actions.shape[1]):
            a_seq = torch.cat([a_seq, actions[:, h : h + 1]], 1)
            z_pred, p_pred = model(z_seq, a_seq, p_seq)
            zs.append(z_pred[:, -1])
            z_seq = torch.cat([z_seq, z_pred[:, -1:]], 1)
            p_next = p_seq[:, -1:] if p_pred is None else p_pred[:, -1:]
            if p_pred is not None:
                ps.append(p_pred[:, -1])
            p_seq = torch.cat([p_seq, p_next], 1)
    return torch.stack(zs, 1), torch.stack(ps, 1) if ps else None


@pytest.mark.parametrize("window", [1, 2, 3])
def test_mask_window_matches_brute_force(window):
    frames, tpf, past = 3, 2, 2
    mask = frame_causal_mask(frames, tpf, past_frames=past, window=window)
    for qi in range(frames * tpf):
        for ki in range((past + frames) * tpf):
            q, k = past + qi // tpf, ki // tpf
            assert mask[qi, ki] == (q - window < k <= q), (qi, ki)
    assert torch.equal(frame_causal_mask(frames, tpf, past_frames=past, window=0), frame_causal_mask(3, 2, None, 2))


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
@pytest.mark.parametrize("rope", ["standard", "legacy"])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_windowed_rollout_equals_banded_forward_from_scratch(kind, rope, window, monkeypatch):
    """Legacy RoPE is not relative, so this also checks that eviction keeps absolute positions."""
    model = _model(kind, rope=rope)
    assert model.supports_kv_cache
    z, a, p, actions = _rollout_inputs()
    with torch.no_grad():
        got_z, got_p = model.rollout(z, a, p, actions, kv_window=window)
        ref_z, ref_p = _banded_forward_rollout(model, window, z, a, p, actions, monkeypatch)
        unlimited_z, _ = model.rollout(z, a, p, actions)
    torch.testing.assert_close(got_z, ref_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_p, ref_p, atol=1e-5, rtol=1e-5)
    assert (got_z - unlimited_z).abs().max() > 1e-3, "the window must actually hide old frames"


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_one_layer_windowed_rollout_equals_rerunning_the_last_frames(kind, window):
    """Depth 1: the kept keys depend on their own frame only, so a W-frame key/value window is exactly the original
    planner's re-run of the last W frames (positions from 0; standard RoPE is relative)."""
    model = _model(kind, depth=1)
    z, a, p, actions = _rollout_inputs()
    with torch.no_grad():
        got_z, got_p = model.rollout(z, a, p, actions, kv_window=window)
        ref_z, ref_p = window_rollout(model, window, z, a, p, actions)
    torch.testing.assert_close(got_z, ref_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_p, ref_p, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
@pytest.mark.parametrize("rope", ["standard", "legacy"])
def test_window_covering_every_frame_equals_the_unlimited_cache(kind, rope):
    model = _model(kind, rope=rope)
    z, a, p, actions = _rollout_inputs()
    with torch.no_grad():
        ref_z, ref_p = model.rollout(z, a, p, actions)
        for window in (C + H - 1, C + H + 4):
            got_z, got_p = model.rollout(z, a, p, actions, kv_window=window)
            torch.testing.assert_close(got_z, ref_z, atol=0, rtol=0)
            torch.testing.assert_close(got_p, ref_p, atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
def test_cache_holds_at_most_the_window(kind):
    model = _model(kind)
    window = 3
    z, a, p = inputs(B, 5, N, D, A, E)
    cache = model.new_cache(B, kv_window=window)
    with torch.no_grad():
        model.prefill(z[:, :4], a[:, :4], p[:, :4], cache)  # one multi-frame call: banded mask, then eviction
        assert (cache.num_frames, cache.num_kept) == (4, window - 1)
        tpf = model.tokens_per_frame
        assert all(layer.num_tokens == (window - 1) * tpf for layer in cache.layers)
        step_z, _ = model.step(z[:, 4], a[:, 4], p[:, 4], cache)
        # The same frame from a whole-sequence pass with the same window: eviction after a multi-frame call and
        # the single-frame step agree.
        full, _ = model.extend(z, a, p, model.new_cache(B, kv_window=window))
    assert (cache.num_frames, cache.num_kept) == (5, window - 1)
    torch.testing.assert_close(step_z, full[:, 4], atol=1e-5, rtol=1e-5)


def test_derived_caches_keep_window_and_positions():
    model = _model("adaln")
    z, a, p = inputs(1, 3, N, D, A, E)
    cache = model.new_cache(1, kv_window=2)
    with torch.no_grad():
        model.prefill(z, a, p, cache)
    for derived in (cache.copy(), cache.expand(4), cache.repeat_interleave(3)):
        assert (derived.window, derived.num_frames, derived.num_kept) == (2, 3, 1)


def test_frame_window_predictors_ignore_kv_window():
    """DINO-WM has no key/value cache (absolute learned positions): it keeps its own input window."""
    torch.manual_seed(0)
    model = mix_weights(
        DinoWMPredictor(D, A, E, GRID, num_frames=4, depth=2, num_heads=2, dim_head=8, ffn_dim=16, context_window=2)
    )
    assert not model.supports_kv_cache
    assert isinstance(model.new_cache(B, kv_window=1), WindowCache)
    z, a, p, actions = _rollout_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model.rollout(z, a, p, actions, kv_window=1)[0], model.rollout(z, a, p, actions)[0], atol=0, rtol=0
        )


def test_negative_window_is_refused():
    with pytest.raises(ValueError, match="kv_window"):
        _model("adaln").new_cache(1, kv_window=-1)
