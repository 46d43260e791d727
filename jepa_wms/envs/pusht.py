"""Push-T: a circular agent pushes a T-shaped block on a table (our pymunk 6 version of DINO-WM's Push-T).

Physics follows the reference (gym-pusht / DINO-WM ``pusht_env.py``): a 512-px world bounded by four wall
segments, a kinematic agent of radius 15 driven by a PD controller (k_p = 100, k_v = 20) towards a target
point, 100 Hz physics with 10 substeps per 10 Hz control step, no gravity, space damping 0 (pymunk's damping
is the fraction of velocity *kept* per second, so the block stops as soon as nothing pushes it), a block of
mass 1 whose moment of inertia is twice that of the bar (the reference computes both halves from the bar's
vertices) and whose centre of gravity is (0, 45) in body coordinates. The reference sets ``friction = 1`` on
the bodies, an attribute pymunk ignores, so its contacts are frictionless; ours are frictionless on purpose.

Actions are relative, as in DINO-WM: the PD target is ``agent_xy + action_scale · action`` (actions in units
of 100 px, clipped to ±max_action), kept inside the world square; the reference does neither, so its kinematic
agent can leave through the walls. The state is DINO-WM's 7-d
``(agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy)`` with the block angle in [0, 2π);
proprio is ``(agent_x, agent_y, agent_vx, agent_vy)``.

`PushTEnv.set_state` places the bodies exactly, the block's angle before its position as the reference's eval
env does (``legacy=False``; the legacy order, gym-pusht's, would move the block off the requested pose, because
the angle turns the block about its centre of gravity). It builds a fresh pymunk space, so no contact impulses cached
from earlier steps carry over and stepping is a function of the 7-d state and the action alone. The reference's
space has already been stepped once when an episode starts, and a fresh space resolves the contacts of its first
step differently, so ours also takes one 0.01-s step with every body at rest before the agent's velocity is set.
That idle step moves nothing, whereas the reference's reset step moves the agent by velocity × 0.01 s. With the PD
controller evaluated in float32, as the reference's numpy 2 does, replays of the reference's episodes are
bit-identical (``tests/envs/test_pusht_reference.py``); we keep it in float64, which moves positions by at most
5e-5 px (velocities 1.2e-4 px/s) in its 25-step episodes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from jepa_wms.envs.base import EnvSpec, PlanningEnvBase, register_env
from jepa_wms.envs.pusht_render import (
    AGENT_RADIUS,
    TEE_COG,
    TEE_RECTS,
    WALL_RADIUS,
    WALL_SEGMENTS,
    WORLD_SIZE,
    PushTRenderer,
    tee_polygons_world,
    tee_signed_distance,
)

__all__ = ["PushTConfig", "PushTEnv", "PushTSim", "PUSHT_SPEC"]

SIM_HZ = 100
CONTROL_HZ = 10
K_P, K_V = 100.0, 20.0
BLOCK_MASS = 1.0
_TWO_PI = 2.0 * math.pi


def _import_pymunk() -> Any:
    try:
        import pymunk
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError('Push-T needs pymunk 6: pip install "jepa-wms[sim]"') from err
    return pymunk


@dataclass(frozen=True)
class PushTConfig:
    """Rendering, action and success settings of Push-T (the physics constants are fixed, see module doc).

    Attributes:
        img_size: rendered image side in pixels.
        supersample: antialiasing samples per pixel side (None: 4 up to 96 px, else 2).
        action_scale: world pixels per action unit (the reference's 100).
        max_action: actions are clipped to [-max_action, max_action] per axis.
        success_distance: success needs ‖(agent_xy, block_xy)_goal − (agent_xy, block_xy)‖ below this.
        success_angle: ... and the wrapped block angle difference below this (radians).
        start_margin: agent and block corners start at least this far inside the world square.
    """

    img_size: int = 64
    supersample: int | None = None
    action_scale: float = 100.0
    max_action: float = 1.0
    success_distance: float = 20.0
    success_angle: float = math.pi / 9
    start_margin: float = 50.0

    def __post_init__(self) -> None:
        if int(self.img_size) != self.img_size or self.img_size < 8:
            raise ValueError(f"PushTConfig: img_size must be an integer >= 8, got {self.img_size!r}")
        for key in ("action_scale", "max_action", "success_distance", "success_angle"):
            if not getattr(self, key) > 0:
                raise ValueError(f"PushTConfig: {key} must be > 0, got {getattr(self, key)!r}")
        if not 0 <= self.start_margin < WORLD_SIZE / 2 - AGENT_RADIUS:
            raise ValueError(
                f"PushTConfig: start_margin must be in [0, {WORLD_SIZE / 2 - AGENT_RADIUS}), got {self.start_margin!r}"
            )


ANGLE_PX_PER_RAD = 180.0 / math.pi


class PushTSim:
    """One pymunk space holding the walls, the agent and the block, built at a given 7-d state.

    A fresh space per state keeps stepping deterministic: pymunk warm-starts contacts with impulses cached
    from earlier steps, which a state vector cannot carry. The space then takes one idle step, as the
    reference's has when an episode starts (see the module doc).
    """

    def __init__(self, state: np.ndarray):
        pymunk = _import_pymunk()
        s = [float(v) for v in state]
        space = pymunk.Space()
        space.gravity = (0.0, 0.0)
        space.damping = 0.0
        for a, b in WALL_SEGMENTS:
            space.add(pymunk.Segment(space.static_body, a, b, WALL_RADIUS))
        agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        space.add(agent, pymunk.Circle(agent, AGENT_RADIUS))
        bar = [(-60.0, 30.0), (60.0, 30.0), (60.0, 0.0), (-60.0, 0.0)]
        block = pymunk.Body(BLOCK_MASS, 2.0 * pymunk.moment_for_poly(BLOCK_MASS, bar))
        block.center_of_gravity = TEE_COG
        # Angle first: it turns the body about its centre of gravity, so the position set afterwards is exact.
        block.angle = s[4]
        block.position = (s[2], s[3])
        polys = [pymunk.Poly(block, [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]) for u0, u1, v0, v1 in TEE_RECTS]
        space.add(block, *polys)
        agent.position = (s[0], s[1])
        # With every velocity zero the step moves no body; it caches the impulses of touching contacts and leaves
        # their penetration correction pending for the next step, as the reference's first step does.
        space.step(1.0 / SIM_HZ)
        agent.velocity = (s[5], s[6])
        self.space, self.agent, self.block = space, agent, block

    def state(self) -> np.ndarray:
        ax, ay = self.agent.position
        bx, by = self.block.position
        vx, vy = self.agent.velocity
        return np.array([ax, ay, bx, by, self.block.angle % _TWO_PI, vx, vy], dtype=np.float64)

    def step(self, target_x: float, target_y: float) -> None:
        """One control step: SIM_HZ / CONTROL_HZ physics substeps of the PD controller towards the target."""
        dt = 1.0 / SIM_HZ
        agent, space = self.agent, self.space
        for _ in range(SIM_HZ // CONTROL_HZ):
            px, py = agent.position
            vx, vy = agent.velocity
            # The reference's controller, a = k_p (target - p) + k_v (0 - v); v += a dt, in float64 (see the
            # module doc for its float32 arithmetic).
            ax = K_P * (target_x - px) + K_V * (0.0 - vx)
            ay = K_P * (target_y - py) + K_V * (0.0 - vy)
            agent.velocity = (vx + ax * dt, vy + ay * dt)
            space.step(dt)


def angle_difference(a: float, b: float) -> float:
    """|a - b| wrapped to [0, π]."""
    d = (float(a) - float(b)) % _TWO_PI
    return min(d, _TWO_PI - d)


class PushTEnv(PlanningEnvBase):
    """Push-T with exact state control; observation ``{"pixels": uint8 (H, W, 3), "proprio": float32 (4,)}``.

    ``PushTEnv(img_size=224)`` overrides single `PushTConfig` fields; ``PushTEnv(config)`` takes a whole
    config. Implements the `jepa_wms.envs.base.PlanningEnv` contract.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, config: PushTConfig | None = None, render_mode: str = "rgb_array", **overrides: Any):
        cfg = config or PushTConfig()
        fields = {f.name for f in dataclasses.fields(PushTConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"PushTEnv: unknown option(s) {unknown}; expected PushTConfig fields {sorted(fields)}")
        if render_mode != "rgb_array":
            raise ValueError(f"PushTEnv: render_mode must be 'rgb_array', got {render_mode!r}")
        _import_pymunk()  # fail at construction, not at the first reset
        self.config = dataclasses.replace(cfg, **overrides)
        self.render_mode = render_mode
        c = self.config
        self.action_space = spaces.Box(-c.max_action, c.max_action, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, shape=(c.img_size, c.img_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
            }
        )
        self._renderer = PushTRenderer(c.img_size, c.supersample)
        start, goal = self.sample_start_goal(np.random.default_rng(0))
        self._goal = goal
        self.set_state(start)

    # -- sampling -------------------------------------------------------------------------------------------
    def sample_free_state(self, rng: np.random.Generator) -> np.ndarray:
        """Agent uniform in the arena, block uniform with all corners inside, not touching the agent, at rest.

        The agent lies in [margin, 512 - margin]²; the block's centre of gravity is uniform in the same
        square and its angle uniform in [0, 2π), redrawn until every block corner is at least 20 px from the
        world's edge (13 px clear of the walls) and the agent at least 5 px clear of the block.
        """
        lo, hi = self.config.start_margin, WORLD_SIZE - self.config.start_margin
        agent = rng.uniform(lo, hi, size=2)
        gx, gy = TEE_COG
        while True:
            cog = rng.uniform(lo, hi, size=2)
            angle = rng.uniform(0.0, _TWO_PI)
            c, s = math.cos(angle), math.sin(angle)
            origin = cog - np.array([c * gx - s * gy, s * gx + c * gy])
            corners = np.concatenate(tee_polygons_world(origin, angle))
            inside = corners.min() >= 20.0 and corners.max() <= WORLD_SIZE - 20.0
            if inside and tee_signed_distance(agent, origin, angle) > AGENT_RADIUS + 5.0:
                return np.array([agent[0], agent[1], origin[0], origin[1], angle, 0.0, 0.0])

    def sample_start_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The "random_action" goal source: a random start, and the state after ``eval_steps`` data-policy steps.

        The rollout runs in a scratch simulator, so the env's own state is untouched, and replaying its actions
        from the start reproduces the goal exactly (stepping is deterministic).
        """
        start = self.sample_free_state(rng)
        goal, _ = self.rollout_policy(rng, start, PUSHT_SPEC.eval_steps)
        return start, goal

    def rollout_policy(self, rng: np.random.Generator, start: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Run `data_policy` for ``steps`` steps from ``start`` in a scratch simulator.

        Returns (final state (7,), actions (steps, 2) float32); the env's state is untouched.
        """
        state = self._check_state(start, "start")
        state[4] %= _TWO_PI  # what get_state() would return after set_state(start)
        sim = PushTSim(state)
        policy = self.data_policy()
        policy.reset(rng, state)
        actions = []
        for _ in range(steps):
            action = np.asarray(policy(rng, state), dtype=np.float32)
            sim.step(*self.pd_target(state, action))
            state = sim.state()
            actions.append(action)
        return state, np.asarray(actions, dtype=np.float32).reshape(steps, 2)

    def data_policies(self) -> dict[str, Any]:
        """Factories of the data policies by name; the first, ``noisy_push``, is the default.

        ``noisy_push``: `pusht_policy.NoisyPushPolicy`; ``expert``: `pusht_expert.ExpertPushPolicy`, which moves
        and turns the block towards random target poses; ``random_walk``: `pusht_policy.PushTRandomWalk`.
        """
        from jepa_wms.envs.pusht_expert import ExpertPushPolicy
        from jepa_wms.envs.pusht_policy import NoisyPushPolicy, PushTRandomWalk

        scale, bound = self.config.action_scale, self.config.max_action
        return {
            "noisy_push": lambda: NoisyPushPolicy(action_scale=scale, max_action=bound),
            "expert": lambda: ExpertPushPolicy(action_scale=scale, max_action=bound),
            "random_walk": lambda: PushTRandomWalk(max_action=bound),
        }

    def data_policy(self, name: str | None = None) -> Any:
        """The exploration policy for data collection (``name``: one of `data_policies`; None or "": the default,
        which also gives the "random_action" goals)."""
        policies = self.data_policies()
        if name and name not in policies:
            raise ValueError(f"unknown data policy {name!r} for pusht; expected one of: {', '.join(policies)}")
        return policies[name or "noisy_push"]()

    # -- success --------------------------------------------------------------------------------------------
    def distance(self, state: np.ndarray, goal: np.ndarray) -> float:
        """‖(agent_xy, block_xy)_goal − (agent_xy, block_xy)‖₂ in world pixels."""
        s, g = np.asarray(state, np.float64), np.asarray(goal, np.float64)
        return float(np.linalg.norm(g[:4] - s[:4]))

    def is_success(self, state: np.ndarray, goal: np.ndarray) -> bool:
        """The reference ``eval_state``: position distance < 20 px and wrapped block angle difference < π/9."""
        angle = angle_difference(np.asarray(state)[4], np.asarray(goal)[4])
        return self.distance(state, goal) < self.config.success_distance and angle < self.config.success_angle

    def state_cost(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Oracle planning cost in world px²: squared agent and block position errors plus the wrapped angle error
        at ``ANGLE_PX_PER_RAD`` px per radian (57.3: one degree weighs one pixel; the success rule's 20° is then
        about as far as its 20 px)."""
        s, g = np.asarray(states, np.float64), np.asarray(goal, np.float64)
        d = (s[:, 4] - g[4]) % _TWO_PI
        angle = np.minimum(d, _TWO_PI - d)
        return np.square(s[:, :4] - g[:4]).sum(-1) + np.square(ANGLE_PX_PER_RAD * angle)

    # -- state ----------------------------------------------------------------------------------------------
    def _check_state(self, value: Any, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (7,) or not np.all(np.isfinite(arr)):
            raise ValueError(
                f"PushTEnv: {what} must be a finite array of shape (7,) = (agent_x, agent_y, block_x, block_y, "
                f"block_angle, agent_vx, agent_vy), got {value!r}"
            )
        return arr.copy()

    def get_state(self) -> np.ndarray:
        # Right after set_state the sim holds the block position only to rounding (pymunk stores the centre of
        # gravity), so the requested state is returned verbatim until the next step.
        return (self._exact if self._exact is not None else self._sim.state()).copy()

    def set_state(self, state: np.ndarray) -> None:
        """Place agent (position and velocity) and block (pose, at rest) exactly; angles are wrapped to [0, 2π)."""
        s = self._check_state(state, "state")
        s[4] = s[4] % _TWO_PI
        self._sim = PushTSim(s)
        self._exact: np.ndarray | None = s

    def set_goal(self, goal: np.ndarray) -> None:
        self._goal = self._check_state(goal, "goal")

    # -- gymnasium API ---------------------------------------------------------------------------------------

    def pd_target(self, state: np.ndarray, action: np.ndarray) -> tuple[float, float]:
        c = self.config
        a = np.clip(action.astype(np.float64), -c.max_action, c.max_action)
        target = np.clip(state[:2] + c.action_scale * a, 0.0, WORLD_SIZE)
        return float(target[0]), float(target[1])

    def advance(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise ValueError(f"PushTEnv.step: action must be a finite array of shape (2,), got {action!r}")
        self._sim.step(*self.pd_target(self.get_state(), a))
        self._exact = None
        return self.get_state()

    def render(self) -> np.ndarray:
        return self.render_state(self.get_state())

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) of any state (only the first 5 entries matter); the env's state is not touched."""
        s = np.asarray(state, dtype=np.float64)
        if s.ndim != 1 or s.shape[0] < 5 or not np.all(np.isfinite(s[:5])):
            raise ValueError(f"PushTEnv.render_state: expected a finite state of >= 5 entries, got {state!r}")
        return self._renderer.render(s)

    def _observation(self) -> dict[str, np.ndarray]:
        s = self.get_state()
        return {"pixels": self._renderer.render(s), "proprio": s[[0, 1, 5, 6]].astype(np.float32)}


PUSHT_SPEC = EnvSpec(
    name="pusht",
    gym_id="jepa_wms/PushT-v0",
    action_dim=2,
    proprio_dim=4,
    state_dim=7,
    frameskip=5,
    eval_steps=30,
    goal_source="random_action",
)

register_env(PUSHT_SPEC, PushTEnv)
