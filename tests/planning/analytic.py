"""Analytic planning problems shared by the planner tests: per-episode quadratics with known optima."""

import torch


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
