"""``planning.memory``: the planning-memory estimate, the batch sizes it picks, and candidate sub-batches."""

from __future__ import annotations

import logging
from contextlib import nullcontext

import pytest
import torch

from jepa_wms.config import PlanConfig, load_config
from jepa_wms.planning.dynamics import latent_goal_cost_fn
from jepa_wms.planning.memory import (
    bytes_per_row,
    eval_batch_sizes,
    kv_cache_bytes,
    plan_batch_sizes,
    rollout_shape,
)
from jepa_wms.predictors import AdaLNPredictor, PredictorCache, VJepa2ACPredictor
from jepa_wms.world_model import LatentState, build_world_model
from tests.conftest import TINY


def _paper_predictor() -> AdaLNPredictor:
    # The paper's simulated-env JEPA-WM: DINOv2 ViT-S/14 tokens (384-d, 16×16), AdaLN depth 6, width 384 + 16 proprio.
    return AdaLNPredictor(384, 10, 16, pred_dim=384, depth=6, num_heads=16, grid_size=(16, 16))


def _tiny_world_model(*extra: str):
    torch.manual_seed(0)
    cfg = load_config("wall", [*TINY, *extra])
    return build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2).eval(), cfg


def test_paper_size_estimate_matches_the_hand_calculation():
    shape = rollout_shape(_paper_predictor())
    assert (shape.depth, shape.width, shape.tokens_per_frame, shape.embed_dim) == (6, 400, 256, 384)
    # One context frame + H = 6 steps: the last step's cache holds frames 0..5.
    hand = 300 * 6 * 256 * 6 * 2 * 400 * 4
    assert kv_cache_bytes(shape, 300, 6, 0, 4) == hand == pytest.approx(8.85e9, rel=1e-3)
    assert kv_cache_bytes(shape, 300, 6, 2, 4) == hand * 2 // 6  # W = 2 of the 6 frames
    assert kv_cache_bytes(shape, 300, 6, 0, 2) == hand // 2  # bf16
    assert kv_cache_bytes(shape, 32 * 300, 6, 0, 4) == pytest.approx(283e9, rel=1e-3)  # the default 32-episode chunk
    total = 300 * bytes_per_row(shape, 6, 0, 4)
    assert hand < total < 1.5 * hand, "the cache dominates; activations and outputs add the rest"


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
@pytest.mark.parametrize("window", [0, 2])
def test_estimate_matches_the_measured_cache_of_a_small_rollout(kind, window, monkeypatch):
    """The key/value part of the estimate equals the bytes the cache tensors' storages really hold at their peak
    (unlimited window; within 1.25× with W = 2), measured just before each eviction; the whole estimate (cache,
    one step's activations, outputs) stays above it and within 5× of it."""
    if kind == "adaln":
        model, _ = _tiny_world_model()
    else:
        model, _ = _tiny_world_model("model.predictor.type=vjepa2_ac", "model.predictor.pred_dim=16")
    rows, horizon = 12, 4
    peak = []
    advance = PredictorCache.advance

    def measuring_advance(cache, frames):
        storages = {}
        for layer in cache.layers:
            for t in (layer.keys, layer.values):
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        peak.append(sum(storages.values()))
        advance(cache, frames)

    monkeypatch.setattr(PredictorCache, "advance", measuring_advance)
    ctx = LatentState(torch.randn(rows, 1, 16, 8), torch.randn(rows, 1, 2))
    with torch.no_grad():
        model.rollout(ctx, torch.randn(rows, horizon, model.action_dim), kv_window=window)
    measured = max(peak)
    shape = rollout_shape(model.predictor)
    assert shape.tokens_per_frame == (16 if kind == "adaln" else 18)  # V-JEPA-2-AC: + action and proprio tokens
    kv = kv_cache_bytes(shape, rows, horizon, window, 4)
    if window == 0:
        assert kv == measured
    else:
        # The first frame's keys/values are views of the whole q/k (rope) and qkv projections, which a window of
        # W = 2 frames stores at step 1: 5 frames' worth of storage instead of 4.
        assert kv <= measured <= 1.25 * kv
    # Depth 1, width 16: one step's activations weigh as much as the whole cache here (not at paper size).
    assert measured < rows * bytes_per_row(shape, horizon, window, 4) < 5 * measured


