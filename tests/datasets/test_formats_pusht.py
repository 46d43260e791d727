import pickle

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import convert, detect_layout, get_layout

T = 6


def _split(folder, lengths, seed, padded=True):
    """A DINO-WM pusht_noise split with len(lengths) trajectories padded to T steps and 32-px MP4 frames."""
    n = len(lengths)
    (folder / "obses").mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    states = torch.cat([torch.rand(n, T, 4, generator=g) * 300 + 100, torch.rand(n, T, 1, generator=g) * 6], -1)
    velocities = torch.randn(n, T, 2, generator=g) * 50
    rel_actions = torch.randn(n, T, 2, generator=g) * 20  # pixels
    torch.save(states, folder / "states.pth")
    torch.save(velocities, folder / "velocities.pth")
    torch.save(rel_actions, folder / "rel_actions.pth")
    torch.save(rel_actions + states[..., :2], folder / "abs_actions.pth")
    (folder / "seq_lengths.pkl").write_bytes(pickle.dumps(list(lengths)))
    (folder / "shapes.pkl").write_bytes(pickle.dumps(["T"] * n))
    for i, length in enumerate(lengths):
        # Flat frames of distinct grays survive the lossy codec almost exactly.
        frames = (
            np.zeros((length, 32, 32, 3), dtype=np.uint8)
            + (40 * np.arange(length) + 20).astype(np.uint8)[:, None, None, None]
        )
        name = f"episode_{i:03d}.mp4" if padded else f"episode_{i}.mp4"
        iio.imwrite(folder / "obses" / name, frames, extension=".mp4", fps=10)
    return states.numpy().astype(np.float64), velocities.numpy().astype(np.float64), rel_actions.numpy()


@pytest.fixture(scope="module")
def pusht_noise(tmp_path_factory):
    root = tmp_path_factory.mktemp("pusht") / "pusht_noise"
    train = _split(root / "train", [6, 4], seed=0)
    val = _split(root / "val", [3], seed=1, padded=False)
    return root, train, val


def _check_episode(ep, data, i, length):
    states, velocities, rel = data
    want_state = np.concatenate([states[i, :length], velocities[i, :length]], 1)
    np.testing.assert_allclose(ep["state"], want_state, rtol=1e-6)
    np.testing.assert_allclose(ep["proprio"], want_state[:, [0, 1, 5, 6]], rtol=1e-6)
    np.testing.assert_allclose(ep["actions"], rel[i, : length - 1] / 100.0, rtol=1e-6)
    assert ep["pixels"].shape == (length, 32, 32, 3)
    grays = ep["pixels"].reshape(length, -1).mean(1)
    np.testing.assert_allclose(grays, 40 * np.arange(length) + 20, atol=4)


def test_convert_round_trip(pusht_noise, tmp_path):
    root, train, val = pusht_noise
    assert detect_layout(root).name == "dino_wm_pusht" == detect_layout(root / "train").name
    out = convert(root, tmp_path / "out", show_progress=False)
    store = TrajectoryStore(out)
    assert store.env == "pusht" and store.env_kwargs == {"img_size": 32}
    assert store.episode_lengths.tolist() == [6, 4, 3]  # train then val, each cut to seq_lengths
    assert (store.action_dim, store.proprio_dim, store.state_dim) == (2, 4, 7)
    _check_episode(store.episode(0), train, 0, 6)
    _check_episode(store.episode(1), train, 1, 4)
    _check_episode(store.episode(2), val, 0, 3)  # unpadded episode_0.mp4


def test_convert_one_split_resized(pusht_noise, tmp_path):
    root, train, _ = pusht_noise
    out = convert(root / "train", tmp_path / "out", img_size=16, max_episodes=1, show_progress=False)
    store = TrajectoryStore(out)
    assert store.num_episodes == 1 and store.image_shape == (16, 16, 3)
    np.testing.assert_allclose(store.episode(0)["actions"], train[2][0, :5] / 100.0, rtol=1e-6)


def test_missing_files_are_named(pusht_noise, tmp_path):
    root, _, _ = pusht_noise
    broken = tmp_path / "broken"
    _split(broken, [4], seed=2)
    (broken / "velocities.pth").unlink()
    with pytest.raises(DatasetError, match="velocities.pth"):
        convert(broken, tmp_path / "o1", layout="dino_wm_pusht", show_progress=False)
    with pytest.raises(DatasetError, match="velocities.pth"):
        get_layout("dino_wm_pusht").check(broken)
    gone = tmp_path / "gone"
    _split(gone, [4, 5], seed=3)
    (gone / "obses" / "episode_001.mp4").unlink()
    with pytest.raises(DatasetError, match="episode_001.mp4"):
        convert(gone, tmp_path / "o2", show_progress=False)


def test_bad_lengths_rejected(tmp_path):
    folder = tmp_path / "bad"
    _split(folder, [4], seed=4)
    (folder / "seq_lengths.pkl").write_bytes(pickle.dumps([T + 3]))
    with pytest.raises(DatasetError, match="seq_lengths.pkl"):
        convert(folder, tmp_path / "o", show_progress=False)
