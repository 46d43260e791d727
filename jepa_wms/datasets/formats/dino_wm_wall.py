"""DINO-WM's ``wall_single/`` layout: the Wall ("DotWall") dataset.

Files: ``states.pth`` (N, T, 2) dot positions in canvas pixels, ``actions.pth`` (N, T or T-1, 2),
``door_locations.pth`` and ``wall_locations.pth`` (one value per trajectory), ``obses/episode_XXX.pth`` uint8
(T, C, H, W). Trajectories have a fixed length.

The published transition is ``pos + action`` while the env (theirs and ours) moves the dot by ``2 · action``, so
actions are divided by our ``action_scale`` to be replayable in `jepa_wms.envs.WallEnv`. Positions are already in
our units (arena pixels of the 65-px canvas).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, episode_file, load_pth, register_layout
from jepa_wms.datasets.storage import DatasetError
from jepa_wms.envs.wall import WallConfig

__all__ = ["WALL_SINGLE"]


def _numpy(value: object, path: Path, ndim: int) -> np.ndarray:
    arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)
    if arr.ndim != ndim:
        raise DatasetError(f"{path}: expected a {ndim}-d array, got shape {arr.shape}")
    return arr


def _single_value(root: Path, name: str) -> float | None:
    path = root / name
    if not path.exists():
        return None
    values = np.asarray(load_pth(path), dtype=np.float64)
    values = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
    if not np.allclose(values, values[0]):
        raise DatasetError(f"{path}: trajectories use different layouts; our Wall env needs one layout per dataset")
    return float(values[0, 0])


def wall_env_kwargs(root: Path) -> dict[str, float]:
    """The wall/door position shared by all trajectories (our defaults when the files are absent)."""
    kwargs = {}
    door, wall = _single_value(root, "door_locations.pth"), _single_value(root, "wall_locations.pth")
    if door is not None:
        kwargs["door_center_y"] = door
    if wall is not None:
        kwargs["wall_center_x"] = wall
    return kwargs


def read(root: Path) -> tuple[int, Iterator[Episode]]:
    states = _numpy(load_pth(root / "states.pth"), root / "states.pth", 3)
    actions = _numpy(load_pth(root / "actions.pth"), root / "actions.pth", 3)
    n, t = states.shape[:2]
    if states.shape[2] != 2 or actions.shape[0] != n or actions.shape[2] != 2 or actions.shape[1] not in (t, t - 1):
        raise DatasetError(
            f"{root}: expected states (N, T, 2) and actions (N, T or T-1, 2), got {states.shape} and {actions.shape}"
        )
    scale = WallConfig().action_scale

    def episodes() -> Iterator[Episode]:
        for i in range(n):
            path = episode_file(root, i, ".pth")
            frames = np.asarray(load_pth(path))
            if frames.ndim != 4 or frames.shape[0] != t or frames.shape[1] not in (1, 3):
                raise DatasetError(f"{path}: expected uint8 frames ({t}, C, H, W), got {frames.shape}")
            pixels = np.repeat(frames, 3 // frames.shape[1], axis=1).transpose(0, 2, 3, 1).astype(np.uint8)
            yield {
                "pixels": np.ascontiguousarray(pixels),
                "actions": actions[i, : t - 1] / scale,
                "proprio": states[i],
                "state": states[i],
            }

    return n, episodes()


WALL_SINGLE = register_layout(
    PublishedLayout(
        name="dino_wm_wall",
        env="wall",
        description="DINO-WM wall_single/: states.pth, actions.pth, obses/episode_XXX.pth",
        required=("states.pth", "actions.pth", "obses"),
        read=read,
        env_kwargs=wall_env_kwargs,
    )
)
