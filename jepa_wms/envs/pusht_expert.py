"""An expert-like scripted pusher for Push-T: it drives the T to random target poses, turning it as well as moving it.

The reference Push-T data are human demonstrations that bring the T to a target pose, so their block both
translates and rotates. `jepa_wms.envs.pusht_policy.NoisyPushPolicy` pushes towards target *positions* and turns
the block only through its random lateral offsets. `ExpertPushPolicy` plans each push from the block's dynamics.

Contacts are frictionless and the block stops as soon as nothing pushes it, so a push at a surface point ``c`` with
inward normal ``n`` moves the block (mass 1, moment of inertia ``I`` = 3000 px²) along ``n`` and turns it by ``h/I``
radians per pixel of that translation, with the lever ``h = (c - g) × n`` about the centre of gravity ``g``. In the
pose-error space ``E = (Δx, Δy, L·Δθ)`` (``L`` = ``angle_scale`` px per radian) a push at a contact therefore moves
the pose along ``u = (n, L·h/I)`` and removes at most ``E·u / |u|`` of the error. Each step the policy scores every
point of the T's outline that the agent's disc can touch (every 5 px, less those in the concave corners where the
disc does not fit, and those whose agent position would be outside the walls), subtracts ``walk_cost`` per pixel of
the walk there, and keeps its current contact while that value stays within ``(1 - keep)`` × the best score of the
best value: position errors pick pushes through the centre of gravity, angle errors pick pushes far from it, and
when the error has changed enough the agent lets go and re-grasps from another side. Walks go round the block on a
ring of waypoints (the T's convex hull offset by 27 px; shortest path by Dijkstra, waypoints outside the walls
removed) to a point ``clearance`` outside the contact; from there the agent moves in along the normal and pushes,
tracking the contact point as the block turns under it. A target pose (centre of gravity uniform within
``max_shift`` of the current one, kept ``target_margin`` inside the walls; angle the current one ± uniform up to
``max_turn``) is replaced when the block is within ``pos_tol`` and ``angle_tol`` of it, after ``max_target_steps``,
or after ``stall_steps`` without progress (against a wall the block often cannot be pushed where the target asks).
AR(1) action noise (``noise_sigma``, ``noise_rho``) keeps the data from being clean motion primitives.

Statistics of the three Push-T data policies, measured with ``python bench/pusht_policies.py --episodes 100
--steps 100 --seed 0`` (`jepa_wms.envs.pusht_policy.measure`, from `PushTEnv.sample_free_state` starts).
Columns: action std per component (reference data 0.202 / 0.200); agent-velocity std per component in px/s
(reference 75 / 74); fraction of steps in which the block moves > 1 px; net translation of the block's centre of
gravity and |net rotation| over all 30-step windows (the distance to a `dset` evaluation goal) and over whole
100-step episodes, as 25th / 50th / 75th percentiles::

    policy        action std    vel std px/s  moved   30-step px   30-step rad      episode px    episode rad
    noisy_push    0.205/0.205   76/76         0.355   26/56/93     0.10/0.29/0.66   77/132/177    0.43/0.88/1.51
    expert        0.205/0.205   76/76         0.345   34/54/74     0.36/0.73/1.20   49/80/111     1.16/1.93/2.65
    random_walk   0.301/0.297   86/88         0.035   0/0/0        0.00/0.00/0.00   0/0/37        0.00/0.00/0.30

The expert matches the reference's action and velocity spread as the default pusher does, and moves the block in
about as many steps and as far per 30-step window (median 54 px against 56), but turns it 2.5× as much per window
(median 0.73 rad = 42°, against 0.29 rad) and 2.2× as much per episode. It reaches 0.57 target poses per 100-step
episode (``targets_reached`` in the JSON; each episode starts with a walk to the block).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jepa_wms.envs.pusht_render import AGENT_RADIUS, TEE_COG, TEE_RECTS, WORLD_SIZE

__all__ = ["ExpertPushPolicy", "body_signed_distance", "contact_candidates", "ring_nodes"]

# Moment of inertia of the block (mass 1) about its centre of gravity, `PushTSim`'s: twice pymunk's moment of the
# 120x30 bar about the body origin (the middle of its top edge), 2 · (120² + 30²) / 12 + 2 · 15².
BLOCK_INERTIA = 3000.0
_COG_B = np.asarray(TEE_COG)
_SAFE = AGENT_RADIUS + 3.0  # the walking agent's centre keeps this far from the block
# The T's outline, counter-clockwise in body coordinates: (start, end, outward normal) per face.
_FACES = (
    ((-60.0, 0.0), (60.0, 0.0), (0.0, -1.0)),  # top of the bar
    ((60.0, 0.0), (60.0, 30.0), (1.0, 0.0)),  # right end of the bar
    ((60.0, 30.0), (15.0, 30.0), (0.0, 1.0)),  # right underside of the bar
    ((15.0, 30.0), (15.0, 120.0), (1.0, 0.0)),  # right side of the stem
    ((15.0, 120.0), (-15.0, 120.0), (0.0, 1.0)),  # stem tip
    ((-15.0, 120.0), (-15.0, 30.0), (-1.0, 0.0)),  # left side of the stem
    ((-15.0, 30.0), (-60.0, 30.0), (0.0, 1.0)),  # left underside of the bar
    ((-60.0, 30.0), (-60.0, 0.0), (-1.0, 0.0)),  # left end of the bar
)


def _cog(state: np.ndarray) -> np.ndarray:
    c, s = math.cos(state[4]), math.sin(state[4])
    return np.array([state[2] + c * _COG_B[0] - s * _COG_B[1], state[3] + s * _COG_B[0] + c * _COG_B[1]])


def body_signed_distance(points: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of body-frame points (..., 2) to the T's outline, vectorised."""
    p = np.asarray(points, dtype=np.float64)
    best = np.full(p.shape[:-1], np.inf)
    for u0, u1, v0, v1 in TEE_RECTS:
        qu = np.abs(p[..., 0] - (u0 + u1) / 2) - (u1 - u0) / 2
        qv = np.abs(p[..., 1] - (v0 + v1) / 2) - (v1 - v0) / 2
        d = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0)) + np.minimum(np.maximum(qu, qv), 0.0)
        best = np.minimum(best, d)
    return best


