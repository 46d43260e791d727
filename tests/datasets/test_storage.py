import json

import h5py
import numpy as np
import pytest
import torch

from jepa_wms.datasets import DatasetError, Normalizer, TrajectoryStore, TrajectoryWriter

LENGTHS = (5, 7, 4)


def _episode(e: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(length, dtype=np.float32)
    return {
        "pixels": rng.integers(0, 256, size=(length, 8, 6, 3), dtype=np.uint8),
        "actions": np.stack([e * 100 + t[:-1], -t[:-1] * 0.5], axis=1),
        "proprio": np.stack([t, np.full(length, e, np.float32), t**2], axis=1),
        "state": np.stack([np.full(length, e, np.float32), t], axis=1),
    }


@pytest.fixture
def episodes():
    rng = np.random.default_rng(0)
    return [_episode(e, n, rng) for e, n in enumerate(LENGTHS)]


@pytest.fixture
def dataset(tmp_path, episodes):
    with TrajectoryWriter(tmp_path / "ds", env="wall", env_kwargs={"render": "default"}, collector={"seed": 3}) as w:
        for ep in episodes:
            w.add_episode(**ep)
    return tmp_path / "ds"


@pytest.mark.parametrize("preload", [True, False])
def test_round_trip(dataset, episodes, preload):
    path = dataset / "trajectories.h5"
    assert path.is_file() and not (dataset / "trajectories.h5.tmp").exists()
    store = TrajectoryStore(dataset, preload=preload)
    assert store.preloaded is preload
    assert (store.num_episodes, store.num_frames) == (3, sum(LENGTHS))
    assert store.episode_lengths.tolist() == list(LENGTHS) and store.episode_starts.tolist() == [0, 5, 12]
    assert (store.env, store.env_kwargs, store.collector) == ("wall", {"render": "default"}, {"seed": 3})
    assert store.image_shape == (8, 6, 3) and (store.action_dim, store.proprio_dim, store.state_dim) == (
        2,
        3,
        2,
    )
    for e, ep in enumerate(episodes):
        got = store.episode(e)
        for key in ("pixels", "actions", "proprio", "state"):
            np.testing.assert_array_equal(got[key], ep[key])
    last_rows = store.episode_starts + store.episode_lengths - 1
    assert np.isnan(store.actions[last_rows]).all() and not np.isnan(np.delete(store.actions, last_rows, 0)).any()
    all_actions = np.concatenate([ep["actions"] for ep in episodes])
    np.testing.assert_allclose(store.action_stats.mean, all_actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(store.action_stats.std, all_actions.std(0), rtol=1e-6)
    all_proprio = np.concatenate([ep["proprio"] for ep in episodes])
    np.testing.assert_allclose(store.proprio_stats.mean, all_proprio.mean(0), rtol=1e-6)
    # Unsorted, repeated indices of any shape come back in the requested order.
    idx = np.array([[15, 0, 15], [3, 9, 1]])
    flat = np.concatenate([ep["pixels"] for ep in episodes])
    np.testing.assert_array_equal(store.read_pixels(idx), flat[idx])
    with pytest.raises(ValueError):
        store.actions[0, 0] = 1.0  # read-only: windows share these arrays
    store.close()


def test_file_layout_chunks_one_frame(dataset):
    with h5py.File(dataset / "trajectories.h5", "r") as f:
        assert f["pixels"].chunks == (1, 8, 6, 3) and f["pixels"].compression == "lzf"
        assert f.attrs["format"] == "jepa-wms-trajectories" and f.attrs["format_version"] == 1
        assert json.loads(f.attrs["collector"]) == {"seed": 3} and f.attrs["created"]
        assert f["actions"].dtype == np.float32 and f["episode_start"].dtype == np.int64


def test_writer_refuses_overwrite_and_aborts_cleanly(dataset, episodes):
    with pytest.raises(FileExistsError, match=str(dataset / "trajectories.h5")):
        TrajectoryWriter(dataset, env="wall")
    before = (dataset / "trajectories.h5").read_bytes()
    with pytest.raises(RuntimeError), TrajectoryWriter(dataset, env="wall", overwrite=True) as w:
        w.add_episode(**episodes[0])
        raise RuntimeError("crash mid-collection")
    assert (dataset / "trajectories.h5").read_bytes() == before
    assert not (dataset / "trajectories.h5.tmp").exists()
    with TrajectoryWriter(dataset, env="wall", overwrite=True) as w:
        w.add_episode(**episodes[1])
    assert TrajectoryStore(dataset).num_episodes == 1


def test_writer_rejects_bad_episodes(tmp_path, episodes):
    w = TrajectoryWriter(tmp_path, env="wall")
    bad = dict(episodes[0], actions=episodes[0]["actions"][:-1])
    with pytest.raises(ValueError, match=r"actions must have shape \(4, dim\)"):
        w.add_episode(**bad)
    with pytest.raises(ValueError, match="pixels must be uint8"):
        w.add_episode(**dict(episodes[0], pixels=episodes[0]["pixels"].astype(np.float32)))
    w.add_episode(**episodes[0])
    with pytest.raises(ValueError, match="per-frame shape"):
        w.add_episode(**dict(episodes[1], proprio=episodes[1]["proprio"][:, :2]))
    w.abort()
    assert not list(tmp_path.iterdir())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope" / "trajectories.h5")):
        TrajectoryStore(tmp_path / "nope")


def test_not_hdf5_and_truncated(tmp_path, dataset):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"definitely not hdf5" * 100)
    with pytest.raises(DatasetError, match="junk.h5 is not an HDF5 file"):
        TrajectoryStore(junk)
    data = (dataset / "trajectories.h5").read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.h5"):
        TrajectoryStore(cut, preload=True)


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.attrs.__setitem__("format", "robomimic"), "attribute 'format' is 'robomimic'"),
        (lambda f: f.attrs.__setitem__("format_version", 2), "'format_version' is 2"),
        (lambda f: f.__delitem__("proprio"), "missing dataset '/proprio'"),
        (lambda f: f.__delitem__("stats/action_std"), "missing dataset '/stats/action_std'"),
        (lambda f: f["state"].resize(10, axis=0), "'/state' has 10 rows, expected 16"),
        (lambda f: f["episode_length"].__setitem__(0, 6), "'/episode_length' must describe"),
        (lambda f: f.attrs.__setitem__("env_kwargs", "{oops"), "must be JSON"),
        # Rows 5-11 are episode 1, 12-15 episode 2; each episode's last action row is NaN by design.
        (
            lambda f: f["proprio"].__setitem__(6, np.nan),
            r"'/proprio' holds NaN or inf in 1 row\(s\), the first at frame 1 of episode 1",
        ),
        (lambda f: f["actions"].__setitem__(13, np.inf), "'/actions' holds NaN or inf .* frame 1 of episode 2"),
        (lambda f: f.attrs.__setitem__("env_kwargs", '{"img_size": 8}'), "img_size=8, but '/pixels' holds 8x6 frames"),
    ],
)
def test_invalid_contents_name_the_key(dataset, edit, message):
    path = dataset / "trajectories.h5"
    _edit(path, edit)
    with pytest.raises(DatasetError, match=message) as err:
        TrajectoryStore(path)
    assert str(path) in str(err.value)