def test_batch_sizes_from_a_budget():
    row = 1000  # bytes per candidate row
    assert plan_batch_sizes(row, 10, 32, None) == (32, 0)  # no known limit
    assert plan_batch_sizes(row, 10, 32, 10**9) == (32, 0)  # everything fits: episode_chunk
    assert plan_batch_sizes(row, 10, 32, 35_000) == (3, 0)  # 3 episodes of 10 000 B
    assert plan_batch_sizes(row, 10, 32, 10_000) == (1, 0)  # exactly one episode
    assert plan_batch_sizes(row, 10, 32, 5_500) == (1, 5)  # not one episode: sub-batches of 5 rows
    assert plan_batch_sizes(row, 10, 32, 10) == (1, 1)  # still plans, a row at a time


def test_eval_batch_sizes_of_a_world_model(caplog):
    model, cfg = _tiny_world_model()
    row = bytes_per_row(rollout_shape(model.predictor), cfg.plan.horizon, 0, 4)
    episode = cfg.plan.num_samples * row
    plan = PlanConfig(num_samples=cfg.plan.num_samples, horizon=cfg.plan.horizon, episode_chunk=8)
    plan.memory_gb = 3.5 * episode / 1e9
    with caplog.at_level(logging.INFO, logger="jepa_wms"):
        assert eval_batch_sizes(model, plan, torch.device("cpu"), torch.float32) == (3, 0)
    assert "3 episodes per chunk" in caplog.text
    plan.memory_gb = 0.5 * episode / 1e9
    assert eval_batch_sizes(model, plan, torch.device("cpu"), torch.float32) == (1, cfg.plan.num_samples // 2)
    plan.memory_gb = 0.0  # auto: this machine's free RAM, far more than the tiny model needs
    assert eval_batch_sizes(model, plan, torch.device("cpu"), torch.float32) == (8, 0)
    assert eval_batch_sizes(object(), plan, torch.device("cpu"), torch.float32) == (8, 0), "the simulator: as set"


@pytest.mark.parametrize("window", [0, 2])
def test_split_candidates_give_the_unsplit_costs(window):
    """A budget below one episode: the cost function rolls candidates out in sub-batches (rows are independent)."""
    model, cfg = _tiny_world_model()
    g = torch.Generator().manual_seed(0)
    b, s, h = 3, 7, cfg.plan.horizon
    context = LatentState(torch.randn(b, 1, 16, 8, generator=g), torch.randn(b, 1, 2, generator=g))
    goal = LatentState(torch.randn(b, 1, 16, 8, generator=g), torch.randn(b, 1, 2, generator=g))
    candidates = torch.randn(b, s, h, model.action_dim, generator=g)
    with torch.no_grad():
        whole = latent_goal_cost_fn(model, context, goal, 0.5, "L2", nullcontext, kv_window=window)(candidates)
        for rows in (1, 5, s, b * s - 1):
            split = latent_goal_cost_fn(model, context, goal, 0.5, "L2", nullcontext, window, rows)(candidates)
            torch.testing.assert_close(split, whole, atol=1e-6, rtol=1e-6)


def test_the_memory_budget_is_not_part_of_the_result_fingerprint():
    from jepa_wms.evaluation.evaluate import _eval_fingerprint

    base = load_config("wall")
    fp = _eval_fingerprint(base, {}, 0)
    assert _eval_fingerprint(load_config("wall", ["plan.memory_gb=2.5"]), {}, 0) == fp
    assert _eval_fingerprint(load_config("wall", ["plan.kv_window=2"]), {}, 0) != fp


def test_vjepa2_ac_paper_shape():
    shape = rollout_shape(VJepa2ACPredictor(1408, 14, 16, pred_dim=384, depth=6, num_heads=16, grid_size=(16, 16)))
    assert (shape.depth, shape.width, shape.tokens_per_frame) == (6, 384, 258)


def test_head_padding_widens_the_estimated_cache():
    from jepa_wms.layers import Attention

    class Tiny(torch.nn.Module):
        tokens_per_frame, embed_dim, context_window = 4, 8, 0

        def __init__(self):
            super().__init__()
            self.attn = Attention(400, 16)  # head size 25, as at paper size

    assert rollout_shape(Tiny()).width == 400
    assert rollout_shape(Tiny(), pad_heads=32).width == 16 * 32
    assert rollout_shape(Tiny(), pad_heads=5).width == 400  # 25 is already a multiple of 5