def _segments_clear(a: np.ndarray, b: np.ndarray, threshold: np.ndarray | float, step: float = 6.0) -> np.ndarray:
    """Whether each body-frame segment a[i] -> b[i] stays at least ``threshold`` from the T (sampled every step px)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    a, b = np.broadcast_arrays(a, b)
    n = np.maximum(np.ceil(np.linalg.norm(b - a, axis=-1) / step).astype(int), 1) + 1
    seg = np.repeat(np.arange(len(a)), n)
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
    t = (np.arange(int(n.sum())) - np.repeat(offsets, n)) / np.repeat(n - 1, n)
    pts = a[seg] + (b[seg] - a[seg]) * t[:, None]
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(a),))[seg]
    ok = body_signed_distance(pts) >= thr
    return np.logical_and.reduceat(ok, offsets)


def contact_candidates(spacing: float = 5.0, corner_margin: float = 2.0) -> dict[str, np.ndarray]:
    """Contact points on the T's outline that the agent's disc can touch, in body coordinates.

    Returns arrays over the K candidates: ``agent`` (K, 2), the agent's centre when touching; ``normal`` (K, 2),
    the inward surface normal (the direction the block is pushed); ``lever`` (K,), ``(c - cog) × normal``;
    ``face`` (K,), the face index.
    """
    agent, normal, lever, face = [], [], [], []
    cog = np.asarray(TEE_COG)
    for k, (a, b, out) in enumerate(_FACES):
        a, b, out = np.asarray(a), np.asarray(b), np.asarray(out)
        length = float(np.linalg.norm(b - a))
        n = max(int((length - 2 * corner_margin) // spacing) + 1, 1)
        for t in np.linspace(corner_margin, length - corner_margin, n):
            c = a + (b - a) * (t / length)
            p = c + AGENT_RADIUS * out
            if body_signed_distance(p) < AGENT_RADIUS - 0.5:  # the disc would hit another face
                continue
            r = c - cog
            agent.append(p)
            normal.append(-out)
            lever.append(float(r[0] * -out[1] - r[1] * -out[0]))
            face.append(k)
    return {"agent": np.array(agent), "normal": np.array(normal), "lever": np.array(lever), "face": np.array(face)}


def ring_nodes(distance: float = AGENT_RADIUS + 12.0) -> np.ndarray:
    """Waypoints round the block (body frame): the T's convex hull offset by ``distance``, 3 per hull corner."""
    hull = np.array([(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (15.0, 120.0), (-15.0, 120.0), (-60.0, 30.0)])
    centre = hull.mean(axis=0)
    nodes = []
    for i, v in enumerate(hull):
        normals = []
        for a, b in ((hull[i - 1], v), (v, hull[(i + 1) % len(hull)])):
            e = (b - a) / np.linalg.norm(b - a)
            n = np.array([e[1], -e[0]])
            normals.append(n if n @ ((a + b) / 2 - centre) > 0 else -n)
        mid = normals[0] + normals[1]
        for n in (normals[0], mid / np.linalg.norm(mid), normals[1]):
            nodes.append(v + distance * n)
    return np.array(nodes)


class ExpertPushPolicy:
    """Scripted pushes of the T towards random target poses (position and angle), with AR(1) action noise.

    All distances in world pixels, speeds as displacements commanded per step (the agent's PD controller covers
    about half of a constant command per step). See the module docstring for the method.

    Args:
        action_scale: world pixels per action unit (the env's, 100).
        max_action: clipping bound of each action component.
        push_speed: commanded displacement per step while pushing, in action units.
        approach_speed: largest commanded displacement per step while walking to a contact, in action units.
        approach_gain: walking command as a fraction of the remaining distance to the waypoint.
        angle_scale: ``L``, pixels of pose error per radian of angle error.
        walk_cost: score lost per pixel between the agent and a contact.
        keep: hysteresis: the current contact is kept while its value (score less walk) is within
            ``(1 - keep)`` × the best score of the best value.
        clearance: the agent walks to this far outside a contact, then moves in along the normal.
        corridor: lateral distance from a contact's line within which the agent moves in and pushes (twice
            that once pushing).
        noise_sigma, noise_rho: stationary std and correlation of the AR(1) action noise.
        target_margin: target centres of gravity lie in [margin, 512 - margin]².
        max_shift: if > 0, target centres of gravity are uniform within this distance of the current one (kept
            in that square), else uniform in the square.
        max_turn: target angles are the current one plus uniform(-max_turn, max_turn) (π: uniform).
        pos_tol, angle_tol: the target counts as reached within these.
        max_target_steps: a new target is drawn after this many steps ...
        stall_steps: ... or after this many steps without bringing the pose error 2 px closer (against a wall
            the block often cannot be pushed where the target asks).

    Attributes:
        targets_reached: target poses reached since the last `reset`.
    """

    name = "pusht_expert_push"

    def __init__(
        self,
        action_scale: float = 100.0,
        max_action: float = 1.0,
        push_speed: float = 0.22,
        approach_speed: float = 0.33,
        approach_gain: float = 1.0,
        angle_scale: float = 100.0,
        walk_cost: float = 0.05,
        keep: float = 0.4,
        clearance: float = 20.0,
        corridor: float = 10.0,
        noise_sigma: float = 0.07,
        noise_rho: float = 0.6,
        target_margin: float = 100.0,
        max_shift: float = 120.0,
        max_turn: float = math.pi,
        pos_tol: float = 15.0,
        angle_tol: float = 0.25,
        max_target_steps: int = 80,
        stall_steps: int = 25,
    ):
        if not (action_scale > 0 and max_action > 0 and push_speed > 0 and approach_speed > 0 and 0 <= keep <= 1):
            raise ValueError(
                "ExpertPushPolicy: need action_scale, max_action, push_speed, approach_speed > 0 and 0 <= keep <= 1; "
                f"got {action_scale}, {max_action}, {push_speed}, {approach_speed}, {keep}"
            )
        if not (0.0 <= noise_rho < 1.0 and noise_sigma >= 0 and max_target_steps >= 1):
            raise ValueError(
                "ExpertPushPolicy: need 0 <= noise_rho < 1, noise_sigma >= 0, max_target_steps >= 1; "
                f"got {noise_rho}, {noise_sigma}, {max_target_steps}"
            )
        self.action_scale, self.max_action = float(action_scale), float(max_action)
        self.push_speed, self.approach_speed, self.approach_gain = push_speed, approach_speed, approach_gain
        self.angle_scale, self.walk_cost, self.keep = angle_scale, walk_cost, keep
        self.clearance, self.corridor = clearance, corridor
        self.noise_sigma, self.noise_rho = noise_sigma, noise_rho
        self.target_margin, self.max_shift, self.max_turn = target_margin, max_shift, max_turn
        self.pos_tol, self.angle_tol, self.max_target_steps = pos_tol, angle_tol, int(max_target_steps)
        self.stall_steps = int(stall_steps)
        cand = contact_candidates()
        self._agent_b, self._normal_b, self._lever = cand["agent"], cand["normal"], cand["lever"]
        self._goal_b = self._agent_b - self.clearance * self._normal_b  # walking goal: outside the contact
        self._u_norm = np.sqrt(1.0 + (self.angle_scale * self._lever / BLOCK_INERTIA) ** 2)
        # The navigation graph round the block is rigid, so what sees what is computed once, in body coordinates.
        self._ring = ring_nodes()
        m, k = len(self._ring), len(self._goal_b)
        ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        clear = _segments_clear(self._ring[ii.ravel()], self._ring[jj.ravel()], _SAFE).reshape(m, m)
        self._ring_dist = np.where(clear, np.linalg.norm(self._ring[:, None] - self._ring[None], axis=-1), np.inf)
        gi, gj = np.meshgrid(np.arange(k), np.arange(m), indexing="ij")
        clear = _segments_clear(self._goal_b[gi.ravel()], self._ring[gj.ravel()], _SAFE).reshape(k, m)
        self._goal_dist = np.where(clear, np.linalg.norm(self._goal_b[:, None] - self._ring[None], axis=-1), np.inf)
        self._noise = np.zeros(2)
        self._target = np.zeros(3)  # centre of gravity x, y and angle (unwrapped)
        self._target_steps = self._best_step = 0
        self._best_error = math.inf
        self._contact = self._pushing = -1
        self.targets_reached = 0

    # -- targets ----------------------------------------------------------------------------------------------
    def _new_target(self, rng: np.random.Generator, state: np.ndarray) -> None:
        lo, hi = self.target_margin, WORLD_SIZE - self.target_margin
        if self.max_shift > 0:  # uniform in a disc round the current centre of gravity, kept in the square
            r, phi = self.max_shift * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
            xy = np.clip(_cog(state) + r * np.array([math.cos(phi), math.sin(phi)]), lo, hi)
        else:
            xy = rng.uniform(lo, hi, size=2)
        angle = float(state[4]) + rng.uniform(-self.max_turn, self.max_turn)
        self.set_target(xy, angle)

    def set_target(self, cog_xy: np.ndarray, angle: float) -> None:
        """Replace the current target pose (centre of gravity and angle); for tests and demonstrations."""
        self._target = np.array([float(cog_xy[0]), float(cog_xy[1]), float(angle)])
        self._target_steps = self._best_step = 0
        self._best_error = math.inf
        self._contact = self._pushing = -1

    def pose_error(self, state: np.ndarray) -> tuple[np.ndarray, float]:
        """(target cog − cog (2,), target angle − angle wrapped to [-π, π)) for ``state``."""
        s = np.asarray(state, dtype=np.float64)
        dang = (self._target[2] - s[4] + math.pi) % (2 * math.pi) - math.pi
        return self._target[:2] - _cog(s), float(dang)

    def reset(self, rng: np.random.Generator, state: np.ndarray) -> None:
        self._new_target(rng, np.asarray(state, dtype=np.float64))
        self._noise = rng.standard_normal(2) * self.noise_sigma
        self.targets_reached = 0

    # -- planning -------------------------------------------------------------------------------------------
    def _paths(self, agent_b: np.ndarray, ring_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shortest walks from the agent (body frame) to each contact's walking goal, round the block.

        Returns (length (K,), inf where none; first ring node of the walk (K,), -1 for a straight walk).
        """
        m = len(self._ring)
        # A walk may start closer to the block than is safe (the agent was just pushing); it must not get closer.
        start_thr = min(_SAFE, float(body_signed_distance(agent_b)) - 0.5)
        from_start = _segments_clear(agent_b[None], self._ring, start_thr) & ring_ok
        dist = np.where(from_start, np.linalg.norm(self._ring - agent_b, axis=-1), np.inf)
        first = np.where(from_start, np.arange(m), -2)
        done = np.zeros(m, dtype=bool)
        w = np.where(ring_ok[:, None] & ring_ok[None], self._ring_dist, np.inf)
        for _ in range(m):  # Dijkstra on the ring's dozen or so nodes
            j = int(np.argmin(np.where(done, np.inf, dist)))
            if done[j] or not np.isfinite(dist[j]):
                break
            done[j] = True
            better = dist[j] + w[j] < dist
            dist, first = np.where(better, dist[j] + w[j], dist), np.where(better, first[j], first)
        via = dist[None] + np.where(ring_ok[None], self._goal_dist, np.inf)  # (K, M)
        best = np.argmin(via, axis=1)
        length, first_node = via[np.arange(len(best)), best], first[best]
        direct = _segments_clear(agent_b[None], self._goal_b, start_thr)
        straight = np.linalg.norm(self._goal_b - agent_b, axis=-1)
        use = direct & (straight <= length)
        return np.where(use, straight, length), np.where(use, -1, first_node)

    def _steer(self, state: np.ndarray) -> np.ndarray:
        """Desired displacement of the agent this step, in world pixels."""
        c, sn = math.cos(state[4]), math.sin(state[4])
        rot = np.array([[c, -sn], [sn, c]])
        agent_b = rot.T @ (state[:2] - state[2:4])
        lo, hi = AGENT_RADIUS + 8.0, WORLD_SIZE - AGENT_RADIUS - 8.0

        def inside(points_b: np.ndarray) -> np.ndarray:  # the agent passes through walls: stay within them
            w = points_b @ rot.T + state[2:4]
            return np.all((w >= lo) & (w <= hi), axis=-1)

        length, first = self._paths(agent_b, inside(self._ring))
        # Score: the pose error removed by pushing at each contact (see the module doc), less the walk there.
        dpos, dang = self.pose_error(state)
        normals = self._normal_b @ rot.T
        score = (normals @ dpos + self.angle_scale**2 * dang * self._lever / BLOCK_INERTIA) / self._u_norm
        ok = inside(self._agent_b) & inside(self._goal_b) & np.isfinite(length)
        score = np.where(ok, score, -np.inf)
        # Already in the corridor of a contact: no walk needed.
        rel = agent_b - self._agent_b
        behind = -np.sum(rel * self._normal_b, axis=1)  # distance outside the contact, along its outward normal
        lateral = rel + behind[:, None] * self._normal_b
        # While pushing, the corridor is twice as wide: noise and the turning block must not break the contact.
        wide = np.where(np.arange(len(behind)) == self._pushing, 2.0, 1.0)
        near = np.linalg.norm(lateral, axis=1) < self.corridor * wide
        in_corridor = near & (behind > -10.0) & (behind < 1.5 * self.clearance * wide)
        value = np.where(score > 0, score - self.walk_cost * np.where(in_corridor, 0.0, length), -np.inf)
        best, cur = int(np.argmax(value)), self._contact
        keep = cur >= 0 and score[cur] > 0 and value[cur] >= value[best] - (1.0 - self.keep) * max(score[best], 0.0)
        if not keep:
            self._contact = cur = best if score[best] > 0 else -1
        self._pushing = cur if cur >= 0 and in_corridor[cur] else -1
        if cur < 0:  # no reachable contact reduces the error (the block is against a wall): new target next step
            self._best_step = -self.stall_steps
            return np.zeros(2)
        if in_corridor[cur]:  # move in along the normal and push, tracking the contact point as the block turns
            return rot @ (-lateral[cur] + self.push_speed * self.action_scale * self._normal_b[cur])
        node = int(first[cur])  # a chosen contact has a finite walk: straight (-1) or via the ring
        goal_b = self._goal_b[cur] if node < 0 else self._ring[node]
        if node < 0:  # straight there: enter the corridor at the nearest point that is in plain view
            entry = self._agent_b[cur] - float(np.clip(behind[cur], 5.0, self.clearance)) * self._normal_b[cur]
            if _segments_clear(agent_b, entry, min(_SAFE, float(body_signed_distance(agent_b)) - 0.5))[0]:
                goal_b = entry
        # Full speed past the waypoints round the block, slowing down only on the way in to the contact.
        gain = self.approach_gain if node == -1 else 1e3
        step = rot @ (gain * (goal_b - agent_b))
        limit = self.approach_speed * self.action_scale
        norm = float(np.linalg.norm(step))
        return step * (limit / norm) if norm > limit else step

    def __call__(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64)
        eps = rng.standard_normal(2)
        self._noise = self.noise_rho * self._noise + math.sqrt(1 - self.noise_rho**2) * self.noise_sigma * eps
        self._target_steps += 1
        dpos, dang = self.pose_error(state)
        error = math.hypot(float(np.linalg.norm(dpos)), self.angle_scale * dang)
        if error < self._best_error - 2.0:
            self._best_error, self._best_step = error, self._target_steps
        reached = float(np.linalg.norm(dpos)) < self.pos_tol and abs(dang) < self.angle_tol
        self.targets_reached += int(reached)
        stalled = self._target_steps - self._best_step > self.stall_steps
        if reached or stalled or self._target_steps > self.max_target_steps:
            self._new_target(rng, state)
        action = self._steer(state) / self.action_scale + self._noise
        return np.clip(action, -self.max_action, self.max_action)

    def params(self) -> dict[str, Any]:
        keys = (
            *("action_scale", "max_action", "push_speed", "approach_speed", "approach_gain", "angle_scale"),
            *("walk_cost", "keep", "clearance", "corridor", "noise_sigma", "noise_rho", "target_margin"),
            *("max_shift", "max_turn", "pos_tol", "angle_tol", "max_target_steps", "stall_steps"),
        )
        return {k: float(getattr(self, k)) for k in keys}
