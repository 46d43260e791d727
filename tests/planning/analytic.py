"""Analytic planning problems shared by the planner tests: per-episode quadratics with known optima."""

import inspect

import torch

from jepa_wms.planning import Planner, PlanResult


def make_targets() -> torch.Tensor:
    """(3, 4, 2) optima (B = 3 episodes, H = 4 steps, A = 2), different per episode and per step."""
    base = torch.tensor([[0.5, -0.3], [-1.0, 0.8], [0.2, 1.5]])
    steps = torch.tensor([1.0, -1.0, 0.5, 0.0])
    return base[:, None, :] * steps[None, :, None] + 0.1 * steps[None, :, None]


def quadratic(targets: torch.Tensor, scale: float = 1.0):
    """Row-wise cost: episode b's cost only reads targets[b], so batching cannot leak between episodes."""

    def cost(actions: torch.Tensor) -> torch.Tensor:
        return scale * ((actions - targets.unsqueeze(1)) ** 2).sum(dim=(2, 3))

    return cost


def gens(*seeds: int) -> list[torch.Generator]:
    """One seeded generator per episode."""
    return [torch.Generator().manual_seed(s) for s in seeds]


def assert_is_planner(planner) -> None:
    """The `Planner` protocol checked by behaviour: ``isinstance`` only sees that a ``plan`` attribute exists, so also
    check that ``plan`` takes the protocol's parameters and returns a `PlanResult` of the documented shapes whose
    ``cost`` is the cost of its ``actions``."""
    assert isinstance(planner, Planner)
    protocol = list(inspect.signature(Planner.plan).parameters.values())[1:]  # without self
    own = list(inspect.signature(planner.plan).parameters.values())
    assert [(p.name, p.kind, p.default) for p in own] == [(p.name, p.kind, p.default) for p in protocol]
    targets = make_targets()
    b, h, a = targets.shape
    result = planner.plan(quadratic(targets), b, h, a, gens(0, 1, 2))
    assert isinstance(result, PlanResult), type(result)
    assert result.actions.shape == (b, h, a) and result.actions.dtype == torch.float32
    assert result.cost.shape == (b,) and result.cost_history.ndim == 2 and result.cost_history.shape[0] == b
    assert isinstance(result.elapsed_s, float) and result.elapsed_s >= 0
    torch.testing.assert_close(result.cost, quadratic(targets)(result.actions.unsqueeze(1))[:, 0])
