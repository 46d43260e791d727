"""Nevergrad planner: any black-box optimizer of the ``nevergrad`` library, one instance per episode.

Each episode gets its own optimizer over an ``(H, A)`` array parametrization (bounded by the same action clip the
other planners use). Per iteration every optimizer is asked for ``num_samples`` candidates, all ``B * S`` candidates
are scored in one ``cost_fn`` call and the losses are told back. The reference used ``NGOpt`` (its configs) with a
budget of ``iterations * num_samples`` and ``num_workers = num_samples``, and replaced NGOpt's choice by
``DiagonalCMA`` whenever NGOpt picked ``MetaModel``; both are kept here. The MetaModel swap is still needed: for the
usual planning sizes (e.g. H = 6, A = 2, 300 workers) NGOpt 1.0.12 picks MetaModel, whose surrogate step raises a
TypeError under current numpy.

Differences from the reference (deliberate): the parametrization and its bounds both use the ``horizon`` passed to
``plan`` (the reference built the array with ``horizon`` and the bounds with ``plan_length``), there is no extra
rollout of the recommendation per iteration, randomness comes from the episode's generator (so an episode's plan
does not depend on its batch mates) and the init mean / MPC warm start is honoured.

Speed: nevergrad asks and tells one candidate at a time in Python (about 0.1-1 ms per ask + tell for CMA), so with
300 samples x 30 iterations this planner spends seconds per episode outside the world model. It is here for planner
comparisons; CEM is the fast default.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from jepa_wms.planning.base import (
    BestSoFar,
    BoundLike,
    CostFn,
    PlannerSettings,
    PlanStart,
    check_positive,
    clip_actions,
    evaluate_cost,
    resolve_bounds,
)

logger = logging.getLogger(__name__)

DEFAULT_OPTIMIZER = "NGOpt"
# What the reference substituted when NGOpt selected MetaModel.
METAMODEL_FALLBACK = "DiagonalCMA"
# Told instead of a non-finite (diverged) loss. Nevergrad itself clips losses >= 5e20 to 5e20, but warns once per
# candidate; a finite value just below that keeps diverged candidates last without the warnings.
_LOSS_CAP = 1.0e20


def import_nevergrad() -> ModuleType:
    """Import ``nevergrad`` or explain which optional extra provides it."""
    try:
        import nevergrad
    except ImportError as exc:
        raise ImportError(
            "plan.planner=nevergrad needs the 'nevergrad' package: pip install 'jepa-wms[planning]' "
            "(or pip install nevergrad)"
        ) from exc
    return nevergrad


@contextlib.contextmanager
def _numpy_global_state(state: dict[str, Any]) -> Iterator[None]:
    """Run with numpy's global RNG set to ``state['rng']`` and store its advanced state back afterwards.

    Some nevergrad optimizers draw from ``np.random`` directly (``cma`` is created with ``seed=nan``, several
    portfolios rescale with ``np.random.rand``). Giving each episode its own global state makes those draws
    reproducible and independent of the other episodes, and the caller's global state is left untouched.
    """
    outer = np.random.get_state()
    np.random.set_state(state["rng"])
    try:
        yield
    finally:
        state["rng"] = np.random.get_state()
        np.random.set_state(outer)


def _uses_metamodel(optimizer: Any) -> bool:
    """True when an optimizer (or the one a meta-optimizer such as NGOpt delegates to) is MetaModel."""
    from nevergrad.optimization.base import Optimizer

    while isinstance(optimizer, Optimizer):
        if "MetaModel" in type(optimizer).__name__:
            return True
        optimizer = getattr(optimizer, "optim", None)
    return False


class _EpisodeSearch:
    """One episode's optimizer, its numpy RNG state and the candidates awaiting a loss."""

    def __init__(
        self,
        ng: ModuleType,
        optimizer: str,
        init: np.ndarray,
        low: np.ndarray | None,
        high: np.ndarray | None,
        sigma: float,
        budget: int,
        num_workers: int,
        seeds: tuple[int, int],
    ) -> None:
        self._state = {"rng": np.random.RandomState(seeds[0]).get_state()}
        param = ng.p.Array(init=init).set_mutation(sigma=sigma)
        if low is not None or high is not None:
            # Clipping (not nevergrad's default "bouncing") so an optimum outside the box lands exactly on the
            # bound, as with the other planners.
            param.set_bounds(lower=low, upper=high, method="clipping")
        param.random_state = np.random.RandomState(seeds[1])
        with _numpy_global_state(self._state):
            self._opt = ng.optimizers.registry[optimizer](parametrization=param, budget=budget, num_workers=num_workers)
        self._pending: list[Any] = []

    def ask(self, n: int) -> np.ndarray:
        with _numpy_global_state(self._state):
            self._pending = [self._opt.ask() for _ in range(n)]
        return np.stack([c.value for c in self._pending])

    def tell(self, losses: np.ndarray) -> None:
        with _numpy_global_state(self._state):
            for cand, loss in zip(self._pending, losses, strict=True):
                self._opt.tell(cand, float(min(loss, _LOSS_CAP)))
        self._pending = []

    def recommend(self) -> np.ndarray:
        with _numpy_global_state(self._state):
            return np.asarray(self._opt.provide_recommendation().value)


