"""Gradient planner: convergence with SGD and Adam, a real Adam step, best-so-far bookkeeping, seeding."""

import pytest
import torch

from jepa_wms.planning import GradientPlanner
from tests.planning.analytic import assert_is_planner, gens, make_targets, quadratic

B, H, A = 3, 4, 2


def test_sgd_converges_to_each_episode_optimum_despite_noise():
    targets = make_targets()
    planner = GradientPlanner(iterations=100, lr=0.1, optimizer="sgd", action_noise=0.003)
    result = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    assert result.actions.shape == (B, H, A)
    assert (result.actions - targets).abs().max() < 1e-2


def test_adam_converges_to_each_episode_optimum():
    targets = make_targets()
    # Adam's steps stay ~lr in size near the optimum, so noise-free for a tight tolerance (with the default
    # noise 0.003 it still lands within ~1e-2 over 10 seeds).
    planner = GradientPlanner(iterations=200, lr=0.1, optimizer="adam", action_noise=0.0, num_samples=2)
    result = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    assert (result.actions - targets).abs().max() < 1e-3


def test_adam_really_steps():
    """Linear cost: Adam's first step is lr * sign(grad), SGD's lr * grad; the reference's Adam was SGD."""
    w = torch.tensor([[0.5, -3.0], [2.0, 0.25]]).reshape(1, 2, 2)

    def linear(actions):
        return (actions * w.unsqueeze(1)).sum(dim=(2, 3))

    kwargs = dict(iterations=1, lr=0.1, init_std=0.0, action_noise=0.0)
    adam = GradientPlanner(optimizer="adam", **kwargs).plan(linear, 1, 2, 2, gens(0))
    sgd = GradientPlanner(optimizer="sgd", **kwargs).plan(linear, 1, 2, 2, gens(0))
    torch.testing.assert_close(adam.actions, -0.1 * torch.sign(w))
    torch.testing.assert_close(sgd.actions, -0.1 * w)
    assert not torch.allclose(adam.actions, sgd.actions)


def test_adam_and_sgd_give_different_plans_on_the_quadratic():
    targets = make_targets()
    kwargs = dict(iterations=5, lr=0.1)
    adam = GradientPlanner(optimizer="adam", **kwargs).plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    sgd = GradientPlanner(optimizer="sgd", **kwargs).plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    assert (adam.actions - sgd.actions).abs().max() > 1e-2


def test_reference_lr_one_overshoots_but_best_so_far_never_gets_worse():
    """With lr = 1 on sum((a - t)^2) SGD reflects a around t each step; the best iterate is still returned."""
    targets = make_targets()
    result = GradientPlanner(iterations=20, lr=1.0, action_noise=0.0).plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    h = result.cost_history
    assert bool((h[:, 1:] <= h[:, :-1]).all())
    torch.testing.assert_close(result.cost, quadratic(targets)(result.actions.unsqueeze(1))[:, 0])
    assert bool((result.cost <= h[:, -1]).all())


def test_best_sample_is_picked_across_samples():
    targets = make_targets()
    planner = GradientPlanner(iterations=3, lr=0.01, num_samples=16, init_std=1.0, action_noise=0.0)
    result = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    # The first history entry is the best of the 16 random starts, well below a single start's expected cost.
    starts = torch.stack([torch.randn((16, H, A), generator=g) for g in gens(0, 1, 2)])
    torch.testing.assert_close(result.cost_history[:, 0], quadratic(targets)(starts).min(dim=1).values)


def test_bounds_are_applied_after_every_step():
    targets = torch.full((B, H, A), 2.0)
    seen = []

    def cost(actions):
        seen.append(actions.detach().clone())
        return quadratic(targets)(actions)

    planner = GradientPlanner(iterations=30, lr=0.3, action_low=-0.5, action_high=0.5)
    result = planner.plan(cost, B, H, A, gens(0, 1, 2))
    assert float(torch.cat(seen, 1).abs().max()) <= 0.5
    torch.testing.assert_close(result.actions, torch.full((B, H, A), 0.5))


def test_model_parameters_get_no_grad_and_no_grad_context_is_fine():
    layer = torch.nn.Linear(A, 1)
    targets = make_targets()

    def cost(actions):
        return layer(actions).squeeze(-1).square().sum(dim=2) + quadratic(targets)(actions)

    with torch.no_grad():
        result = GradientPlanner(iterations=5, lr=0.05).plan(cost, B, H, A, gens(0, 1, 2))
    assert layer.weight.grad is None
    assert result.cost_history[:, -1].lt(result.cost_history[:, 0]).all()


def test_episode_plan_does_not_depend_on_its_batch_mates():
    targets = make_targets()
    for optimizer in ("sgd", "adam"):
        planner = GradientPlanner(iterations=10, lr=0.1, optimizer=optimizer, num_samples=3)
        together = planner.plan(quadratic(targets), 3, H, A, gens(10, 11, 12))
        alone = planner.plan(quadratic(targets[1:2]), 1, H, A, gens(11))
        assert torch.equal(together.actions[1], alone.actions[0]), optimizer
        assert torch.equal(together.cost_history[1], alone.cost_history[0]), optimizer


def test_noise_comes_from_the_generators():
    targets = make_targets()
    planner = GradientPlanner(iterations=5, lr=0.1, init_std=0.0)
    a = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    b = planner.plan(quadratic(targets), B, H, A, gens(0, 1, 2))
    c = planner.plan(quadratic(targets), B, H, A, gens(3, 4, 5))
    assert torch.equal(a.actions, b.actions)
    assert not torch.equal(a.actions, c.actions)  # init_std=0: only the per-step noise differs


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(optimizer="lbfgs"), "optimizer"), (dict(lr=0.0), "lr"), (dict(action_noise=-1.0), "action_noise")],
)
def test_bad_constructor_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientPlanner(**kwargs)


def test_satisfies_the_planner_protocol():
    assert_is_planner(GradientPlanner(iterations=5, lr=0.1))
