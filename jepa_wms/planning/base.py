"""What every planner shares: the cost contract, the result container, the checks of its settings, the set-up of
every ``plan`` call (``PlannerSettings.plan``) and the batching/seeding helpers.

A planner searches over action sequences ``(B, S, H, A)`` (B episodes planned together, S candidates per
episode, H horizon steps, A action dims) to minimise a cost callable that returns ``(B, S)``. The cost is a
separate object (usually "roll the world model out, compare to the goal latent") so any planner works with
any world model.

Two rules hold for every planner in this package:

* ``cost_fn`` is called on the whole ``(B, S, H, A)`` batch at once, so the world model runs one batched
  rollout per iteration instead of B small ones.
* Episode ``b`` draws all of its random numbers from ``generators[b]`` and every other operation is row-wise,
  so an episode's plan does not depend on which other episodes share its batch (given a row-wise cost).
  Results are therefore reproducible whatever the batch split across processes.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

CostFn = Callable[[Tensor], Tensor]
"""Maps candidate action sequences ``(B, S, H, A)`` to costs ``(B, S)``; lower is better."""

BoundLike = float | Sequence[float] | Tensor | None

logger = logging.getLogger(__name__)


@dataclass
class PlanResult:
    """The outcome of one ``Planner.plan`` call.

    Attributes:
        actions: ``(B, H, A)`` the plan returned for each episode (CEM/MPPI: the final mean; gradient: the
            best sample seen).
        cost: ``(B,)`` the cost of ``actions`` under the ``cost_fn`` that was planned against.
        cost_history: ``(B, iterations)`` one value per iteration, for convergence plots. What it measures is
            planner-specific and documented on each planner (CEM/MPPI: the cost of the mean entering the
            iteration; gradient: the best cost seen so far).
        elapsed_s: wall-clock seconds spent in ``plan`` (device work included: CUDA is synchronised first).
    """

    actions: Tensor
    cost: Tensor
    cost_history: Tensor
    elapsed_s: float


@runtime_checkable
class Planner(Protocol):
    """Anything that turns a cost over action sequences into a plan per episode."""

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
        """Plan ``batch_size`` episodes at once.

        Args:
            cost_fn: ``(B, S, H, A) -> (B, S)``, called on the whole candidate batch.
            batch_size: B, the number of episodes planned together.
            horizon: H, the number of steps per action sequence.
            action_dim: A.
            generators: one ``torch.Generator`` per episode (length B); all of episode b's draws use
                ``generators[b]``.
            init_mean: ``(B, H, A)`` or ``(H, A)`` starting plan (e.g. the shifted previous plan in MPC);
                zeros when None.
            device: where candidates live; defaults to ``init_mean``'s device, else CPU.
        """
        ...


@runtime_checkable
class PlanSession(Planner, Protocol):
    """A `Planner` for one batch of episodes that carries part of its search from one replan to the next."""

    def shift(self, executed: int) -> None:
        """``executed`` steps of the last plan were executed: move what is carried forward by as many steps."""
        ...


@runtime_checkable
class ReplanningPlanner(Planner, Protocol):
    """A `Planner` whose search can continue across MPC replans (iCEM's kept elites). `run_mpc` plans each episode
    batch with a fresh ``start_episodes()`` session, so no batch sees another's search."""

    def start_episodes(self) -> PlanSession: ...


def check_counts(owner: str, **values: int) -> None:
    """Raise naming the first value that is not a positive whole number (a count of samples or steps)."""
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def check_positive(owner: str, **values: float) -> None:
    """Raise naming the first value that is not strictly positive."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")


def check_non_negative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")


class Stopwatch:
    """Wall-clock timer that waits for queued CUDA work, so GPU planning time is not under-reported."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._sync()
        self.start = time.perf_counter()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def elapsed(self) -> float:
        self._sync()
        return time.perf_counter() - self.start


@dataclass
class PlanStart:
    """Where a ``plan`` call starts: the device, the bounds there and the first mean."""

    device: torch.device
    low: Tensor | None
    high: Tensor | None
    mean: Tensor  # (B, H, A) float32: the caller's init_mean copied, or zeros


def _resolve_device(device: torch.device | str | None, init_mean: Tensor | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if init_mean is not None:
        return init_mean.device
    return torch.device("cpu")


def _check_plan_args(batch_size: int, horizon: int, action_dim: int, generators: Sequence[torch.Generator]) -> None:
    for name, value in (("batch_size", batch_size), ("horizon", horizon), ("action_dim", action_dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"plan(): {name} must be a positive int, got {value!r}")
    if len(generators) != batch_size:
        raise ValueError(
            f"plan(): expected one torch.Generator per episode (batch_size={batch_size}), got {len(generators)}"
        )
    for i, g in enumerate(generators):
        if not isinstance(g, torch.Generator):
            raise ValueError(f"plan(): generators[{i}] must be a torch.Generator, got {type(g).__name__}")


def _initial_mean(
    init_mean: Tensor | None, batch_size: int, horizon: int, action_dim: int, device: torch.device
) -> Tensor:
    """Return the starting plan as a fresh float32 ``(B, H, A)`` tensor (zeros when ``init_mean`` is None)."""
    if init_mean is None:
        return torch.zeros(batch_size, horizon, action_dim, device=device)
    expected = (batch_size, horizon, action_dim)
    if tuple(init_mean.shape) == expected[1:]:
        init_mean = init_mean.unsqueeze(0).expand(expected)
    if tuple(init_mean.shape) != expected:
        raise ValueError(
            f"plan(): init_mean has shape {tuple(init_mean.shape)}, expected (B, H, A) = {expected} or (H, A)"
        )
    # Cloned so that in-place updates inside a planner never write into the caller's tensor.
    return init_mean.to(device=device, dtype=torch.float32).clone()


def resolve_bounds(
    low: BoundLike, high: BoundLike, action_dim: int, device: torch.device
) -> tuple[Tensor | None, Tensor | None]:
    """Turn float, sequence or ``(A,)`` bounds into ``(A,)`` float32 on ``device`` (None: no bound)."""

    def one(name: str, value: BoundLike) -> Tensor | None:
        if value is None:
            return None
        t = torch.as_tensor(value, dtype=torch.float32, device=device)
        if t.ndim == 0:
            t = t.expand(action_dim)
        if tuple(t.shape) != (action_dim,):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected a float or shape ({action_dim},)")
        return t

    return one("action_low", low), one("action_high", high)


def _plain_bound(owner: str, name: str, value: BoundLike) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    flat = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    if flat.ndim > 1 or not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{owner}: {name} must be a finite float or a sequence of floats, got {value!r}")
    return float(flat) if flat.ndim == 0 else tuple(flat.tolist())


@dataclass(frozen=True, kw_only=True)
class PlannerSettings:
    """What every planner is configured with, and the ``plan`` they share; each planner is a frozen, keyword-only
    dataclass that adds its own settings (checked in its ``__post_init__`` after these) and its search, ``_search``.

    Attributes:
        num_samples: S, candidates per episode per iteration.
        iterations: planner iterations per plan.
        init_std: the initial search scale around the init mean, in normalised action units.
        action_low, action_high: per-dim bounds, given as a float, a sequence or an ``(A,)`` tensor and stored as
            None (unbounded), a float or a tuple of floats: plain values keep the planner comparable, hashable and
            readable in its repr, and ``resolve_bounds`` turns them back into the float32 tensor at plan time. Bounds
            whose lengths differ are left to ``resolve_bounds``, which knows the action dim and names the wrong one.
    """

    num_samples: int = 300
    iterations: int = 30
    init_std: float = 1.0
    action_low: BoundLike = None
    action_high: BoundLike = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_counts(owner, num_samples=self.num_samples, iterations=self.iterations)
        check_non_negative(owner, init_std=self.init_std)
        low = _plain_bound(owner, "action_low", self.action_low)
        high = _plain_bound(owner, "action_high", self.action_high)
        if low is not None and high is not None:
            lo, hi = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
            comparable = lo.shape == hi.shape or lo.ndim == 0 or hi.ndim == 0
            if comparable and bool((lo > hi).any()):
                raise ValueError(f"{owner}: action_low must be <= action_high in every dim, got low={low} high={high}")
        # Frozen: __post_init__ is the one place where fields may still be set, through object.__setattr__.
        object.__setattr__(self, "action_low", low)
        object.__setattr__(self, "action_high", high)

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
        """Plan B episodes; see `Planner.plan` for the arguments. Runs ``_search`` (through `run_search`)."""

        def search(start: PlanStart) -> tuple[Tensor, Tensor, Tensor]:
            return self._search(cost_fn, start, generators)

        return self.run_search(search, batch_size, horizon, action_dim, generators, init_mean, device)

    def run_search(
        self,
        search: Callable[[PlanStart], tuple[Tensor, Tensor, Tensor]],
        batch_size: int,
        horizon: int,
        action_dim: int,
        generators: list[torch.Generator],
        init_mean: Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """The set-up every ``plan`` shares around ``search(start) -> (actions, cost, history)``: checks the
        arguments, starts the timer, puts the bounds and the first mean on the device (``device``, else
        ``init_mean``'s, else the CPU)."""
        _check_plan_args(batch_size, horizon, action_dim, generators)
        where = _resolve_device(device, init_mean)
        timer = Stopwatch(where)
        low, high = resolve_bounds(self.action_low, self.action_high, action_dim, where)
        start = PlanStart(where, low, high, _initial_mean(init_mean, batch_size, horizon, action_dim, where))
        actions, cost, history = search(start)
        elapsed = timer.elapsed()
        logger.debug("%s planned %d episodes in %.3f s", type(self).__name__, batch_size, elapsed)
        return PlanResult(actions=actions, cost=cost, cost_history=history, elapsed_s=elapsed)

    def _search(
        self, cost_fn: CostFn, start: PlanStart, generators: list[torch.Generator]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The planner's own search from ``start``: ``(actions (B, H, A), cost (B,), cost_history (B, iters))``."""
        raise NotImplementedError(f"{type(self).__name__} must define _search")


def clip_actions(actions: Tensor, low: Tensor | None, high: Tensor | None) -> Tensor:
    """Clip ``(..., A)`` actions to per-dim bounds in one broadcast op (no loop over the horizon)."""
    if low is None and high is None:
        return actions
    return torch.clamp(actions, min=low, max=high)


def sample_normal(generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> Tensor:
    """Draw ``(B, *shape)`` standard normals, row b from ``generators[b]`` only.

    The loop over episodes is deliberate: it is what makes an episode's noise independent of its batch mates.
    A generator can only fill a tensor on its own device, so rows from generators elsewhere (e.g. CPU
    generators while planning on CUDA) are drawn there and copied over.
    """
    out = torch.empty((len(generators), *shape), device=device)
    for row, g in zip(out, generators, strict=True):
        if g.device == out.device:
            row.normal_(generator=g)
        else:
            row.copy_(torch.randn(tuple(shape), generator=g, device=g.device))
    return out


def evaluate_cost(cost_fn: CostFn, candidates: Tensor) -> Tensor:
    """Call ``cost_fn`` on ``(B, S, H, A)`` candidates and check it returned ``(B, S)``.

    NaN costs become +inf so a diverged rollout can never be selected as an elite or a best plan.
    """
    costs = cost_fn(candidates)
    expected = tuple(candidates.shape[:2])
    if not isinstance(costs, Tensor) or tuple(costs.shape) != expected:
        got = tuple(costs.shape) if isinstance(costs, Tensor) else type(costs).__name__
        raise ValueError(f"cost_fn returned {got}, expected a tensor of shape (B, S) = {expected}")
    return torch.nan_to_num(costs.float(), nan=float("inf"))


class BestSoFar:
    """Each episode's cheapest candidate seen so far (the gradient and Nevergrad planners return it).

    Args:
        start: ``(B, H, A)`` the plan kept until a candidate with a finite cost is seen.
    """

    def __init__(self, start: Tensor) -> None:
        self.actions = start.clone()
        self.cost = torch.full((start.shape[0],), float("inf"), device=start.device)
        self._rows = torch.arange(start.shape[0], device=start.device)

    def update(self, costs: Tensor, candidates: Tensor) -> None:
        """Take ``(B, S)`` costs of ``(B, S, H, A)`` candidates; an episode's best changes only on a strict
        improvement, so ties keep the earlier candidate."""
        row_min, idx = costs.min(dim=1)
        improved = row_min < self.cost
        self.cost = torch.where(improved, row_min, self.cost)
        self.actions = torch.where(improved[:, None, None], candidates[self._rows, idx], self.actions)
