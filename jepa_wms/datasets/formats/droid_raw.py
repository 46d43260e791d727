"""Raw DROID episode folders: ``metadata_*.json``, ``trajectory.h5`` and ``recordings/MP4/<serial>.mp4`` (15 fps).

The camera is the MP4 that a metadata key names (default ``left_mp4_path``, option ``camera=``; the file is looked
up by its name in the episode's ``recordings/MP4/``, since the metadata paths are relative to wherever DROID was
recorded). The pose is ``observation/robot_state/cartesian_position`` (xyz in m, extrinsic Euler xyz in rad) and
``observation/robot_state/gripper_position`` (0 open … 1 closed). Frames are kept every ⌈15/4⌉ = 4 and the
actions are the 7-D pose deltas between them (`jepa_wms.datasets.pose_actions`).

DROID's MP4s are often one frame shorter (or longer) than ``trajectory.h5``: the shorter one wins. A bigger
mismatch, a missing file or key, NaN poses or a gripper outside [0, 1] is an error naming the file and field.

`build_index` (``jepa-wms droid-index ROOT``) scans the folders in parallel and writes ``droid_index.json``:
the usable episodes and each skipped folder with its reason. When present, `read` converts the listed episodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, register_layout
from jepa_wms.datasets.formats.robot_video import (
    check_pose,
    decode_video,
    keep_stride,
    kept_episodes,
    kept_indices,
    pose_episode,
)
from jepa_wms.datasets.storage import DatasetError

__all__ = ["DROID_RAW", "INDEX_NAME", "build_index", "episode_dirs", "read", "read_episode"]

DEFAULT_CAMERA = "left_mp4_path"
FPS = 15
INDEX_NAME = "droid_index.json"
POSE = "observation/robot_state/cartesian_position"
GRIPPER = "observation/robot_state/gripper_position"


def episode_dirs(root: Path) -> list[Path]:
    """Folders under ``root`` (or ``root`` itself) holding a ``trajectory.h5``, sorted."""
    root = Path(root)
    return sorted({p.parent for p in root.rglob("trajectory.h5")})


def _metadata(ep: Path) -> tuple[Path, dict[str, Any]]:
    files = sorted(ep.glob("metadata_*.json"))
    if not files:
        raise DatasetError(f"{ep}: missing metadata (no metadata_*.json)")
    try:
        return files[0], json.loads(files[0].read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{files[0]}: cannot read metadata ({exc})") from None


def _video_path(ep: Path, camera: str) -> Path:
    meta_file, meta = _metadata(ep)
    value = meta.get(camera)
    if not isinstance(value, str) or not value:
        keys = sorted(k for k, v in meta.items() if k.endswith("_path") and isinstance(v, str))
        raise DatasetError(f"{meta_file}: missing camera key {camera!r} (path keys: {', '.join(keys) or 'none'})")
    for path in (ep / "recordings" / "MP4" / Path(value).name, ep / value):
        if path.is_file():
            return path
    raise DatasetError(f"{meta_file}: {camera}: missing MP4 {ep / 'recordings' / 'MP4' / Path(value).name}")


def _poses(h5_path: Path) -> np.ndarray:
    import h5py

    try:
        with h5py.File(h5_path, "r") as f:
            arrays = []
            for field, width in ((POSE, 6), (GRIPPER, 1)):
                if field not in f:
                    raise DatasetError(f"{h5_path}: missing field {field}")
                arr = np.asarray(f[field], dtype=np.float64).reshape(len(f[field]), -1)
                if arr.shape[1] != width:
                    raise DatasetError(f"{h5_path}: {field}: expected {width} values per step, got {arr.shape}")
                arrays.append(arr)
    except OSError as exc:
        raise DatasetError(f"{h5_path}: cannot read as HDF5 ({exc})") from None
    if len(arrays[0]) != len(arrays[1]):
        raise DatasetError(f"{h5_path}: {POSE} has {len(arrays[0])} steps but {GRIPPER} has {len(arrays[1])}")
    return check_pose(np.concatenate(arrays, axis=1), str(h5_path), f"{POSE} + {GRIPPER}")


def read_episode(
    ep: Path, *, camera: str = DEFAULT_CAMERA, img_size: int | None = None, fps: float = FPS
) -> Episode | None:
    """One episode folder at 4 fps, or ``None`` when it has fewer than 2 kept frames."""
    video = _video_path(ep, camera)
    pose = _poses(ep / "trajectory.h5")
    frames, n_video = decode_video(
        video, kept_indices(len(pose) + 1, fps), size=img_size, where=f"{video} ({camera})", strict=False
    )
    if abs(n_video - len(pose)) > 1:
        raise DatasetError(
            f"{video}: {n_video} video frames but {len(pose)} steps in {ep / 'trajectory.h5'} ({POSE}); "
            f"only a difference of 1 is tolerated"
        )
    keep = kept_indices(min(n_video, len(pose)), fps)
    if len(keep) < 2:
        return None
    return pose_episode(frames[: len(keep)], pose[keep])


def _check(ep: Path, camera: str) -> str | None:
    """Why ``ep`` cannot be converted (a cheap check: files, keys, fields, lengths from the MP4 header), or None."""
    import av

    try:
        video = _video_path(ep, camera)
        pose = _poses(ep / "trajectory.h5")
        try:
            with av.open(str(video)) as container:
                n_video = container.streams.video[0].frames
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in many types
            raise DatasetError(f"{video}: cannot open video ({type(exc).__name__}: {exc})") from None
        if n_video and abs(n_video - len(pose)) > 1:
            raise DatasetError(f"{video}: {n_video} video frames but {len(pose)} steps in trajectory.h5")
        if len(kept_indices(min(n_video or len(pose), len(pose)), FPS)) < 2:
            return f"too short ({len(pose)} steps)"
    except DatasetError as exc:
        return str(exc)
    return None


def build_index(
    root: str | Path, *, camera: str = DEFAULT_CAMERA, workers: int = 8, out: str | Path | None = None
) -> Path:
    """Scan ``root``'s episode folders (``workers`` threads: the work is file I/O) and write the index JSON."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"DROID folder {root} does not exist")
    dirs = episode_dirs(root)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(lambda ep: _check(ep, camera), dirs))
    index = {
        "camera": camera,
        "episodes": [str(ep.relative_to(root)) for ep, why in zip(dirs, reasons, strict=True) if why is None],
        "skipped": [
            {"path": str(ep.relative_to(root)), "reason": why} for ep, why in zip(dirs, reasons, strict=True) if why
        ],
    }
    path = Path(out) if out else root / INDEX_NAME
    path.write_text(json.dumps(index, indent=1))
    return path


