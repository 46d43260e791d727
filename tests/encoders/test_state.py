"""``model.encoder.type: state``: features, normalisation, config resolution, and a tiny Push-T state model trained,
reloaded and evaluated without ever reading a pixel."""

import csv
import json
import math
import shutil

import h5py
import numpy as np
import pytest
import torch

from jepa_wms.checkpoint import load_checkpoint
from jepa_wms.config import ConfigError, EncoderConfig, load_config
from jepa_wms.encoders import StateEncoder, build_encoder, state_features
from jepa_wms.saved_model import load_world_model
from jepa_wms.world_model import build_world_model
from tests.conftest import TINY

TWO_PI = 2 * math.pi


def _pusht(*states):
    return torch.tensor(states, dtype=torch.float32)


# ----- features ---------------------------------------------------------------------------------------------------
def test_pusht_features_pinned():
    enc = StateEncoder("pusht")
    assert enc.embed_dim == 8 and enc.grid_size == (1, 1) and enc.num_tokens == 1
    feats = enc.state_to_features(_pusht([10, 20, 30, 40, math.pi / 3, 5, -6], [1, 2, 3, 4, math.pi, 0, 0]))
    expected = torch.tensor(
        [[10, 20, 30, 40, 0.5, math.sqrt(3) / 2, 5, -6], [1, 2, 3, 4, -1, 0, 0, 0]], dtype=torch.float32
    )
    torch.testing.assert_close(feats, expected, atol=1e-6, rtol=0)


def test_pusht_angle_wraps_around():
    enc = StateEncoder("pusht")
    near_zero, near_two_pi, half_turn = enc.state_to_features(
        _pusht([0, 0, 0, 0, 0.01, 0, 0], [0, 0, 0, 0, TWO_PI - 0.01, 0, 0], [0, 0, 0, 0, math.pi, 0, 0])
    )
    # 0.02 rad apart on the circle: the (cos, sin) chord is 2·sin(0.01) ≈ 0.02, not the 6.26 of the raw angle.
    assert float((near_zero - near_two_pi).norm()) == pytest.approx(2 * math.sin(0.01), abs=1e-5)
    assert float((near_zero - half_turn).norm()) == pytest.approx(2 * math.cos(0.005), abs=1e-5)  # π − 0.01 apart
    # Still neighbours after normalisation with data stats.
    enc.fit(np.array([[0, 0, 0, 0, a, 0, 0] for a in np.linspace(0, TWO_PI, 50, endpoint=False)]))
    lat = enc.encode_frames(_pusht([0, 0, 0, 0, 0.01, 0, 0], [0, 0, 0, 0, TWO_PI - 0.01, 0, 0])[None])
    assert lat.shape == (1, 2, 1, 8)
    assert float((lat[0, 0] - lat[0, 1]).norm()) < 0.05


def test_droid_pose_features_are_continuous_across_the_euler_wrap():
    enc = StateEncoder("droid")
    assert enc.embed_dim == 10
    # Roll just under +π and just over −π: the same hand, 0.02 rad apart.
    a, b, flat = enc.state_to_features(
        torch.tensor(
            [
                [0.1, 0.2, 0.3, math.pi - 0.01, 0, 0, 0.5],
                [0.1, 0.2, 0.3, -math.pi + 0.01, 0, 0, 0.5],
                [1.0, 2.0, 3.0, 0, 0, 0, 1.0],
            ]
        )  # fmt: skip
    )
    assert float((a - b).norm()) < 0.03
    # Identity rotation: columns x = (1, 0, 0), y = (0, 1, 0) row by row.
    torch.testing.assert_close(flat, torch.tensor([1.0, 2.0, 3.0, 1, 0, 0, 1, 0, 0, 1.0]))


def test_other_envs_features():
    wall = torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(StateEncoder("wall").state_to_features(wall), wall)
    maze = torch.tensor([[1.0, 2.0, -0.5, 0.25]])
    torch.testing.assert_close(StateEncoder("pointmaze").state_to_features(maze), maze)
    mw = StateEncoder("metaworld-reach-wall")
    assert mw.embed_dim == 39
    state = torch.arange(100.0)[None]  # task sizes differ; only the 39-d observation is read
    torch.testing.assert_close(mw.state_to_features(state), torch.arange(39.0)[None])
    assert state_features("metaworld-door-open") is state_features("metaworld-reach-wall")


