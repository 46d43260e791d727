"""Wall: a dot in a square arena split by a vertical wall with one door (our version of DINO-WM's DotWall).

Coordinates are arena units (the reference's pixels of a 65-px canvas): x grows to the right (image
columns), y grows downwards (image rows). The free space is the square [5, 60]^2 minus the two wall pieces
above and below the door. The dot moves along the segment pos -> pos + action_scale * action and stops
exactly at the first point where that segment would enter a wall or leave the square. This replaces the
reference's line-intersection code, which divides by zero on axis-aligned moves, slips into the wall at the
door's edge, can turn x into NaN at the top border, and pushes blocked dots back by a fixed 0.5 units.
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

__all__ = ["WallConfig", "WallEnv", "WALL_SPEC", "wall_dynamics"]

# Penetrations below this are float rounding at a contact point, not real overlaps.
_TOL = 1e-6


@dataclass(frozen=True)
class WallConfig:
    """Geometry, dynamics and rendering of the Wall env, in arena units.

    Attributes:
        arena_size: side of the square canvas.
        border: thickness of the border walls; the free square is [border, arena_size - border]².
        wall_center_x, wall_width: the vertical wall occupies x in [center - width/2, center + width/2].
        door_center_y, door_half_height: the door is the band y in [center - half, center + half].
        dot_std: standard deviation of the rendered Gaussian dot.
        action_scale: the dot moves by ``action_scale * action`` per step, as in the reference.
        max_action: actions are clipped to [-max_action, max_action] per axis (the reference does not clip).
        img_size: rendered image side in pixels; the arena is sampled at pixel centres, not resized.
        success_radius: success when the distance to the goal is strictly below this.
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

    @property
    def free_low(self) -> float:
        return self.border

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
        # Pixel centres in arena units; the static walls are drawn once and copied per frame.
        self._centres = (np.arange(c.img_size) + 0.5) * (c.arena_size / c.img_size)
        self._background = self._draw_background()
        # Beyond 4 std the dot changes no pixel after rounding (255·exp(-8) < 0.5), so only a window is drawn.
        self._dot_radius = 4.0 * c.dot_std
        self._state, self._goal = self.sample_start_goal(np.random.default_rng(0))

    # -- geometry -------------------------------------------------------------------------------------------
    def _draw_background(self) -> np.ndarray:
        c = self.config
        x = self._centres[None, :]
        y = self._centres[:, None]
        outside = (x < c.free_low) | (x > c.free_high) | (y < c.free_low) | (y > c.free_high)
        in_wall = (x >= c.wall_x[0]) & (x <= c.wall_x[1]) & ~((y > c.door_y[0]) & (y < c.door_y[1]))
        img = np.full((c.img_size, c.img_size, 3), 255, dtype=np.uint8)
        img[outside | in_wall] = 0
        return img

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
        """Start uniformly in one room and goal uniformly in the other, swapped with probability 0.5."""
        c, m = self.config, self.config.margin
        y_range = (c.free_low + m, c.free_high - m)
        left = np.array([rng.uniform(c.free_low + m, c.wall_x[0] - m), rng.uniform(*y_range)])
        right = np.array([rng.uniform(c.wall_x[1] + m, c.free_high - m), rng.uniform(*y_range)])
        return (right, left) if rng.random() < 0.5 else (left, right)

    def sample_free_state(self, rng: np.random.Generator) -> np.ndarray:
        """A state uniform over the whole free space (either room or the doorway), for data collection."""
        c = self.config
        while True:  # rejection sampling; the walls cover ~6 % of the square
            x, y = rng.uniform(c.free_low, c.free_high, size=2)
            if not any(x0 <= x <= x1 and y0 <= y <= y1 for (x0, y0), (x1, y1) in c.wall_boxes):
                return np.array([x, y])

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
        """uint8 (H, W, 3): white floor, black walls, red Gaussian dot (G and B scaled by 1 - intensity)."""
        c = self.config
        x, y = (float(v) for v in np.asarray(state, dtype=np.float64)[:2])
        img = self._background.copy()
        cols = np.flatnonzero(np.abs(self._centres - x) <= self._dot_radius)
        rows = np.flatnonzero(np.abs(self._centres - y) <= self._dot_radius)
        if len(cols) == 0 or len(rows) == 0:
            return img
        inv = -0.5 / c.dot_std**2
        # The Gaussian is separable: an outer product of 1-D profiles instead of a 2-D exp.
        intensity = (
            np.exp(inv * (self._centres[rows] - y) ** 2)[:, None]
            * np.exp(inv * (self._centres[cols] - x) ** 2)[None, :]
        )
        patch = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
        patch[..., 0] = np.maximum(patch[..., 0], 255.0 * intensity)  # keeps the dot visible against a wall
        patch[..., 1:] *= (1.0 - intensity)[..., None]
        img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = np.rint(patch).astype(np.uint8)
        return img

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
