"""Metaworld v3 tasks (Sawyer arm, xyz + gripper control) with exact state control, rendered like the reference.

Each of the 50 tasks is registered as ``"metaworld-<task>"`` / ``"jepa_wms/Metaworld-<task>-v0"``. The env wraps
metaworld's goal-observable v3 env (``metaworld==3.1.1`` on ``mujoco==3.3.0``). One env step is one Metaworld
step (5 physics steps of 2.5 ms); actions are clipped to [-1, 1]: xyz moves the hand's mocap target by 1 cm per
unit, the 4th entry drives the gripper.

State (``get_state()``, float64, length ``EnvSpec.state_dim`` = 91 to 115 depending on the task), in order:

- ``[0:39]`` the Metaworld observation at this state (hand xyz, gripper distance, 14 object values, the same 18
  values one step earlier, goal xyz), so ``state[:4]`` is the proprio and ``state[:39]`` is what the reference
  (and the published parquet ``states``) call the state;
- the MuJoCo integration state from ``mj_getState``: time, qpos, qvel, act, qacc_warmstart, ctrl, mocap pos,
  mocap quat (the warm start makes replays bit-identical, not just close);
- ``model.body_pos`` then ``model.site_pos`` of the bodies/sites the task's reset moves (`TaskLayout`);
- the task attributes reward and success read (``init_tcp``, ``_target_pos``, ``obj_init_pos``, ...; NaN for an
  attribute that is still None).

Setting a state restores all of it, so obs, reward and the success flag after ``set_state`` match the original
run exactly, in this env or in a fresh one. Evaluation follows the reference "expert" goal source: a reset with
a seed drawn from the caller's generator, then the task's scripted ``metaworld.policies`` expert for 100 steps;
the last state is the goal. Success is the simulator's own flag (``evaluate_state``) at the state: the goal
matters only through the task target, which the state already holds. ``distance`` is the hand-position
distance ‖state[:3] − goal[:3]‖ in metres (the quantity planners shrink; reward = −distance).

Frames: camera ``corner2`` moved to (0.75, 0.075, 0.7) as in the reference, image flipped vertically (that camera
is upside down), shadows and MSAA off (identical framing, ~6× faster on a software GL).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces

from jepa_wms.envs.base import EnvSpec, PlanningEnvBase, register_env
from jepa_wms.envs.metaworld_policy import NoisyExpertPolicy, expert_action, expert_policy, import_simulator
from jepa_wms.envs.metaworld_tasks import (
    ATTR_SIZES,
    METAWORLD_TASKS,
    MW42_TASKS,
    OBS_DIM,
    TASK_LAYOUTS,
    canonical_task,
)
from jepa_wms.envs.mujoco_render import make_renderer, release_renderer

__all__ = [
    "METAWORLD_SPECS",
    "METAWORLD_TASKS",
    "MW42_TASKS",
    "MetaworldEnv",
    "NoisyExpertPolicy",
    "metaworld_env",
]

CAMERA = "corner2"
CAMERA_POS = (0.75, 0.075, 0.7)
EVAL_STEPS = 100
ENV_KWARGS = ("img_size", "render_mode")


class MetaworldEnv(PlanningEnvBase):
    """One Metaworld v3 task; observation ``{"pixels": uint8 (H, W, 3), "proprio": float32 (4,)}``.

    Implements the `jepa_wms.envs.base.PlanningEnv` contract; see the module docstring for the state layout,
    the goal source and the success rule.

    Args:
        task: v3 task name without ``-v3`` (``"reach"``, ``"reach-wall"``, ...; see `METAWORLD_TASKS`).
        img_size: rendered frame side in pixels.
        render_mode: only ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, task: str = "reach", img_size: int = 64, render_mode: str = "rgb_array"):
        self.task = canonical_task(task)
        if isinstance(img_size, bool) or int(img_size) != img_size or img_size < 8:
            raise ValueError(f"MetaworldEnv: img_size must be an integer >= 8, got {img_size!r}")
        if render_mode != "rgb_array":
            raise ValueError(f"MetaworldEnv: render_mode must be 'rgb_array', got {render_mode!r}")
        self.img_size = int(img_size)
        self.render_mode = render_mode
        mujoco, _, envs = import_simulator()
        self._mj = mujoco
        # seed=0 makes the constructor's own reset save and restore numpy's global generator.
        self._sim = envs[f"{self.task}-v3-goal-observable"](seed=0)
        self._sim.max_path_length = 2**62  # metaworld raises after 500 steps; time limits belong to the caller
        self._layout = TASK_LAYOUTS[self.task]
        model = self._sim.model
        self._body_ids = np.array([model.body(n).id for n in self._layout.bodies], dtype=np.int64)
        self._site_ids = np.array([model.site(n).id for n in self._layout.sites], dtype=np.int64)
        st = mujoco.mjtState
        self._spec = int(
            st.mjSTATE_TIME | st.mjSTATE_QPOS | st.mjSTATE_QVEL | st.mjSTATE_ACT | st.mjSTATE_WARMSTART
            | st.mjSTATE_CTRL | st.mjSTATE_MOCAP_POS | st.mjSTATE_MOCAP_QUAT
        )  # fmt: skip
        self._phys_dim = int(mujoco.mj_stateSize(model, self._spec))
        self._model_start = OBS_DIM + self._phys_dim
        self._attr_start = self._model_start + 3 * (len(self._body_ids) + len(self._site_ids))
        dim = self._attr_start + sum(ATTR_SIZES[a] for a in self._layout.attrs)
        if dim != self._layout.state_dim:
            raise RuntimeError(
                f"MetaworldEnv({self.task!r}): state size {dim} != {self._layout.state_dim} in metaworld_tasks; "
                "the installed metaworld/mujoco differ from metaworld==3.1.1 on mujoco==3.3.0"
            )
        self.state_dim = dim
        self._expert = expert_policy(self.task)
        self._camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
        model.cam_pos[self._camera_id] = CAMERA_POS
        self._renderer: Any = None
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, shape=(self.img_size, self.img_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
            }
        )
        self._obs = np.zeros(OBS_DIM)
        self._goal = self._reset_task(0)

    # -- state ----------------------------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        sim, model = self._sim, self._sim.model
        phys = np.empty(self._phys_dim)
        self._mj.mj_getState(model, sim.data, phys, self._spec)
        parts = [self._obs, phys, model.body_pos[self._body_ids].ravel(), model.site_pos[self._site_ids].ravel()]
        for name in self._layout.attrs:
            value = getattr(sim, name)
            value = np.full(1, np.nan) if value is None else np.asarray(value, dtype=np.float64).ravel()
            if value.size != ATTR_SIZES[name]:
                raise RuntimeError(f"MetaworldEnv({self.task!r}): attribute {name} has size {value.size}")
            parts.append(value)
        return np.concatenate(parts)

    def _check_state(self, state: Any, what: str) -> np.ndarray:
        arr = np.asarray(state, dtype=np.float64)
        if arr.shape != (self.state_dim,):
            raise ValueError(
                f"MetaworldEnv({self.task!r}): {what} must have shape ({self.state_dim},) as returned by "
                f"get_state(), got {arr.shape}"
            )
        # NaN is allowed in the attribute part only, where it stands for an attribute that is still None.
        if not np.all(np.isfinite(arr[: self._attr_start])) or np.any(np.isinf(arr[self._attr_start :])):
            raise ValueError(f"MetaworldEnv({self.task!r}): {what} has non-finite values")
        return arr

    def set_state(self, state: np.ndarray) -> None:
        s = self._check_state(state, "state")
        sim, model = self._sim, self._sim.model
        self._obs = s[:OBS_DIM].copy()
        sim._prev_obs = self._obs[:18].copy()  # metaworld's frame stack: the next obs repeats these 18 values
        self._mj.mj_setState(model, sim.data, s[OBS_DIM : self._model_start], self._spec)
        i = self._model_start
        for ids, table in ((self._body_ids, model.body_pos), (self._site_ids, model.site_pos)):
            table[ids] = s[i : i + 3 * len(ids)].reshape(-1, 3)
            i += 3 * len(ids)
        for name in self._layout.attrs:
            size = ATTR_SIZES[name]
            value = s[i : i + size]
            i += size
            if size == 1:
                setattr(sim, name, None if np.isnan(value[0]) else float(value[0]))
            else:
                setattr(sim, name, value.copy())
        sim.curr_path_length = 0
        sim._did_see_sim_exception = False
        self._mj.mj_forward(model, sim.data)
        # mj_forward overwrites qacc_warmstart with its own solution; put the saved one back so the next step
        # starts its constraint solver exactly where the original run did.
        self._mj.mj_setState(model, sim.data, s[OBS_DIM : self._model_start], self._spec)

    def set_goal(self, goal: np.ndarray) -> None:
        self._goal = self._check_state(goal, "goal").copy()

    # -- task -----------------------------------------------------------------------------------------------
    def _reset_task(self, seed: int) -> np.ndarray:
        """Metaworld's own reset, with the object/goal positions drawn from a generator seeded by ``seed``."""
        sim = self._sim
        sim._partially_observable = False
        sim._freeze_rand_vec = False  # a frozen rand vec would put every episode at the same positions
        sim.seeded_rand_vec = True
        sim.np_random = np.random.default_rng(seed)
        obs, _ = sim.reset()
        self._obs = np.asarray(obs, dtype=np.float64).copy()
        return self.get_state()

    def _advance(self, action: np.ndarray) -> dict[str, Any]:
        obs, _, _, _, info = self._sim.step(action)
        self._obs = np.asarray(obs, dtype=np.float64).copy()
        return info

    def expert_action(self, state: np.ndarray | None = None) -> np.ndarray:
        """The scripted expert's action at ``state`` (default: the current state), clipped to [-1, 1]."""
        obs = self._obs if state is None else np.asarray(state, dtype=np.float64)[:OBS_DIM]
        return expert_action(self._expert, obs)

    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The reference "expert" goal source: a seeded reset is the start, 100 expert steps later is the goal.

        The env's current state is restored afterwards. The goal is where the expert is after 100 steps, which
        is not a success state for every task and seed (the experts of a few tasks need longer).
        """
        seed = int(rng.integers(2**63))
        saved = self.get_state()
        try:
            start = self._reset_task(seed)
            for _ in range(EVAL_STEPS):
                self._advance(self.expert_action())
            goal = self.get_state()
        finally:
            self.set_state(saved)
        return start, goal

    def data_policies(self) -> dict[str, Any]:
        """Factories of the data policies by name; the first, ``noisy_expert``, is the default.

        ``noisy_expert``: the scripted expert with per-episode AR(1) Gaussian noise (`NoisyExpertPolicy`);
        ``direct``: the same, with a third of the episodes heading straight for the goal instead
        (``direct_fraction`` 1/3), so that obstacles such as reach-wall's wall are in the data.
        """
        return {
            "noisy_expert": lambda: NoisyExpertPolicy(self.task),
            "direct": lambda: NoisyExpertPolicy(self.task, direct_fraction=1 / 3),
        }

    def data_policy(self, name: str | None = None) -> NoisyExpertPolicy:
        """The data-collection policy ``name`` (one of `data_policies`; None or "": the default)."""
        policies = self.data_policies()
        if name and name not in policies:
            raise ValueError(f"unknown data policy {name!r} for {self.task}; expected one of: {', '.join(policies)}")
        return policies[name or "noisy_expert"]()

    # -- success --------------------------------------------------------------------------------------------
    def distance(self, state: np.ndarray, goal: np.ndarray) -> float:
        """Hand-position distance in metres (state[:3] is the hand xyz)."""
        return float(np.linalg.norm(np.asarray(state, np.float64)[:3] - np.asarray(goal, np.float64)[:3]))

    def state_cost(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Oracle planning cost in m²: squared hand-position error plus squared error of the first object's
        position (observation entries 4:7; it stays put on reach tasks, and is what pick/push tasks move)."""
        s, g = np.asarray(states, np.float64), np.asarray(goal, np.float64)
        return np.square(s[:, :3] - g[:3]).sum(-1) + np.square(s[:, 4:7] - g[4:7]).sum(-1)

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        """The simulator's success flag at ``state``; ``goal`` is not needed (the task target is in the state).

        Equals the ``info["success"]`` of the step that produced ``state`` (checked on all 50 tasks). Only
        stick-push reads contact forces for it, which are recomputed here from the restored state.
        """
        saved = self.get_state()
        try:
            self.set_state(state)
            _, info = self._sim.evaluate_state(self._obs.copy(), np.zeros(4, dtype=np.float32))
        finally:
            self.set_state(saved)
        return bool(info["success"])

    # -- gymnasium API --------------------------------------------------------------------------------------
    def advance(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(f"MetaworldEnv.step: action must be 4 finite numbers, got {action!r}")
        self._last_success = bool(self._advance(np.clip(a, -1.0, 1.0))["success"])
        return self.get_state()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        state = self.advance(action)
        dist = self.distance(state, self._goal)
        info = {"state": state, "success": self._last_success, "distance": dist}
        return self._observation(), -dist, False, False, info

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render(), "proprio": self._obs[:4].astype(np.float32)}

    # -- rendering ------------------------------------------------------------------------------------------
    def _make_renderer(self) -> Any:
        return make_renderer(self._mj, self._sim.model, self.img_size)

    def render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = self._make_renderer()
        self._renderer.update_scene(self._sim.data, camera=self._camera_id)
        img = np.ascontiguousarray(self._renderer.render()[::-1])
        if not img.any():
            raise RuntimeError(
                f"MetaworldEnv({self.task!r}): the renderer returned an all-zero frame; headless rendering needs "
                f"MUJOCO_GL=egl (or osmesa) set before mujoco is imported (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r})"
            )
        return img

    def close(self) -> None:
        if self._renderer is not None:
            release_renderer(self._renderer)
            self._renderer = None
        self._sim.close()


