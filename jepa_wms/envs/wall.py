"""Wall: a dot in a square arena split by a vertical wall with one door (our version of DINO-WM's DotWall).

Coordinates are arena units, the original's pixels of its 65-px canvas, where pixel i shows coordinate i: x grows
to the right (image columns), y grows downwards (image rows). The free space is the square [4, 60]² (the
original's collision lines, symmetric about the canvas centre 32) minus the two wall pieces x in [29, 35] above
and below the door y in [26, 34].

What is bit-exact with the original (``tests/envs/test_wall_reference.py`` replays its golden outputs): the
geometry, every step that does not hit a wall (pos + 2·action in float64, so whole collision-free episodes and their
success verdicts), which steps are blocked, the protocol's start/goal pairs (`WallEnv.protocol_start_goal`) and,
with ``render="reference"``, the frames. Deliberate differences, each an upstream bug or hazard:

- a blocked dot stops exactly at the first point where its segment pos -> pos + 2·action would enter a wall or
  leave the square. The original adds a fixed 0.5-unit offset instead (away from the wall and +0.5 along it,
  whatever the direction), so a dot pressed against a wall creeps along it by 0.5 per step;
- exactly vertical moves (dx = 0) are handled: the original divides by zero, which lets the dot pass the door's
  edge into the wall body or turns x into NaN for good at the top and bottom borders;
- actions are clipped to ±``max_action`` (2, twice the original's nominal range); the original does not clip;
- ``render="default"`` (our own models' frames) differs from the original's canvas; see `jepa_wms.envs.wall_render`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from jepa_wms.envs.base import EnvSpec, PlanningEnvBase, register_env
from jepa_wms.envs.wall_policy import DoorSeekingWalk
from jepa_wms.envs.wall_render import make_renderer

__all__ = ["WallConfig", "WallEnv", "WALL_SPEC", "wall_dynamics"]

_RENDER_STYLES = ("default", "reference")

# Penetrations below this are float rounding at a contact point, not real overlaps.
_TOL = 1e-6


@dataclass(frozen=True)
class WallConfig:
    """Geometry, dynamics and rendering of the Wall env, in arena units.

    Attributes:
        arena_size: side of the square canvas (the original's 65 pixels).
        border: the original's ``border_wall_loc``: the collision lines are at ``border - 1`` and
            ``arena_size - border``, so the free square is [4, 60]², centred on the canvas's middle pixel 32.
        wall_center_x, wall_width: the vertical wall occupies x in [center - width/2, center + width/2].
        door_center_y, door_half_height: the door is the band y in [center - half, center + half].
        dot_std: standard deviation of the rendered Gaussian dot.
        action_scale: the dot moves by ``action_scale * action`` per step, as in the reference.
        max_action: actions are clipped to [-max_action, max_action] per axis (the reference does not clip).
        img_size: rendered image side in pixels; the default render samples the arena at pixel centres.
        success_radius: success when the distance to the goal is strictly below this.
        render: ``"default"``, our frames at any ``img_size``, or ``"reference"``, the original's canvas bit for
            bit (needs ``img_size == arena_size``: the encoder resizes frames to its own input size). Released Wall
            models were trained on the original's frames, so they are evaluated with ``"reference"``.
    """

    arena_size: float = 65.0
    border: float = 5.0
    wall_center_x: float = 32.0
    wall_width: float = 6.0
    door_center_y: float = 30.0
    door_half_height: float = 4.0
    dot_std: float = 1.7
    action_scale: float = 2.0
    max_action: float = 2.0
    img_size: int = 64
    success_radius: float = 4.5
    render: str = "default"

    def __post_init__(self) -> None:
        lo, hi = self.free_low, self.free_high
        if not (lo < self.wall_x[0] < self.wall_x[1] < hi):
            raise ValueError(f"WallConfig: wall x-range {self.wall_x} must lie strictly inside ({lo}, {hi})")
        if not (lo < self.door_y[0] < self.door_y[1] < hi):
            raise ValueError(f"WallConfig: door y-range {self.door_y} must lie strictly inside ({lo}, {hi})")
        if int(self.img_size) != self.img_size or self.img_size < 8:
            raise ValueError(f"WallConfig: img_size must be an integer >= 8, got {self.img_size!r}")
        for key in ("dot_std", "action_scale", "max_action", "success_radius"):
            if not getattr(self, key) > 0:
                raise ValueError(f"WallConfig: {key} must be > 0, got {getattr(self, key)!r}")
        if self.render not in _RENDER_STYLES:
            raise ValueError(f"WallConfig: render must be one of {_RENDER_STYLES}, got {self.render!r}")
        if self.render == "reference" and self.img_size != self.arena_size:
            raise ValueError(
                f"WallConfig: render='reference' draws the original's canvas, one pixel per arena unit, so "
                f"img_size must be {self.arena_size:g}, got {self.img_size} (the encoder resizes frames itself)"
            )
        if self.render == "reference" and not (float(lo).is_integer() and float(hi).is_integer()):
            raise ValueError(
                f"WallConfig: render='reference' draws 1-px border lines, so the free square's edges "
                f"must be whole pixels, got [{lo}, {hi}]"
            )

    @property
    def free_low(self) -> float:
        return self.border - 1

    @property
    def free_high(self) -> float:
        return self.arena_size - self.border

    @property
    def wall_x(self) -> tuple[float, float]:
        half = self.wall_width / 2
        return (self.wall_center_x - half, self.wall_center_x + half)

    @property
    def door_y(self) -> tuple[float, float]:
        return (self.door_center_y - self.door_half_height, self.door_center_y + self.door_half_height)

    @functools.cached_property
    def wall_boxes(self) -> tuple[tuple[tuple[float, float], tuple[float, float]], ...]:
        """The two wall pieces as ((x0, y0), (x1, y1)); their open interiors are forbidden.

        Cached because every step reads it; caching is safe since the config is frozen.
        """
        (x0, x1), (d0, d1) = self.wall_x, self.door_y
        return (((x0, self.free_low), (x1, d0)), ((x0, d1), (x1, self.free_high)))

    @property
    def margin(self) -> float:
        """Start/goal distance from any wall: 2 dot std, so the dot is drawn whole."""
        return 2.0 * self.dot_std


def _first_contact(px: float, py: float, dx: float, dy: float, cfg: WallConfig) -> tuple[float, int, float]:
    """Earliest t in [0, 1] at which p + t·d leaves the free square or enters a wall piece.

    Returns (t, axis, face): the blocked coordinate is set exactly to ``face`` (axis -1 when nothing blocks).
    Wall pieces are open boxes (slab method on open intervals), so a segment lying on a face or touching a
    corner never counts as entering: that is what lets the dot slide along a wall and pass the door's edge.
    """
    best_t, best_axis, best_face = 1.0, -1, 0.0
    lo, hi = cfg.free_low, cfg.free_high
    for axis, (p, d) in enumerate(((px, dx), (py, dy))):
        if d != 0:
            face = hi if d > 0 else lo
            t = (face - p) / d
            if t < best_t:
                best_t, best_axis, best_face = max(t, 0.0), axis, face
    for box_lo, box_hi in cfg.wall_boxes:
        t_in, t_out, axis_in, face_in = -math.inf, math.inf, -1, 0.0
        for axis, (p, d) in enumerate(((px, dx), (py, dy))):
            b0, b1 = box_lo[axis], box_hi[axis]
            if d == 0:
                if not b0 < p < b1:  # moving parallel to this slab, outside it: can never enter
                    t_in = math.inf
                    break
                continue
            t0, t1 = (b0 - p) / d, (b1 - p) / d
            if min(t0, t1) > t_in:
                t_in, axis_in, face_in = min(t0, t1), axis, (b0 if d > 0 else b1)
            t_out = min(t_out, max(t0, t1))
        t_enter = max(t_in, 0.0)
        if t_enter < min(t_out, 1.0) and t_enter < best_t:
            best_t, best_axis, best_face = t_enter, axis_in, face_in
    return best_t, best_axis, best_face


def _project_free(x: float, y: float, cfg: WallConfig) -> tuple[float, float]:
    """Undo rounding-level overlaps: clamp to the free square and push a point out of a wall interior."""
    x = min(max(x, cfg.free_low), cfg.free_high)
    y = min(max(y, cfg.free_low), cfg.free_high)
    for (x0, y0), (x1, y1) in cfg.wall_boxes:
        if x0 < x < x1 and y0 < y < y1:
            _, value, axis = min((x - x0, x0, 0), (x1 - x, x1, 0), (y - y0, y0, 1), (y1 - y, y1, 1))
            x, y = (value, y) if axis == 0 else (x, value)
    return x, y


def _move(px: float, py: float, ax: float, ay: float, cfg: WallConfig) -> tuple[float, float]:
    m = cfg.max_action
    dx = cfg.action_scale * min(max(ax, -m), m)
    dy = cfg.action_scale * min(max(ay, -m), m)
    t, axis, face = _first_contact(px, py, dx, dy, cfg)
    x, y = px + t * dx, py + t * dy
    # Put the blocked coordinate exactly on the face it hit, so the dot never rests a rounding error inside.
    if axis == 0:
        x = face
    elif axis == 1:
        y = face
    return _project_free(x, y, cfg)


def wall_dynamics(state: np.ndarray, action: np.ndarray, config: WallConfig | None = None) -> np.ndarray:
    """Next dot position(s) after one step; accepts any leading dims.

    Scalar Python per point on purpose: a step costs ~10 µs this way, where numpy's per-call overhead on
    2-vectors made it ~200 µs. For large batches this loops, so it is a reference, not a fast simulator.

    Args:
        state: (..., 2) positions in the free space.
        action: (..., 2) raw actions; clipped to ±max_action, then scaled by action_scale.
    Returns:
        (..., 2) float64 positions: pos + scale·action, or the first contact point with a wall or border.
    """
    cfg = config or WallConfig()
    shape = np.broadcast_shapes(np.shape(state), np.shape(action))
    if shape[-1:] != (2,):
        raise ValueError(f"wall_dynamics: state and action must end in a dim of size 2, got shape {shape}")
    p = np.broadcast_to(np.asarray(state, dtype=np.float64), shape).reshape(-1, 2).tolist()
    a = np.broadcast_to(np.asarray(action, dtype=np.float64), shape).reshape(-1, 2).tolist()
    out = [_move(px, py, ax, ay, cfg) for (px, py), (ax, ay) in zip(p, a, strict=True)]
    return np.asarray(out, dtype=np.float64).reshape(shape)


class WallEnv(PlanningEnvBase):
    """Dot-in-two-rooms navigation; observation ``{"pixels": uint8 (H, W, 3), "proprio": float32 (2,)}``.

    ``WallEnv(img_size=224)`` overrides single `WallConfig` fields; ``WallEnv(config)`` takes a whole config.
    Implements the `jepa_wms.envs.base.PlanningEnv` contract.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: WallConfig | None = None, render_mode: str = "rgb_array", **overrides: Any):
        cfg = config or WallConfig()
        fields = {f.name for f in dataclasses.fields(WallConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"WallEnv: unknown option(s) {unknown}; expected WallConfig fields {sorted(fields)}")
        if render_mode != "rgb_array":
            raise ValueError(f"WallEnv: render_mode must be 'rgb_array', got {render_mode!r}")
        self.config = dataclasses.replace(cfg, **overrides)
        self.render_mode = render_mode
        c = self.config
        self.action_space = spaces.Box(-c.max_action, c.max_action, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, shape=(c.img_size, c.img_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(c.free_low, c.free_high, shape=(2,), dtype=np.float32),
            }
        )
        self._renderer = make_renderer(c)
        self._state, self._goal = self.sample_start_goal(np.random.default_rng(0))

    # -- geometry -------------------------------------------------------------------------------------------
    def _check_point(self, value: Any, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (2,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"WallEnv: {what} must be a finite array of shape (2,), got {value!r}")
        c = self.config
        x, y = float(arr[0]), float(arr[1])
        in_box = any(x0 + _TOL < x < x1 - _TOL and y0 + _TOL < y < y1 - _TOL for (x0, y0), (x1, y1) in c.wall_boxes)
        if min(x, y) < c.free_low - _TOL or max(x, y) > c.free_high + _TOL or in_box:
            raise ValueError(
                f"WallEnv: {what} {arr.tolist()} is not in the free space: expected [{c.free_low}, "
                f"{c.free_high}]^2 outside the wall x in {list(c.wall_x)} except the door y in "
                f"{list(c.door_y)}"
            )
        return np.array(_project_free(x, y, c))

    def room(self, state: np.ndarray) -> int:
        """-1 for the left room, +1 for the right room, 0 inside the doorway."""
        x = float(np.asarray(state)[0])
        return -1 if x <= self.config.wall_x[0] else (1 if x >= self.config.wall_x[1] else 0)

    # -- sampling -------------------------------------------------------------------------------------------
    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Start uniformly in one room and goal uniformly in the other, swapped with probability 0.5.

        The same distribution as the original's; `protocol_start_goal` also reproduces its draws.
        """
        left_x, right_x, ys = self._start_goal_ranges()
        left = np.array([rng.uniform(*left_x), rng.uniform(*ys)])
        right = np.array([rng.uniform(*right_x), rng.uniform(*ys)])
        return (right, left) if rng.random() < 0.5 else (left, right)

    def protocol_start_goal(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The original protocol's pair for an episode seed, bit for bit (its ``sample_random_init_goal_states``).

        The original evaluation seeds episode ``ep`` with ``(s * s + ep * s) % (2**32 - 2)``, s its ``meta.seed``.
        """
        # A legacy RandomState, as the original's: no np.random.Generator reproduces its stream.
        rs = np.random.RandomState(seed)
        left_x, right_x, ys = self._start_goal_ranges()
        # The original's order of draws: start x (left room), goal x (right room), start y, goal y, then the swap.
        start_x, goal_x, start_y, goal_y = (rs.uniform(*r) for r in (left_x, right_x, ys, ys))
        if rs.uniform(0.0, 1.0) < 0.5:
            start_x, goal_x = goal_x, start_x
        return np.array([start_x, start_y]), np.array([goal_x, goal_y])

    def _start_goal_ranges(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """(left-room x, right-room x, y) ranges of starts and goals: the rooms shrunk by the dot's margin."""
        c, m = self.config, self.config.margin
        ys = (c.free_low + m, c.free_high - m)
        return (c.free_low + m, c.wall_x[0] - m), (c.wall_x[1] + m, c.free_high - m), ys

    def sample_free_state(self, rng: np.random.Generator) -> np.ndarray:
        """A state uniform over the whole free space (either room or the doorway), for data collection."""
        c = self.config
        while True:  # rejection sampling; the walls cover ~6 % of the square
            x, y = rng.uniform(c.free_low, c.free_high, size=2)
            if not any(x0 <= x <= x1 and y0 <= y <= y1 for (x0, y0), (x1, y1) in c.wall_boxes):
                return np.array([x, y])

    def data_policy(self) -> DoorSeekingWalk:
        """The exploration policy `jepa_wms.datasets.collect` uses here: `DoorSeekingWalk` with ρ = 0.9, σ = 0.75
        (2σ = 1.5, the action range planners are later clipped to), pulled through the door in 75 % of episodes.

        Measured on 2000 random 50-step episodes from uniform starts: 42.5 % visit both rooms (pure AR(1): 5.7 % at
        ρ = 0.9, 6.0 % at ρ = 0.7).
        """
        c, space = self.config, self.action_space
        # Bounds read from the float32 action space, as collection always has: the same actions for any max_action.
        low, high = float(np.min(space.low)), float(np.max(space.high))
        return DoorSeekingWalk(space.shape[0], (c.wall_center_x, c.door_center_y), c.wall_x, low=low, high=high)

    # -- success --------------------------------------------------------------------------------------------
    def distance(self, state: np.ndarray, goal: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(state, np.float64)[:2] - np.asarray(goal, np.float64)[:2]))

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        return self.distance(state, goal) < self.config.success_radius

    def state_cost(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Oracle planning cost: squared distance of the dot to the goal's, in arena units²."""
        return np.square(np.asarray(states)[:, :2] - np.asarray(goal)[:2]).sum(-1)

    # -- state ----------------------------------------------------------------------------------------------
    def get_state(self) -> np.ndarray:
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        self._state = self._check_point(state, "state")

    def set_goal(self, goal: np.ndarray) -> None:
        self._goal = self._check_point(goal, "goal")

    # -- gymnasium API ---------------------------------------------------------------------------------------

    def advance(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise ValueError(f"WallEnv.step: action must be a finite array of shape (2,), got {action!r}")
        self._state = np.array(_move(*self._state.tolist(), *a.tolist(), self.config))
        return self._state.copy()

    def render(self) -> np.ndarray:
        return self.render_state(self._state)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3): white floor, black walls, red Gaussian dot (G and B scaled by 1 - intensity).

        ``config.render`` picks our drawing or the original's canvas (`jepa_wms.envs.wall_render`).
        """
        x, y = (float(v) for v in np.asarray(state, dtype=np.float64)[:2])
        return self._renderer(x, y)

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render(), "proprio": self._state.astype(np.float32)}


WALL_SPEC = EnvSpec(
    name="wall",
    gym_id="jepa_wms/Wall-v0",
    action_dim=2,
    proprio_dim=2,
    state_dim=2,
    frameskip=5,
    eval_steps=30,
    goal_source="random_state",
)

register_env(WALL_SPEC, WallEnv)
