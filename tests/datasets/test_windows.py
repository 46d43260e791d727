import numpy as np
import pytest
import torch

from jepa_wms.datasets import TrajectoryStore, TrajectoryWriter, WindowDataset, split_episodes

LENGTHS = (12, 9, 20, 6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Episode e, frame t: state = (e, t), action = (100·e + t, t²), pixels filled with 10·e + t."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("win") / "ds"
    with TrajectoryWriter(path, env="wall") as w:
        for e, n in enumerate(LENGTHS):
            t = np.arange(n, dtype=np.float32)
            pixels = np.broadcast_to((10 * e + t).astype(np.uint8)[:, None, None, None], (n, 4, 4, 3))
            w.add_episode(
                pixels=np.ascontiguousarray(pixels),
                actions=np.stack([100 * e + t[:-1], t[:-1] ** 2], axis=1),
                proprio=np.stack([t + rng.normal(size=n), np.full(n, float(e))], axis=1),
                state=np.stack([np.full(n, float(e)), t], axis=1),
            )
    return TrajectoryStore(path)


def _ids(batch):
    """(episode, first frame) of each window in a batch, from the raw state."""
    s = batch["state"][:, 0].numpy().astype(int)
    return [tuple(row) for row in s]


@pytest.mark.parametrize(("num_frames", "frameskip"), [(3, 5), (4, 1), (2, 2), (1, 3)])
def test_windows_enumerate_all_valid_starts(store, num_frames, frameskip):
    ds = WindowDataset(store, num_frames, frameskip)
    span = (num_frames - 1) * frameskip
    expected = {(e, t) for e, n in enumerate(LENGTHS) for t in range(n - span)}
    got = _ids(ds.get(np.arange(len(ds))))
    assert len(ds) == len(expected) and set(got) == expected and len(set(got)) == len(got)


def test_window_contents_match_raw_data(store):
    ds = WindowDataset(store, num_frames=3, frameskip=5)
    batch = ds.get(np.arange(len(ds)))
    b = len(ds)
    assert batch["pixels"].shape == (b, 3, 4, 4, 3) and batch["pixels"].dtype == torch.uint8
    assert batch["actions"].shape == (b, 2, 10) and batch["actions"].dtype == torch.float32
    assert batch["proprio"].shape == (b, 3, 2) and batch["state"].shape == (b, 3, 2)
    state = batch["state"].numpy()
    # Never crosses episodes; kept frames are frameskip apart.
    assert (state[:, :, 0] == state[:, :1, 0]).all()
    np.testing.assert_array_equal(np.diff(state[:, :, 1], axis=1), 5)
    assert (batch["pixels"][:, :, 0, 0, 0].numpy() == 10 * state[:, :, 0] + state[:, :, 1]).all()
    # Actions: the 5 raw actions between kept frames, each normalised, concatenated in time order.
    assert not torch.isnan(batch["actions"]).any()
    raw = store.action_stats.denormalize(batch["actions"].numpy().reshape(b, 2, 5, 2).astype(np.float64))
    e, t0 = state[:, 0, 0][:, None, None], state[:, 0, 1][:, None, None]
    t = t0 + np.arange(10).reshape(1, 2, 5)
    np.testing.assert_allclose(raw[..., 0], 100 * e + t, atol=1e-3)
    np.testing.assert_allclose(raw[..., 1], t**2, atol=1e-3)
    proprio = store.proprio_stats.denormalize(batch["proprio"].numpy().astype(np.float64))
    frames = ds.frame_indices(np.arange(b))
    np.testing.assert_allclose(proprio, store.proprio[frames], atol=1e-4)


def test_last_window_uses_last_frame_but_not_its_nan_action(store):
    ds = WindowDataset(store, num_frames=2, frameskip=8, episodes=[1])  # episode length 9: one window
    assert len(ds) == 1
    batch = ds.get(np.array([0]))
    assert batch["state"][0, -1, 1] == 8 and not torch.isnan(batch["actions"]).any()


def test_episode_subset_and_errors(store):
    ds = WindowDataset(store, 2, 3, episodes=[2, 0])
    assert {e for e, _ in _ids(ds.get(np.arange(len(ds))))} == {0, 2}
    with pytest.raises(ValueError, match="no window of 4 frames with frameskip 3"):
        WindowDataset(store, 4, 3, episodes=[3])
    with pytest.raises(ValueError, match="episode ids"):
        WindowDataset(store, 2, 1, episodes=[7])
    with pytest.raises(IndexError):
        ds.get(np.array([len(ds)]))


def test_epochs_reshuffle_reproducibly(store):
    ds = WindowDataset(store, 2, 2)
    order = {ep: [i for b in ds.batches(8, epoch=ep, seed=1) for i in _ids(b)] for ep in (0, 1)}
    again = [i for b in ds.batches(8, epoch=0, seed=1) for i in _ids(b)]
    other_seed = [i for b in ds.batches(8, epoch=0, seed=2) for i in _ids(b)]
    assert order[0] == again
    assert order[0] != order[1] and order[0] != other_seed
    steps = ds.steps_per_epoch(8)
    assert steps == len(ds) // 8 and len(order[0]) == steps * 8 == len(set(order[0]))  # drop_last, no repeats


def test_rank_sharding_partitions_global_batch(store):
    ds = WindowDataset(store, 3, 1)
    single = [_ids(b) for b in ds.batches(12, epoch=3, seed=0)]
    shards = [[_ids(b) for b in ds.batches(12, epoch=3, seed=0, rank=r, world_size=3)] for r in range(3)]
    for step, global_batch in enumerate(single):
        parts = [shards[r][step] for r in range(3)]
        assert all(len(p) == 4 for p in parts)
        assert sorted(sum(parts, [])) == sorted(global_batch)
        assert parts[1] == global_batch[1::3]
    with pytest.raises(ValueError, match="divisible"):
        next(ds.batches(10, epoch=0, seed=0, rank=0, world_size=3))
    with pytest.raises(ValueError, match="exceeds"):
        next(ds.batches(10_000, epoch=0, seed=0))


def test_streamed_store_matches_preloaded(store):
    streamed = TrajectoryStore(store.path, preload=False)
    a = WindowDataset(store, 3, 2).get(np.array([5, 0, 17, 5]))
    b = WindowDataset(streamed, 3, 2).get(np.array([5, 0, 17, 5]))
    assert all(torch.equal(a[k], b[k]) for k in a)
    streamed.close()


def test_split_episodes():
    train, val = split_episodes(10, 0.2, seed=4)
    assert len(val) == 2 and sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    again = split_episodes(10, 0.2, seed=4)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert len({tuple(split_episodes(10, 0.2, seed=s)[1]) for s in range(10)}) > 1  # the seed matters
    assert len(split_episodes(3, 0.01, seed=0)[1]) == 1
    with pytest.raises(ValueError, match="at least 2 episodes"):
        split_episodes(1, 0.1, seed=0)
