"""The contract every jepa-wms environment follows, and the registry that builds them by name.

Planning needs more than the gymnasium API: exact state get/set (to start episodes at chosen states and to
render goal images), a success rule that matches the reference protocol, and a goal sampler. `PlanningEnv`
spells that out; `EnvSpec` carries the numbers downstream code needs (action dim, frameskip, episode length)
so they are read from one place instead of being written back into configs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium
import numpy as np

__all__ = ["EnvSpec", "PlanningEnv", "PlanningEnvBase", "register_env", "make_env", "env_spec", "env_names"]


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a registered environment.

    Attributes:
        name: short registry name, e.g. ``"wall"``.
        gym_id: the id registered with gymnasium, e.g. ``"jepa_wms/Wall-v0"``.
        action_dim: raw env action dimension A (before frameskip stacking).
        proprio_dim: proprioception dimension P of ``obs["proprio"]``.
        state_dim: dimension S of the exact simulator state (``get_state()``).
        frameskip: env steps per model action in the reference protocol.
        eval_steps: env steps per evaluation episode in the reference protocol.
        goal_source: how evaluation goals are drawn (``"random_state"``: ``sample_start_goal``).
        plan: the reference protocol's ``plan.*`` settings (e.g. horizon, replanning, clips) that a model trained
            on other data gets when it is evaluated here zero-shot (``jepa-wms eval --checkpoint CK --env NAME``).
    """

    name: str
    gym_id: str
    action_dim: int
    proprio_dim: int
    state_dim: int
    frameskip: int
    eval_steps: int
    goal_source: str
    plan: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class PlanningEnv(Protocol):
    """What planners, data collection and evaluation may rely on, beyond ``gymnasium.Env``.

    Observations are ``{"pixels": uint8 (H, W, 3), "proprio": float32 (P,)}``.

    - ``reset(seed=None, options=None) -> (obs, info)``: ``options`` may hold ``"state"`` and ``"goal"``
      arrays; missing ones come from ``sample_start_goal(self.np_random)``, so ``reset(seed=s)`` is
      reproducible.
    - ``step(action) -> (obs, reward, terminated, truncated, info)``: reward is minus the distance to the
      goal; ``terminated``/``truncated`` are always False because time limits belong to the caller.
      ``info`` holds ``"state"`` (float64 copy), ``"success"`` (bool) and ``"distance"`` (float).
    - ``advance(action) -> state``: ``step`` without rendering or goal bookkeeping, returning the new exact state
      (what the simulator oracle rolls candidates out with).
    - ``state_cost(states (N, S), goal (S,)) -> (N,)``: how far states are from the goal, for planning with the
      true simulator as the model (``plan.model=simulator``); each env documents its weights.
    - ``get_state()``/``set_state(state)`` are exact: a get after a set returns the same values.
    - ``render()`` draws the current state; ``render_state(state)`` draws any state without touching the env.
      Both return uint8 (H, W, 3) and are deterministic for a given state.
    """

    np_random: np.random.Generator

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]: ...

    def get_state(self) -> np.ndarray: ...

    def set_state(self, state: np.ndarray) -> None: ...

    def set_goal(self, goal: np.ndarray) -> None: ...

    @property
    def goal_state(self) -> np.ndarray: ...

    def advance(self, action: np.ndarray) -> np.ndarray: ...

    def state_cost(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray: ...

    def render(self) -> np.ndarray: ...

    def render_state(self, state: np.ndarray) -> np.ndarray: ...

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool: ...

    def distance(self, state: np.ndarray, goal: np.ndarray) -> float: ...

    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


class PlanningEnvBase(gymnasium.Env):
    """The plumbing our envs share: ``reset`` with ``state``/``goal`` options and the goal accessors.

    Subclasses implement the `PlanningEnv` methods (``step`` comes from ``advance``) plus ``_observation()``.
    """

    _goal: np.ndarray

    @property
    def goal_state(self) -> np.ndarray:
        return self._goal.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"state", "goal"})
        if unknown:
            raise ValueError(
                f"{type(self).__name__}.reset: unknown option(s) {unknown}; expected 'state' and/or 'goal'"
            )
        if "state" not in options or "goal" not in options:
            start, goal = self.sample_start_goal(self.np_random)
            options.setdefault("state", start)
            options.setdefault("goal", goal)
        self.set_goal(options["goal"])
        self.set_state(options["state"])
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.advance(action)
        info = self._info()
        return self._observation(), -info["distance"], False, False, info

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """A frame of ``state``; the env's own state is restored. Envs that can draw a state without touching the
        simulation (Push-T, PointMaze, Wall) override it."""
        saved = self.get_state()
        try:
            self.set_state(state)
            return self.render()
        finally:
            self.set_state(saved)

    def _info(self) -> dict[str, Any]:
        state = self.get_state()
        dist = self.distance(state, self._goal)
        return {"state": state, "success": self.is_success(state, self._goal), "distance": dist}


_REGISTRY: dict[str, tuple[EnvSpec, Callable[..., gymnasium.Env]]] = {}


def register_env(spec: EnvSpec, factory: Callable[..., gymnasium.Env]) -> None:
    """Register ``factory`` under ``spec.name`` here and under ``spec.gym_id`` with gymnasium.

    Registering the same name twice with the same spec is a no-op (modules may be re-imported); a different
    spec under a taken name is an error, because silently replacing an env would change experiments.
    """
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing[0] != spec:
        raise ValueError(f"env name {spec.name!r} is already registered with a different spec: {existing[0]}")
    _REGISTRY[spec.name] = (spec, factory)
    if spec.gym_id not in gymnasium.registry:
        gymnasium.register(id=spec.gym_id, entry_point=factory)


def _lookup(name: str) -> tuple[EnvSpec, Callable[..., gymnasium.Env]]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    for spec, factory in _REGISTRY.values():
        if spec.gym_id == name:
            return spec, factory
    valid = ", ".join(sorted(_REGISTRY) + sorted(s.gym_id for s, _ in _REGISTRY.values()))
    raise ValueError(f"unknown env {name!r}; expected one of: {valid}")


def make_env(name: str, **kwargs: Any) -> gymnasium.Env:
    """Build a registered env by short name (``"wall"``) or gym id, without gymnasium's wrappers.

    The raw env is returned on purpose: planners call ``set_state``/``render_state``, which wrappers would
    hide.
    ``kwargs`` go to the env's constructor (e.g. ``img_size=224``).
    """
    _, factory = _lookup(name)
    return factory(**kwargs)


def env_spec(name: str) -> EnvSpec:
    """The `EnvSpec` of a registered env (short name or gym id)."""
    return _lookup(name)[0]


def env_names() -> list[str]:
    """Short names of all registered envs, sorted."""
    return sorted(_REGISTRY)
