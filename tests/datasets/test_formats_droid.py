"""droid_raw: tiny DROID episode folders written in the official layout, converted and checked exactly."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest

from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import convert, detect_layout
from jepa_wms.datasets.formats.droid_raw import INDEX_NAME, build_index
from jepa_wms.datasets.pose_actions import pose_deltas
from tests.robot_media import colour_frames, frame_ids, write_mp4


def _poses(t: int) -> np.ndarray:
    k = np.arange(t, dtype=np.float64)[:, None]
    return np.concatenate([0.01 * k * [1, -2, 3], 0.02 * k * [1, 0.5, -1], np.linspace(0, 1, t)[:, None]], 1)


def _episode(root, name, t, n_video=None, serial="111", pose=None, meta_key="left_mp4_path"):
    ep = root / name
    ep.mkdir(parents=True)
    pose = _poses(t) if pose is None else pose
    with h5py.File(ep / "trajectory.h5", "w") as f:
        f["observation/robot_state/cartesian_position"] = pose[:, :6]
        f["observation/robot_state/gripper_position"] = pose[:, 6]
    (ep / f"metadata_{name}.json").write_text(
        json.dumps({meta_key: f"lab/success/{name}/recordings/MP4/{serial}.mp4", "right_mp4_path": "x/222.mp4"})
    )
    write_mp4(colour_frames(t if n_video is None else n_video), 15, ep / "recordings" / "MP4" / f"{serial}.mp4")
    return ep


def test_convert_keeps_every_fourth_frame_and_pose_deltas(tmp_path, caplog):
    root = tmp_path / "droid"
    _episode(root, "ep0", 13)  # kept frames 0, 4, 8, 12
    _episode(root, "ep1", 10, n_video=9)  # MP4 one frame short: 9 frames → kept 0, 4, 8
    _episode(root, "ep2", 4)  # one kept frame: skipped and counted
    assert detect_layout(root).name == "droid_raw"
    with caplog.at_level(logging.WARNING):
        out = convert(root, tmp_path / "out", img_size=16, show_progress=False)
    assert "skipped 1 episode" in caplog.text
    store = TrajectoryStore(out)
    assert store.env == "droid" and store.episode_lengths.tolist() == [4, 3]
    for e, (t, keep) in enumerate([(13, [0, 4, 8, 12]), (10, [0, 4, 8])]):
        ep = store.episode(e)
        assert ep["pixels"].shape[1:] == (16, 16, 3)
        assert frame_ids(ep["pixels"]) == keep
        np.testing.assert_allclose(ep["proprio"], _poses(t)[keep], atol=1e-6)
        np.testing.assert_allclose(ep["actions"][: len(keep) - 1], pose_deltas(_poses(t)[keep]), atol=1e-6)
    # Known deltas: 4 steps of (0.01, -0.02, 0.03) in xyz.
    np.testing.assert_allclose(store.episode(0)["actions"][0, :3], [0.04, -0.08, 0.12], atol=1e-6)


def test_camera_option_and_index(tmp_path):
    root = tmp_path / "droid"
    _episode(root, "a", 9, serial="222", meta_key="right_mp4_path")
    (root / "b").mkdir()
    (root / "b" / "trajectory.h5").write_bytes(b"")  # a folder without metadata
    index = build_index(root, camera="right_mp4_path", workers=2)
    data = json.loads(index.read_text())
    assert data["episodes"] == ["a"]
    assert data["skipped"][0]["path"] == "b" and "missing metadata" in data["skipped"][0]["reason"]
    assert index == root / INDEX_NAME
    out = convert(root, tmp_path / "out", options={"camera": "right_mp4_path"}, show_progress=False)
    assert TrajectoryStore(out).episode_lengths.tolist() == [3]


def _bad(tmp_path, match, **kwargs):
    root = tmp_path / "droid"
    ep = _episode(root, "ep", 9, **{k: v for k, v in kwargs.items() if k in ("n_video", "pose", "meta_key")})
    if kwargs.get("mutate"):
        kwargs["mutate"](ep)
    with pytest.raises(DatasetError, match=match):
        convert(root, tmp_path / "out", layout="droid_raw", show_progress=False)


def test_missing_metadata(tmp_path):
    _bad(tmp_path, "missing metadata", mutate=lambda ep: next(ep.glob("metadata_*")).unlink())


def test_missing_camera_key(tmp_path):
    _bad(tmp_path, r"metadata_ep.json: missing camera key 'left_mp4_path' \(path keys: right_mp4_path", meta_key="x")


def test_missing_mp4(tmp_path):
    _bad(tmp_path, "missing MP4", mutate=lambda ep: (ep / "recordings/MP4/111.mp4").unlink())


def test_truncated_video(tmp_path):
    def cut(ep):
        mp4 = ep / "recordings/MP4/111.mp4"
        mp4.write_bytes(mp4.read_bytes()[:-200])

    _bad(tmp_path, r"111.mp4 \(left_mp4_path\): cannot (open|decode)|truncated", mutate=cut)


def test_length_mismatch(tmp_path):
    _bad(tmp_path, "7 video frames but 9 steps", n_video=7)


def test_nan_pose(tmp_path):
    pose = _poses(9)
    pose[3, 2] = np.nan
    _bad(tmp_path, "trajectory.h5: observation/robot_state/cartesian_position.*NaN or inf pose at frame 3", pose=pose)


def test_gripper_out_of_range(tmp_path):
    pose = _poses(9)
    pose[5, 6] = 1.5
    _bad(tmp_path, "gripper_position: gripper 1.5 outside", pose=pose)
