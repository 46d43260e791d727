"""DINO-WM's ``pusht_noise/`` layout: the Push-T dataset of noisy expert pushes.

A split folder (``train/`` or ``val/``) holds ``states.pth`` (N, T, 5) = agent xy, block xy, block angle in the
512-px world, ``velocities.pth`` (N, T, 2) agent velocity in px/s, ``rel_actions.pth`` (N, T, 2) PD-target
offsets in pixels, ``seq_lengths.pkl`` (a pickled list of N ints: trajectory i uses its first
``seq_lengths[i]`` steps), optional ``abs_actions.pth`` and ``shapes.pkl`` (unused: our env has the T only),
and ``obses/episode_XXX.mp4``. The root may be ``pusht_noise/`` itself (its ``train/`` then ``val/`` are read,
in that order) or one split folder.

Our `jepa_wms.envs.PushTEnv` uses DINO-WM's conventions, so only the action unit changes: actions are
``rel_actions / action_scale`` (units of 100 px), the state is ``concat(states, velocities)`` (7-d) and proprio
is (agent xy, agent velocity). The published frames show a fixed green goal T that our renderer does not
draw; models trained on them see a slightly different image than our env renders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jepa_wms.datasets.formats.base import (
    Episode,
    PublishedLayout,
    episode_file,
    load_plain_pickle,
    load_pth,
    read_video,
    register_layout,
)
from jepa_wms.datasets.storage import DatasetError

__all__ = ["PUSHT_NOISE", "split_folders"]

_SPLITS = ("train", "val")
_FILES = ("states.pth", "velocities.pth", "rel_actions.pth", "seq_lengths.pkl", "obses")


def split_folders(root: Path) -> list[Path]:
    """``[root/train, root/val]`` (those present) for a ``pusht_noise/`` root, else ``[root]``."""
    splits = [root / s for s in _SPLITS if (root / s / "states.pth").exists()]
    return splits or [root]


def _array(path: Path, shape_tail: tuple[int, ...]) -> np.ndarray:
    value = load_pth(path)
    arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)
    if arr.ndim != 2 + len(shape_tail) or arr.shape[2:] != shape_tail:
        want = ", ".join(["N", "T", *map(str, shape_tail)])
        raise DatasetError(f"{path}: expected an array of shape ({want}), got {arr.shape}")
    return arr


def _read_split(folder: Path) -> tuple[int, Iterator[Episode]]:
    for name in _FILES:
        if not (folder / name).exists():
            raise DatasetError(f"{folder}: missing {folder / name} (a DINO-WM pusht_noise split needs {_FILES})")
    states = _array(folder / "states.pth", (5,))
    velocities = _array(folder / "velocities.pth", (2,))
    actions = _array(folder / "rel_actions.pth", (2,))
    lengths_raw = load_plain_pickle(folder / "seq_lengths.pkl")
    try:
        lengths = [int(v) for v in np.asarray(lengths_raw).reshape(-1)]
    except (TypeError, ValueError):
        raise DatasetError(f"{folder / 'seq_lengths.pkl'}: expected a list of ints, got {type(lengths_raw)}") from None
    n, t = states.shape[:2]
    if velocities.shape[:2] != (n, t) or actions.shape[0] != n or actions.shape[1] not in (t, t - 1):
        raise DatasetError(
            f"{folder}: states.pth {states.shape}, velocities.pth {velocities.shape} and rel_actions.pth "
            f"{actions.shape} disagree; expected (N, T, 5), (N, T, 2) and (N, T or T-1, 2)"
        )
    if len(lengths) != n or any(not 2 <= length <= t for length in lengths):
        raise DatasetError(
            f"{folder / 'seq_lengths.pkl'}: expected {n} lengths in [2, {t}], got {len(lengths)} values "
            f"in [{min(lengths, default=0)}, {max(lengths, default=0)}]"
        )
    from jepa_wms.envs.pusht import PushTConfig  # pymunk-free: the config needs no simulator

    scale = PushTConfig().action_scale

    def episodes() -> Iterator[Episode]:
        for i, length in enumerate(lengths):
            path = episode_file(folder, i, ".mp4")
            frames = read_video(path)
            if frames.shape[0] < length:
                raise DatasetError(f"{path}: {frames.shape[0]} frames, but seq_lengths.pkl says {length}")
            state = np.concatenate([states[i, :length], velocities[i, :length]], axis=1)
            yield {
                "pixels": np.ascontiguousarray(frames[:length]),
                "actions": actions[i, : length - 1] / scale,
                "proprio": state[:, [0, 1, 5, 6]],
                "state": state,
            }

    return n, episodes()


def read(root: Path) -> tuple[int, Iterator[Episode]]:
    parts = [_read_split(folder) for folder in split_folders(Path(root))]

    def chained() -> Iterator[Episode]:
        for _, episodes in parts:
            yield from episodes

    return sum(count for count, _ in parts), chained()


PUSHT_NOISE = register_layout(
    PublishedLayout(
        name="dino_wm_pusht",
        env="pusht",
        description="DINO-WM pusht_noise/[train|val]/: states.pth, velocities.pth, rel_actions.pth, "
        "seq_lengths.pkl, obses/episode_XXX.mp4",
        required=tuple(f"{name}|train/{name}" for name in _FILES),
        read=read,
    )
)
