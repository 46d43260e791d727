"""Gradient-based planning: optimise the action sequences themselves by backpropagating through the cost.

Each episode holds ``num_samples`` independent action sequences ``(B, S, H, A)`` that are updated with SGD or
Adam on ``cost_fn(actions).sum()``; since episodes and samples do not interact in the sum, every sequence
follows its own gradient. After each step a little Gaussian noise (per-episode generators) is added and the
actions are clipped. The returned plan is the lowest-cost sequence seen at any iteration, so a step that
overshoots (lr = 1 with plain SGD is the reference setting) can never make the result worse.

Fixes relative to the reference: "adam" really calls ``torch.optim.Adam.step()`` (the reference built the
optimiser and then ran the SGD update by hand), there is no extra no-grad "logging" rollout per iteration, and
gradients are taken with respect to the actions only (``torch.autograd.grad``), so world-model parameters
never accumulate ``.grad``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from jepa_wms.planning.base import (
    BoundLike,
    CostFn,
    PlanResult,
    Stopwatch,
    check_non_negative,
    check_plan_args,
    check_positive,
    clip_actions,
    evaluate_cost,
    initial_mean,
    resolve_bounds,
    resolve_device,
    sample_normal,
)

logger = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")


class GradientPlanner:
    """Batched gradient descent on action sequences.

    Args:
        iterations: optimiser steps per plan (500 in the reference).
        lr: learning rate (1.0 in the reference, for both "sgd" and "adam").
        optimizer: "sgd" (plain ``a <- a - lr * grad``) or "adam".
        init_std: the start is ``init_mean + init_std * N(0, 1)`` per sample; 0 starts every sample at the
            mean.
        action_noise: std of the Gaussian noise added after every step (0.003 in the reference); it helps
            samples leave flat regions of a learned cost.
        num_samples: S, independent sequences optimised per episode (1 in the reference).
        action_low, action_high: per-dim bounds (float, sequence or ``(A,)`` tensor), applied after every
            step.

    ``cost_fn`` must be differentiable with respect to its input. ``PlanResult.cost_history[:, i]`` is the
    best cost seen so far (over samples and iterations up to i), so it is non-increasing by construction;
    ``PlanResult.actions`` is the sequence that achieved ``PlanResult.cost``, the best over all iterations
    including the state after the last step.
    """

    def __init__(
        self,
        iterations: int = 500,
        lr: float = 1.0,
        optimizer: str = "sgd",
        init_std: float = 1.0,
        action_noise: float = 0.003,
        num_samples: int = 1,
        action_low: BoundLike = None,
        action_high: BoundLike = None,
    ) -> None:
        check_positive("GradientPlanner", iterations=iterations, lr=lr, num_samples=num_samples)
        check_non_negative("GradientPlanner", init_std=init_std, action_noise=action_noise)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"GradientPlanner: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.iterations = int(iterations)
        self.lr = float(lr)
        self.optimizer = optimizer
        self.init_std = float(init_std)
        self.action_noise = float(action_noise)
        self.num_samples = int(num_samples)
        self.action_low = action_low
        self.action_high = action_high

    def __repr__(self) -> str:
        return (
            f"GradientPlanner(iterations={self.iterations}, lr={self.lr}, optimizer={self.optimizer!r}, "
            f"init_std={self.init_std}, action_noise={self.action_noise}, num_samples={self.num_samples}, "
            f"action_low={self.action_low}, action_high={self.action_high})"
        )

    def _make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr)

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
        shape = (self.num_samples, horizon, action_dim)
        mean = initial_mean(init_mean, batch_size, horizon, action_dim, device)

        start = mean.unsqueeze(1).expand(batch_size, *shape)
        if self.init_std > 0:
            start = start + self.init_std * sample_normal(generators, shape, device)
        actions = clip_actions(start, low, high).clone(memory_format=torch.contiguous_format).requires_grad_(True)
        optimizer = self._make_optimizer([actions])

        rows = torch.arange(batch_size, device=device)
        best_cost = torch.full((batch_size,), float("inf"), device=device)
        best_actions = actions.detach()[:, 0].clone()
        history = torch.empty(batch_size, self.iterations, device=device)

        def keep_best(costs: Tensor, candidates: Tensor) -> None:
            # costs (B, S), candidates (B, S, H, A): replace an episode's best only on strict improvement.
            nonlocal best_cost, best_actions
            row_min, idx = costs.min(dim=1)
            improved = row_min < best_cost
            best_cost = torch.where(improved, row_min, best_cost)
            best_actions = torch.where(improved[:, None, None], candidates[rows, idx], best_actions)

        for it in range(self.iterations):
            with torch.enable_grad():
                costs = evaluate_cost(cost_fn, actions)
                (grad,) = torch.autograd.grad(costs.sum(), actions)
            with torch.no_grad():
                keep_best(costs.detach(), actions.detach())
                history[:, it] = best_cost
                # A NaN gradient would make the sample's actions NaN for good; a zero step keeps it usable.
                actions.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
                optimizer.step()
                if self.action_noise > 0:
                    actions.add_(self.action_noise * sample_normal(generators, shape, device))
                actions.copy_(clip_actions(actions, low, high))

        with torch.no_grad():
            keep_best(evaluate_cost(cost_fn, actions.detach()), actions.detach())

        elapsed = timer.elapsed()
        logger.debug("Gradient (%s) planned %d episodes in %.3f s", self.optimizer, batch_size, elapsed)
        return PlanResult(actions=best_actions, cost=best_cost, cost_history=history, elapsed_s=elapsed)
