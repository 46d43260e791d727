"""A RoboCasa-style stand-in on robosuite alone: the paper's robot reaching for / placing a cube on a table.

RoboCasa is not on PyPI and its kitchens need 5–20 GB of assets; robosuite 1.5.2 (PyPI) has the paper's robot, so
``franka-tabletop-reach`` / ``franka-tabletop-place`` run the same protocol on robosuite's Lift table:
PandaOmron (Panda on the Omron mobile base) with a Robotiq-85 gripper, OSC pose control at 20 Hz, and a 256-px camera
``robot0_leftview`` on the base placed as RoboCasa's (tuned to DROID's left view). Numbers measured here are *not*
the paper's RoboCasa numbers: the scene, object and recorded segments differ.

One env step is one model action: a 7-D DROID action (Δxyz m, Δeuler rad, Δgripper), mapped to the OSC input
(Δxyz/0.05, Δeuler/0.5, gripper a[6]) and held for 5 control steps (0.25 s), as the reference's ``repeat_actskip``.
So the reference's 60-control-step episodes are ``EnvSpec.eval_steps`` = 12 steps here (frameskip 1: the model
action is the env action). Success is checked at the last step: reach ‖hand − object‖ < 0.2 m, place ‖object −
the goal segment's final object position‖ < 0.15 m. Goals are recorded segments of a scripted policy (reach: hand
to the object; place: from a grasped, lifted cube to a random spot on the table, released). The state layout is
`jepa_wms.envs.franka_sim.RobotSim`'s: ``state[:7]`` is the proprio, ``state[7:10]`` the object position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from jepa_wms.envs.base import EnvSpec, PlanningEnvBase, register_env
from jepa_wms.envs.franka_sim import ARM_SCALE, CAMERA, CONTROL_HZ, RobotSim, add_camera, import_robosuite
from jepa_wms.envs.mujoco_render import make_renderer, release_renderer

__all__ = ["FRANKA_TABLETOP_SPECS", "FrankaTabletopEnv", "ReachPolicy", "TASKS"]

TASKS = ("reach", "place")
EVAL_STEPS = 12  # 60 control steps at 5 per model action
SUCCESS_RADIUS = {"reach": 0.2, "place": 0.15}
ENV_KWARGS = ("img_size", "render_mode")
OBJECT_BODY = "cube_main"
# Where cubes start and are placed (world xy, m): the part of Lift's 0.8 m table the arm reaches from its base.
CUBE_X, CUBE_Y = (-0.15, 0.15), (-0.2, 0.2)
HOVER = 0.08  # m above the cube before descending to grasp


def _scene(img_size: int) -> Any:
    """robosuite's Lift task (one cube on a table) with PandaOmron, Robotiq-85, OSC at 20 Hz and the RoboCasa
    camera; no robosuite renderer (frames come from our own headless renderer).

    No initialization noise and a fixed seed: robosuite's OSC pulls the arm (nullspace) towards the joints it had
    when the controller was made, state that `get_state` does not hold; robosuite's default noise (unseeded) made
    that target, and so every trajectory, differ between env instances. Without it the target is the robot's
    nominal ``init_qpos``, as after a deterministic reset (`RobocasaEnv` rebuilding a recorded scene)."""
    import_robosuite("franka-tabletop")
    from robosuite.controllers import load_composite_controller_config
    from robosuite.environments.manipulation.lift import Lift

    class _Lift(Lift):
        def _load_model(self) -> None:
            super()._load_model()
            add_camera(self.model.worldbody)

    config = load_composite_controller_config(robot="PandaOmron")  # arm OSC_POSE, torso, base, GRIP gripper
    return _Lift(
        robots="PandaOmron", gripper_types="Robotiq85Gripper", controller_configs=config, control_freq=CONTROL_HZ,
        has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False, horizon=2**62, ignore_done=True,
        hard_reset=False, initialization_noise=None, seed=0,
    )  # fmt: skip


class FrankaTabletopEnv(PlanningEnvBase):
    """The stand-in reach/place env; observation ``{"pixels": uint8 (H, W, 3), "proprio": float32 (7,)}``.

    Args:
        task: ``"reach"`` or ``"place"``.
        img_size: frame side in pixels (the reference: 256).
        render_mode: only ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task: str = "reach", img_size: int = 256, render_mode: str = "rgb_array"):
        if task not in TASKS:
            raise ValueError(f"FrankaTabletopEnv: task must be one of {TASKS}, got {task!r}")
        if isinstance(img_size, bool) or int(img_size) != img_size or img_size < 8:
            raise ValueError(f"FrankaTabletopEnv: img_size must be an integer >= 8, got {img_size!r}")
        if render_mode != "rgb_array":
            raise ValueError(f"FrankaTabletopEnv: render_mode must be 'rgb_array', got {render_mode!r}")
        self.task, self.img_size, self.render_mode = task, int(img_size), render_mode
        self._rs = self._make_scene()
        self.sim = RobotSim(self._rs, self._object_body)
        self.state_dim = self.sim.state_dim
        import mujoco

        self._mj = mujoco
        self._camera_id = int(self.sim.model.camera(CAMERA).id)
        self._renderer: Any = None
        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[0] = 0  # robosuite's collision geoms (flat green/blue boxes); visuals are group 1
        self.action_space = spaces.Box(
            np.concatenate([-ARM_SCALE, [-1.0]]).astype(np.float32),
            np.concatenate([ARM_SCALE, [1.0]]).astype(np.float32),
        )
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, shape=(self.img_size, self.img_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, shape=(7,), dtype=np.float32),
            }
        )
        self.sim.control(np.array([0, 0, 0, 0, 0, 0, -1.0]), steps=4)  # open the gripper and settle
        self._home = self.get_state()
        self._goal = self._home.copy()

    _object_body = OBJECT_BODY

    def _make_scene(self) -> Any:
        """The robosuite env, reset (a subclass builds another scene here)."""
        env = _scene(self.img_size)
        env.reset()
        return env

    # -- state ----------------------------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        return self.sim.get_state()

    def set_state(self, state: np.ndarray) -> None:
        self.sim.set_state(state)

    def set_goal(self, goal: np.ndarray) -> None:
        self._goal = self.sim.check_state(goal, "goal").copy()

    def with_object(self, state: np.ndarray, xyz: np.ndarray, yaw: float = 0.0) -> np.ndarray:
        """``state`` with the cube moved to ``xyz`` (world, m) at rest; the env's current state is kept."""
        saved = self.get_state()
        try:
            quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
            joint = self._rs.cube.joints[0]
            return self.sim.set_qpos(state, **{joint: np.concatenate([xyz, quat])})
        finally:
            self.set_state(saved)

    # -- goals ----------------------------------------------------------------------------------------------
    def _random_start(self, rng: np.random.Generator) -> np.ndarray:
        """The home pose with the cube at a random spot and yaw, the arm's joints jittered by up to 0.1 rad."""
        cube_z = float(self._home[9])
        xyz = np.array([rng.uniform(*CUBE_X), rng.uniform(*CUBE_Y), cube_z])
        state = self.with_object(self._home, xyz, float(rng.uniform(-np.pi, np.pi)))
        joints = {n: self._arm_qpos(state, n) + rng.uniform(-0.1, 0.1) for n in self.sim.robot.robot_joints}
        saved = self.get_state()
        try:
            return self.sim.set_qpos(state, **joints)
        finally:
            self.set_state(saved)

    def _arm_qpos(self, state: np.ndarray, name: str) -> float:
        adr = int(self.sim.model.jnt_qposadr[self.sim.model.joint(name).id])
        return float(state[RobotSim.SUMMARY + 1 + adr])  # mj state starts with time

    def expert_action(self, state: np.ndarray, target: np.ndarray, grip: float, gain: float = 0.5) -> np.ndarray:
        """A DROID action moving the hand a fraction ``gain`` of the way to ``target`` (each axis clipped to
        5 cm), orientation held, gripper command ``grip`` (-1 open, +1 close)."""
        step = np.clip(gain * (np.asarray(target) - state[:3]), -ARM_SCALE[:3], ARM_SCALE[:3])
        return np.concatenate([step, np.zeros(3), [grip]])

    def _run(self, actions: Any, steps: int) -> np.ndarray:
        for _ in range(steps):
            self.sim.control(actions(self.get_state()))
        return self.get_state()

    def _pick(self, start: np.ndarray) -> np.ndarray:
        """Scripted grasp and lift of the cube from ``start`` (not part of an episode: it makes place's start)."""
        self.set_state(start)
        cube = start[7:10]
        self._run(lambda s: self.expert_action(s, cube + [0, 0, HOVER], -1.0, 0.8), 6)
        self._run(lambda s: self.expert_action(s, cube + [0, 0, -0.005], -1.0, 0.8), 5)
        self._run(lambda s: self.expert_action(s, s[:3], 1.0), 4)
        return self._run(lambda s: self.expert_action(s, s[:3] * [1, 1, 0] + [0, 0, cube[2] + 0.15], 1.0), 4)

    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A recorded segment of the scripted policy: reach moves the hand to the cube for ``EVAL_STEPS``; place
        starts from a scripted grasp and carries the cube to a random table spot, then opens. The env's state is
        restored afterwards."""
        saved = self.get_state()
        try:
            start = self._random_start(rng)
            if self.task == "reach":
                self.set_state(start)
                cube = start[7:10]
                goal = self._run(lambda s: self.expert_action(s, cube + [0, 0, 0.02], -1.0), EVAL_STEPS)
            else:
                start = self._pick(start)
                spot = np.array([rng.uniform(*CUBE_X), rng.uniform(*CUBE_Y), start[9]])
                self._run(lambda s: self.expert_action(s, [*spot[:2], self._home[9] + 0.02], 1.0), EVAL_STEPS - 3)
                goal = self._run(lambda s: self.expert_action(s, s[:3], -1.0), 3)
        finally:
            self.set_state(saved)
        return start, goal

    def data_policies(self) -> dict[str, Any]:
        """``reach``: the hand towards the cube with AR(1) noise (the only data policy)."""
        return {"reach": lambda: ReachPolicy(self.task)}

    def data_policy(self, name: str | None = None) -> ReachPolicy:
        if name and name not in self.data_policies():
            raise ValueError(f"unknown data policy {name!r}; expected one of: {', '.join(self.data_policies())}")
        return ReachPolicy(self.task)

    # -- success --------------------------------------------------------------------------------------------
    def distance(self, state: np.ndarray, goal: np.ndarray) -> float:
        """The quantity success thresholds (m): reach ‖hand − object‖, place ‖object − goal object‖."""
        s, g = np.asarray(state, np.float64), np.asarray(goal, np.float64)
        if self.task == "reach":
            return float(np.linalg.norm(s[:3] - s[7:10]))
        return float(np.linalg.norm(s[7:10] - g[7:10]))

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        return self.distance(state, goal) < SUCCESS_RADIUS[self.task]

    def state_cost(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Oracle cost in m²: squared hand error to the goal's hand plus squared object error to the goal's."""
        s, g = np.asarray(states, np.float64), np.asarray(goal, np.float64)
        return np.square(s[:, :3] - g[:3]).sum(-1) + np.square(s[:, 7:10] - g[7:10]).sum(-1)

    # -- gymnasium API --------------------------------------------------------------------------------------
    def advance(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (7,) or not np.all(np.isfinite(a)):
            raise ValueError(f"FrankaTabletopEnv.step: action must be 7 finite numbers, got {action!r}")
        self.sim.control(a)
        return self.get_state()

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render(), "proprio": self.sim.hand_pose().astype(np.float32)}

    def render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = make_renderer(self._mj, self.sim.model, self.img_size)
        self._renderer.update_scene(self.sim.data, camera=self._camera_id, scene_option=self._scene_option)
        img = self._renderer.render().copy()
        if not img.any():
            raise RuntimeError("FrankaTabletopEnv: all-zero frame; headless rendering needs MUJOCO_GL=egl or osmesa")
        return img

    def close(self) -> None:
        if self._renderer is not None:
            release_renderer(self._renderer)
            self._renderer = None
        self._rs.close()


