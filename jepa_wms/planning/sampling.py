"""The loop the Gaussian sampling planners (CEM, MPPI) share: sample around the mean, score every candidate of every
episode in one batch, refit the Gaussian; subclasses only say how to refit."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from jepa_wms.planning.base import (
    CostFn,
    PlannerSettings,
    PlanStart,
    check_non_negative,
    clip_actions,
    evaluate_cost,
    sample_normal,
)


@dataclass(frozen=True, kw_only=True)
class GaussianSamplingPlanner(PlannerSettings):
    """Base of CEM and MPPI: a diagonal Gaussian over ``(H, A)`` per episode, refitted ``iterations`` times.

    Attributes:
        min_std: floor on the refitted std (0, the reference's, lets it collapse).
    """

    min_std: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative(type(self).__name__, min_std=self.min_std)

    def _refit(self, candidates: Tensor, costs: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        """New ``(mean, std)`` (B, H, A) from candidates (B, S, H, A) and their costs (B, S)."""
        raise NotImplementedError(f"{type(self).__name__} must define _refit")

    def _search(
        self, cost_fn: CostFn, start: PlanStart, generators: list[torch.Generator]
    ) -> tuple[Tensor, Tensor, Tensor]:
        device, low, high, mean = start.device, start.low, start.high, start.mean
        batch_size, horizon, action_dim = mean.shape
        std = torch.full_like(mean, self.init_std)
        history = torch.empty(batch_size, self.iterations, device=device)

        with torch.no_grad():
            for it in range(self.iterations):
                # sample: S Gaussians per episode, each episode from its own generator
                noise = sample_normal(generators, (self.num_samples, horizon, action_dim), device)
                candidates = mean.unsqueeze(1) + std.unsqueeze(1) * noise
                # Mean kept as a sample: guarantees the current best guess competes with the new draws.
                candidates[:, 0] = mean
                candidates = clip_actions(candidates, low, high)
                # score: one batched rollout for all episodes and candidates
                costs = evaluate_cost(cost_fn, candidates)
                history[:, it] = costs[:, 0]
                # update
                mean, std = self._refit(candidates, costs, std)
            final_cost = evaluate_cost(cost_fn, mean.unsqueeze(1))[:, 0]

        return mean, final_cost, history
