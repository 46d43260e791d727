"""Exploration policies for collecting training data: small stateful objects, reset at every episode.

Each env brings its own (``env.data_policy()``: Wall's `jepa_wms.envs.wall_policy`, PointMaze's, Push-T's and
Metaworld's modules next to them); `default_policy` picks it, and gives an env registered without one a persistent
AR(1) random walk, which explores further than independent random actions (those jitter in place).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

__all__ = ["Policy", "AR1RandomWalk", "default_policy", "policy_names"]


class Policy(Protocol):
    """``reset(rng, state)`` at an episode start, then ``policy(rng, state) -> action (A,)`` once per step.

    The state is passed so that policies may steer (door seeking); pure random walks ignore it. All
    randomness comes from ``rng``, so an episode is a function of its generator's seed alone.
    """

    name: str

    def reset(self, rng: np.random.Generator, state: np.ndarray) -> None: ...

    def __call__(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray: ...

    def params(self) -> dict[str, Any]: ...


class AR1RandomWalk:
    """Persistent random walk a_t = ρ·a_{t-1} + sqrt(1 - ρ²)·σ·ε_t, clipped to [low, high].

    The sqrt(1 - ρ²) factor keeps the stationary std at σ whatever ρ is, so ρ only sets persistence (about
    1 / (1 - ρ) steps) and σ only sets the action scale. The first action is drawn from the stationary
    distribution N(0, σ²), so episodes do not all start slow.

    Args:
        action_dim: A.
        rho: correlation between consecutive actions, in [0, 1).
        sigma: stationary standard deviation of each action component.
        low, high: clipping bounds of the env's action space.
    """

    name = "ar1_random_walk"

    def __init__(self, action_dim: int, rho: float = 0.9, sigma: float = 0.75, low: float = -2.0, high: float = 2.0):
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"{type(self).__name__}: rho must be in [0, 1), got {rho}")
        if not sigma > 0 or not low < high or action_dim < 1:
            raise ValueError(
                f"{type(self).__name__}: need sigma > 0, low < high, action_dim >= 1; got {sigma=}, {low=}, "
                f"{high=}, {action_dim=}"
            )
        self.action_dim = int(action_dim)
        self.rho, self.sigma, self.low, self.high = float(rho), float(sigma), float(low), float(high)
        self._prev: np.ndarray | None = None

    def reset(self, rng: np.random.Generator, state: np.ndarray) -> None:
        self._prev = None

    def _noise(self, rng: np.random.Generator) -> np.ndarray:
        eps = rng.standard_normal(self.action_dim) * self.sigma
        action = eps if self._prev is None else self.rho * self._prev + math.sqrt(1.0 - self.rho**2) * eps
        # The recursion continues from the clipped value so a walk pinned at the bound can turn back.
        self._prev = np.clip(action, self.low, self.high)
        return self._prev.copy()

    def __call__(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        return self._noise(rng)

    def params(self) -> dict[str, Any]:
        return {"rho": self.rho, "sigma": self.sigma, "low": self.low, "high": self.high}


def policy_names(env: Any) -> list[str]:
    """The names `default_policy` accepts for ``env``: those of ``env.data_policies()`` where the env has
    several data policies (Push-T: ``noisy_push``, ``expert``, ``random_walk``), else its default's ``name``."""
    if hasattr(env, "data_policies"):
        return list(env.data_policies())
    return [default_policy(env).name]


def default_policy(env: Any, name: str = "") -> Policy:
    """The data-collection policy `jepa_wms.datasets.collect` uses for ``env`` (an env instance).

    ``name`` ("" = the env's default) picks one of `policy_names`; an unknown name is a ValueError that lists
    them. The env's ``data_policy()`` (each built-in env has one; its docstring gives its coverage numbers), else,
    for an env registered without one, an `AR1RandomWalk` over its action space.
    """
    if name:
        valid = policy_names(env)
        if name not in valid:
            raise ValueError(
                f"unknown data policy {name!r} for {type(env).__name__}; expected one of: {', '.join(valid)} "
                "(or '' for the env's default)"
            )
        if hasattr(env, "data_policies"):
            return env.data_policy(name)
        return default_policy(env)
    if hasattr(env, "data_policy"):
        return env.data_policy()
    space = env.action_space
    return AR1RandomWalk(int(space.shape[0]), low=float(np.min(space.low)), high=float(np.max(space.high)))
