import csv
import logging
import shutil

import numpy as np
import pytest
import torch

from jepa_wms.checkpoint import load_checkpoint
from jepa_wms.config import load_config
from jepa_wms.datasets import TrajectoryStore, WindowDataset
from jepa_wms.datasets.latents import LatentCache
from jepa_wms.runtime import seeded_generator
from jepa_wms.training import train
from jepa_wms.training.encode import encode_dataset
from jepa_wms.training.losses import world_model_loss
from jepa_wms.training.train import build_from_store
from tests.conftest import TINY


def _frozen_cfg(weights, *extra: str):
    return load_config("wall", [*TINY, "model.encoder.type=checkpoint", f"model.encoder.weights={weights}", *extra])


@pytest.fixture
def frozen(tiny_dataset, tiny_checkpoint, tmp_path):
    """(config with the frozen encoder of the tiny checkpoint, private dataset copy, its float32 latent cache)."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_dataset, data / tiny_dataset.name)
    cfg = _frozen_cfg(tiny_checkpoint)
    cache = LatentCache(encode_dataset(cfg, data, dtype="float32", device="cpu", show_progress=False))
    return cfg, data, cache


def test_loss_from_latents_equals_loss_from_pixels(frozen):
    cfg, data, cache = frozen
    store = TrajectoryStore(data)
    torch.manual_seed(0)
    model = build_from_store(cfg, store)
    rows = np.arange(8)
    pix = WindowDataset(store, cfg.data.num_frames, cfg.data.frameskip).get(rows)
    lat = WindowDataset(store, cfg.data.num_frames, cfg.data.frameskip, latents=cache).get(rows)
    a, sa = world_model_loss(model, pix, cfg.loss, seeded_generator(0, 3))
    b, sb = world_model_loss(model, lat, cfg.loss, seeded_generator(0, 3))
    assert a.item() > 0
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert sa.keys() == sb.keys()

    model.encoder.set_trainable(True)
    with pytest.raises(ValueError, match="frozen encoder"):
        world_model_loss(model, lat, cfg.loss, seeded_generator(0, 3))


def test_training_from_the_cache_matches_training_from_pixels(frozen, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jepa_wms")
    cfg, data, cache = frozen
    cached = train(cfg, data, tmp_path / "cached", show_progress=False)
    assert f"training from cached latents {cache.path}" in caplog.text
    caplog.clear()
    pixels = train(
        _frozen_cfg(cfg.model.encoder.weights, "data.latents=off"), data, tmp_path / "pixels", show_progress=False
    )
    assert "training from pixels (data.latents=off)" in caplog.text
    caplog.clear()

    def losses(run):
        with open(tmp_path / run / "log.csv") as f:
            return [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]

    assert len(losses("cached")) == 18
    np.testing.assert_allclose(losses("cached"), losses("pixels"), rtol=1e-4)
    a, b = load_checkpoint(cached)["model"], load_checkpoint(pixels)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-5, msg=k)

    # An explicit path works too, and resuming a cached run keeps using the cache.
    explicit = _frozen_cfg(cfg.model.encoder.weights, f"data.latents={cache.folder}", "train.epochs=1")
    train(explicit, data, tmp_path / "explicit", show_progress=False)
    more = _frozen_cfg(cfg.model.encoder.weights, f"data.latents={cache.folder}")
    train(more, data, tmp_path / "explicit", resume=True, show_progress=False)
    assert "resuming at epoch 1" in caplog.text
    resumed = load_checkpoint(tmp_path / "explicit" / "checkpoints" / "last.pt")["model"]
    for k in a:
        assert torch.equal(resumed[k], a[k]), k


def test_trainable_encoder_trains_from_pixels_and_refuses_a_cache_path(frozen, tmp_path):
    _, data, cache = frozen
    with pytest.raises(ValueError, match="needs a frozen encoder"):
        train(load_config("wall", TINY + [f"data.latents={cache.folder}"]), data, tmp_path / "x", show_progress=False)
