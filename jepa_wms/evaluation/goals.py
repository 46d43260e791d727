"""Where evaluation episodes start and what they must reach: the env's own sampler or held-out data.

``eval.goal_source``:

- ``env``: the env's `sample_start_goal` (Wall/PointMaze ``random_state``, Push-T ``random_action``, Metaworld
  ``expert``).
- ``dset``: the reference Push-T protocol. A start frame is drawn from a validation episode of the training dataset
  (episodes the model never trained on); the recorded actions of the next ``eval_steps`` steps are replayed in the
  simulator from that state, and the state reached is the goal. Replaying (instead of reading the recorded goal
  state) guarantees that the goal is reachable in exactly the episode's budget under our simulator.

Both depend only on (seed, episode index), so results do not depend on batching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import DatasetError, TrajectoryStore, split_episodes

__all__ = ["DatasetGoals", "episode_start_goal"]


class DatasetGoals:
    """``dset`` goals from the validation split (``val_fraction``, ``split_seed`` as in training) of a dataset.

    Args:
        path: the dataset the model was trained on (or any dataset of the same env).
        steps: env steps between start and goal (the episode budget).
        val_fraction, split_seed: reproduce the training split, so goals come from held-out episodes.
    """

    def __init__(self, path: str | Path, steps: int, val_fraction: float, split_seed: int):
        try:
            self.store = TrajectoryStore(path, preload=False)
        except FileNotFoundError:
            raise DatasetError(
                f"eval.goal_source=dset needs the training dataset, but {path} does not exist; pass "
                f"eval.goal_dataset=<folder> to point to it"
            ) from None
        _, val = split_episodes(self.store.num_episodes, val_fraction, split_seed)
        lengths = self.store.episode_lengths[val]
        self.episodes = val[lengths > steps]
        if len(self.episodes) == 0:
            raise DatasetError(
                f"{self.store.path}: no validation episode has more than {steps} frames, so none can give a "
                f"start and a goal {steps} steps apart"
            )
        self.steps = int(steps)

    def start_goal(self, env: Any, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, index, 11])
        ep = int(self.episodes[rng.integers(len(self.episodes))])
        length = int(self.store.episode_lengths[ep])
        t0 = int(rng.integers(0, length - self.steps))
        first = int(self.store.episode_starts[ep]) + t0
        start = np.asarray(self.store.state[first], dtype=np.float64)
        raw = env.unwrapped
        raw.reset(options={"state": start, "goal": start})
        for action in self.store.actions[first : first + self.steps]:
            raw.step(np.asarray(action, dtype=np.float32))
        return start, raw.get_state()


def episode_start_goal(
    env: Any, seed: int, index: int, goals: DatasetGoals | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Start and goal of episode ``index``: a function of (seed, index) only."""
    if goals is not None:
        return goals.start_goal(env, seed, index)
    return env.unwrapped.sample_start_goal(np.random.default_rng([seed, index]))