def _listed(root: Path) -> list[Path]:
    index_file = root / INDEX_NAME
    if not index_file.is_file():
        return episode_dirs(root)
    try:
        listed = json.loads(index_file.read_text())["episodes"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{index_file}: not a droid-index file ({exc})") from None
    return [root / rel for rel in listed]


def read(
    root: Path, img_size: int | None = None, camera: str = DEFAULT_CAMERA, fps: float | str = FPS
) -> tuple[int, Iterator[Episode]]:
    """The episodes under ``root`` (or those its ``droid_index.json`` lists), in path order."""
    dirs = _listed(Path(root))
    if not dirs:
        raise DatasetError(f"{root}: no DROID episodes (no */trajectory.h5)")
    fps = float(fps)
    keep_stride(fps)  # a bad fps= fails before any decoding
    episodes = kept_episodes(
        "droid_raw", dirs, lambda ep: read_episode(ep, camera=camera, img_size=img_size, fps=fps), str
    )
    return len(dirs), episodes


@dataclass(frozen=True)
class _DroidLayout(PublishedLayout):
    def missing(self, root: Path) -> list[str]:
        root = Path(root)
        if (root / INDEX_NAME).is_file() or next(root.rglob("trajectory.h5"), None) is not None:
            return []
        return ["*/trajectory.h5"]


DROID_RAW = register_layout(
    _DroidLayout(
        name="droid_raw",
        env="droid",
        description="DROID episode folders: metadata_*.json, trajectory.h5, recordings/MP4/<serial>.mp4 (15 fps)",
        required=("*/trajectory.h5",),
        read=read,
        optional=("camera", "fps"),
        resizes=True,
    )
)
