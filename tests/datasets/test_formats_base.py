import os
import pickle

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from jepa_wms.cli import main
from jepa_wms.datasets import DatasetError, TrajectoryStore
from jepa_wms.datasets.formats import (
    convert,
    detect_layout,
    get_layout,
    layouts,
    load_plain_pickle,
    load_pth,
    read_video,
    resize_frames,
)
from jepa_wms.envs import WallEnv


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _wall_single(root, n=3, t=6, door=30.0):
    (root / "obses").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    states = torch.rand(n, t, 2, generator=g) * 20 + 8  # left room, away from the wall
    torch.save(states, root / "states.pth")
    torch.save(torch.rand(n, t, 2, generator=g) - 0.5, root / "actions.pth")
    torch.save(torch.full((n,), door), root / "door_locations.pth")
    for i in range(n):
        frames = (torch.rand(t, 3, 65, 65, generator=g) * 255).to(torch.uint8)
        torch.save(frames, root / "obses" / f"episode_{i:03d}.pth")
    return states


def test_plain_pickle_loads_lists_and_refuses_code(tmp_path):
    ok = tmp_path / "seq_lengths.pkl"
    ok.write_bytes(pickle.dumps([3, 4, 5]))
    assert load_plain_pickle(ok) == [3, 4, 5]
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(DatasetError, match="evil.pkl.*refusing to load posix.system|evil.pkl.*refusing"):
        load_plain_pickle(bad)
    with pytest.raises(DatasetError, match="missing file"):
        load_plain_pickle(tmp_path / "nope.pkl")


def test_load_pth_refuses_code_and_truncation(tmp_path):
    good = tmp_path / "states.pth"
    torch.save(torch.arange(6.0).view(2, 3), good)
    assert load_pth(good).shape == (2, 3)
    evil = tmp_path / "evil.pth"
    torch.save({"x": _Boom()}, evil)
    with pytest.raises(DatasetError, match="evil.pth: cannot read as a tensor file"):
        load_pth(evil)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:50])
    with pytest.raises(DatasetError, match="cut.pth"):
        load_pth(cut)


def test_read_video_path_and_bytes_and_resize(tmp_path):
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    frames[:, :16] = 200  # flat regions survive lossy coding
    path = tmp_path / "episode_000.mp4"
    iio.imwrite(path, frames, extension=".mp4", fps=10)
    for source in (path, path.read_bytes()):
        out = read_video(source)
        assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
        assert abs(int(out[:, 4:12].mean()) - 200) < 8 and out[:, 20:].mean() < 8
    small = resize_frames(out, 16)
    assert small.shape == (4, 16, 16, 3) and abs(int(small[:, 2:6].mean()) - 200) < 8
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="bad.mp4: cannot decode video"):
        read_video(tmp_path / "bad.mp4")


def test_wall_single_round_trip(tmp_path):
    src = tmp_path / "wall_single"
    states = _wall_single(src)
    assert detect_layout(src).name == "dino_wm_wall"
    out = convert(src, tmp_path / "out", img_size=32, show_progress=False)
    with TrajectoryStore(out) as store:
        assert store.env == "wall" and store.num_episodes == 3 and store.image_shape == (32, 32, 3)
        assert store.env_kwargs == {"door_center_y": 30.0, "img_size": 32}
        ep = store.episode(1)
        np.testing.assert_allclose(ep["state"], states[1].numpy(), rtol=1e-6)
        actions = torch.load(src / "actions.pth", weights_only=True)[1, :5].numpy()
        # published transitions are pos + action; our env moves by 2·action
        np.testing.assert_allclose(ep["actions"], actions / 2.0, rtol=1e-6)
        assert ep["pixels"].shape == (6, 32, 32, 3)
    WallEnv(**store.env_kwargs)  # the recorded kwargs build the matching env


def test_wall_single_varying_layouts_refused(tmp_path):
    src = tmp_path / "wall_single"
    _wall_single(src)
    torch.save(torch.tensor([30.0, 31.0, 30.0]), src / "door_locations.pth")
    with pytest.raises(DatasetError, match="door_locations.pth: trajectories use different layouts"):
        convert(src, tmp_path / "out", show_progress=False)


def test_missing_frames_and_unknown_layouts_are_named(tmp_path):
    src = tmp_path / "wall_single"
    _wall_single(src)
    (src / "obses" / "episode_002.pth").unlink()
    with pytest.raises(DatasetError, match="episode_002.pth"):
        convert(src, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out" / "trajectories.h5").exists()  # nothing half-written
    (src / "actions.pth").unlink()
    with pytest.raises(DatasetError, match="unrecognised dataset layout.*missing actions.pth"):
        detect_layout(src)
    with pytest.raises(DatasetError, match="unknown dataset layout 'nope'"):
        get_layout("nope")
    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "absent")
    assert "dino_wm_wall" in layouts()


def test_cli_convert(tmp_path, capsys):
    src = tmp_path / "wall_single"
    _wall_single(src)
    assert main(["convert", "--list"]) == 0
    assert "dino_wm_wall" in capsys.readouterr().out
    assert main(["convert", str(src), "--out", str(tmp_path / "o"), "--img-size", "16", "--max-episodes", "2"]) == 0
    with TrajectoryStore(tmp_path / "o") as store:
        assert store.num_episodes == 2 and store.image_shape == (16, 16, 3)
    assert main(["convert", str(tmp_path), "--out", str(tmp_path / "p")]) == 2
    assert "unrecognised dataset layout" in capsys.readouterr().err
