import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import convert, detect_layout, get_layout, read_video


def _episode(rng, t, task, struct_video=False):
    frames = np.zeros((t, 32, 32, 3), dtype=np.uint8)
    frames[:, 8:24, 8:24] = rng.integers(0, 256, size=3, dtype=np.uint8)  # flat patches survive MP4 coding
    video = iio.imwrite("<bytes>", frames, extension=".mp4", fps=10)
    return {
        "video": {"bytes": video, "path": None} if struct_video else video,
        "states": rng.normal(size=(t, 39)).tolist(),
        "actions": rng.uniform(-1, 1, size=(t - 1, 4)).tolist(),
        "rewards": rng.uniform(size=t - 1).tolist(),
        "task": task,
    }


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two files, two tasks: reach (3 episodes; the second file stores videos as structs) and push (1 episode)."""
    root = tmp_path_factory.mktemp("Metaworld")
    rng = np.random.default_rng(0)
    first = [_episode(rng, 6, "reach-v3"), _episode(rng, 6, "push-v3"), _episode(rng, 6, "reach-v3")]
    second = [_episode(rng, 5, "reach", struct_video=True)]
    _write(root / "data" / "train-00000-of-00002.parquet", first)
    _write(root / "data" / "train-00001-of-00002.parquet", second)
    return root, [first[0], first[2], second[0]]


def test_convert_keeps_one_task(published, tmp_path):
    root, reach_rows = published
    assert detect_layout(root).name == "metaworld_parquet"
    out = convert(root, tmp_path / "reach", options={"task": "reach"}, show_progress=False)
    store = TrajectoryStore(out)
    assert store.env == "metaworld-reach" and store.num_episodes == 3
    assert store.episode_lengths.tolist() == [6, 6, 5]
    for e, row in enumerate(reach_rows):
        ep = store.episode(e)
        states = np.asarray(row["states"], dtype=np.float32)
        np.testing.assert_allclose(ep["state"], states)
        np.testing.assert_allclose(ep["proprio"], states[:, :4])
        np.testing.assert_allclose(ep["actions"], np.asarray(row["actions"], dtype=np.float32))
        video = row["video"]["bytes"] if isinstance(row["video"], dict) else row["video"]
        np.testing.assert_array_equal(ep["pixels"], read_video(video))
    # The data folder itself works as the root, and task names may carry the -v3 suffix.
    out = convert(root / "data", tmp_path / "push", options={"task": "push-v3"}, img_size=16, show_progress=False)
    store = TrajectoryStore(out)
    assert store.env == "metaworld-push" and store.num_episodes == 1
    assert store.episode(0)["pixels"].shape == (6, 16, 16, 3)


def test_missing_task_lists_the_tasks_present(published, tmp_path):
    root, _ = published
    with pytest.raises(
        DatasetError, match=r"no episodes of task 'reach-wall'.*push-v3 \(1\), reach \(1\), reach-v3 \(2\)"
    ):
        convert(root, tmp_path / "x", options={"task": "reach-wall"}, show_progress=False)
    with pytest.raises(DatasetError, match="missing \\['task'\\]"):
        convert(root, tmp_path / "y", layout="metaworld_parquet", show_progress=False)
    with pytest.raises(DatasetError, match="unknown Metaworld task 'nope'"):
        convert(root, tmp_path / "z", options={"task": "nope"}, show_progress=False)


def test_missing_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="missing data/train-\\*.parquet"):
        convert(tmp_path / "empty", tmp_path / "out", layout="metaworld_parquet", options={"task": "reach"})
    assert get_layout("metaworld_parquet").missing(tmp_path / "empty") == ["data/train-*.parquet"]


def test_bad_rows_are_named(tmp_path):
    rng = np.random.default_rng(1)
    row = _episode(rng, 4, "reach-v3")
    row["states"] = rng.normal(size=(4, 7)).tolist()
    _write(tmp_path / "data" / "train-0.parquet", [row])
    with pytest.raises(DatasetError, match=r"train-0.parquet row 0: column 'states' must be a \(T, 39\)"):
        convert(tmp_path, tmp_path / "out", options={"task": "reach"}, show_progress=False)


def test_frames_and_states_of_different_length_keep_the_shorter(tmp_path):
    rng = np.random.default_rng(2)
    row = _episode(rng, 5, "reach-v3")
    row["states"] = rng.normal(size=(7, 39)).tolist()  # two states more than frames
    row["actions"] = rng.normal(size=(6, 4)).tolist()
    _write(tmp_path / "data" / "train-0.parquet", [row])
    store = TrajectoryStore(convert(tmp_path, tmp_path / "out", options={"task": "reach"}, show_progress=False))
    ep = store.episode(0)
    assert ep["pixels"].shape[0] == ep["state"].shape[0] == 5 and ep["actions"].shape == (4, 4)
    np.testing.assert_allclose(ep["state"], np.asarray(row["states"][:5], dtype=np.float32))
