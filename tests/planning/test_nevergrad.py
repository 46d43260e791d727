"""Nevergrad planner: convergence, bounds, per-episode seeding, one batched cost call per iteration, config wiring."""

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("nevergrad")

from jepa_wms.config import ConfigError, PlanConfig, load_config  # noqa: E402
from jepa_wms.planning import NevergradPlanner, Planner, PlanResult  # noqa: E402
from jepa_wms.planning.nevergrad import import_nevergrad  # noqa: E402
from jepa_wms.planning.registry import build_planner  # noqa: E402
from tests.planning.analytic import assert_is_planner, gens, quadratic  # noqa: E402

B, H, A = 2, 3, 2


def make_targets() -> torch.Tensor:
    """(B, H, A) optima, different per episode and per step."""
    return torch.tensor([[[0.5, -0.3], [-1.0, 0.8], [0.2, 0.4]], [[0.1, 0.2], [0.3, -0.4], [-0.6, 0.7]]])


def test_finds_each_episode_optimum_of_a_quadratic():
    targets = make_targets()
    # NGOpt delegates to MetaModel at this size, so this runs the DiagonalCMA fallback (worst of 5 seeds: 3e-3).
    planner = NevergradPlanner(num_samples=16, iterations=40)
    result = planner.plan(quadratic(targets), B, H, A, gens(0, 1))
    assert isinstance(result, PlanResult)
    assert result.actions.shape == (B, H, A)
    assert (result.actions - targets).abs().max() < 2e-2
    torch.testing.assert_close(result.cost, quadratic(targets)(result.actions.unsqueeze(1))[:, 0])
    h = result.cost_history
    assert h.shape == (B, 40)
    assert bool((h[:, 1:] <= h[:, :-1]).all())  # best-so-far
    assert bool((result.cost <= h[:, -1]).all())
    assert bool((h[:, -1] < 1e-3 * h[:, 0]).all())
    assert result.elapsed_s > 0


def test_optimum_outside_bounds_lands_on_the_bound_and_every_candidate_is_inside():
    targets = torch.zeros(B, H, A)
    targets[..., 0] = 2.0
    targets[..., 1] = -0.7
    low, high = torch.tensor([-1.0, -0.2]), torch.tensor([1.0, 1.0])
    seen = []

    def cost(actions):
        seen.append(actions.clone())
        return quadratic(targets)(actions)

    planner = NevergradPlanner(num_samples=16, iterations=25, action_low=low, action_high=high)
    result = planner.plan(cost, B, H, A, gens(0, 1))
    allc = torch.cat(seen, dim=1)
    assert bool((allc >= low).all()) and bool((allc <= high).all())
    torch.testing.assert_close(result.actions[..., 0], torch.full((B, H), 1.0), atol=2e-2, rtol=0)
    torch.testing.assert_close(result.actions[..., 1], torch.full((B, H), -0.2), atol=2e-2, rtol=0)


def test_bounds_follow_the_planned_horizon():
    """The reference built the array with `horizon` and the bounds with `plan_length`: any horizon must work."""
    planner = NevergradPlanner(num_samples=4, iterations=2, action_low=-0.5, action_high=0.5)
    for horizon in (1, 2, 5):
        result = planner.plan(lambda a: a.sum(dim=(2, 3)), 1, horizon, A, gens(0))
        assert result.actions.shape == (1, horizon, A)
        assert bool((result.actions.abs() <= 0.5).all())


def test_init_mean_and_init_std_centre_the_first_candidates():
    init = torch.full((H, A), 0.3)
    seen = []

    def cost(actions):
        seen.append(actions.clone())
        return quadratic(make_targets())(actions)

    planner = NevergradPlanner(num_samples=32, iterations=1, init_std=0.01, action_low=-1.0, action_high=1.0)
    planner.plan(cost, B, H, A, gens(0, 1), init_mean=init)
    # Spread ~ init_std around the warm start (not the box, not zero).
    assert (seen[0] - 0.3).abs().max() < 0.06
    assert (seen[0] - 0.3).abs().mean() > 1e-4
    assert torch.equal(init, torch.full((H, A), 0.3))


