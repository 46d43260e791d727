"""franka_h5: tiny episode.h5 files in the paper's layout, converted and checked exactly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import convert, detect_layout
from jepa_wms.datasets.pose_actions import pose_deltas
from tests.robot_media import colour_frames, frame_ids


def _write(path, t, camera="exterior_image_2_left", grip=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    k = np.arange(t, dtype=np.float64)[:, None]
    cart = np.concatenate([0.002 * k * [1, 1, -1], 0.01 * k * [0, 1, 2]], 1)
    g = np.linspace(0, 1, t) if grip is None else grip
    with h5py.File(path, "w") as f:
        obs = f.create_group("episode_data/observation")
        obs["cartesian_position"], obs["gripper_position"] = cart, g
        obs[camera] = colour_frames(t)
    return np.concatenate([cart, g[:, None]], 1)


def test_convert_keeps_every_eighth_frame(tmp_path):
    pose = _write(tmp_path / "franka/task/a/run_0001/episode.h5", 17)  # kept 0, 8, 16
    _write(tmp_path / "franka/task/b/run_0001/episode.h5", 8)  # one kept frame: skipped
    assert detect_layout(tmp_path / "franka").name == "franka_h5"
    store = TrajectoryStore(convert(tmp_path / "franka", tmp_path / "out", img_size=8, show_progress=False))
    assert store.env == "droid" and store.episode_lengths.tolist() == [3]
    ep = store.episode(0)
    assert ep["pixels"].shape[1:] == (8, 8, 3) and frame_ids(ep["pixels"]) == [0, 8, 16]
    np.testing.assert_allclose(ep["proprio"], pose[[0, 8, 16]], atol=1e-6)
    np.testing.assert_allclose(ep["actions"][:2], pose_deltas(pose[[0, 8, 16]]), atol=1e-6)
    np.testing.assert_allclose(ep["actions"][0, :3], [0.016, 0.016, -0.016], atol=1e-6)


def test_missing_camera_lists_fields(tmp_path):
    _write(tmp_path / "f/episode.h5", 9, camera="wrist_image_left")
    with pytest.raises(DatasetError, match=r"missing field .*exterior_image_2_left \(available: .*wrist_image_left"):
        convert(tmp_path / "f", tmp_path / "out", show_progress=False)
    out = convert(tmp_path / "f", tmp_path / "out", options={"camera": "wrist_image_left"}, show_progress=False)
    assert TrajectoryStore(out).episode_lengths.tolist() == [2]


def test_gripper_out_of_range(tmp_path):
    _write(tmp_path / "f/episode.h5", 9, grip=np.full(9, -0.5))
    with pytest.raises(DatasetError, match="episode.h5: .*gripper -0.5 outside"):
        convert(tmp_path / "f", tmp_path / "out", show_progress=False)


def test_paper_eval_episodes_in_the_config_order(tmp_path):
    from jepa_wms.datasets.formats.franka_h5 import PAPER_EVAL_EPISODES

    root = tmp_path / "franka_custom" / "data"
    lengths = {}
    for i, pattern in enumerate(reversed(PAPER_EVAL_EPISODES)):  # written in another order than the list's
        lengths[pattern] = 9 + 8 * (i % 2)
        _write(root / pattern.removeprefix("**/"), lengths[pattern])
    _write(root / "pick/v0/run_0001/episode.h5", 17)  # the published 16th file, which the configs leave out
    assert len(PAPER_EVAL_EPISODES) == 15
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=8, options={"episodes": "paper"},
                                    show_progress=False))  # fmt: skip
    assert store.num_episodes == 15
    assert store.episode_lengths.tolist() == [2 if lengths[p] == 9 else 3 for p in PAPER_EVAL_EPISODES]
    (root / PAPER_EVAL_EPISODES[4].removeprefix("**/")).unlink()
    with pytest.raises(DatasetError, match=r"episodes=paper: no file matches \*\*/pick/pickupcup_v0"):
        convert(root, tmp_path / "out2", options={"episodes": "paper"}, show_progress=False)
