"""Encoder pretraining (``jepa-wms pretrain``): the loss falls, the checkpoint freezes into a world model, resume is
exact, bad configs name the key."""

import csv
import importlib

import numpy as np
import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jepa_wms.cli import main
from jepa_wms.config import load_config
from jepa_wms.datasets import TrajectoryStore
from jepa_wms.encoders import build_encoder
from jepa_wms.saved_model import load_world_model
from jepa_wms.training import train
from jepa_wms.training.pretrain import FrameAutoencoder, build_autoencoder, pretrain
from jepa_wms.world_model import build_world_model
from tests.conftest import TINY

PRETRAIN = [*TINY, "model.pixel_decoder=[8]", "loss.regularizer=none", "optim.warmup_steps=5"]


@pytest.fixture(scope="module")
def pretrained(tiny_dataset, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pretrain")
    cfg = load_config("wall", [*PRETRAIN, "train.epochs=4", "optim.lr=3e-3"])
    return pretrain(cfg, tiny_dataset.parent, out, show_progress=False)


def _rows(path, split):
    with open(path.parent.parent / "log.csv") as f:
        return [r for r in csv.DictReader(f) if r["split"] == split]


def test_reconstruction_loss_falls(pretrained):
    train_rows = _rows(pretrained, "train")
    first = np.mean([float(r["loss_recon"]) for r in train_rows[:3]])
    last = np.mean([float(r["loss_recon"]) for r in train_rows[-3:]])
    assert last < 0.5 * first, (first, last)
    val = [float(r["loss_recon"]) for r in _rows(pretrained, "val")]
    assert len(val) == 4 and val[-1] < val[0]
    ckpt = load_checkpoint(pretrained)
    assert ckpt["objective"] == "pretrain_encoder" and ckpt["epoch"] == 4
    assert {k.split(".")[0] for k in ckpt["model"]} == {"encoder", "pixel_decoder"}


def _frames(data_dir, n=10):
    store = TrajectoryStore(data_dir)
    return torch.from_numpy(store.read_pixels(np.arange(n)))[:, None]  # (n, 1, H, W, 3)


def test_checkpoint_is_a_frozen_checkpoint_encoder_with_the_same_latents(pretrained, tiny_dataset):
    ckpt = load_checkpoint(pretrained)
    autoencoder = build_autoencoder(load_config("wall", PRETRAIN))
    autoencoder.load_state_dict(ckpt["model"])
    frozen = build_encoder(
        load_config(
            "wall", [*TINY, "model.encoder.type=checkpoint", f"model.encoder.weights={pretrained}"]
        ).model.encoder
    )
    assert not frozen.trainable and not any(p.requires_grad for p in frozen.parameters())
    frames = _frames(tiny_dataset.parent)
    with torch.no_grad():
        torch.testing.assert_close(frozen.encode_frames(frames), autoencoder.encoder.encode_frames(frames))


def test_world_model_trains_on_the_frozen_pretrained_encoder(pretrained, tiny_dataset, tmp_path):
    cfg = load_config(
        "wall",
        [
            *TINY,
            "train.epochs=1",
            "model.encoder.type=checkpoint",
            f"model.encoder.weights={pretrained}",
            "loss.regularizer=none",
            "loss.target_stop_grad=true",
        ],
    )
    ckpt = train(cfg, tiny_dataset.parent, tmp_path / "wm", show_progress=False)
    model, _, _ = load_world_model(ckpt)
    source = load_checkpoint(pretrained)["model"]
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, source[f"encoder.{k}"]), k
    assert model.pixel_decoder is None


