"""Planning-speed changes to ``WorldModel.rollout`` that must not change what is predicted or planned.

- Shared context: ``actions`` with S candidates per context row run the C − 1 earlier context frames once per
  context row (their cache expanded to the candidates) instead of once per candidate. Equal to the rollout from
  the context repeated S times up to float rounding (a smaller batch may take another GEMM path): max abs
  difference < 1e-5 in fp32, and a seeded CEM plan is identical (same elites at every iteration, same actions).
- In-place cache growth (``PredictorCache.reserve``): bitwise equal to concatenating at every step.
"""

from __future__ import annotations

import pytest
import torch

from jepa_wms.config import load_config
from jepa_wms.planning.cem import CEMPlanner
from jepa_wms.planning.objectives import goal_cost
from jepa_wms.predictors import PredictorCache
from jepa_wms.world_model import LatentState, build_world_model
from tests.conftest import TINY
from tests.predictors.predictor_helpers import mix_weights

TOL = 1e-5  # max abs difference of predicted latents and proprio, fp32
N, D, H = 16, 8, 4  # tokens per frame and width of TINY's encoder; rollout steps

KINDS = {
    "adaln": [],
    "adaln_embedding": ["model.proprio_space=embedding"],
    "vjepa2_ac": ["model.predictor.type=vjepa2_ac"],
    "dino_wm": ["model.predictor.type=dino_wm", "model.predictor.num_frames=8"],
    "adaln_window": ["model.predictor.context_window=2"],  # the original planner's re-run window (WindowCache)
}


def _model(kind: str, depth: int = 2):
    torch.manual_seed(0)
    cfg = load_config("wall", [*TINY, f"model.predictor.depth={depth}", *KINDS[kind]])
    model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2)
    mix_weights(model.predictor)  # unit-gain weights: a wrong cache would show, not hide in tiny residuals
    return model.eval()


