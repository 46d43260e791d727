"""Write our trajectories in a published robot layout, so the readers and the offline protocols run on sim data.

``droid_raw`` (`export_droid_raw`): one DROID episode folder per episode, ``<uuid>/metadata_<uuid>.json`` (with
``left_mp4_path``), ``trajectory.h5`` (``observation/robot_state/cartesian_position`` (T, 6) and
``gripper_position`` (T,)) and ``recordings/MP4/<serial>.mp4`` (H.264). The dataset's ``/proprio`` must be the 7-D
DROID pose (xyz m, extrinsic Euler xyz rad, gripper closure in [0, 1]), as the ``franka-tabletop`` envs record.
One video frame and one pose row per dataset frame, at ``fps`` frames per second: the stand-in's env step is 0.25 s,
so ``fps=4`` and ``jepa-wms convert … -o fps=4`` keeps every frame (DROID keeps every ⌈fps/4⌉-th).

Each folder is written under a temporary name and renamed when complete, so an interrupted export resumes where it
stopped (complete folders are kept).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jepa_wms.datasets.formats.droid_raw import GRIPPER, POSE
from jepa_wms.datasets.formats.robot_video import check_pose
from jepa_wms.datasets.storage import DatasetError, TrajectoryStore

__all__ = ["CAMERA_SERIAL", "export_droid_raw", "write_droid_episode", "write_mp4"]

CAMERA_SERIAL = "00000001"  # DROID names each camera's MP4 by its serial number


def write_mp4(frames: np.ndarray, fps: float, path: str | os.PathLike, codec: str = "libx264", crf: int = 18) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) as an MP4 (yuv420p; H and W must be even for H.264)."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_mp4: expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    from fractions import Fraction

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_droid_episode(
    folder: str | os.PathLike, frames: np.ndarray, pose: np.ndarray, fps: float, uuid: str | None = None
) -> Path:
    """One DROID episode folder ``folder`` from frames (T, H, W, 3) and poses (T, 7); ``uuid`` names the metadata
    (default: the folder's name)."""
    import h5py

    folder = Path(folder)
    pose = check_pose(pose, str(folder), "proprio")
    if len(frames) != len(pose):
        raise ValueError(f"{folder}: {len(frames)} frames but {len(pose)} poses")
    uuid = uuid or folder.name
    mp4 = folder / "recordings" / "MP4" / f"{CAMERA_SERIAL}.mp4"
    mp4.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(frames, fps, mp4)
    with h5py.File(folder / "trajectory.h5", "w") as f:
        f.create_dataset(POSE, data=pose[:, :6])
        f.create_dataset(GRIPPER, data=pose[:, 6])
    meta = {
        "uuid": uuid,
        "trajectory_length": len(pose),
        "left_mp4_path": f"recordings/MP4/{CAMERA_SERIAL}.mp4",
        "ext1_cam_serial": CAMERA_SERIAL,
        "fps": fps,
    }
    (folder / f"metadata_{uuid}.json").write_text(json.dumps(meta, indent=1))
    return folder


def export_droid_raw(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    fps: float = 4.0,
    episodes: Sequence[int] | slice | None = None,
    show_progress: bool = True,
) -> Path:
    """Write episodes ``episodes`` (ids or a slice of them; default all) of the dataset ``data`` as DROID folders
    under ``out_dir`` (``<env>+<dataset folder>+<episode>``, the uuid); returns ``out_dir``."""
    if not (isinstance(fps, int | float) and fps > 0):
        raise ValueError(f"export: fps must be > 0, got {fps!r}")
    store = TrajectoryStore(data, preload=False)
    out = Path(out_dir)
    try:
        if store.proprio_dim != 7:
            raise DatasetError(
                f"{store.path}: '/proprio' has {store.proprio_dim} values per frame; the DROID layout needs the 7-D "
                "pose (xyz, extrinsic Euler xyz, gripper in [0, 1]), as the franka-tabletop envs record"
            )
        every = range(store.num_episodes)
        if episodes is None or isinstance(episodes, slice):
            ids = every[episodes or slice(None)]
        else:
            ids = [int(e) for e in episodes]
        bad = [e for e in ids if not 0 <= e < store.num_episodes]
        if bad:
            raise ValueError(f"export: episode {bad[0]} is not in [0, {store.num_episodes}) of {store.path}")
        out.mkdir(parents=True, exist_ok=True)
        tag = f"{store.env}+{store.path.parent.name}"
        for e in tqdm(ids, desc="export droid_raw", unit="ep", disable=not show_progress):
            final = out / f"{tag}+{e:06d}"
            if final.is_dir():
                continue
            rows = np.arange(store.episode_lengths[e]) + store.episode_starts[e]
            tmp = out / f".{final.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            write_droid_episode(tmp, store.read_pixels(rows), np.asarray(store.proprio[rows]), fps, final.name)
            tmp.rename(final)
    finally:
        store.close()
    return out
