"""PointMaze: a force-driven ball in D4RL's U-maze, simulated by gymnasium-robotics on modern MuJoCo.

The reference (DINO-WM / jepa-wms) runs D4RL's ``maze2d-umaze`` on mujoco-py and MuJoCo 2.1, which cannot be
installed here. gymnasium-robotics' ``PointMaze_UMaze-v3`` has the same ball, the same U_MAZE map and the same
physics (timestep 0.01, Euler, damping 1, gear 100, velocity clipped to ±5 before each step); the only dynamic
difference is D4RL's frame_skip of 5, which we set on its point env. The D4RL coordinate frame differs from ours
by a rotation and an offset; `d4rl_to_env_xy` / `env_to_d4rl_xy` convert.

Coordinates are gymnasium-robotics': maze cell (row i, col j) is centred at (x, y) = (j - 2, 2 - i), so x grows
to the right and y upwards in the rendered image. State = proprio = (x, y, vx, vy). The free space is the U:
the top row y in [0.5, 1.5] and bottom row y in [-1.5, -0.5] (x in [-1.5, 1.5]) joined on the right by the
cell x in [0.5, 1.5], y in [-0.5, 0.5]; the ball's collision radius is 0.1 (it is drawn with radius 0.2).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import numpy as np
from gymnasium import spaces

from jepa_wms.envs.base import EnvSpec, PlanningEnvBase, register_env
from jepa_wms.envs.mujoco_render import import_mujoco, make_renderer, release_renderer

__all__ = [
    "POINTMAZE_SPEC",
    "PointMazeEnv",
    "U_MAZE",
    "cell_of",
    "d4rl_to_env_vec",
    "d4rl_to_env_xy",
    "env_to_d4rl_xy",
    "free_cells",
    "in_free_space",
    "sample_free_xy",
]

# gymnasium-robotics' U_MAZE (1 = wall), identical to D4RL's "#####/#GOO#/###O#/#OOO#/#####" with G free.
U_MAZE: tuple[tuple[int, ...], ...] = (
    (1, 1, 1, 1, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 0, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 1, 1),
)
BALL_RADIUS = 0.1
SUCCESS_RADIUS = 0.5
# Clearance of evaluation starts/goals from walls, centre to wall face: the reference sampler keeps D4RL positions
# in [0.5, 1.1] ∪ [2.5, 3.1] of arms whose ball-centre range is [0.4, 1.2] ∪ [2.4, 3.2], i.e. 0.2 from each face.
START_MARGIN = 0.2
PHYSICS_SUBSTEPS = 5  # D4RL's frame_skip: 5 MuJoCo steps of 0.01 s per env step
CAMERA = {"azimuth": 90.0, "elevation": -90.0, "distance": 8.8, "lookat": (0.0, 0.0, 0.0)}

# D4RL position (x_d, y_d) -> ours: x = y_d - 1.8, y = 1.8 - x_d (a rotation by -90 degrees plus an offset).
_D4RL_ROT = np.array([[0.0, 1.0], [-1.0, 0.0]])
_D4RL_OFFSET = np.array([-1.8, 1.8])


def d4rl_to_env_xy(xy: np.ndarray) -> np.ndarray:
    """D4RL ``maze2d-umaze`` positions (..., 2) to ours; velocities and forces use ``xy @ _D4RL_ROT.T`` (no offset).

    Derivation from D4RL's model builder (``d4rl/pointmaze/maze_model.py``): map row w, column h is a wall box at
    world (w + 1, h + 1), and the ball's body sits at world (1.2, 1.2) with slide joints, so its qpos -- the
    position D4RL and DINO-WM store -- is world - 1.2 and cell (i, j) is centred at qpos (i - 0.2, j - 0.2), not
    at (i, j). Both libraries use the same U_MAZE map, and gymnasium-robotics centres cell (i, j) at (j - 2, 2 - i)
    with qpos = world. Matching cell centres gives x = y_d + 0.2 - 2 and y = 2 - (x_d + 0.2). Checks: the
    published STATE_RANGES x_d in [0.393, 3.220] matches the ball-centre range [0.4, 3.2] this predicts (a map
    without the 0.2 would put x_d = 0.393 inside a wall), and a MuJoCo model with D4RL's geometry driven by mapped
    actions tracks our env to 1e-7 through wall contacts (tests/envs/test_pointmaze.py).
    """
    xy = np.asarray(xy, dtype=np.float64)
    return xy @ _D4RL_ROT.T + _D4RL_OFFSET


def env_to_d4rl_xy(xy: np.ndarray) -> np.ndarray:
    """Inverse of `d4rl_to_env_xy`: our positions (..., 2) to D4RL ``maze2d-umaze`` qpos."""
    xy = np.asarray(xy, dtype=np.float64)
    return (xy - _D4RL_OFFSET) @ _D4RL_ROT


def d4rl_to_env_vec(vec: np.ndarray) -> np.ndarray:
    """D4RL velocities or actions (..., 2) to ours: the rotation of `d4rl_to_env_xy` without the offset."""
    return np.asarray(vec, dtype=np.float64) @ _D4RL_ROT.T


def cell_centre(i: int, j: int) -> tuple[float, float]:
    return (j - 2.0, 2.0 - i)


def free_cells() -> list[tuple[int, int]]:
    """(row, col) of the 7 free cells, in map order."""
    return [(i, j) for i, row in enumerate(U_MAZE) for j, v in enumerate(row) if v == 0]


_WALL_CENTRES = np.array([cell_centre(i, j) for i, row in enumerate(U_MAZE) for j, v in enumerate(row) if v == 1])


def cell_of(xy: np.ndarray) -> tuple[int, int]:
    """(row, col) of the maze cell containing ``xy`` (gymnasium-robotics' cell_xy_to_rowcol)."""
    x, y = float(xy[0]), float(xy[1])
    return (int(np.floor(2.5 - y)), int(np.floor(x + 2.5)))


def in_free_space(xy: np.ndarray, margin: float = BALL_RADIUS) -> bool:
    """True when a ball centred at ``xy`` is at least ``margin`` (L∞, per axis) away from every wall cell.

    The L∞ distance keeps a square clearance at inner corners, which is exactly the region the reference sampler
    accepts (it tests per-axis bands in D4RL coordinates).
    """
    d = np.abs(_WALL_CENTRES - np.asarray(xy, dtype=np.float64)[:2]).max(axis=1)
    return bool(np.all(d >= 0.5 + margin))


def sample_free_xy(rng: np.random.Generator, margin: float) -> np.ndarray:
    """A position uniform over the free space shrunk by ``margin`` (rejection sampling, ~60 % acceptance)."""
    lo, hi = -1.5 + margin, 1.5 - margin
    while True:
        xy = rng.uniform(lo, hi, size=2)
        if in_free_space(xy, margin):
            return xy


def _import_simulator() -> tuple[Any, Any]:
    mujoco = import_mujoco("PointMazeEnv")
    try:
        # Its import prints a notice about the Adroit envs' rewards to stderr; nothing here uses them.
        with contextlib.redirect_stderr(io.StringIO()):
            from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv as RoboticsPointMaze
    except ImportError as err:
        raise ImportError(
            f'PointMazeEnv needs gymnasium-robotics ({err}); install it with pip install "jepa-wms[sim]"'
        ) from err
    return mujoco, RoboticsPointMaze


class PointMazeEnv(PlanningEnvBase):
    """Ball in the U-maze; observation ``{"pixels": uint8 (H, W, 3), "proprio": float32 (4,)}``.

    One env step is one force action in [-1, 1]² (clipped) held for 5 physics steps (0.05 s). Frames come from
    a `mujoco.Renderer` on a separate `MjData`, so rendering any state never touches the simulation; the camera
    looks straight down at the maze centre (x right, y up), shadows and MSAA are off for speed, and the
    gymnasium-robotics goal marker is made fully transparent so no frame shows where the goal is (the
    reference likewise parks its marker off-screen). Implements `jepa_wms.envs.base.PlanningEnv`.

    Args:
        img_size: rendered frame side in pixels.
        render_mode: only "rgb_array".
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, img_size: int = 64, render_mode: str = "rgb_array", **unknown: Any):
        if unknown:
            raise ValueError(f"PointMazeEnv: unknown option(s) {sorted(unknown)}; expected img_size, render_mode")
        if isinstance(img_size, bool) or not isinstance(img_size, (int, np.integer)) or img_size < 8:
            raise ValueError(f"PointMazeEnv: img_size must be an integer >= 8, got {img_size!r}")
        if render_mode != "rgb_array":
            raise ValueError(f"PointMazeEnv: render_mode must be 'rgb_array', got {render_mode!r}")
        self.img_size, self.render_mode = int(img_size), render_mode
        mujoco, RoboticsPointMaze = _import_simulator()
        self._mj = mujoco
        self._maze = RoboticsPointMaze(maze_map=[list(row) for row in U_MAZE], render_mode=None)
        # gymnasium-robotics writes the generated maze XML to the temp folder and never deletes it.
        with contextlib.suppress(OSError):
            os.remove(self._maze.tmp_xml_file_path)
        self._point = self._maze.point_env
        self._point.frame_skip = PHYSICS_SUBSTEPS
        model = self._model = self._point.model
        self._data = self._point.data
        model.site_rgba[self._maze.target_site_id, 3] = 0.0  # hide the goal marker
        self._renderer = make_renderer(mujoco, model, self.img_size)
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.azimuth, self._camera.elevation = CAMERA["azimuth"], CAMERA["elevation"]
        self._camera.distance = CAMERA["distance"]
        self._camera.lookat[:] = CAMERA["lookat"]
        self._render_data = mujoco.MjData(model)

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, shape=(self.img_size, self.img_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
            }
        )
        start, self._goal = self.sample_start_goal(np.random.default_rng(0))
        self.set_state(start)

    # -- sampling -------------------------------------------------------------------------------------------
    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The reference ``random_state`` source: start and goal uniform over the corridors, 0.2 from walls.

        Velocities are zero (the reference draws them uniformly in ±5.2, which only changes the start's motion;
        success is judged on position).
        """
        start = np.concatenate([sample_free_xy(rng, START_MARGIN), np.zeros(2)])
        goal = np.concatenate([sample_free_xy(rng, START_MARGIN), np.zeros(2)])
        return start, goal

    def sample_free_state(self, rng: np.random.Generator) -> np.ndarray:
        """Data-collection start: uniform over all of the free space (ball touching walls allowed), vel N(0, 0.5²)."""
        return np.concatenate([sample_free_xy(rng, BALL_RADIUS), rng.normal(0.0, 0.5, size=2)])

    def data_policy(self) -> Any:
        """The exploration policy `jepa_wms.datasets.collect` uses here (see `pointmaze_policy.MazeExplorer`)."""
        from jepa_wms.envs.pointmaze_policy import MazeExplorer

        return MazeExplorer()

    # -- success --------------------------------------------------------------------------------------------
    def distance(self, state: np.ndarray, goal: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(state, np.float64)[:2] - np.asarray(goal, np.float64)[:2]))

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        return self.distance(state, goal) < SUCCESS_RADIUS

    def state_cost(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Oracle planning cost: squared distance of the ball to the goal position (velocity ignored, as the
        success rule ignores it)."""
        return np.square(np.asarray(states)[:, :2] - np.asarray(goal)[:2]).sum(-1)

    # -- state ----------------------------------------------------------------------------------------------
    def _check_state(self, value: Any, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        if arr.shape == (2,):
            arr = np.concatenate([arr, np.zeros(2)])  # a bare position means "at rest"
        if arr.shape != (4,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"PointMazeEnv: {what} must be finite (x, y, vx, vy) or (x, y), got {value!r}")
        return arr

    def get_state(self) -> np.ndarray:
        return np.concatenate([self._data.qpos, self._data.qvel]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> None:
        """Exact: (x, y, vx, vy) go into qpos/qvel unchanged; everything else (solver warm start, controls,
        time) is reset, so the future depends on this state and the actions only. A position inside a wall is
        accepted and the contact solver pushes the ball out, as in the simulator."""
        s = self._check_state(state, "state")
        self._mj.mj_resetData(self._model, self._data)
        self._data.qpos[:] = s[:2]
        self._data.qvel[:] = s[2:]
        self._mj.mj_forward(self._model, self._data)

    def set_goal(self, goal: np.ndarray) -> None:
        self._goal = self._check_state(goal, "goal")

    # -- gymnasium API ---------------------------------------------------------------------------------------

    def advance(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise ValueError(f"PointMazeEnv.step: action must be a finite array of shape (2,), got {action!r}")
        # gymnasium-robotics' PointEnv.step = D4RL's step: clip the action, clip qvel to ±5, simulate.
        self._point.step(np.clip(a, -1.0, 1.0))
        return self.get_state()

    def render(self) -> np.ndarray:
        return self.render_state(self.get_state())

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) top-down frame of ``state``, drawn from a private MjData (the env is untouched)."""
        s = self._check_state(state, "state")
        data = self._render_data
        data.qpos[:] = s[:2]
        data.qvel[:] = s[2:]
        self._mj.mj_forward(self._model, data)
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            release_renderer(self._renderer)
            self._renderer = None
        if getattr(self, "_maze", None) is not None:
            self._maze.close()
            self._maze = None

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render(), "proprio": self.get_state().astype(np.float32)}


POINTMAZE_SPEC = EnvSpec(
    name="pointmaze",
    gym_id="jepa_wms/PointMaze-v0",
    action_dim=2,
    proprio_dim=4,
    state_dim=4,
    frameskip=5,
    eval_steps=30,
    goal_source="random_state",
)

register_env(POINTMAZE_SPEC, PointMazeEnv)
