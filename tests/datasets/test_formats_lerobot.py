"""lerobot: tiny v2.0/v2.1 (per-episode files) and v3.0 (packed files) datasets, converted and checked exactly."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import convert, detect_layout
from jepa_wms.datasets.pose_actions import pose_deltas
from tests.robot_media import colour_frames, frame_ids, write_mp4, write_png

FPS = 8  # stride ⌈8/4⌉ = 2
CAM = "observation.images.front"


def _state(t, first=0):
    k = np.arange(first, first + t, dtype=np.float64)[:, None]
    return np.concatenate([0.01 * k * [1, 2, 3], 0.05 * k * [1, -1, 0.5], (k % 2) * 1.0], 1)


def _info(version, video=True, extra=None):
    feats = {
        CAM: {"dtype": "video" if video else "image", "shape": [24, 32, 3]},
        "observation.state": {"dtype": "float32", "shape": [7]},
        "action": {"dtype": "float32", "shape": [7]},
        "timestamp": {"dtype": "float32", "shape": [1]},
    }
    if version.startswith("v2"):
        paths = {
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        }
    else:
        paths = {
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        }
    return {"codebase_version": version, "fps": FPS, "chunks_size": 1000, "features": feats, **paths, **(extra or {})}


def _rows(t, ep, first=0, video=True, ts=None):
    st = _state(t, first)
    rows = {
        "timestamp": (np.arange(t) / FPS if ts is None else ts).tolist(),
        "episode_index": [ep] * t,
        "frame_index": list(range(t)),
        "observation.state": st.tolist(),
        "action": (st * 10).tolist(),
    }
    if not video:
        rows[CAM] = [{"bytes": write_png(f), "path": None} for f in colour_frames(t, first=first)]
    return rows


def _write_v2(root, lengths, version="v2.1", video=True, ts=None):
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(_info(version, video)))
    lines = [json.dumps({"episode_index": e, "length": t, "tasks": ["x"]}) for e, t in enumerate(lengths)]
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines))
    for e, t in enumerate(lengths):
        path = root / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(_rows(t, e, first=10 * e, video=video, ts=ts)), path)
        if video:
            write_mp4(colour_frames(t, first=10 * e), FPS, root / f"videos/chunk-000/{CAM}/episode_{e:06d}.mp4")
    return root


@pytest.mark.parametrize("version,video", [("v2.1", True), ("v2.0", False)])
def test_v2_video_and_png(tmp_path, version, video):
    root = _write_v2(tmp_path / "ds", [7, 5, 1], version, video)
    assert detect_layout(root).name == "lerobot"
    store = TrajectoryStore(convert(root, tmp_path / "out", img_size=12, show_progress=False))
    assert store.episode_lengths.tolist() == [4, 3]  # the 1-frame episode is skipped
    for e, keep in enumerate([[0, 2, 4, 6], [0, 2, 4]]):
        ep = store.episode(e)
        assert ep["pixels"].shape[1:] == (12, 12, 3)
        assert frame_ids(ep["pixels"]) == [10 * e + k for k in keep]
        pose = _state(10, 10 * e)[keep]
        np.testing.assert_allclose(ep["proprio"], pose, atol=1e-6)
        np.testing.assert_allclose(ep["actions"][: len(keep) - 1], pose_deltas(pose), atol=1e-6)


def test_v3_packed_files_and_action_column(tmp_path):
    root = tmp_path / "v3"
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(_info("v3.0")))
    lengths, cols, meta, start = [6, 5, 7], {}, [], 0
    for e, t in enumerate(lengths):
        for k, v in _rows(t, e, first=start).items():
            cols.setdefault(k, []).extend(v)
        meta.append(
            {
                "episode_index": e,
                "length": t,
                "data/chunk_index": 0,
                "data/file_index": 0,
                "dataset_from_index": start,
                "dataset_to_index": start + t,
                f"videos/{CAM}/chunk_index": 0,
                f"videos/{CAM}/file_index": 0,
                f"videos/{CAM}/from_timestamp": start / FPS,
                f"videos/{CAM}/to_timestamp": (start + t) / FPS,
            }
        )
        start += t
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(cols), root / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.Table.from_pylist(meta), root / "meta/episodes/chunk-000/file-000.parquet")
    write_mp4(colour_frames(start), FPS, root / f"videos/{CAM}/chunk-000/file-000.mp4")
    opts = {"action": "action", "camera": CAM}
    store = TrajectoryStore(convert(root, tmp_path / "out", options=opts, show_progress=False))
    assert store.episode_lengths.tolist() == [3, 3, 4]
    firsts = [0, 6, 11]
    for e, keep in enumerate([[0, 2, 4], [0, 2, 4], [0, 2, 4, 6]]):
        ep = store.episode(e)
        assert frame_ids(ep["pixels"]) == [firsts[e] + k for k in keep]
        st = _state(lengths[e], firsts[e])
        np.testing.assert_allclose(ep["actions"][: len(keep) - 1], st[keep[:-1]] * 10, atol=1e-5)


def test_unknown_version(tmp_path):
    root = _write_v2(tmp_path / "ds", [5])
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(DatasetError, match=r"info.json: codebase_version: unknown LeRobot version 'v1.6'"):
        convert(root, tmp_path / "out", show_progress=False)


def test_missing_feature_lists_available(tmp_path):
    root = _write_v2(tmp_path / "ds", [5])
    with pytest.raises(DatasetError, match=r"no state feature 'joints' \(available: action, observation.images"):
        convert(root, tmp_path / "out", options={"state": "joints"}, show_progress=False)


def test_timestamps_off_grid(tmp_path):
    ts = np.arange(5) / FPS
    ts[3] += 0.01
    root = _write_v2(tmp_path / "ds", [5], ts=ts)
    with pytest.raises(
        DatasetError, match=r"episode_000000.parquet \(episode 0\): timestamp: off the 8 fps grid at frame 3"
    ):
        convert(root, tmp_path / "out", show_progress=False)


def test_missing_mp4(tmp_path):
    root = _write_v2(tmp_path / "ds", [5])
    (root / f"videos/chunk-000/{CAM}/episode_000000.mp4").unlink()
    with pytest.raises(DatasetError, match="episode_000000.mp4: missing video file"):
        convert(root, tmp_path / "out", show_progress=False)