def test_normalisation_pinned_and_floored():
    enc = StateEncoder("wall").fit(np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]], dtype=np.float32))
    # mean (2, 5); population std (sqrt(8/3), 0 -> floored to 1e-6)
    torch.testing.assert_close(enc.feature_mean, torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(enc.feature_std, torch.tensor([math.sqrt(8 / 3), 1e-6]))
    lat = enc.encode_frames(torch.tensor([[[2.0 + math.sqrt(8 / 3), 5.0]]], dtype=torch.float64))
    torch.testing.assert_close(lat, torch.tensor([[[[1.0, 0.0]]]]))
    assert lat.dtype == torch.float32


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="no state features for env 'maze'.*pointmaze.*metaworld-<task>"):
        StateEncoder("maze")
    with pytest.raises(ValueError, match="metaworld-"):
        StateEncoder("metaworld-")
    enc = StateEncoder("pusht")
    with pytest.raises(ValueError, match="7 entries"):
        enc.encode_frames(torch.zeros(1, 2, 6))
    with pytest.raises(ValueError, match="7 entries"):
        enc.fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=">= 39"):
        StateEncoder("metaworld-reach").encode_frames(torch.zeros(1, 1, 4))
    with pytest.raises(ValueError, match="not pixels"):
        enc.preprocess(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="trainable=false"):
        build_encoder(EncoderConfig(type="state", state_features="pusht", embed_dim=8, grid_size=1, trainable=True))
    with pytest.raises(ValueError, match="embed_dim=8"):
        build_encoder(EncoderConfig(type="state", state_features="pusht", embed_dim=64, grid_size=1))


# ----- config and model -------------------------------------------------------------------------------------------
def test_config_resolves_features_width_and_grid():
    cfg = load_config("pusht_state")
    enc = cfg.model.encoder
    assert (enc.type, enc.state_features, enc.embed_dim, enc.grid_size) == ("state", "pusht", 8, 1)
    assert cfg.loss.regularizer == "none"
    wall = load_config("wall", ["model.encoder.type=state", "model.encoder.embed_dim=64"]).model.encoder
    assert (wall.state_features, wall.embed_dim, wall.grid_size) == ("wall", 2, 1)
    mw = load_config("metaworld_quick", ["model.encoder.type=state"]).model.encoder
    assert (mw.state_features, mw.embed_dim) == ("metaworld-reach", 39)
    with pytest.raises(ConfigError, match="model.encoder.state_features.*'nope'"):
        load_config("wall", ["model.encoder.type=state", "model.encoder.state_features=nope"])


def test_world_model_encodes_states_and_carries_the_stats():
    cfg = load_config("wall", [*TINY, "model.encoder.type=state"])
    model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2)
    assert model.observation_key == "state" and isinstance(model.encoder, StateEncoder)
    model.encoder.fit(np.array([[0.0, 0.0], [2.0, 4.0]]))
    assert {"encoder.feature_mean", "encoder.feature_std"} <= set(model.state_dict())
    out = model.encode(None, torch.zeros(1, 1, 2), state=torch.tensor([[[3.0, 6.0]]]))
    torch.testing.assert_close(out.visual, torch.tensor([[[[2.0, 2.0]]]]))
    with pytest.raises(ValueError, match="reads 'state'"):
        model.encode(torch.zeros(1, 1, 16, 16, 3, dtype=torch.uint8), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="pixel_decoder"):
        build_world_model(
            load_config("wall", [*TINY, "model.encoder.type=state", "model.pixel_decoder=[8]"]).model,
            raw_action_dim=2,
            proprio_dim=2,
            frameskip=2,
        )


# ----- a tiny Push-T state model, end to end ----------------------------------------------------------------------
STATE_TINY = [*TINY, "data.val_fraction=0.34", "train.epochs=1"]


@pytest.fixture(scope="module")
def pusht_data(tmp_path_factory):
    from jepa_wms.datasets import collect

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pusht_state_data")
    return collect("pusht", 6, out, episode_len=40, workers=1, img_size=16, show_progress=False)


@pytest.fixture(scope="module")
def state_run(tmp_path_factory, pusht_data):
    """(checkpoint, train output folder) of a tiny state model trained while pixel reads raise."""
    from jepa_wms.datasets.storage import TrajectoryStore
    from jepa_wms.training import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pusht_state_train")
    with pytest.MonkeyPatch.context() as mp:
        load = TrajectoryStore._load

        def no_pixel_load(self, f, key):
            if key == "pixels":
                raise AssertionError("a state model must not load pixels into RAM")
            return load(self, f, key)

        def no_pixel_read(self, frames):
            raise AssertionError("a state model must not read pixels")

        mp.setattr(TrajectoryStore, "_load", no_pixel_load)
        mp.setattr(TrajectoryStore, "read_pixels", no_pixel_read)
        ckpt = train(load_config("pusht_state", STATE_TINY), pusht_data.parent, out, show_progress=False)
    return ckpt, out