def test_damaged_frame_read_lazily_names_episode_and_frame(tmp_path, episodes):
    with TrajectoryWriter(tmp_path, env="wall") as w:
        for ep in episodes:
            w.add_episode(**dict(ep, pixels=np.zeros_like(ep["pixels"])))  # compressible: lzf really runs
    path = tmp_path / "trajectories.h5"
    with h5py.File(path, "r") as f:
        chunk = f["pixels"].id.get_chunk_info_by_coord((7, 0, 0, 0))
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    store = TrajectoryStore(path, preload=False)
    assert store.read_pixels(np.array([6, 8])).shape == (2, 8, 6, 3)
    with pytest.raises(DatasetError, match="trajectories.h5: frame 2 of episode 1 .*cannot be read"):
        store.episode(1)


def test_normalizer_numpy_torch_and_dict():
    rng = np.random.default_rng(1)
    data = rng.normal([3.0, -2.0, 7.0], [2.0, 0.5, 0.0], size=(500, 3))
    norm = Normalizer.fit(data)
    assert norm.std[2] == pytest.approx(1e-6)  # floor for a constant dim
    z = norm.normalize(data)
    np.testing.assert_allclose(z[:, :2].mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z[:, :2].std(0), 1.0, atol=1e-9)
    np.testing.assert_allclose(norm.denormalize(z), data, atol=1e-9)
    t = torch.tensor(data[:4], dtype=torch.float32)
    zt = norm.normalize(t)
    assert zt.dtype == torch.float32 and torch.allclose(zt, torch.tensor(z[:4], dtype=torch.float32), atol=1e-4)
    assert Normalizer.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm
    with pytest.raises(ValueError, match="last dim of input is 2, expected 3"):
        norm.normalize(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="std > 0"):
        Normalizer(np.zeros(2), np.array([1.0, 0.0]))
