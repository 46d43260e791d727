"""Metaworld's scripted experts, and the noisy expert that collects training data for the Metaworld envs.

The ``metaworld.policies`` experts are hand-written controllers that read the 39-d observation; they give the
reference's evaluation goals (`jepa_wms.envs.metaworld.MetaworldEnv.sample_start_goal`) and, with noise, our
training data. Kept apart from the env so the policy can be used on states alone (the observation is
``state[:39]``), e.g. in data-collection workers.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from jepa_wms.envs.metaworld_tasks import OBS_DIM, canonical_task
from jepa_wms.envs.mujoco_render import import_mujoco

__all__ = ["NoisyExpertPolicy", "direct_action", "expert_action", "expert_policy", "import_simulator"]

# Observation entries of the task's goal position (goal-observable envs) and the direct controller's gain: an action
# of 1 moves the mocap hand about 1 cm per step, so the hand heads for the goal at full speed until ~10 cm away.
GOAL_SLICE = slice(36, 39)
DIRECT_GAIN = 10.0


def import_simulator() -> tuple[Any, Any, Any]:
    mujoco = import_mujoco("the Metaworld envs")
    try:
        from metaworld import policies
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
    except ImportError as err:
        raise ImportError(
            f'the Metaworld envs need metaworld==3.1.1 ({err}); install them with pip install "jepa-wms[sim]"'
        ) from err
    return mujoco, policies, ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE


def expert_policy(task: str) -> Any:
    """The task's scripted ``metaworld.policies`` expert (``get_action(obs39) -> (4,)``)."""
    _, policies, _ = import_simulator()
    return policies.ENV_POLICY_MAP[f"{canonical_task(task)}-v3"]()


def expert_action(expert: Any, obs: np.ndarray) -> np.ndarray:
    """The expert's action for a 39-d observation, clipped to [-1, 1]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the experts' gains overshoot by design and warn on every step
        action = expert.get_action(np.asarray(obs, dtype=np.float64))
    return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)


def direct_action(obs: np.ndarray, gripper: float) -> np.ndarray:
    """Move the hand in a straight line towards the task's goal position (``obs[36:39]``), whatever lies between.

    On reach-wall this drives the hand into the wall, which the expert (it always lifts the hand over first) never
    does: data from it shows a world model that the wall stops the hand."""
    obs = np.asarray(obs, dtype=np.float64)
    xyz = np.clip(DIRECT_GAIN * (obs[GOAL_SLICE] - obs[:3]), -1.0, 1.0)
    return np.concatenate([xyz, [gripper]])


class NoisyExpertPolicy:
    """The scripted expert plus Gaussian action noise whose size is drawn once per episode.

    The reference data are TD-MPC2 replay buffers that range from near-random to expert behaviour; a single
    noise level cannot cover that, so each episode draws σ from ``sigmas`` (with ``weights``), and the action
    is ``clip(expert(obs) + n_t, -1, 1)`` with AR(1) noise n_t = ρ·n_{t-1} + sqrt(1 - ρ²)·σ·ε_t (stationary std σ;
    ρ > 0 makes the hand wander off the expert path in arcs rather than jitter on it). The expert reads the
    39-d observation, which is ``state[:39]``.

    Measured on 40 reach episodes of 100 steps (same starts for every row; success = simulator flag; "off path"
    = mean hand distance from the noise-free expert's path; "final" = hand–target distance at the end):

    ====================  ==========  ============  ========  ========  ==========
    noise                 success@end success (any) final     off path  path length
    ====================  ==========  ============  ========  ========  ==========
    none (expert)         1.00        1.00          0.5 cm    0         27 cm
    iid σ = 1.0           0.45        0.65          4.3 cm    4.8 cm    45 cm
    ρ = 0.8, σ = 0.1      0.50        0.97          1.4 cm    1.1 cm    30 cm
    ρ = 0.8, σ = 0.3      0.35        0.80          4.1 cm    3.3 cm    43 cm
    ρ = 0.8, σ = 0.6      0.15        0.65          7.5 cm    6.3 cm    62 cm
    ρ = 0.8, σ = 1.0      0.10        0.35          10.6 cm   9.7 cm    78 cm
    default mix (below)   0.25        0.65          6.3 cm    5.4 cm    55 cm
    ====================  ==========  ============  ========  ========  ==========

    Independent noise mostly jitters around the expert path (even σ = 1 stays within 5 cm of it), so the
    default is correlated noise, ρ = 0.8, with σ ∈ {0.1, 0.3, 0.6, 1.0} equally likely: from near-expert
    episodes to ones that wander 10 cm off and rarely succeed, like replay buffers of a learning agent.

    With ``direct_fraction`` > 0, that share of the episodes (drawn per episode) follows `direct_action`, a straight
    line to the goal position, instead of the expert, with the same noise: the expert path avoids every obstacle,
    so its data never shows one stopping the hand (the ``direct`` data policy, `MetaworldEnv.data_policies`).
    """

    name = "metaworld_noisy_expert"

    def __init__(
        self,
        task: str,
        sigmas: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0),
        weights: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25),
        rho: float = 0.8,
        direct_fraction: float = 0.0,
    ):
        w = np.asarray(weights, dtype=np.float64)
        if len(sigmas) != len(w) or not len(w) or np.any(w < 0) or not w.sum() > 0 or min(sigmas) < 0:
            raise ValueError(f"NoisyExpertPolicy: need sigmas >= 0 and matching weights >= 0, got {sigmas}, {weights}")
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"NoisyExpertPolicy: rho must be in [0, 1), got {rho}")
        if not 0.0 <= direct_fraction <= 1.0:
            raise ValueError(f"NoisyExpertPolicy: direct_fraction must be in [0, 1], got {direct_fraction}")
        self.task = canonical_task(task)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.weights = tuple(float(x) for x in w / w.sum())
        self.rho = float(rho)
        self.direct_fraction = float(direct_fraction)
        self._expert = expert_policy(self.task)
        self.sigma = self.sigmas[0]
        self.direct = False
        self._noise = np.zeros(4)

    def reset(self, rng: np.random.Generator, state: np.ndarray) -> None:
        self.sigma = self.sigmas[int(rng.choice(len(self.sigmas), p=self.weights))]
        self._noise = rng.standard_normal(4) * self.sigma  # start from the stationary distribution
        # Drawn only when asked for, so the default policy's episodes stay what they were.
        self.direct = bool(self.direct_fraction > 0 and rng.random() < self.direct_fraction)

    def __call__(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        eps = rng.standard_normal(4) * self.sigma
        self._noise = self.rho * self._noise + np.sqrt(1.0 - self.rho**2) * eps
        obs = np.asarray(state, dtype=np.float64)[:OBS_DIM]
        action = expert_action(self._expert, obs)
        if self.direct:
            action = direct_action(obs, action[3])
        return np.clip(action + self._noise, -1.0, 1.0)

    def params(self) -> dict[str, Any]:
        params = {"task": self.task, "sigmas": list(self.sigmas), "weights": list(self.weights), "rho": self.rho}
        return params | ({"direct_fraction": self.direct_fraction} if self.direct_fraction else {})
