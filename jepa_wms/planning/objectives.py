"""Latent goal costs: how far predicted latents are from the goal's latents.

These compare the world model's prediction for each candidate with the encoded goal; callers pick the time
step (the paper scores only the last predicted step) and wrap the result into a ``CostFn`` for a planner.

* ``"L2"``: mean squared error over all visual latent dims (no square root, as in the reference) plus
  ``alpha`` times the mean squared error of the proprio embedding.
* ``"L1"``: the same with mean absolute errors.

Means rather than sums keep ``alpha`` meaningful across encoders: the visual term does not grow with the
number of tokens N or the width D, so ``alpha = 0.1`` weighs proprio the same for a 256 x 384 and a 196 x
1024 latent.
"""

from __future__ import annotations

import typing

from torch import Tensor

from ..config import PlanCost

VALID_KINDS: tuple[str, ...] = typing.get_args(PlanCost)


def _per_candidate_error(pred: Tensor, goal: Tensor, kind: str, name: str) -> Tensor:
    """Mean error over every dim after (B, S): ``pred (B, S, *F)`` vs ``goal (B, *F)`` -> ``(B, S)``."""
    if pred.ndim < 3 or tuple(pred.shape[:1]) + tuple(pred.shape[2:]) != tuple(goal.shape):
        raise ValueError(
            f"goal_cost: pred_{name} has shape {tuple(pred.shape)} and goal_{name} {tuple(goal.shape)}; "
            f"expected pred (B, S, ...) and goal (B, ...) with the same B and trailing dims"
        )
    diff = pred - goal.unsqueeze(1)
    err = diff.square() if kind == "L2" else diff.abs()
    return err.flatten(2).mean(dim=2)


def goal_cost(
    pred_visual: Tensor,
    goal_visual: Tensor,
    pred_proprio: Tensor | None = None,
    goal_proprio: Tensor | None = None,
    alpha: float = 0.0,
    kind: str = "L2",
) -> Tensor:
    """Cost of each candidate's predicted latent against the goal latent.

    Args:
        pred_visual: ``(B, S, N, D)`` predicted visual tokens (any trailing dims are accepted).
        goal_visual: ``(B, N, D)`` goal tokens, broadcast over the S candidates.
        pred_proprio: ``(B, S, P)`` predicted proprio, or None; per patch ``(B, S, N, E)`` for the "embedding"
            space of the AdaLN and DINO-WM predictors, whose error is then averaged over patches and channels.
        goal_proprio: ``(B, P)`` goal proprio (``(B, N, E)``: the goal embedding tiled over the patches), or None.
        alpha: weight of the proprio term; 0 ignores proprio entirely (models without proprio), > 0 requires
            both proprio tensors.
        kind: ``"L2"`` (mean squared errors) or ``"L1"`` (mean absolute errors).

    Returns:
        ``(B, S)`` costs, lower is better.
    """
    if kind not in VALID_KINDS:
        raise ValueError(f"goal_cost: unknown kind {kind!r}; valid kinds are {VALID_KINDS}")
    if not alpha >= 0:
        raise ValueError(f"goal_cost: alpha must be >= 0, got {alpha!r}")
    cost = _per_candidate_error(pred_visual, goal_visual, kind, "visual")
    if alpha == 0:
        return cost
    if pred_proprio is None or goal_proprio is None:
        missing = "pred_proprio" if pred_proprio is None else "goal_proprio"
        raise ValueError(f"goal_cost: alpha={alpha} weighs a proprio term but {missing} is None (use alpha=0)")
    proprio = _per_candidate_error(pred_proprio, goal_proprio, kind, "proprio")
    if proprio.shape != cost.shape:
        raise ValueError(
            f"goal_cost: proprio batch {tuple(pred_proprio.shape[:2])} does not match visual batch "
            f"{tuple(pred_visual.shape[:2])}"
        )
    return cost + alpha * proprio
