"""The robosuite side of the Franka tabletop stand-in: building the scene, DROID actions, exact state.

Kept apart from `jepa_wms.envs.franka_tabletop` (task, goals, success) so that the RoboCasa env can reuse the
action mapping and the state code on a kitchen scene. Written against robosuite 1.5.2 (``pip install --no-deps
robosuite==1.5.2``, see the Makefile's ``robosuite`` target); robosuite is imported lazily so that the rest of the
library works without it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "ARM_SCALE",
    "CAMERA",
    "CONTROL_HZ",
    "HOLD",
    "import_robosuite",
    "RobotSim",
]

CONTROL_HZ = 20
HOLD = 5  # control steps each model action is held for (the paper's ``repeat_actskip``)
# The DROID → robosuite rescale of the reference RoboCasa wrapper: OSC input 1 = 5 cm / 0.5 rad per control step.
ARM_SCALE = np.array([0.05] * 3 + [0.5] * 3)
CAMERA = "robot0_leftview"
# The RoboCasa camera tuned to DROID's left view, on the mobile base's torso support (it rises with the torso).
CAMERA_BODY = "mobilebase0_support"
CAMERA_POS = "0.4 0.55 0.5"
CAMERA_QUAT = "0 0 0.573462 0.819232"
CAMERA_FOVY = "85"
GRIPPER_JOINT = "finger_joint"  # Robotiq-85 driver joint: 0 open, 0.8 closed


def import_robosuite(needed_by: str) -> Any:
    """``robosuite`` (1.5.x), imported with headless rendering; a clear ImportError naming the install if absent."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import robosuite
    except ImportError as err:
        raise ImportError(
            f"{needed_by} needs robosuite ({err}); install it with `make robosuite` (pip install --no-deps "
            "robosuite==1.5.2 numba termcolor opencv-python-headless; robosuite's own deps pin numpy < 2)"
        ) from err
    import logging

    from robosuite.utils.log_utils import ROBOSUITE_DEFAULT_LOGGER

    ROBOSUITE_DEFAULT_LOGGER.setLevel(logging.WARNING)  # its INFO lines (controller config paths) flood logs
    return robosuite


def add_camera(worldbody: Any) -> None:
    """Append ``robot0_leftview`` to the mobile base's support body of a robosuite MJCF worldbody."""
    from robosuite.utils.mjcf_utils import find_elements, new_element

    body = find_elements(worldbody, tags="body", attribs={"name": CAMERA_BODY}, return_first=True)
    if body is None:
        raise RuntimeError(f"robosuite model has no body {CAMERA_BODY!r} to mount {CAMERA} on (robot not PandaOmron?)")
    cam = new_element("camera", name=CAMERA, mode="fixed", pos=CAMERA_POS, quat=CAMERA_QUAT, fovy=CAMERA_FOVY)
    body.append(cam)


