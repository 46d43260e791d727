"""``plan.proprio_dynamics=pose``: the proprio fed to each rollout step is the pose composed with the actions."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from jepa_wms.config import ConfigError, load_config
from jepa_wms.datasets.pose_actions import compose_pose
from jepa_wms.planning.dynamics import latent_goal_cost_fn
from jepa_wms.planning.pose_dynamics import check_pose_model, pose_rollout
from tests.evaluation.pose_data import tiny_pose_model


def _context(model, batch: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 255, (batch, 1, 16, 16, 3), dtype=torch.uint8, generator=g)
    pose = torch.cat([0.3 * torch.randn(batch, 1, 6, generator=g), torch.rand(batch, 1, 1, generator=g)], -1)
    return model.encode(pixels, pose), pose


@pytest.mark.parametrize("space", ["raw", "decoded"])
def test_the_poses_fed_back_are_the_composed_ones(space):
    model, _ = tiny_pose_model(proprio_space=space, stats=True)
    ctx, pose = _context(model)
    actions = torch.randn(3, 4, 7, generator=torch.Generator().manual_seed(1))  # normalised
    with torch.no_grad():
        out = pose_rollout(model, ctx, actions)
        # Independently: the raw pose chain, and the predictor fed each of its poses, step by step.
        raw = model.denormalize_actions(actions)[:, :, 0].double()
        chain, cur = [], pose[:, 0].double()
        for h in range(4):
            cur = compose_pose(cur, raw[:, h])
            chain.append(cur)
        expected_pose = (torch.stack(chain, 1) - model.proprio_mean) / model.proprio_std
        torch.testing.assert_close(out.proprio, expected_pose.float(), atol=1e-5, rtol=1e-5)
        cache = model.predictor.new_cache(3)
        z, fed = ctx.visual[:, 0], torch.cat([ctx.proprio, expected_pose[:, :-1].float()], 1)
        zs = []
        for h in range(4):
            p_in = fed[:, h] if space == "raw" else model.proprio_encoder(fed[:, h])
            z, _ = model.predictor.step(z, actions[:, h], p_in, cache)
            zs.append(z)
        torch.testing.assert_close(out.visual, torch.stack(zs, 1))
        # It is not the plain rollout, which keeps feeding the observed pose.
        assert not torch.allclose(out.visual, model.rollout(ctx, actions).visual, atol=1e-4)


def test_the_cost_rolls_out_with_composed_poses():
    model, _ = tiny_pose_model()
    ctx, _ = _context(model, batch=2)
    goal, _ = _context(model, batch=2, seed=3)
    candidates = torch.randn(2, 5, 3, 7, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        cost = latent_goal_cost_fn(model, ctx, goal, 0.0, "L2", nullcontext, proprio_dynamics="pose")(candidates)
        for b in range(2):
            sub = type(ctx)(ctx.visual[b : b + 1].expand(5, -1, -1, -1), ctx.proprio[b : b + 1].expand(5, -1, -1))
            last = pose_rollout(model, sub, candidates[b]).visual[:, -1]
            torch.testing.assert_close(cost[b], (last - goal.visual[b, 0]).square().flatten(1).mean(1))
        plain = latent_goal_cost_fn(model, ctx, goal, 0.0, "L2", nullcontext)(candidates)
        assert not torch.allclose(cost, plain)


def test_models_without_pose_proprio_are_refused():
    no_proprio, _ = tiny_pose_model()
    no_proprio.predictor.proprio_emb_dim = 0  # what a model without a proprio token reports
    with pytest.raises(ValueError, match="takes no proprio"):
        check_pose_model(no_proprio)
    embedded, _ = tiny_pose_model(predictor="adaln", proprio_space="embedding")
    with pytest.raises(ValueError, match="embedding"):
        check_pose_model(embedded)


def test_the_key_is_a_choice():
    assert load_config("wall", ["plan.proprio_dynamics=pose"]).plan.proprio_dynamics == "pose"
    assert load_config("wall").plan.proprio_dynamics == "predicted"
    with pytest.raises(ConfigError, match="plan.proprio_dynamics"):
        load_config("wall", ["plan.proprio_dynamics=euler"])