def test_pretrain_resume_after_kill_is_exact(tiny_dataset, tmp_path, monkeypatch):
    train_module = importlib.import_module("jepa_wms.training.train")  # the module (the package exports train())
    cfg = load_config("wall", [*PRETRAIN, "train.epochs=2"])  # warm-up ends in epoch 1: the cosine part matters
    full = pretrain(cfg, tiny_dataset.parent, tmp_path / "full", show_progress=False)
    save = train_module.save_checkpoint

    def save_then_die(path, payload):  # the process is killed right after the first epoch's checkpoint
        save(path, payload)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tiny_dataset.parent, tmp_path / "resumed", show_progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", save)
    assert load_checkpoint(tmp_path / "resumed/checkpoints/last.pt")["epoch"] == 1
    resumed = pretrain(cfg, tiny_dataset.parent, tmp_path / "resumed", resume=True, show_progress=False)
    a, b = load_checkpoint(full)["model"], load_checkpoint(resumed)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.pixel_decoder=[]"], "model.pixel_decoder"),
        (["model.encoder.type=state"], "model.encoder.type=state"),
        (["model.encoder.type=dinov2", "model.encoder.name=dinov2_vits14"], "model.encoder.trainable"),
        (["loss.recon_weight=0"], "loss.recon_weight"),
    ],
)
def test_bad_pretrain_config_names_the_key(overrides, needle, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        pretrain(
            load_config("wall", [*PRETRAIN, *overrides]), tiny_dataset.parent, tmp_path / "out", show_progress=False
        )
    assert not (tmp_path / "out").exists()


def test_cli_pretrain_error_names_the_key(tiny_dataset, tmp_path, capsys):
    code = main(["pretrain", "--config", "wall", "--data", str(tiny_dataset.parent), "--out", str(tmp_path), *TINY])
    assert code == 2
    assert "jepa-wms pretrain: error:" in capsys.readouterr().err and not (tmp_path / "log.csv").exists()


def test_a_pretrained_encoder_is_not_a_world_model(pretrained, tiny_dataset, tmp_path):
    with pytest.raises(CheckpointError, match="model.encoder.type=checkpoint"):
        load_world_model(pretrained)
    import shutil

    run = tmp_path / "run"
    shutil.copytree(pretrained.parent.parent, run)
    with pytest.raises(CheckpointError, match="objective 'pretrain_encoder'"):
        train(load_config("wall", PRETRAIN), tiny_dataset.parent, run, resume=True, show_progress=False)


def test_pusht_pretrained_preset_builds_on_a_pusht_quick_encoder(tmp_path):
    """The preset freezes a pusht_quick-shaped pretrained encoder and trains only the predictor."""
    source = load_config("pusht_quick", ["model.pixel_decoder=[64,64,32,32,16,16]"])
    autoencoder = build_autoencoder(source)
    path = tmp_path / "enc.pt"
    save_checkpoint(
        path, {"config": source.to_dict(), "model": autoencoder.state_dict(), "objective": "pretrain_encoder"}
    )
    cfg = load_config("pusht_pretrained", [f"model.encoder.weights={path}"])
    assert cfg.env == "pusht" and cfg.loss.regularizer == "none" and cfg.loss.target_stop_grad
    model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=4, frameskip=cfg.data.frameskip)
    assert not model.encoder.trainable and model.pixel_decoder is None
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert "encoder" not in trainable and "predictor" in trainable
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, autoencoder.encoder.state_dict()[k]), k
    assert isinstance(autoencoder, FrameAutoencoder)


def test_probe_script_reads_a_pretrained_encoder(pretrained, tiny_dataset):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from probe_latents import load_encoder

    autoencoder = build_autoencoder(load_config("wall", PRETRAIN))
    autoencoder.load_state_dict(load_checkpoint(pretrained)["model"])
    frames = _frames(tiny_dataset.parent)
    with torch.no_grad():
        torch.testing.assert_close(
            load_encoder(str(pretrained)).encode_frames(frames), autoencoder.encoder.encode_frames(frames)
        )


def test_source_output_norm_survives_freezing_training_and_reloading(tiny_dataset, tmp_path):
    """model.encoder.normalize_output of the pretrained encoder is part of it: the frozen encoder, the world model
    trained on it and that model reloaded all compute the same (layer-normed) latents."""
    source = load_config("wall", [*PRETRAIN, "model.encoder.normalize_output=true"])
    torch.manual_seed(0)
    autoencoder = build_autoencoder(source)
    path = tmp_path / "enc.pt"
    save_checkpoint(
        path, {"config": source.to_dict(), "model": autoencoder.state_dict(), "objective": "pretrain_encoder"}
    )
    frozen_cfg = [*TINY, "train.epochs=1", "model.encoder.type=checkpoint", f"model.encoder.weights={path}"]
    cfg = load_config("wall", [*frozen_cfg, "loss.regularizer=none", "loss.target_stop_grad=true"])
    assert not cfg.model.encoder.normalize_output
    frozen = build_encoder(cfg.model.encoder)
    model, _, _ = load_world_model(train(cfg, tiny_dataset.parent, tmp_path / "wm", show_progress=False))
    frames = _frames(tiny_dataset.parent)
    with torch.no_grad():
        expected = autoencoder.encoder.encode_frames(frames)
        torch.testing.assert_close(expected.std(-1, unbiased=False), torch.ones(expected.shape[:-1]), atol=1e-3, rtol=0)
        torch.testing.assert_close(frozen.encode_frames(frames), expected)
        torch.testing.assert_close(model.encoder.encode_frames(frames), expected)