class RobotSim:
    """DROID-unit actions, proprio and exact state of robot 0 of a built robosuite env.

    The 11(+1)-d PandaOmron input is filled by the composite controller's part names (arm, gripper; torso and
    base left at zero, base mode "arm"), never by position, so a robot with another layout fails loudly.

    State layout (float64): ``[0:7]`` proprio (hand xyz m, extrinsic Euler xyz rad, gripper closure in [0, 1]),
    ``[7:10]`` the object's position, then the MuJoCo integration state (``mj_getState``: time, qpos, qvel, act,
    warm start, ctrl, mocap), then the gripper's latched command (robotiq's ``format_action`` integrates the sign
    of its input, so it is state), then the arm controller's base-frame origin (position, 3×3 rotation): the OSC
    reads it at each new command before refreshing it, so it lags the base by one physics step and replays are
    only bit-identical with it. The first 10 values are derived and ignored by `set_state`.
    """

    SUMMARY = 10

    def __init__(self, env: Any, object_body: str):
        import mujoco
        from scipy.spatial.transform import Rotation  # robosuite's OSC needs scipy anyway

        self._mj = mujoco
        self._rotation = Rotation
        self.env = env
        self.model = env.sim.model._model
        self.data = env.sim.data._data
        robot = env.robots[0]
        self.robot = robot
        cc = robot.composite_controller
        self.arm = robot.arms[0]
        self.gripper = robot.gripper[self.arm]
        grip_parts = [p for p in cc.grippers if p.startswith(self.arm)]
        if not grip_parts:
            raise RuntimeError(f"controller has no gripper part for arm {self.arm!r}: {list(cc.grippers)}")
        self.gripper_part = grip_parts[0]
        self.cc = cc
        self.split = dict(cc._action_split_indexes)  # part name -> (start, end) in the robot's action vector
        self.input_dim = int(robot.action_dim)
        st = mujoco.mjtState
        self._spec = int(
            st.mjSTATE_TIME | st.mjSTATE_QPOS | st.mjSTATE_QVEL | st.mjSTATE_ACT | st.mjSTATE_WARMSTART
            | st.mjSTATE_CTRL | st.mjSTATE_MOCAP_POS | st.mjSTATE_MOCAP_QUAT
        )  # fmt: skip
        self.phys_dim = int(mujoco.mj_stateSize(self.model, self._spec))
        self.grip_dim = 2
        self.arm_ctl = cc.part_controllers[self.arm]
        self.state_dim = self.SUMMARY + self.phys_dim + self.grip_dim + 12
        self.eef_site = int(robot.eef_site_id[self.arm])
        self.object_body = int(self.model.body(object_body).id)
        jid = int(self.model.joint(f"gripper0_{self.arm}_{GRIPPER_JOINT}").id)
        self.grip_qadr = int(self.model.jnt_qposadr[jid])
        self.grip_range = float(self.model.jnt_range[jid, 1])
        self.base_body = int(self.model.body(robot.robot_model.root_body).id)
        self.lite = bool(env.lite_physics)
        self.substeps = int(round(env.control_timestep / env.model_timestep))

    # -- actions --------------------------------------------------------------------------------------------
    def robot_input(self, action: np.ndarray) -> np.ndarray:
        """The robot's action vector for a 7-D DROID action: arm (Δxyz/0.05, Δeuler/0.5) clipped to [-1, 1],
        gripper a[6]; every other part zero and the mobile base in arm mode (-1)."""
        a = np.asarray(action, np.float64)
        arm = np.clip(a[:6] / ARM_SCALE, -1.0, 1.0)
        vec = self.cc.create_action_vector({self.arm: arm, self.gripper_part: a[6:7], "base_mode": -1})
        if vec.shape != (self.input_dim,):
            raise RuntimeError(f"robot input has shape {vec.shape}, expected ({self.input_dim},)")
        return vec

    def control(self, action: np.ndarray, steps: int = HOLD) -> None:
        """Hold a DROID action for ``steps`` control steps (robosuite's ``env.step`` physics loop, without the
        observables and rewards it also computes, which we do not read)."""
        vec = self.robot_input(action)
        env, sim = self.env, self.env.sim
        for _ in range(steps):
            policy_step = True
            for _ in range(self.substeps):
                sim.step1() if self.lite else sim.forward()
                env._pre_action(vec, policy_step)
                sim.step2() if self.lite else sim.step()
                policy_step = False
            env.cur_time += env.control_timestep
        # Positions of the final qpos (step2 leaves xpos one integration step behind); touches no solver state.
        self._mj.mj_kinematics(self.model, self.data)

    # -- proprio and state ----------------------------------------------------------------------------------
    def hand_pose(self) -> np.ndarray:
        """Hand xyz (the grip site, world frame = base frame axes) + extrinsic Euler xyz + gripper closure."""
        pos = self.data.site_xpos[self.eef_site]
        rot = self.data.site_xmat[self.eef_site].reshape(3, 3)
        closure = np.clip(self.data.qpos[self.grip_qadr] / self.grip_range, 0.0, 1.0)
        euler = self._rotation.from_matrix(rot).as_euler("xyz")  # extrinsic xyz, as the DROID readers
        return np.concatenate([pos, euler, [closure]])

    def object_pos(self) -> np.ndarray:
        return self.data.xpos[self.object_body].copy()

    def get_state(self) -> np.ndarray:
        phys = np.empty(self.phys_dim)
        self._mj.mj_getState(self.model, self.data, phys, self._spec)
        grip = np.zeros(self.grip_dim)
        cur = np.asarray(getattr(self.gripper, "current_action", np.zeros(1)), np.float64).ravel()
        grip[: cur.size] = cur  # before the first command robotiq holds a 1-vector; it broadcasts to 2 on use
        origin_pos, origin_ori = self.arm_ctl.origin_pos, self.arm_ctl.origin_ori
        if origin_pos is None:  # before the first control step
            origin_pos, origin_ori = self.cc.get_controller_base_pose(self.arm)
        origin = np.concatenate([np.ravel(origin_pos), np.ravel(origin_ori)])
        return np.concatenate([self.hand_pose(), self.object_pos(), phys, grip, origin])

    def check_state(self, state: Any, what: str) -> np.ndarray:
        arr = np.asarray(state, dtype=np.float64)
        if arr.shape != (self.state_dim,):
            raise ValueError(f"{what} must have shape ({self.state_dim},) as get_state() returns, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} has non-finite values")
        return arr

    def set_state(self, state: np.ndarray) -> None:
        s = self.check_state(state, "state")
        phys = s[self.SUMMARY : self.SUMMARY + self.phys_dim]
        self._mj.mj_setState(self.model, self.data, phys, self._spec)
        i = self.SUMMARY + self.phys_dim
        self.gripper.current_action = s[i : i + self.grip_dim].copy()
        self.arm_ctl.update_origin(s[i + 2 : i + 5].copy(), s[i + 5 : i + 14].reshape(3, 3).copy())
        self._mj.mj_forward(self.model, self.data)
        # mj_forward overwrites the solver's warm start; restore it so the next step matches the original run.
        self._mj.mj_setState(self.model, self.data, phys, self._spec)
        self.env.cur_time = float(self.data.time)
        self._refresh_controllers()

    def _refresh_controllers(self) -> None:
        """Make every part controller re-read the robot at its next command. robosuite controllers cache joint
        positions, Jacobians and the hand pose, and skip re-reading them until their ``run_controller`` has run
        once; a controller built by a reset (a rebuilt scene) has not, and would command from its build pose."""
        for ctl in self.cc.part_controllers.values():
            ctl.new_update = True

    def latched_gripper(self, commands: np.ndarray) -> np.ndarray:
        """The gripper's latched command after a robosuite reset (zero) and one ``format_action`` per recorded
        control-step command in ``commands`` (robosuite calls it once per policy step); the gripper is untouched."""
        saved = self.gripper.current_action
        try:
            self.gripper.current_action = np.zeros(self.gripper.dof)
            for c in np.asarray(commands, np.float64).ravel():
                self.gripper.format_action(np.array([c]))
            cur = np.asarray(self.gripper.current_action, np.float64).ravel()
        finally:
            self.gripper.current_action = saved
        out = np.zeros(self.grip_dim)
        out[: cur.size] = cur
        return out

    def set_recorded(self, flat: np.ndarray, gripper_commands: np.ndarray) -> np.ndarray:
        """Set a recorded robosuite state and return `get_state` there.

        ``flat`` is robosuite's flattened state (time, qpos, qvel: ``sim.get_state().flatten()``, robomimic's
        ``states``), set as robomimic's ``reset_to``. What it does not hold is rebuilt deterministically: warm
        start, ctrl, act and mocap as after ``mj_resetData``; the gripper's latched command from the recorded
        gripper commands before this step (`latched_gripper`); the arm controller's origin at the base's pose.
        """
        sim = self.env.sim
        flat = np.asarray(flat, np.float64)
        want = 1 + int(self.model.nq) + int(self.model.nv)
        if flat.shape != (want,):
            raise ValueError(
                f"recorded state must have 1 + nq + nv = {want} values (time, qpos, qvel), got {flat.shape}"
            )
        sim.reset()
        sim.set_state_from_flattened(flat)
        sim.forward()
        self.gripper.current_action = self.latched_gripper(gripper_commands)
        self.arm_ctl.update_origin(*self.cc.get_controller_base_pose(self.arm))
        self.env.cur_time = float(self.data.time)
        self._refresh_controllers()
        return self.get_state()

    def set_qpos(self, state: np.ndarray, **joints: np.ndarray) -> np.ndarray:
        """``state`` with named joints' qpos replaced and velocities zeroed (start states, tests)."""
        self.set_state(state)
        for name, value in joints.items():
            adr = int(self.model.jnt_qposadr[self.model.joint(name).id])
            v = np.asarray(value, np.float64).ravel()
            self.data.qpos[adr : adr + v.size] = v
        self.data.qvel[:] = 0.0
        self._mj.mj_forward(self.model, self.data)
        return self.get_state()
