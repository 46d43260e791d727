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

from dataclasses import dataclass

import torch
from torch import Tensor

from jepa_wms.planning.base import (
    BestSoFar,
    CostFn,
    PlannerSettings,
    PlanStart,
    check_non_negative,
    check_positive,
    clip_actions,
    evaluate_cost,
    sample_normal,
)

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True, kw_only=True)
class GradientPlanner(PlannerSettings):
    """Batched gradient descent on action sequences; a frozen settings object (``plan`` keeps no state).

    Args:
        iterations: optimiser steps per plan (500 in the reference).
        lr: learning rate (1.0 in the reference, for both "sgd" and "adam").
        optimizer: "sgd" (plain ``a <- a - lr * grad``) or "adam".
        init_std: the start is ``init_mean + init_std * N(0, 1)`` per sample; 0 starts every sample at the
            mean.
        action_noise: std of the Gaussian noise added after every step (0.003 in the reference); it helps
            samples leave flat regions of a learned cost.
        num_samples: S, independent sequences optimised per episode (1 in the reference).
        action_low, action_high: per-dim bounds (float, sequence or ``(A,)`` tensor, stored as a float or a
            tuple), applied after every step.

    ``cost_fn`` must be differentiable with respect to its input. ``PlanResult.cost_history[:, i]`` is the
    best cost seen so far (over samples and iterations up to i), so it is non-increasing by construction;
    ``PlanResult.actions`` is the sequence that achieved ``PlanResult.cost``, the best over all iterations
    including the state after the last step.
    """

    iterations: int = 500
    num_samples: int = 1
    lr: float = 1.0
    optimizer: str = "sgd"
    action_noise: float = 0.003

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("GradientPlanner", lr=self.lr)
        check_non_negative("GradientPlanner", action_noise=self.action_noise)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"GradientPlanner: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    def _make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr)

    def _search(
        self, cost_fn: CostFn, start: PlanStart, generators: list[torch.Generator]
    ) -> tuple[Tensor, Tensor, Tensor]:
        device, low, high = start.device, start.low, start.high
        batch_size, horizon, action_dim = start.mean.shape
        shape = (self.num_samples, horizon, action_dim)

        first = start.mean.unsqueeze(1).expand(batch_size, *shape)
        if self.init_std > 0:
            first = first + self.init_std * sample_normal(generators, shape, device)
        actions = clip_actions(first, low, high).clone(memory_format=torch.contiguous_format).requires_grad_(True)
        optimizer = self._make_optimizer([actions])

        best = BestSoFar(actions.detach()[:, 0])
        history = torch.empty(batch_size, self.iterations, device=device)

        for it in range(self.iterations):
            with torch.enable_grad():
                costs = evaluate_cost(cost_fn, actions)
                (grad,) = torch.autograd.grad(costs.sum(), actions)
            with torch.no_grad():
                best.update(costs.detach(), actions.detach())
                history[:, it] = best.cost
                # A NaN gradient would make the sample's actions NaN for good; a zero step keeps it usable.
                actions.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
                optimizer.step()
                if self.action_noise > 0:
                    actions.add_(self.action_noise * sample_normal(generators, shape, device))
                actions.copy_(clip_actions(actions, low, high))

        with torch.no_grad():
            best.update(evaluate_cost(cost_fn, actions.detach()), actions.detach())

        return best.actions, best.cost, history
