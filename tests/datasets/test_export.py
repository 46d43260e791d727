"""export droid_raw: our datasets written as DROID episode folders read back exactly by the droid_raw reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jepa_wms.datasets import DatasetError, TrajectoryStore, TrajectoryWriter
from jepa_wms.datasets.export import export_droid_raw
from jepa_wms.datasets.formats import convert, detect_layout
from jepa_wms.datasets.pose_actions import pose_deltas
from tests.robot_media import colour_frames, frame_ids


def _pose_dataset(path, lengths=(9, 6, 7), proprio_dim=7):
    rng = np.random.default_rng(0)
    with TrajectoryWriter(path, env="franka-tabletop-reach") as w:
        for i, t in enumerate(lengths):
            parts = [rng.uniform(-1, 1, (t, 3)), rng.uniform(-3, 3, (t, 3)), rng.uniform(0, 1, (t, 1))]
            pose = np.concatenate(parts, 1)
            w.add_episode(
                colour_frames(t, 16, 16, first=3 * i), rng.standard_normal((t - 1, 7)), pose[:, :proprio_dim], pose
            )
    return path


def test_exported_folders_convert_back_to_the_same_poses_and_frames(tmp_path):
    data = _pose_dataset(tmp_path / "data")
    out = export_droid_raw(data, tmp_path / "droid", episodes=[0, 2], show_progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["franka-tabletop-reach+data+000000", "franka-tabletop-reach+data+000002"]
    meta = json.loads((out / names[1] / f"metadata_{names[1]}.json").read_text())
    assert meta["uuid"] == names[1] and meta["left_mp4_path"].endswith(".mp4") and meta["trajectory_length"] == 7
    assert detect_layout(out).name == "droid_raw"
    conv = convert(out, tmp_path / "conv", options={"fps": "4"}, show_progress=False)  # 4 fps: every frame kept
    src, back = TrajectoryStore(data), TrajectoryStore(conv)
    assert back.episode_lengths.tolist() == [9, 7]
    for k, e in enumerate([0, 2]):
        rows = np.arange(src.episode_lengths[e]) + src.episode_starts[e]
        got = np.arange(back.episode_lengths[k]) + back.episode_starts[k]
        np.testing.assert_allclose(back.proprio[got], src.proprio[rows], atol=1e-6)
        np.testing.assert_allclose(back.actions[got[:-1]], pose_deltas(np.asarray(src.proprio[rows])), atol=1e-5)
        assert frame_ids(back.read_pixels(got)) == frame_ids(src.read_pixels(rows))


def test_export_resumes_and_rejects_non_pose_data(tmp_path):
    data = _pose_dataset(tmp_path / "data")
    out = tmp_path / "droid"
    export_droid_raw(data, out, episodes=[0], show_progress=False)
    done = out / "franka-tabletop-reach+data+000000" / "trajectory.h5"
    stamp = done.stat().st_mtime_ns
    (out / ".franka-tabletop-reach+data+000001.tmp").mkdir()  # a killed export's half-written folder
    export_droid_raw(data, out, show_progress=False)
    assert done.stat().st_mtime_ns == stamp, "complete folders are kept"
    assert sorted(p.name for p in out.iterdir()) == [f"franka-tabletop-reach+data+00000{i}" for i in range(3)]
    with pytest.raises(ValueError, match=r"episode 3 is not in \[0, 3\)"):
        export_droid_raw(data, out, episodes=[3], show_progress=False)
    flat = _pose_dataset(tmp_path / "flat", proprio_dim=4)
    with pytest.raises(DatasetError, match="'/proprio' has 4 values per frame"):
        export_droid_raw(flat, tmp_path / "x", show_progress=False)


def test_export_command_takes_a_slice_of_episodes(tmp_path, capsys):
    from jepa_wms.cli import main

    data = _pose_dataset(tmp_path / "data")
    assert main(["export", str(data), "--out", str(tmp_path / "d"), "--episodes", "1:"]) == 0
    assert sorted(p.name[-1] for p in (tmp_path / "d").iterdir()) == ["1", "2"]
    assert main(["export", str(data), "--out", str(tmp_path / "e"), "--episodes", "2"]) == 2
    assert "--episodes takes START:STOP" in capsys.readouterr().err
