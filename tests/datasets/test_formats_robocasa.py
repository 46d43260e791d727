"""robocasa_hdf5: a tiny robomimic-style file, converted and checked exactly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import convert, detect_layout
from tests.robot_media import colour_frames, frame_ids


def _demo(f, name, t, cams=("robot0_agentview_left",), quat=None):
    g = f.create_group(f"data/{name}")
    k = np.arange(t, dtype=np.float64)[:, None]
    g["actions"] = np.tile(np.arange(12.0), (t, 1)) + k
    g["states"] = np.tile(k, (1, 5))
    g["obs/robot0_eef_pos"] = 0.01 * k * [1, 2, 3]
    # A rotation about z by 0.1 rad per step: quaternion (0, 0, sin(θ/2), cos(θ/2)) in robosuite's x, y, z, w.
    g["obs/robot0_eef_quat"] = (
        quat if quat is not None else np.concatenate([np.zeros((t, 2)), np.sin(0.05 * k), np.cos(0.05 * k)], 1)
    )
    g["obs/robot0_gripper_qpos"] = np.concatenate([0.004 * k, -0.004 * k], 1)
    for cam in cams:
        g[f"obs/{cam}_image"] = colour_frames(t)


def test_convert_pose_deltas_and_recorded(tmp_path):
    with h5py.File(tmp_path / "demos.hdf5", "w") as f:
        _demo(f, "demo_10", 11)
        _demo(f, "demo_2", 6)  # numeric order: demo_2 first
        _demo(f, "demo_3", 3)  # one kept frame: skipped
    assert detect_layout(tmp_path).name == "robocasa_hdf5"
    store = TrajectoryStore(convert(tmp_path, tmp_path / "out", img_size=8, show_progress=False))
    assert store.env == "robocasa" and store.episode_lengths.tolist() == [2, 3]
    ep = store.episode(1)
    assert frame_ids(ep["pixels"]) == [0, 5, 10]
    np.testing.assert_allclose(ep["proprio"][:, 5], [0, 0.5, 1.0], atol=1e-6)  # rz from the quaternion
    np.testing.assert_allclose(ep["proprio"][:, 6], [0, 0.04, 0.08], atol=1e-6)  # q0 - q1
    np.testing.assert_allclose(ep["actions"][0], [0.05, 0.1, 0.15, 0, 0, 0.5, 0.04], atol=1e-6)
    np.testing.assert_allclose(ep["state"][:, 0], [0, 5, 10])
    out = convert(tmp_path, tmp_path / "rec", options={"action": "recorded"}, show_progress=False)
    np.testing.assert_allclose(TrajectoryStore(out).episode(1)["actions"][:2], [np.arange(7.0), np.arange(7.0) + 5])


def test_camera_choice_and_missing_field(tmp_path):
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        _demo(f, "demo_0", 6, cams=("a", "b"))
    with pytest.raises(DatasetError, match=r"data/demo_0: pick a camera with camera= \(image keys: a, b\)"):
        convert(tmp_path, tmp_path / "out", show_progress=False)
    with pytest.raises(DatasetError, match=r"missing field obs/c_image \(available: a_image"):
        convert(tmp_path, tmp_path / "out", options={"camera": "c"}, show_progress=False)


def test_nan_quaternion(tmp_path):
    quat = np.tile([0, 0, 0, 1.0], (6, 1))
    quat[2, 0] = np.nan
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        _demo(f, "demo_0", 6, quat=quat)
    with pytest.raises(DatasetError, match="data/demo_0: obs/robot0_eef_quat: NaN"):
        convert(tmp_path, tmp_path / "out", show_progress=False)
