"""The true simulator as the planner's model (``plan.model=simulator``): the ceiling of a planning protocol.

Every candidate action sequence is rolled out in a copy of the env set exactly to the episode's current state
(``set_state``), and the state it ends in is scored against the goal, either on the true state (the env's
``state_cost``, weights documented per env) or on the rendered frame (``sim_cost=pixels``: the pixel error a
perfect image model would see, plus α × the normalised proprio error). Everything else is the protocol of a
learned model: the same goals, horizon, frameskip, action normalisation and clip, planner and success rule, so
the gap between a model's success and this one's is what the model loses, and what the oracle misses is the
protocol's own limit (budget, horizon, planner).

Rollouts run in worker processes, each holding its own env (``workers``; the result does not depend on it:
stepping from an exact state is deterministic).
"""

from __future__ import annotations

import multiprocessing
import os
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import SimCost
from ..envs import make_env
from ..world_model import denormalize_actions
from .base import CostFn

__all__ = ["SIM_COSTS", "SimulatorModel", "check_simulator_env"]

SIM_COSTS: tuple[str, ...] = typing.get_args(SimCost)
_NEEDED = ("get_state", "set_state", "advance", "state_cost", "render_state")


def check_simulator_env(env: Any, name: str) -> None:
    """Raise a ValueError naming ``name`` and the methods it lacks if ``env`` cannot serve as a planning oracle."""
    raw = getattr(env, "unwrapped", env)
    missing = [m for m in _NEEDED if not callable(getattr(raw, m, None))]
    if missing:
        raise ValueError(
            f"plan.model=simulator: env {name!r} cannot be planned with as a simulator: it lacks "
            f"{', '.join(missing)} (exact state set-up, a rendering-free step and a state cost are needed)"
        )


def _rollout(env: Any, start: np.ndarray, actions: np.ndarray, want_obs: bool) -> tuple[np.ndarray, list | None]:
    """Final states (S, state_dim) of ``actions`` (S, T, A) from ``start``; with ``want_obs`` also the final
    observations (only the last step renders)."""
    finals, obs = [], [] if want_obs else None
    for seq in actions:
        env.set_state(start)
        for a in seq[:-1]:
            env.advance(a)
        if want_obs:
            o, _, _, _, info = env.step(seq[-1])
            obs.append(o)
            finals.append(info["state"])
        else:
            finals.append(env.advance(seq[-1]))
    return np.stack(finals), obs


_WORKER_ENV: Any = None


def _init_worker(name: str, kwargs: dict) -> None:
    global _WORKER_ENV
    torch.set_num_threads(1)
    _WORKER_ENV = make_env(name, **kwargs).unwrapped


def _worker_rollout(args: tuple) -> tuple[np.ndarray, list | None]:
    return _rollout(_WORKER_ENV, *args)


