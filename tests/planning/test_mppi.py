"""MPPI: the weighting rule, the weighted refit, convergence, clipping, NaN safety and per-episode seeding."""

import math

import pytest
import torch

from jepa_wms.planning import MPPIPlanner
from jepa_wms.planning.mppi import fit_weighted, mppi_weights
from tests.planning.analytic import assert_is_planner, gens, make_targets, quadratic

B, H, A = 3, 4, 2


def test_raw_weights_are_a_softmax_of_negative_cost_over_temperature():
    costs = torch.tensor([[0.0, 1.0, 2.0]])
    w = mppi_weights(costs, temperature=0.5, normalize=False)
    expected = torch.tensor([1.0, math.exp(-2.0), math.exp(-4.0)])
    torch.testing.assert_close(w[0], expected / expected.sum())


def test_normalised_weights_ignore_the_cost_scale_and_offset():
    costs = torch.tensor([[0.3, 1.0, 2.5, 0.9], [5.0, 5.0, 5.0, 5.0]])
    w = mppi_weights(costs, 0.5)
    torch.testing.assert_close(mppi_weights(1000.0 * costs + 7.0, 0.5), w)
    torch.testing.assert_close(w[1], torch.full((4,), 0.25))  # equal costs -> uniform, not NaN
    # Standardised by the population std of the row: (c - min) / std.
    z = (costs[0] - costs[0].min()) / costs[0].std(unbiased=False)
    torch.testing.assert_close(w[0], torch.softmax(-z / 0.5, dim=0))


def test_infinite_costs_get_zero_weight_and_all_infinite_rows_stay_finite():
    inf = float("inf")
    w = mppi_weights(torch.tensor([[1.0, inf, 2.0], [inf, inf, inf]]), 1.0)
    assert w[0, 1] == 0.0 and torch.isclose(w[0].sum(), torch.tensor(1.0))
    torch.testing.assert_close(w[1], torch.full((3,), 1 / 3))


def test_weighted_fit_on_a_hand_built_example():
    candidates = torch.tensor([[0.0, 2.0, 9.0], [1.0, 4.0, 7.0]]).reshape(2, 3, 1, 1)
    weights = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    mean, std = fit_weighted(candidates, weights)
    assert mean.flatten().tolist() == pytest.approx([1.0, 7.0])
    # Equal weights on {0, 2}: weighted var 1, corrected by 1 / (1 - sum w^2) = 2 -> the unbiased std sqrt(2),
    # the same value CEM would refit on those two elites.
    assert std[0].item() == pytest.approx(math.sqrt(2.0))
    _, floored = fit_weighted(candidates, weights, min_std=0.1)
    assert floored[1].item() == pytest.approx(0.1)  # one sample carries all weight: spread 0, floored


def test_converges_to_each_episode_optimum():
    targets = make_targets()
    result = MPPIPlanner(num_samples=300, iterations=30).plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    assert (result.actions - targets).abs().max() < 1e-2
    torch.testing.assert_close(result.cost, quadratic(targets)(result.actions.unsqueeze(1))[:, 0])
    h = result.cost_history
    assert h.shape == (B, 30)
    torch.testing.assert_close(h[:, 0], quadratic(targets)(torch.zeros(B, 1, H, A))[:, 0])
    assert bool((h[:, -1] < 1e-4 * h[:, 0]).all())


def test_plan_is_invariant_to_the_cost_scale_when_normalising():
    targets = make_targets()
    planner = MPPIPlanner(num_samples=64, iterations=10)
    a = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    b = planner.plan(quadratic(targets, scale=1000.0), B, H, A, gens(0, 1, 2))
    torch.testing.assert_close(a.actions, b.actions, atol=1e-4, rtol=0)


def test_fixed_std_keeps_sampling_at_init_std():
    seen = []
    targets = make_targets()

    def cost(actions):
        seen.append(actions.clone())
        return quadratic(targets)(actions)

    MPPIPlanner(num_samples=4000, iterations=3, init_std=0.4, update_std=False).plan(cost, B, H, A, gens(0, 1, 2))
    last = seen[2][:, 1:]  # iteration 3's samples, minus the mean in slot 0
    assert last.std(dim=1).mean().item() == pytest.approx(0.4, rel=0.05)


def test_bounds_are_respected():
    targets = torch.full((B, H, A), 3.0)
    seen = []

    def cost(actions):
        seen.append(actions.clone())
        return quadratic(targets)(actions)

    result = MPPIPlanner(action_low=-1.0, action_high=1.0).plan(cost, B, H, A, gens(0, 1, 2))
    assert float(torch.cat(seen, 1).abs().max()) <= 1.0
    torch.testing.assert_close(result.actions, torch.ones(B, H, A), atol=1e-2, rtol=0)


def test_nan_costs_do_not_poison_the_plan():
    targets = make_targets()

    def cost(actions):
        c = quadratic(targets)(actions)
        # A "diverged rollout" for any candidate far from the optimum region.
        return torch.where(actions[..., 0].amax(dim=2) > 1.5, torch.full_like(c, float("nan")), c)

    result = MPPIPlanner().plan(cost, B, H, A, gens(0, 1, 2))
    assert bool(torch.isfinite(result.actions).all())
    assert (result.actions - targets).abs().max() < 1e-2


def test_episode_plan_does_not_depend_on_its_batch_mates():
    targets = make_targets()
    planner = MPPIPlanner(num_samples=64, iterations=6)
    together = planner.plan(quadratic(targets), 3, H, A, gens(10, 11, 12))
    alone = planner.plan(quadratic(targets[1:2]), 1, H, A, gens(11))
    assert torch.equal(together.actions[1], alone.actions[0])
    assert torch.equal(together.cost_history[1], alone.cost_history[0])


def test_same_generators_same_plan():
    targets = make_targets()
    planner = MPPIPlanner(num_samples=32, iterations=3)
    a = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    b = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    c = planner.plan(quadratic(targets), B, H, A, gens(3, 4, 5))
    assert torch.equal(a.actions, b.actions)
    assert not torch.equal(a.actions, c.actions)


@pytest.mark.parametrize("kwargs", [dict(temperature=0.0), dict(num_samples=0), dict(min_std=-0.1)])
def test_bad_constructor_arguments_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MPPIPlanner(**kwargs)


def test_satisfies_the_planner_protocol():
    assert_is_planner(MPPIPlanner(num_samples=20, iterations=3))