def _features(states: np.ndarray) -> np.ndarray:
    """Push-T features by hand: (ax, ay, bx, by, cos θ, sin θ, vx, vy)."""
    s = np.asarray(states, dtype=np.float64)
    return np.concatenate([s[:, :4], np.cos(s[:, 4:5]), np.sin(s[:, 4:5]), s[:, 5:7]], axis=1)


def test_checkpoint_rebuilds_the_state_normalisation(state_run, pusht_data):
    from jepa_wms.datasets import TrajectoryStore

    ckpt, _ = state_run
    model, cfg, raw = load_world_model(ckpt)
    assert cfg.model.encoder.type == "state" and isinstance(model.encoder, StateEncoder)
    assert raw["model"]["encoder.feature_mean"].shape == (8,)
    feats = _features(TrajectoryStore(pusht_data).state)
    np.testing.assert_allclose(model.encoder.feature_mean.numpy(), feats.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(model.encoder.feature_std.numpy(), feats.std(0), rtol=1e-5, atol=1e-5)
    assert float(model.encoder.feature_std.min()) > 1e-3  # every feature varies in the data


def test_state_model_plans_on_normalised_env_states(state_run, tmp_path):
    from jepa_wms.envs import make_env
    from jepa_wms.evaluation import evaluate
    from jepa_wms.planning.dynamics import _observe

    ckpt, _ = state_run
    res = evaluate(ckpt, tmp_path / "eval", episodes=2, show_progress=False)
    assert res["episodes"] == 2
    rec = json.loads((tmp_path / "eval" / "episodes.jsonl").read_text().splitlines()[0])
    assert len(rec["states"]) == 31  # 30 env steps were planned and executed

    model, _, _ = load_world_model(ckpt)
    env = make_env("pusht", img_size=16)
    obs, info = env.reset(seed=3)
    # No pixels in the observation: a state model must not need them.
    latent = _observe(model, [{"proprio": obs["proprio"], "state": info["state"]}], torch.device("cpu"))
    mean, std = model.encoder.feature_mean.double().numpy(), model.encoder.feature_std.double().numpy()
    expected = (_features(info["state"][None]) - mean) / std
    assert latent.visual.shape == (1, 1, 1, 8)
    np.testing.assert_allclose(latent.visual[0, 0, 0].numpy(), expected[0], rtol=1e-4, atol=1e-4)


def test_garbage_pixels_give_identical_training(state_run, pusht_data, tmp_path, caplog):
    import logging

    from jepa_wms.training import train

    ckpt, out = state_run
    data = tmp_path / "garbage"
    data.mkdir()
    shutil.copy(pusht_data, data / pusht_data.name)
    with h5py.File(data / pusht_data.name, "r+") as f:
        f["pixels"][...] = np.random.default_rng(0).integers(0, 256, f["pixels"].shape, dtype=np.uint8)
    with caplog.at_level(logging.INFO, logger="jepa_wms"):
        again = train(load_config("pusht_state", STATE_TINY), data, tmp_path / "run", show_progress=False)
    assert "training from the dataset's /state rows" in caplog.text

    def losses(folder):
        with open(folder / "log.csv") as f:
            return [(r["step"], r["split"], r["loss"]) for r in csv.DictReader(f)]

    assert losses(out) == losses(tmp_path / "run") and len(losses(out)) > 2
    a, b = load_checkpoint(ckpt)["model"], load_checkpoint(again)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_state_models_have_no_latent_cache(state_run, pusht_data, tmp_path):
    from jepa_wms.datasets import TrajectoryStore
    from jepa_wms.datasets.latents import LatentCacheError
    from jepa_wms.training.encode import encode_dataset, resolve_latents

    model, cfg, _ = load_world_model(state_run[0])
    store = TrajectoryStore(pusht_data, preload=False)
    for setting in ("auto", "off"):
        assert resolve_latents(setting, store, model.encoder, cfg.model.encoder)[0] is None
    with pytest.raises(LatentCacheError, match="no latent cache"):
        resolve_latents(str(tmp_path), store, model.encoder, cfg.model.encoder)
    with pytest.raises(LatentCacheError, match="nothing to encode"):
        encode_dataset(cfg, pusht_data.parent, device="cpu", show_progress=False)
