"""Franka episodes in HDF5 (the paper's ``franka_custom`` evaluation data): ``.../episode.h5`` files holding
``episode_data/observation/{cartesian_position, gripper_position, <camera>}`` at 30 Hz.

``cartesian_position`` is (T, 6): xyz in m and extrinsic Euler xyz in rad, as DROID's; ``gripper_position`` (T,)
in [0, 1]; the camera (default ``exterior_image_2_left``, option ``camera=``) is a uint8 image array (T, H, W, 3).
Frames are kept every ⌈30/4⌉ = 8 and actions are the 7-D pose deltas between them, as for DROID.

The root is a folder searched recursively for ``episode*.h5`` files, converted in path order; option
``episodes=paper`` converts only the paper's 15 evaluation recordings (`PAPER_EVAL_EPISODES`, the globs of the
released DROID evaluation configs: 8 pick, 5 push, 2 folding), in that order, each of which must match one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, register_layout
from jepa_wms.datasets.formats.robot_video import check_pose, crop_resize, kept_episodes, kept_indices, pose_episode
from jepa_wms.datasets.storage import DatasetError

__all__ = ["FRANKA_H5", "PAPER_EVAL_EPISODES", "episode_files", "read", "read_episode"]

DEFAULT_CAMERA = "exterior_image_2_left"
FPS = 30
GROUP = "episode_data/observation"
PATTERN = "episode*.h5"
# The released evaluation configs' `mpk_manifest_patterns` (relative to the franka_custom/data folder). The paper
# speaks of 16 videos; the 16th published file (pick/v0/run_0001) is selected by neither config.
PAPER_EVAL_EPISODES = (
    "**/pick/liftcup_v0/run_0001/episode.h5",
    "**/pick/pickandplaceredcube_v0/run_0001/episode.h5",
    "**/pick/pickcube_v0/run_0001/episode.h5",
    "**/pick/pickpen_v0/run_0001/episode.h5",
    "**/pick/pickupcup_v0/run_0001/episode.h5",
    "**/pick/reachcup_v0/run_0001/episode.h5",
    "**/pick/reachliftcup_v0/run_0001/episode.h5",
    "**/pick/reachliftcup_v1/run_0001/episode.h5",
    "**/push/brownboxpush_v0/run_0001/episode.h5",
    "**/push/push_various_objects/blue_bowl/episode.h5",
    "**/push/push_various_objects/blue_box/episode.h5",
    "**/push/push_various_objects/cap/episode.h5",
    "**/push/push_various_objects/pengiun_plush/episode.h5",  # sic: the published folder name
    "**/folding/foldjacketsleeve_v0/run_0001/episode.h5",
    "**/folding/foldjacketsleeve_v1/run_0001/episode.h5",
)


def episode_files(root: Path, episodes: str = "all") -> list[Path]:
    """``root``'s episode files in path order (``episodes="all"``) or the paper's 15 in their order (``"paper"``)."""
    root = Path(root)
    if episodes == "all":
        return [root] if root.is_file() else sorted(root.rglob(PATTERN))
    if episodes != "paper":
        raise DatasetError(f"franka_h5: option episodes must be 'all' or 'paper', got {episodes!r}")
    files = []
    for pattern in PAPER_EVAL_EPISODES:
        found = sorted(root.glob(pattern))
        if len(found) != 1:
            what = "no file" if not found else f"{len(found)} files ({', '.join(map(str, found[:3]))})"
            raise DatasetError(f"{root}: episodes=paper: {what} matches {pattern}; expected exactly one")
        files.append(found[0])
    return files


def read_episode(
    path: Path, *, camera: str = DEFAULT_CAMERA, img_size: int | None = None, fps: float = FPS
) -> Episode | None:
    """One file at 4 fps (only the kept images are read), or ``None`` when fewer than 2 frames are kept."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if GROUP not in f:
                raise DatasetError(f"{path}: missing group {GROUP}")
            obs = f[GROUP]
            for field in ("cartesian_position", "gripper_position", camera):
                if field not in obs:
                    raise DatasetError(
                        f"{path}: missing field {GROUP}/{field} (available: {', '.join(sorted(obs.keys()))})"
                    )
            cart = np.asarray(obs["cartesian_position"], dtype=np.float64)
            grip = np.asarray(obs["gripper_position"], dtype=np.float64).reshape(len(cart) if cart.ndim else 0, -1)
            images = obs[camera]
            t = min(len(cart), len(grip), len(images))
            if cart.ndim != 2 or cart.shape[1] != 6 or grip.shape[1] != 1:
                raise DatasetError(f"{path}: {GROUP}/cartesian_position must be (T, 6) and gripper_position (T,)")
            if max(len(cart), len(images)) - t > 1:
                raise DatasetError(f"{path}: {GROUP}/{camera} has {len(images)} frames but {len(cart)} poses")
            keep = kept_indices(t, fps)
            if len(keep) < 2:
                return None
            # Fancy indexing an h5py dataset reads only the kept images from disk.
            frames = np.asarray(images[keep.tolist()])
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read as HDF5 ({exc})") from None
    if frames.dtype != np.uint8 or frames.ndim != 4 or 3 not in (frames.shape[1], frames.shape[-1]):
        raise DatasetError(f"{path}: {GROUP}/{camera}: expected uint8 images (T, H, W, 3), got {frames.shape}")
    if frames.shape[-1] != 3:
        frames = frames.transpose(0, 2, 3, 1)
    pose = check_pose(np.concatenate([cart[:t], grip[:t]], 1), str(path), f"{GROUP}/cartesian_position + gripper")
    return pose_episode(crop_resize(frames, img_size), pose[keep])


def read(
    root: Path,
    img_size: int | None = None,
    camera: str = DEFAULT_CAMERA,
    fps: float | str = FPS,
    episodes: str = "all",
) -> tuple[int, Iterator[Episode]]:
    files = episode_files(root, episodes)
    if not files:
        raise DatasetError(f"{root}: no Franka episodes ({PATTERN})")
    fps = float(fps)
    episodes = kept_episodes(
        "franka_h5", files, lambda path: read_episode(path, camera=camera, img_size=img_size, fps=fps), str
    )
    return len(files), episodes


@dataclass(frozen=True)
class _FrankaLayout(PublishedLayout):
    def missing(self, root: Path) -> list[str]:
        return [] if episode_files(root) else [f"**/{PATTERN}"]


FRANKA_H5 = register_layout(
    _FrankaLayout(
        name="franka_h5",
        env="droid",
        description=f"Franka episode.h5 files: {GROUP}/{{cartesian_position, gripper_position, <camera>}} (30 Hz)",
        required=(f"**/{PATTERN}",),
        read=read,
        optional=("camera", "fps", "episodes"),
        resizes=True,
    )
)