@dataclass(frozen=True, kw_only=True)
class NevergradPlanner(PlannerSettings):
    """Batched planning with one nevergrad optimizer per episode; a frozen settings object (the optimizers are
    built anew by every ``plan`` call).

    Args:
        num_samples: S, candidates asked from each episode's optimizer per iteration (also its ``num_workers``).
        iterations: ask/tell rounds per plan; the optimizer's budget is ``iterations * num_samples``.
        optimizer: a name from ``nevergrad.optimizers.registry`` (default ``"NGOpt"``, the reference configs'
            choice). If NGOpt delegates to MetaModel, ``"DiagonalCMA"`` is used instead, as in the reference.
        init_std: the parametrization's mutation sigma: the initial search scale around the init mean, in action
            units (CMA's initial step size).
        action_low, action_high: per-dim bounds (float, sequence or ``(A,)`` tensor, stored as a float or a
            tuple) of the ``(H, A)`` array; candidates are clipped into them by nevergrad. The init mean is
            clipped into them first.

    ``PlanResult.actions`` is the optimizer's recommendation, scored with one extra ``S = 1`` call, unless a
    candidate scored during the search was cheaper (the cost is deterministic, so that candidate is kept instead:
    returning a plan worse than one already evaluated helps nobody). ``PlanResult.cost`` is the returned plan's
    cost and ``PlanResult.cost_history[:, i]`` the best candidate cost seen up to iteration i (non-increasing).
    """

    optimizer: str = DEFAULT_OPTIMIZER

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("NevergradPlanner", init_std=self.init_std)
        if self.optimizer not in import_nevergrad().optimizers.registry:
            raise ValueError(
                f"NevergradPlanner: unknown nevergrad optimizer {self.optimizer!r} (plan.ng_optimizer); expected a "
                f"name from nevergrad.optimizers.registry such as NGOpt, CMA, DiagonalCMA, TwoPointsDE or OnePlusOne"
            )

    def resolve_optimizer(self, horizon: int, action_dim: int, low: BoundLike = None, high: BoundLike = None) -> str:
        """The registry name actually used for an ``(horizon, action_dim)`` plan (after the MetaModel swap).

        NGOpt's choice depends only on the parametrization's shape and bounds, the budget and the worker count,
        so it is made once per plan on a throwaway instance, never per episode.
        """
        if self.optimizer != DEFAULT_OPTIMIZER:
            return self.optimizer
        ng = import_nevergrad()
        lo, hi = resolve_bounds(low, high, action_dim, torch.device("cpu"))
        probe = _EpisodeSearch(
            ng,
            self.optimizer,
            np.zeros((horizon, action_dim)),
            None if lo is None else lo.expand(horizon, action_dim).double().numpy(),
            None if hi is None else hi.expand(horizon, action_dim).double().numpy(),
            self.init_std,
            self.iterations * self.num_samples,
            self.num_samples,
            (0, 0),
        )
        with _numpy_global_state(probe._state):
            metamodel = _uses_metamodel(probe._opt)
        return METAMODEL_FALLBACK if metamodel else self.optimizer

    def _search(
        self, cost_fn: CostFn, start: PlanStart, generators: list[torch.Generator]
    ) -> tuple[Tensor, Tensor, Tensor]:
        ng = import_nevergrad()
        device, low, high = start.device, start.low, start.high
        batch_size, horizon, action_dim = start.mean.shape
        # Nevergrad refuses an init outside the bounds (a warm start can be, if the bounds changed).
        mean = clip_actions(start.mean, low, high)
        name = self.resolve_optimizer(horizon, action_dim, self.action_low, self.action_high)

        def box(bound: Tensor | None) -> np.ndarray | None:
            return None if bound is None else bound.expand(horizon, action_dim).double().cpu().numpy()

        searches = []
        for row, g in zip(mean.double().cpu().numpy(), generators, strict=True):
            # Two seeds per episode from its own generator: numpy's global state and the parametrization's.
            seeds = torch.randint(0, 2**32, (2,), generator=g, device=g.device).tolist()
            searches.append(
                _EpisodeSearch(
                    ng,
                    name,
                    row,
                    box(low),
                    box(high),
                    self.init_std,
                    self.iterations * self.num_samples,
                    self.num_samples,
                    (int(seeds[0]), int(seeds[1])),
                )
            )

        best = BestSoFar(mean)
        history = torch.empty(batch_size, self.iterations, device=device)

        with torch.no_grad():
            for it in range(self.iterations):
                asked = np.stack([s.ask(self.num_samples) for s in searches])
                candidates = clip_actions(torch.from_numpy(asked).to(device=device, dtype=torch.float32), low, high)
                # one batched rollout for all episodes and candidates
                costs = evaluate_cost(cost_fn, candidates)
                for search, losses in zip(searches, costs.double().cpu().numpy(), strict=True):
                    search.tell(losses)
                best.update(costs, candidates)
                history[:, it] = best.cost

            recommended = np.stack([s.recommend() for s in searches])
            recommended = clip_actions(torch.from_numpy(recommended).to(device=device, dtype=torch.float32), low, high)
            rec_cost = evaluate_cost(cost_fn, recommended.unsqueeze(1))[:, 0]
            use_rec = rec_cost <= best.cost
            actions = torch.where(use_rec[:, None, None], recommended, best.actions)
            cost = torch.where(use_rec, rec_cost, best.cost)

        logger.debug("Nevergrad searched with %s (plan.ng_optimizer=%s)", name, self.optimizer)
        return actions, cost, history
