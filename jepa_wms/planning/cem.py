"""Cross-entropy method (CEM): the planner used for every JEPA-WM result in the paper.

Per iteration and per episode: sample S Gaussian action sequences around the current mean, replace sample 0
with the mean itself, clip to the action bounds, score all ``B * S`` candidates in one ``cost_fn`` call, keep
the ``num_elites`` cheapest and refit a diagonal Gaussian on them. The returned plan is the final mean.

Differences from the reference implementation (kept deliberate): clipping is one broadcast op rather than a
Python loop over the horizon, there is no extra "logging" rollout of the mean per iteration (sample 0 *is*
the mean, so its cost is already known), randomness is per episode rather than per process, and ``min_std``
allows a floor (0, the reference behaviour, by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from jepa_wms.planning.sampling import GaussianSamplingPlanner


def select_elites(candidates: Tensor, costs: Tensor, num_elites: int) -> tuple[Tensor, Tensor]:
    """Return the ``num_elites`` cheapest candidates per episode, cheapest first.

    Args:
        candidates: ``(B, S, H, A)``.
        costs: ``(B, S)``.

    Returns:
        ``(elites (B, K, H, A), elite_costs (B, K))`` sorted by increasing cost.
    """
    elite_costs, idx = torch.topk(costs, num_elites, dim=1, largest=False, sorted=True)
    rows = torch.arange(candidates.shape[0], device=candidates.device).unsqueeze(1)
    return candidates[rows, idx], elite_costs


def fit_elites(elites: Tensor, min_std: float = 0.0) -> tuple[Tensor, Tensor]:
    """Refit the sampling distribution on ``(B, K, H, A)`` elites: ``(mean, std)``, each ``(B, H, A)``.

    The std is the unbiased (K - 1) estimate, as in the reference, floored at ``min_std``.
    """
    mean = elites.mean(dim=1)
    std = elites.std(dim=1, unbiased=True).clamp_min(min_std)
    return mean, std


@dataclass(frozen=True, kw_only=True)
class CEMPlanner(GaussianSamplingPlanner):
    """Batched CEM over ``(B, S, H, A)`` candidates; a frozen settings object (``plan`` keeps no state).

    Args:
        num_samples: S, candidates per episode per iteration (sample 0 is always the current mean).
        iterations: refits per plan.
        num_elites: K, lowest-cost candidates the Gaussian is refitted on (2 <= K <= S; the unbiased std needs
            at least two).
        init_std: initial per-dim standard deviation (1.0 for normalised sim actions, 0.1 for raw DROID
            actions).
        action_low, action_high: per-dim bounds (float, sequence or ``(A,)`` tensor, stored as a float or a
            tuple); every candidate is clipped.
        min_std: floor on the refitted std; 0 reproduces the reference (the std may collapse).

    ``PlanResult.cost_history[:, i]`` is the cost of the mean entering iteration i (it is scored as sample 0).
    Because the mean is always a candidate, a mean that is already better than all new samples stays an elite;
    this makes the mean's cost *roughly* non-increasing, but not monotone: the refitted mean is an average of
    elites and can be slightly worse than the previous mean (on a convex cost it is never worse than the
    average elite). ``PlanResult.cost`` is the cost of the returned (final) mean, from one extra ``S = 1``
    evaluation.
    """

    num_elites: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.num_elites <= self.num_samples:
            raise ValueError(
                f"CEMPlanner: num_elites must be in [2, num_samples={self.num_samples}] "
                f"(the unbiased std needs two), got {self.num_elites}"
            )

    def _refit(self, candidates: Tensor, costs: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        elites, _ = select_elites(candidates, costs, self.num_elites)
        return fit_elites(elites, self.min_std)
