import h5py
import numpy as np
import pytest

from jepa_wms.datasets import AR1RandomWalk, TrajectoryStore, collect, default_policy
from jepa_wms.envs import WallEnv, wall_dynamics


def _contents(path):
    with h5py.File(path, "r") as f:
        data = {}
        f.visititems(lambda k, v: data.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k != "created"}
    return data, attrs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("collect")
    kw = dict(episode_len=12, img_size=16, seed=5, show_progress=False)
    one = collect("wall", 4, root / "w1", workers=1, **kw)
    two = collect("wall", 4, root / "w2", workers=2, **kw)
    return one, two


def test_collect_identical_across_worker_counts(tiny):
    (d1, a1), (d2, a2) = (_contents(p) for p in tiny)
    assert a1 == a2 and sorted(d1) == sorted(d2)
    for key in d1:
        np.testing.assert_array_equal(d1[key], d2[key], err_msg=key)
    assert d1["pixels"].shape == (4 * 13, 16, 16, 3)


def test_collected_episodes_follow_the_env(tiny):
    store = TrajectoryStore(tiny[0])
    env = WallEnv(img_size=16)
    assert store.episode_lengths.tolist() == [13] * 4 and store.collector["episode_len"] == 12
    assert store.collector["policy"] == "door_seeking_walk" and store.env_kwargs == {"img_size": 16}
    for e in range(store.num_episodes):
        ep = store.episode(e)
        np.testing.assert_allclose(ep["proprio"], ep["state"])
        nxt = wall_dynamics(ep["state"][:-1].astype(np.float64), ep["actions"].astype(np.float64))
        np.testing.assert_allclose(nxt, ep["state"][1:], atol=1e-4)
        for t in (0, 12):
            rendered = env.render_state(ep["state"][t].astype(np.float64)).astype(int)
            assert np.abs(rendered - ep["pixels"][t]).max() <= 1
    # Different seeds or episodes give different data.
    assert not np.array_equal(store.episode(0)["state"], store.episode(1)["state"])


def test_collect_refuses_to_overwrite(tiny):
    with pytest.raises(FileExistsError, match=str(tiny[0])):
        collect("wall", 1, tiny[0].parent, episode_len=2, workers=1, img_size=16, show_progress=False)
    path = collect(
        "wall", 1, tiny[0].parent, episode_len=2, workers=1, img_size=16, show_progress=False, overwrite=True
    )
    assert TrajectoryStore(path).num_episodes == 1


def test_ar1_walk_statistics():
    rng = np.random.default_rng(0)
    policy = AR1RandomWalk(2, rho=0.9, sigma=0.5)
    policy.reset(rng, np.zeros(2))
    a = np.stack([policy(rng, np.zeros(2)) for _ in range(20000)])
    assert np.abs(a).max() <= 2.0
    np.testing.assert_allclose(a.std(0), 0.5, rtol=0.1)
    lag1 = [np.corrcoef(a[:-1, i], a[1:, i])[0, 1] for i in range(2)]
    np.testing.assert_allclose(lag1, 0.9, atol=0.02)


def test_default_wall_policy_crosses_the_door_often():
    """≥ 30 % of 50-step episodes from uniform starts should visit both rooms (pure AR(1) gets ~6 %)."""
    env = WallEnv()
    policy = default_policy(env)
    rng = np.random.default_rng(123)
    crossed = []
    for _ in range(400):
        state = env.sample_free_state(rng)
        policy.reset(rng, state)
        rooms = {env.room(state)}
        for _ in range(50):
            state = wall_dynamics(state, policy(rng, state))
            rooms.add(env.room(state))
        crossed.append({-1, 1} <= rooms)
    assert np.mean(crossed) >= 0.3, np.mean(crossed)


def test_collect_stays_the_function_whichever_export_is_imported_first():
    import subprocess
    import sys

    code = "from jepa_wms.datasets import collect_for_config\nfrom jepa_wms.datasets import collect\n"
    code += "assert callable(collect)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
