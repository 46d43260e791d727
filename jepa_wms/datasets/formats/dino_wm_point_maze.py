"""DINO-WM's ``point_maze/`` layout: D4RL ``maze2d-umaze`` trajectories with top-down frames.

Files: ``states.pth`` (N, T, 4) float (x, y, vx, vy in D4RL coordinates), ``actions.pth`` (N, T, 2) float forces in
[-1, 1], ``seq_lengths.pth`` (N,) ints, and ``obses/episode_XXX.pth`` uint8 (T, H, W, C) per trajectory (3-digit
index, more digits past 999; unpadded names are accepted too). Trajectory i uses its first ``seq_lengths[i]``
steps; the reference pairs action t with the move from frame t to t+1, so the action after the last frame is
dropped.

Positions go through `jepa_wms.envs.pointmaze.d4rl_to_env_xy`; velocities and actions through the same rotation
without the offset. Rotating the actions matters: a D4RL force along its x axis pushes the ball along our -y
axis, so unrotated actions would not replay in `jepa_wms.envs.PointMazeEnv`. Frames are kept as published:
they come from D4RL's mujoco-py camera and are not re-rendered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, episode_file, load_pth, register_layout
from jepa_wms.datasets.storage import DatasetError
from jepa_wms.envs.pointmaze import d4rl_to_env_vec, d4rl_to_env_xy

__all__ = ["POINT_MAZE", "read"]


def _array(path: Path, shape_doc: str, ndim: int, last: int | None = None) -> np.ndarray:
    value = load_pth(path)
    arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if arr.ndim != ndim or (last is not None and arr.shape[-1] != last):
        raise DatasetError(f"{path}: expected {shape_doc}, got shape {arr.shape}")
    return arr


def read(root: Path) -> tuple[int, Iterator[Episode]]:
    root = Path(root)
    states = _array(root / "states.pth", "states (N, T, 4)", 3, 4).astype(np.float64)
    actions = _array(root / "actions.pth", "actions (N, T or T-1, 2)", 3, 2).astype(np.float64)
    lengths = _array(root / "seq_lengths.pth", "seq_lengths (N,)", 1)
    n, t = states.shape[:2]
    if actions.shape[0] != n or actions.shape[1] not in (t, t - 1) or len(lengths) != n:
        raise DatasetError(
            f"{root}: states {states.shape}, actions {actions.shape} and seq_lengths {lengths.shape} disagree; "
            "expected (N, T, 4), (N, T or T-1, 2) and (N,)"
        )
    if not np.issubdtype(lengths.dtype, np.integer) or lengths.min(initial=2) < 2 or lengths.max(initial=t) > t:
        raise DatasetError(f"{root / 'seq_lengths.pth'}: expected integers in [2, {t}], got {lengths.tolist()[:10]}")

    def episodes() -> Iterator[Episode]:
        for i in range(n):
            length = int(lengths[i])
            path = episode_file(root, i, ".pth")
            frames = np.asarray(load_pth(path))
            if frames.ndim != 4 or frames.shape[0] < length or frames.shape[-1] != 3:
                raise DatasetError(f"{path}: expected frames (>= {length}, H, W, 3), got shape {frames.shape}")
            if frames.dtype != np.uint8:
                raise DatasetError(f"{path}: expected uint8 frames, got {frames.dtype}")
            raw = states[i, :length]
            state = np.concatenate([d4rl_to_env_xy(raw[:, :2]), d4rl_to_env_vec(raw[:, 2:])], axis=1)
            yield {
                "pixels": np.ascontiguousarray(frames[:length]),
                "actions": d4rl_to_env_vec(actions[i, : length - 1]),
                "proprio": state,
                "state": state,
            }

    return n, episodes()


POINT_MAZE = register_layout(
    PublishedLayout(
        name="dino_wm_point_maze",
        env="pointmaze",
        description="DINO-WM point_maze/: states.pth, actions.pth, seq_lengths.pth, obses/episode_XXX.pth",
        required=("states.pth", "actions.pth", "seq_lengths.pth", "obses"),
        read=read,
    )
)
