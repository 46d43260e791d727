"""RoboCasa / robomimic-style HDF5 demos: ``data/demo_N/{actions, states, obs/{robot0_eef_pos, robot0_eef_quat,
robot0_gripper_qpos, <cam>_image}}`` recorded at 20 Hz.

Proprio is the DROID-style 7-D pose: eef xyz, the eef quaternion (x, y, z, w, robosuite's order) as extrinsic
Euler xyz, and the gripper opening ``qpos[0] - qpos[1]`` (as the original RoboCasa wrapper; it stays in [0, 0.1]).
Frames are kept every ⌈20/4⌉ = 5. Actions (option ``action=``): ``pose-delta`` (default) = the 7-D pose deltas
between kept frames, in the units of the DROID models; ``recorded`` = ``actions[k, :7]`` (the arm's 7 dims of the
controller command issued at kept frame k). ``state`` is the simulator state ``states`` at the kept frames, so an
env can be reset from it.

The camera (option ``camera=``, without ``_image``) defaults to the demo's only ``*_image`` key. The root is an
``.hdf5``/``.h5`` file or a folder of ``.hdf5`` files; demos are read in numeric order (demo_2 before demo_10).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, register_layout
from jepa_wms.datasets.formats.robot_video import check_pose, crop_resize, kept_episodes, kept_indices
from jepa_wms.datasets.pose_actions import matrix_to_euler, pose_deltas, quat_xyzw_to_matrix
from jepa_wms.datasets.storage import DatasetError

__all__ = ["ROBOCASA_HDF5", "hdf5_files", "read", "read_demo"]

FPS = 20
ACTIONS = ("pose-delta", "recorded")


def hdf5_files(root: Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(root.glob("*.hdf5"))  # not *.h5: a DROID episode folder holds trajectory.h5


def _demo_key(name: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


def read_demo(
    demo, where: str, *, camera: str | None = None, img_size: int | None = None, fps: float = FPS,
    action: str = "pose-delta",
) -> Episode | None:  # fmt: skip
    """One ``data/demo_N`` group at 4 fps, or ``None`` when fewer than 2 frames are kept."""
    obs = demo.get("obs")
    fields = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
    avail = sorted(obs.keys()) if obs is not None else []
    cams = [k[: -len("_image")] for k in avail if k.endswith("_image")]
    if camera is None:
        if len(cams) != 1:
            raise DatasetError(f"{where}: pick a camera with camera= (image keys: {', '.join(cams) or 'none'})")
        camera = cams[0]
    for field in (*fields, f"{camera}_image"):
        if field not in avail:
            raise DatasetError(f"{where}: missing field obs/{field} (available: {', '.join(avail)})")
    for field in ("actions", "states"):
        if field not in demo:
            raise DatasetError(f"{where}: missing field {field}")
    pos = np.asarray(obs["robot0_eef_pos"], np.float64)
    quat = np.asarray(obs["robot0_eef_quat"], np.float64)
    qpos = np.asarray(obs["robot0_gripper_qpos"], np.float64)
    t = len(pos)
    keep = kept_indices(t, fps)
    if len(keep) < 2:
        return None
    if not np.isfinite(quat).all() or (np.linalg.norm(quat, axis=1) < 1e-6).any():
        raise DatasetError(f"{where}: obs/robot0_eef_quat: NaN or zero quaternion")
    euler = matrix_to_euler(quat_xyzw_to_matrix(quat))
    pose = check_pose(
        np.concatenate([pos, euler, qpos[:, :1] - qpos[:, 1:2]], 1), where, "obs/robot0_eef_pos + eef_quat + qpos"
    )[keep]
    images = obs[f"{camera}_image"]
    if len(images) != t or len(demo["states"]) != t:
        raise DatasetError(f"{where}: obs/{camera}_image, states and obs/robot0_eef_pos differ in length")
    frames = np.asarray(images[keep.tolist()])
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DatasetError(f"{where}: obs/{camera}_image: expected uint8 (T, H, W, 3), got {frames.shape}")
    if action == "pose-delta":
        actions = pose_deltas(pose)
    else:
        actions = np.asarray(demo["actions"], np.float64)[keep[:-1], :7]
        if not np.isfinite(actions).all():
            raise DatasetError(f"{where}: actions: NaN or inf")
    return {
        "pixels": crop_resize(frames, img_size),
        "actions": actions.astype(np.float32),
        "proprio": pose.astype(np.float32),
        "state": np.asarray(demo["states"], np.float32)[keep],
    }


def read(
    root: Path, img_size: int | None = None, camera: str | None = None, fps: float | str = FPS,
    action: str = "pose-delta",
) -> tuple[int, Iterator[Episode]]:  # fmt: skip
    import h5py

    if action not in ACTIONS:
        raise DatasetError(f"robocasa_hdf5: option action must be one of {list(ACTIONS)}, got {action!r}")
    files = hdf5_files(root)
    demos: list[tuple[Path, str]] = []
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                if "data" not in f:
                    raise DatasetError(f"{path}: missing group data (expected data/demo_N)")
                demos += [(path, k) for k in sorted(f["data"].keys(), key=_demo_key)]
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read as HDF5 ({exc})") from None
    if not demos:
        raise DatasetError(f"{root}: no RoboCasa demos (data/demo_N in *.hdf5)")

    def demo(item: tuple[Path, str]) -> Episode | None:
        path, key = item
        with h5py.File(path, "r") as f:
            where = f"{path} data/{key}"
            return read_demo(f["data"][key], where, camera=camera, img_size=img_size, fps=float(fps), action=action)

    return len(demos), kept_episodes("robocasa_hdf5", demos, demo, lambda item: f"{item[0]} data/{item[1]}")


@dataclass(frozen=True)
class _RobocasaLayout(PublishedLayout):
    def missing(self, root: Path) -> list[str]:
        return [] if hdf5_files(root) else ["*.hdf5"]


ROBOCASA_HDF5 = register_layout(
    _RobocasaLayout(
        name="robocasa_hdf5",
        env="robocasa",
        description="RoboCasa/robomimic HDF5: data/demo_N/{actions, states, obs/{robot0_eef_*, <cam>_image}}",
        required=("*.hdf5",),
        read=read,
        optional=("camera", "fps", "action"),
        resizes=True,
    )
)