class ReachPolicy:
    """Data policy: the hand heads for a point near the cube (re-drawn every ~10 steps, up to 10 cm off it), with
    AR(1) noise on every dimension and a gripper that toggles now and then (place: more often), so the data covers
    approach, contact and some pushing of the cube."""

    name = "reach"

    def __init__(self, task: str = "reach", rho: float = 0.8, sigma: float = 0.02):
        self.task, self.rho, self.sigma = task, float(rho), float(sigma)
        self._noise = np.zeros(6)
        self._offset = np.zeros(3)
        self._grip = -1.0

    def reset(self, rng: np.random.Generator, state: np.ndarray) -> None:
        self._noise = rng.standard_normal(6) * self.sigma
        self._offset = rng.uniform(-0.1, 0.1, 3) * [1, 1, 0.5]
        self._grip = -1.0

    def __call__(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        if rng.random() < 0.1:
            self._offset = rng.uniform(-0.1, 0.1, 3) * [1, 1, 0.5]
        if rng.random() < (0.15 if self.task == "place" else 0.05):
            self._grip = -self._grip
        eps = rng.standard_normal(6) * self.sigma * [1, 1, 1, 0.5, 0.5, 0.5]
        self._noise = self.rho * self._noise + np.sqrt(1 - self.rho**2) * eps
        target = np.asarray(state[7:10]) + self._offset + [0, 0, 0.03]
        move = np.clip(0.4 * (target - np.asarray(state[:3])), -0.04, 0.04)
        arm = np.clip(np.concatenate([move, np.zeros(3)]) + self._noise, -ARM_SCALE, ARM_SCALE)
        return np.concatenate([arm, [self._grip]]).astype(np.float32)

    def params(self) -> dict[str, Any]:
        return {"task": self.task, "rho": self.rho, "sigma": self.sigma}


class _Factory:
    def __init__(self, task: str):
        self.task = task

    def __call__(self, **kwargs: Any) -> FrankaTabletopEnv:
        unknown = sorted(set(kwargs) - set(ENV_KWARGS))
        if unknown:
            raise ValueError(f"franka-tabletop-{self.task}: unknown option(s) {unknown}; expected {list(ENV_KWARGS)}")
        return FrankaTabletopEnv(self.task, **kwargs)


# 10 derived values + mj_stateSize of the PandaOmron/Robotiq Lift model (1 + 24 + 23 + 0 + 23 + 13 + 14) + 2
# (gripper command) + 12 (controller origin);
# checked against the built env in the tests.
STATE_DIM = 122
FRANKA_TABLETOP_SPECS: dict[str, EnvSpec] = {
    task: EnvSpec(
        name=f"franka-tabletop-{task}",
        gym_id=f"jepa_wms/FrankaTabletop-{task}-v0",
        action_dim=7,
        proprio_dim=7,
        state_dim=STATE_DIM,
        frameskip=1,
        eval_steps=EVAL_STEPS,
        goal_source="expert",
        # The reference's zero-shot RoboCasa protocol for DROID-trained models: replan every step, tighter clips.
        plan={"horizon": 3, "execute": 1, "action_clip": [0.05, 0.05, 0.05, 0.01, 0.01, 0.01, 1.0]},
    )
    for task in TASKS
}
for _task, _spec in FRANKA_TABLETOP_SPECS.items():
    register_env(_spec, _Factory(_task))