def test_episode_plan_does_not_depend_on_its_batch_mates():
    targets = torch.cat([make_targets(), make_targets()[:1] * -1])
    planner = NevergradPlanner(num_samples=8, iterations=4)
    together = planner.plan(quadratic(targets), 3, H, A, gens(10, 11, 12))
    alone = planner.plan(quadratic(targets[1:2]), 1, H, A, gens(11))
    assert torch.equal(together.actions[1], alone.actions[0])
    assert torch.equal(together.cost[1], alone.cost[0])
    assert torch.equal(together.cost_history[1], alone.cost_history[0])


def test_same_generators_same_plan_different_seeds_differ_and_global_numpy_state_is_untouched():
    targets = make_targets()
    planner = NevergradPlanner(num_samples=8, iterations=4)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = planner.plan(quadratic(targets), B, H, A, gens(0, 1))
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.seed(999)  # a different global state must not change the plan
    b = planner.plan(quadratic(targets), B, H, A, gens(0, 1))
    c = planner.plan(quadratic(targets), B, H, A, gens(5, 6))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.cost_history, b.cost_history)
    assert not torch.equal(a.actions, c.actions)


def test_cost_fn_sees_the_whole_batch_once_per_iteration():
    shapes = []
    targets = make_targets()

    def cost(actions):
        shapes.append(tuple(actions.shape))
        return quadratic(targets)(actions)

    NevergradPlanner(num_samples=6, iterations=3).plan(cost, B, H, A, gens(0, 1))
    assert shapes == [(B, 6, H, A)] * 3 + [(B, 1, H, A)]


def test_nan_costs_never_win():
    """Candidates with a positive first action 'diverge' (NaN): the plan must avoid them."""
    targets = torch.full((B, H, A), 0.5)

    def cost(actions):
        c = quadratic(targets)(actions)
        return torch.where((actions[..., 0] > 0).any(dim=2), torch.full_like(c, float("nan")), c)

    result = NevergradPlanner(num_samples=8, iterations=5, init_std=0.3).plan(
        cost, B, H, A, gens(0, 1), init_mean=torch.full((H, A), -0.5)
    )
    assert bool((result.actions[..., 0] <= 0).all())
    assert bool(torch.isfinite(result.cost).all())


def test_ngopt_metamodel_choice_is_replaced_and_explicit_names_are_kept():
    assert NevergradPlanner(num_samples=300, iterations=30).resolve_optimizer(6, 2, -1.0, 1.0) == "DiagonalCMA"
    assert NevergradPlanner(optimizer="TwoPointsDE").resolve_optimizer(6, 2) == "TwoPointsDE"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown nevergrad optimizer 'NoSuchOpt'"):
        NevergradPlanner(optimizer="NoSuchOpt")
    with pytest.raises(ValueError, match="iterations"):
        NevergradPlanner(iterations=0)
    with pytest.raises(ValueError, match="init_std"):
        NevergradPlanner(init_std=0.0)
    with pytest.raises(ValueError, match="one torch.Generator per episode"):
        NevergradPlanner(num_samples=4, iterations=1).plan(quadratic(make_targets()), B, H, A, gens(0))


def test_missing_nevergrad_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nevergrad", None)  # makes `import nevergrad` raise ImportError
    with pytest.raises(ImportError, match=r"jepa-wms\[planning\]"):
        import_nevergrad()


def test_config_and_build_planner_wire_it_with_the_action_clip():
    cfg = load_config("wall", ["plan.planner=nevergrad", "plan.ng_optimizer=CMA", "plan.action_clip=1.5"])
    planner = build_planner(cfg.plan)
    assert isinstance(planner, NevergradPlanner) and isinstance(planner, Planner)
    assert planner.optimizer == "CMA"
    assert (planner.action_low, planner.action_high) == (-1.5, 1.5)
    assert (planner.num_samples, planner.iterations) == (cfg.plan.num_samples, cfg.plan.iterations)
    assert PlanConfig().ng_optimizer == "NGOpt"
    with pytest.raises(ConfigError, match="plan.planner"):
        load_config("wall", ["plan.planner=bogus"])


def test_satisfies_the_planner_protocol():
    assert_is_planner(NevergradPlanner(num_samples=4, iterations=2, optimizer="OnePlusOne"))