class SimulatorModel:
    """Plans against the true simulator of ``env``; the action statistics give the planner the same normalised
    search space as a world model trained on that data.

    Args:
        env, env_kwargs: the registered env and its options (rendering size for ``cost="pixels"``).
        action_mean, action_std: raw per-env-step action statistics (A,), as a dataset stores them.
        frameskip: env steps per model action.
        cost: ``"state"`` (the env's ``state_cost``) or ``"pixels"`` (rendered frames + proprio).
        proprio_mean, proprio_std: normalise the proprio term of the pixel cost.
        workers: rollout processes; 0 = one per CPU core, 1 = in this process.
    """

    def __init__(
        self,
        env: str,
        env_kwargs: dict[str, Any],
        action_mean: Sequence[float] | np.ndarray | Tensor,
        action_std: Sequence[float] | np.ndarray | Tensor,
        frameskip: int,
        *,
        cost: str = "state",
        proprio_mean: Sequence[float] | np.ndarray | Tensor | None = None,
        proprio_std: Sequence[float] | np.ndarray | Tensor | None = None,
        workers: int = 0,
    ) -> None:
        if cost not in SIM_COSTS:
            raise ValueError(f"plan.sim_cost must be one of {SIM_COSTS}, got {cost!r}")
        self.env_name, self.env_kwargs = env, dict(env_kwargs)
        self._env = make_env(env, **self.env_kwargs).unwrapped
        check_simulator_env(self._env, env)
        self.cost = cost
        self.frameskip = int(frameskip)
        self.action_mean = torch.as_tensor(np.asarray(action_mean, np.float32))
        self.action_std = torch.as_tensor(np.asarray(action_std, np.float32))
        self.proprio_mean = None if proprio_mean is None else np.asarray(proprio_mean, np.float64)
        self.proprio_std = None if proprio_std is None else np.asarray(proprio_std, np.float64)
        self.workers = int(workers) if workers > 0 else (os.cpu_count() or 1)
        self._pool: Any = None

    @property
    def action_dim(self) -> int:
        return self.frameskip * self.action_mean.numel()

    def denormalize_actions(self, actions: Tensor) -> Tensor:
        """Model actions (..., frameskip·A) normalised → raw env actions (..., frameskip, A)."""
        return denormalize_actions(actions, self.action_mean, self.action_std, self.frameskip)

    def observe(self, obs: Sequence[dict]) -> list[dict]:
        """The planning context is the observation itself: its exact ``state`` (and pixels/proprio)."""
        missing = [i for i, o in enumerate(obs) if "state" not in o]
        if missing:
            raise ValueError(f"SimulatorModel.observe: observations {missing} lack the exact env 'state'")
        return [dict(o) for o in obs]

    def cost_fn(self, current: Sequence[dict], goal: Sequence[dict], alpha: float, kind: str) -> CostFn:
        """``(B, S, H, A) → (B, S)``: roll each candidate out from ``current[b]["state"]``, score the end state."""

        def cost(candidates: Tensor) -> Tensor:
            raw = self.denormalize_actions(candidates.detach().float()).flatten(2, 3).cpu().numpy()
            finals, obs = self._rollouts([c["state"] for c in current], raw)
            costs = np.stack(
                [self._score(finals[b], None if obs is None else obs[b], goal[b], alpha, kind) for b in range(len(raw))]
            )
            return torch.as_tensor(costs, dtype=torch.float32, device=candidates.device)

        return cost

    def _score(self, finals: np.ndarray, obs: list | None, goal: dict, alpha: float, kind: str) -> np.ndarray:
        if obs is None:
            return self._env.state_cost(finals, np.asarray(goal["state"]))
        pixels = np.stack([o["pixels"] for o in obs]).astype(np.float32)
        err = (pixels - goal["pixels"].astype(np.float32)) / 255.0
        total = _mean_error(err, kind)
        if alpha > 0 and self.proprio_mean is not None:
            prop = np.stack([o["proprio"] for o in obs]).astype(np.float64)
            norm = (prop - goal["proprio"].astype(np.float64)) / self.proprio_std
            total = total + alpha * _mean_error(norm, kind)
        return total

    def _rollouts(self, starts: list[np.ndarray], raw: np.ndarray) -> tuple[np.ndarray, list | None]:
        """(B, S, T, A) raw actions from B start states → final states (B, S, state_dim) and observations."""
        want_obs = self.cost == "pixels"
        b, s = raw.shape[:2]
        parts = max(1, min(s, self.workers))
        bounds = np.linspace(0, s, parts + 1).astype(int)
        jobs = [
            (np.asarray(starts[i]), raw[i, lo:hi], want_obs)
            for i in range(b)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        if self.workers == 1:
            results = [_rollout(self._env, *job) for job in jobs]
        else:
            results = self._get_pool().map(_worker_rollout, jobs)
        finals = np.stack([np.concatenate([r[0] for r in results[i * parts : (i + 1) * parts]]) for i in range(b)])
        if not want_obs:
            return finals, None
        obs = [[o for r in results[i * parts : (i + 1) * parts] for o in r[1]] for i in range(b)]
        return finals, obs

    def _get_pool(self) -> Any:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.env_name, self.env_kwargs))
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (also done when the model is garbage-collected)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __del__(self) -> None:
        self.close()


def _mean_error(err: np.ndarray, kind: str) -> np.ndarray:
    flat = err.reshape(len(err), -1)
    return (np.square(flat) if kind == "L2" else np.abs(flat)).mean(-1)