def metaworld_env(task: str, **kwargs: Any) -> MetaworldEnv:
    """`MetaworldEnv` for ``task`` (``"reach"``, ``"reach-v3"`` or ``"metaworld-reach"``); lists tasks on a typo."""
    return _Factory(canonical_task(task))(**kwargs)


class _Factory:
    """Registry factory of one task: rejects unknown kwargs by name, as `jepa_wms.envs.make_env` promises."""

    def __init__(self, task: str):
        self.task = task

    def __call__(self, **kwargs: Any) -> MetaworldEnv:
        unknown = sorted(set(kwargs) - set(ENV_KWARGS))
        if unknown:
            raise ValueError(f"metaworld-{self.task}: unknown option(s) {unknown}; expected {list(ENV_KWARGS)}")
        return MetaworldEnv(self.task, **kwargs)

    def __repr__(self) -> str:
        return f"MetaworldEnv factory for {self.task!r}"


METAWORLD_SPECS: dict[str, EnvSpec] = {
    task: EnvSpec(
        name=f"metaworld-{task}",
        gym_id=f"jepa_wms/Metaworld-{task}-v0",
        action_dim=4,
        proprio_dim=4,
        state_dim=TASK_LAYOUTS[task].state_dim,
        frameskip=5,
        eval_steps=EVAL_STEPS,
        goal_source="expert",
    )
    for task in METAWORLD_TASKS
}

for _task, _spec in METAWORLD_SPECS.items():
    register_env(_spec, _Factory(_task))