def _context(model, batch: int, frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        proprio = model.proprio_latent(torch.randn(batch, frames, 2, generator=g))
    ctx = LatentState(torch.randn(batch, frames, N, D, generator=g), proprio)
    ctx_actions = torch.randn(batch, frames - 1, model.action_dim, generator=g) if frames > 1 else None
    return ctx, ctx_actions


def _repeat(ctx: LatentState, ctx_actions, s: int):
    def rep(x):
        return None if x is None else x.repeat_interleave(s, dim=0)

    return LatentState(rep(ctx.visual), rep(ctx.proprio)), rep(ctx_actions)


def _max_diff(a: LatentState, b: LatentState) -> float:
    diff = (a.visual - b.visual).abs().max().item()
    if a.proprio is not None or b.proprio is not None:
        diff = max(diff, (a.proprio - b.proprio).abs().max().item())
    return diff


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("frames", [1, 3])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("kv_window", [0, 2])
def test_shared_context_equals_repeated_context(kind: str, frames: int, batch: int, kv_window: int):
    model, s = _model(kind), 5
    ctx, ctx_actions = _context(model, batch, frames)
    actions = torch.randn(batch * s, H, model.action_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        shared = model.rollout(ctx, actions, ctx_actions, kv_window=kv_window)
        rep_ctx, rep_actions = _repeat(ctx, ctx_actions, s)
        repeated = model.rollout(rep_ctx, actions, rep_actions, kv_window=kv_window)
    assert shared.visual.shape == (batch * s, H, N, D)
    assert (shared.proprio is None) == (repeated.proprio is None)
    assert _max_diff(shared, repeated) < TOL
    assert repeated.visual.std() > 0.1, "the rollout must not be trivially constant"


def test_shared_context_keeps_gradients():
    """With autograd on (training-style BPTT) the shared context still reaches every candidate's gradient."""
    model, s = _model("adaln"), 3
    ctx, ctx_actions = _context(model, 2, 2)
    visual = ctx.visual.clone().requires_grad_(True)
    actions = torch.randn(2 * s, H, model.action_dim, generator=torch.Generator().manual_seed(2))
    shared = model.rollout(LatentState(visual, ctx.proprio), actions, ctx_actions)
    (grad_shared,) = torch.autograd.grad(shared.visual.square().sum(), visual)
    visual2 = ctx.visual.clone().requires_grad_(True)
    rep_ctx, rep_actions = _repeat(LatentState(visual2, ctx.proprio), ctx_actions, s)
    repeated = model.rollout(rep_ctx, actions, rep_actions)
    (grad_repeated,) = torch.autograd.grad(repeated.visual.square().sum(), visual2)
    assert _max_diff(shared, repeated) < TOL
    torch.testing.assert_close(grad_shared, grad_repeated, atol=1e-4, rtol=1e-4)


def test_candidate_rows_must_be_a_multiple_of_the_contexts():
    model = _model("adaln", depth=1)
    ctx, _ = _context(model, 2, 1)
    with pytest.raises(ValueError, match="S candidates per context row"):
        model.rollout(ctx, torch.randn(5, H, model.action_dim))


@pytest.mark.parametrize("kind", ["adaln", "vjepa2_ac"])
@pytest.mark.parametrize("frames", [1, 2])
def test_in_place_cache_growth_is_bitwise_equal(kind: str, frames: int, monkeypatch: pytest.MonkeyPatch):
    model = _model(kind)
    ctx, ctx_actions = _context(model, 2, frames)
    actions = torch.randn(6, H, model.action_dim, generator=torch.Generator().manual_seed(2))
    grown = []
    reserve = PredictorCache.reserve

    def recording_reserve(cache, num_tokens):
        grown.append(num_tokens)
        reserve(cache, num_tokens)

    with torch.no_grad():
        monkeypatch.setattr(PredictorCache, "reserve", recording_reserve)
        in_place = model.rollout(ctx, actions, ctx_actions)
        monkeypatch.setattr(PredictorCache, "reserve", lambda cache, num_tokens: None)
        concatenated = model.rollout(ctx, actions, ctx_actions)
    assert grown == [H * model.predictor.tokens_per_frame]
    assert torch.equal(in_place.visual, concatenated.visual)
    assert torch.equal(in_place.proprio, concatenated.proprio)


def test_seeded_cem_plan_is_the_same_with_a_shared_context():
    """CEM from a 2-frame context (the original planner's), 2 episodes: the cost of every candidate agrees within
    1e-5 and the elites, hence the sampled candidates and the returned plan, are identical."""
    model, episodes, samples = _model("adaln"), 2, 12
    ctx, ctx_actions = _context(model, episodes, 2)
    goal, _ = _context(model, episodes, 1, seed=5)
    planner = CEMPlanner(num_samples=samples, iterations=3, num_elites=4)

    def plan(shared: bool):
        calls = []

        def cost(candidates: torch.Tensor) -> torch.Tensor:
            e, s = candidates.shape[:2]
            c, a = (ctx, ctx_actions) if shared else _repeat(ctx, ctx_actions, s)
            pred = model.rollout(c, candidates.flatten(0, 1), a)
            last_z, last_p = pred.visual[:, -1].unflatten(0, (e, s)), pred.proprio[:, -1].unflatten(0, (e, s))
            out = goal_cost(last_z, goal.visual[:, 0], last_p, goal.proprio[:, 0], 0.1, "L2")
            calls.append((candidates, out))
            return out

        gens = [torch.Generator().manual_seed(10 + b) for b in range(episodes)]
        with torch.no_grad():
            return planner.plan(cost, episodes, H, model.action_dim, gens), calls

    (shared, shared_calls), (repeated, repeated_calls) = plan(True), plan(False)
    assert len(shared_calls) == len(repeated_calls) == planner.iterations + 1
    for (cand_a, cost_a), (cand_b, cost_b) in zip(shared_calls, repeated_calls, strict=True):
        assert torch.equal(cand_a, cand_b), "the same elites give the same next candidates"
        assert (cost_a - cost_b).abs().max() < TOL * cost_b.abs().max().clamp_min(1)
        k = min(planner.num_elites, cost_a.shape[1])
        assert torch.equal(cost_a.topk(k, largest=False).indices, cost_b.topk(k, largest=False).indices)
    assert torch.equal(shared.actions, repeated.actions)
