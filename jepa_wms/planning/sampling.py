"""The loop the Gaussian sampling planners (CEM, MPPI) share: sample around the mean, score every candidate of every
episode in one batch, refit the Gaussian; subclasses only say how to refit."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from jepa_wms.planning.base import (
    BoundLike,
    CostFn,
    PlanResult,
    Stopwatch,
    check_plan_args,
    clip_actions,
    evaluate_cost,
    initial_mean,
    resolve_bounds,
    resolve_device,
    sample_normal,
)

logger = logging.getLogger(__name__)


class GaussianSamplingPlanner:
    """Base of CEM and MPPI: a diagonal Gaussian over ``(H, A)`` per episode, refitted ``iterations`` times."""

    num_samples: int
    iterations: int
    init_std: float
    action_low: BoundLike
    action_high: BoundLike

    def _refit(self, candidates: Tensor, costs: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        """New ``(mean, std)`` (B, H, A) from candidates (B, S, H, A) and their costs (B, S)."""
        raise NotImplementedError(f"{type(self).__name__} must define _refit")

    def plan(
        self,
        cost_fn: CostFn,
        batch_size: int,
        horizon: int,
        action_dim: int,
        generators: list[torch.Generator],
        init_mean: Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """Plan B episodes; see ``jepa_wms.planning.base.Planner.plan`` for the arguments."""
        check_plan_args(batch_size, horizon, action_dim, generators)
        device = resolve_device(device, init_mean)
        timer = Stopwatch(device)
        low, high = resolve_bounds(self.action_low, self.action_high, action_dim, device)
        mean = initial_mean(init_mean, batch_size, horizon, action_dim, device)
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

        elapsed = timer.elapsed()
        logger.debug("%s planned %d episodes in %.3f s", type(self).__name__, batch_size, elapsed)
        return PlanResult(actions=mean, cost=final_cost, cost_history=history, elapsed_s=elapsed)
