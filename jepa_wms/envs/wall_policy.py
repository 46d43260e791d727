"""Wall's data-collection policy (``WallEnv.data_policy()``): an AR(1) walk that is led through the door in most
episodes.

A world model can only learn transitions the data contains. On Wall, independent random actions jitter in place and
almost never find the door; a persistent AR(1) walk travels in long arcs but still crosses between rooms in few
episodes, so in most episodes this policy adds a pull through the door.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jepa_wms.datasets.policies import AR1RandomWalk

__all__ = ["DoorSeekingWalk"]


class DoorSeekingWalk(AR1RandomWalk):
    """AR(1) walk plus, in a fraction of episodes, a constant-size pull that leads the dot through a door.

    On Wall, a blocked dot stops at the first contact, so an unbiased walk spends its persistence pushing
    against walls: with ρ = 0.9, σ = 0.75 only ~6 % of 50-step episodes from uniform starts visit both
    rooms (also ~6 % at ρ = 0.7). In a "seeking" episode the action gets ``bias · unit(waypoint - state)``
    added: first towards an approach point in front of the door on the start side (each room is convex, so
    that straight line is free), then towards the matching point on the far side. The pull stops for good
    once the dot is in the target room, so the rest of the episode is free exploration there.

    Args:
        door_center: (x, y) centre of the door.
        wall_x: (x0, x1) horizontal extent of the wall.
        approach: distance of the waypoints from the wall faces.
        bias: size of the pull added to each action.
        p_seek: probability that an episode seeks the door at all.
    """

    name = "door_seeking_walk"

    def __init__(
        self,
        action_dim: int,
        door_center: tuple[float, float],
        wall_x: tuple[float, float],
        rho: float = 0.9,
        sigma: float = 0.75,
        low: float = -2.0,
        high: float = 2.0,
        bias: float = 0.75,
        p_seek: float = 0.75,
        approach: float = 4.0,
    ):
        super().__init__(action_dim, rho=rho, sigma=sigma, low=low, high=high)
        if not (bias >= 0 and 0.0 <= p_seek <= 1.0 and approach > 0):
            raise ValueError(
                f"DoorSeekingWalk: need bias >= 0, 0 <= p_seek <= 1, approach > 0; got {bias=}, {p_seek=}, {approach=}"
            )
        self.door_center = (float(door_center[0]), float(door_center[1]))
        self.wall_x = (float(wall_x[0]), float(wall_x[1]))
        self.bias, self.p_seek, self.approach = float(bias), float(p_seek), float(approach)
        self._waypoints: list[np.ndarray] = []
        self._side = 0

    def _room(self, x: float) -> int:
        return -1 if x <= self.wall_x[0] else (1 if x >= self.wall_x[1] else 0)

    def reset(self, rng: np.random.Generator, state: np.ndarray) -> None:
        super().reset(rng, state)
        # Both draws happen every episode so the random stream does not depend on the outcome of the first.
        seek = rng.random() < self.p_seek
        coin = -1 if rng.random() < 0.5 else 1
        start_room = self._room(float(state[0]))
        self._side = -start_room if start_room != 0 else coin
        cx, cy = self.door_center
        near = (self.wall_x[0] - self.approach, cy)
        far = (self.wall_x[1] + self.approach, cy)
        if self._side < 0:
            near, far = far, near
        self._waypoints = [np.array(near), np.array(far)] if seek else []
        if seek and start_room == 0:  # already in the doorway: go straight through
            self._waypoints.pop(0)

    def __call__(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        action = self._noise(rng)
        pos = np.asarray(state, dtype=np.float64)[:2]
        if self._waypoints and self._room(float(pos[0])) == self._side:
            self._waypoints = []
        if self._waypoints and len(self._waypoints) == 2:
            close = np.linalg.norm(self._waypoints[0] - pos) < 3.0
            if close or self._room(float(pos[0])) == 0:
                self._waypoints.pop(0)
        if not self._waypoints:
            return action
        delta = self._waypoints[0] - pos
        pull = self.bias * delta / max(float(np.linalg.norm(delta)), 1e-9)
        return np.clip(action + pull, self.low, self.high)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "bias": self.bias,
            "p_seek": self.p_seek,
            "approach": self.approach,
            "door_center": list(self.door_center),
            "wall_x": list(self.wall_x),
        }
