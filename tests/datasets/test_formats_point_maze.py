import numpy as np
import pytest
import torch

from jepa_wms.datasets import TrajectoryStore
from jepa_wms.datasets.formats import convert, get_layout
from jepa_wms.datasets.storage import DatasetError
from jepa_wms.envs.pointmaze import d4rl_to_env_vec, d4rl_to_env_xy, env_to_d4rl_xy

N, T, SIZE = 3, 6, 8
LENGTHS = [6, 4, 5]


def _write_layout(root, actions_rows=T):
    rng = np.random.default_rng(0)
    states = rng.uniform(0.4, 3.2, size=(N, T, 4)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(N, actions_rows, 2)).astype(np.float32)
    frames = rng.integers(0, 256, size=(N, T, SIZE, SIZE, 3), dtype=np.uint8)
    (root / "obses").mkdir(parents=True)
    torch.save(torch.from_numpy(states), root / "states.pth")
    torch.save(torch.from_numpy(actions), root / "actions.pth")
    torch.save(torch.tensor(LENGTHS), root / "seq_lengths.pth")
    for i in range(N):
        name = f"episode_{i}.pth" if i == 1 else f"episode_{i:03d}.pth"  # both spellings occur
        torch.save(torch.from_numpy(frames[i]), root / "obses" / name)
    return states, actions, frames


@pytest.mark.parametrize("actions_rows", [T, T - 1])
def test_convert_round_trip(tmp_path, actions_rows):
    states, actions, frames = _write_layout(tmp_path / "point_maze", actions_rows)
    out = convert(tmp_path / "point_maze", tmp_path / "out", layout="dino_wm_point_maze", show_progress=False)
    store = TrajectoryStore(out)
    assert store.env == "pointmaze" and store.env_kwargs == {"img_size": SIZE}
    assert store.episode_lengths.tolist() == LENGTHS
    for i, length in enumerate(LENGTHS):
        ep = store.episode(i)
        np.testing.assert_array_equal(ep["pixels"], frames[i, :length])
        xd, yd, vxd, vyd = states[i, :length].astype(np.float64).T
        # Ours: x = y_d - 1.8, y = 1.8 - x_d; velocities and actions rotate the same way without the offset.
        expected = np.stack([yd - 1.8, 1.8 - xd, vyd, -vxd], axis=1)
        np.testing.assert_allclose(ep["state"], expected, atol=1e-6)
        np.testing.assert_array_equal(ep["proprio"], ep["state"])
        a = actions[i, : length - 1]
        np.testing.assert_allclose(ep["actions"], np.stack([a[:, 1], -a[:, 0]], axis=1), atol=1e-7)


def test_coordinate_map():
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(10, 2))
    np.testing.assert_allclose(env_to_d4rl_xy(d4rl_to_env_xy(xy)), xy, atol=1e-12)
    np.testing.assert_allclose(d4rl_to_env_xy(env_to_d4rl_xy(xy)), xy, atol=1e-12)
    # D4RL cell (i, j) is centred at qpos (i - 0.2, j - 0.2); gymnasium-robotics centres it at (j - 2, 2 - i).
    for i, j in [(1, 1), (1, 3), (2, 3), (3, 1)]:
        np.testing.assert_allclose(d4rl_to_env_xy([i - 0.2, j - 0.2]), [j - 2.0, 2.0 - i], atol=1e-12)
    # The reference's published x_d range [0.393, 3.220] is the ball-centre range of its corridors.
    np.testing.assert_allclose(d4rl_to_env_xy([[0.4, 0.4], [3.2, 3.2]]), [[-1.4, 1.4], [1.4, -1.4]], atol=1e-12)
    v = rng.normal(size=(5, 2))
    np.testing.assert_allclose(np.linalg.norm(d4rl_to_env_vec(v), axis=1), np.linalg.norm(v, axis=1))
    np.testing.assert_allclose(d4rl_to_env_vec(v), d4rl_to_env_xy(v) - d4rl_to_env_xy(np.zeros(2)), atol=1e-12)


def test_layout_is_registered():
    layout = get_layout("dino_wm_point_maze")
    assert layout.env == "pointmaze" and "seq_lengths.pth" in layout.required


def test_missing_files_are_named(tmp_path):
    root = tmp_path / "point_maze"
    _write_layout(root)
    (root / "obses" / "episode_002.pth").unlink()
    with pytest.raises(DatasetError, match="episode_002"):
        convert(root, tmp_path / "a", layout="dino_wm_point_maze", show_progress=False)
    (root / "seq_lengths.pth").unlink()
    with pytest.raises(DatasetError, match="seq_lengths.pth"):
        convert(root, tmp_path / "b", layout="dino_wm_point_maze", show_progress=False)


def test_bad_lengths_and_shapes(tmp_path):
    root = tmp_path / "point_maze"
    _write_layout(root)
    torch.save(torch.tensor([6, 7, 5]), root / "seq_lengths.pth")
    with pytest.raises(DatasetError, match=r"seq_lengths.pth: expected integers in \[2, 6\]"):
        convert(root, tmp_path / "a", layout="dino_wm_point_maze", show_progress=False)
    torch.save(torch.tensor(LENGTHS), root / "seq_lengths.pth")
    torch.save(torch.zeros(N, T, 3), root / "states.pth")
    with pytest.raises(DatasetError, match=r"states.pth: expected states \(N, T, 4\)"):
        convert(root, tmp_path / "b", layout="dino_wm_point_maze", show_progress=False)
