import dataclasses
import shutil

import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jepa_wms.config import EncoderConfig, load_config
from jepa_wms.encoders import ConvEncoder, build_encoder
from jepa_wms.saved_model import load_world_model
from jepa_wms.training import train
from jepa_wms.weights import WeightsUnavailableError
from jepa_wms.world_model import build_world_model
from tests.conftest import TINY


def _checkpoint_cfg(path, **kw) -> EncoderConfig:
    return EncoderConfig(type="checkpoint", weights=str(path), img_size=16, embed_dim=8, grid_size=4, **kw)


def test_encoder_round_trip_from_a_training_checkpoint(tiny_checkpoint):
    enc = build_encoder(_checkpoint_cfg(tiny_checkpoint))
    assert isinstance(enc, ConvEncoder) and not enc.trainable and not enc.training
    assert not any(p.requires_grad for p in enc.parameters())
    stored = load_checkpoint(tiny_checkpoint)["model"]
    own = enc.state_dict()
    assert own.keys() == {k[len("encoder.") :] for k in stored if k.startswith("encoder.")}
    for k, v in own.items():
        assert torch.equal(v, stored[f"encoder.{k}"]), k
    model, _, _ = load_world_model(tiny_checkpoint)
    pixels = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
    torch.testing.assert_close(enc.encode_frames(pixels), model.encoder.encode_frames(pixels))
    assert build_encoder(_checkpoint_cfg(tiny_checkpoint, trainable=True)).trainable


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("embed_dim", 64, "set model.encoder.embed_dim=8"),
        ("grid_size", 2, "set model.encoder.grid_size=4"),
        ("img_size", 32, "set model.encoder.img_size=16"),
    ],
)
def test_config_mismatch_names_the_value_to_set(tiny_checkpoint, key, value, needle):
    cfg = dataclasses.replace(_checkpoint_cfg(tiny_checkpoint), **{key: value})
    with pytest.raises(ValueError, match=needle):
        build_encoder(cfg)


def test_missing_or_foreign_source(tmp_path):
    with pytest.raises(ValueError, match="model.encoder.weights"):
        build_encoder(EncoderConfig(type="checkpoint", img_size=16, embed_dim=8, grid_size=4))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_encoder(_checkpoint_cfg(tmp_path / "nope.pt"))
    save_checkpoint(tmp_path / "empty.pt", {"model": {"predictor.w": torch.zeros(1)}, "config": {}})
    with pytest.raises(CheckpointError, match="no 'encoder.\\*' weights"):
        build_encoder(_checkpoint_cfg(tmp_path / "empty.pt"))


def test_world_model_on_a_checkpoint_encoder_loads_without_the_source(tiny_dataset, tiny_checkpoint, tmp_path):
    source = tmp_path / "source.pt"
    shutil.copy(tiny_checkpoint, source)
    over = ["model.encoder.type=checkpoint", f"model.encoder.weights={source}", "train.epochs=1"]
    ckpt = train(load_config("wall", TINY + over), tiny_dataset.parent, tmp_path / "run", show_progress=False)
    trained = load_checkpoint(ckpt)["model"]
    src = load_checkpoint(source)["model"]
    assert torch.equal(trained["encoder.head.weight"], src["encoder.head.weight"]), "the encoder stayed frozen"
    source.unlink()  # e.g. a run copied to another machine

    model, cfg, _ = load_world_model(ckpt)
    assert cfg.model.encoder.type == "checkpoint" and not model.encoder.trainable
    assert torch.equal(model.encoder.head.weight, src["encoder.head.weight"])
    # A chain: this world model's encoder serves as the source of the next one, still without the first file.
    chained = build_encoder(_checkpoint_cfg(ckpt))
    assert torch.equal(chained.head.weight, src["encoder.head.weight"])


def test_load_world_model_never_fetches_encoder_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINED_CKPT_ROOT", str(tmp_path / "hub"))
    dino = [
        "model.encoder.type=dinov2",
        "model.encoder.name=dinov2_vits14",
        "model.encoder.img_size=28",
        "model.encoder.embed_dim=384",
        "model.encoder.grid_size=2",
    ]
    model = build_world_model(load_config("wall", TINY + dino).model, raw_action_dim=2, proprio_dim=2, frameskip=2)
    for weights in ("/nowhere/dinov2_vits14.pth", "http://127.0.0.1:9/dinov2_vits14_pretrain.pth"):
        cfg = load_config("wall", TINY + dino + [f"model.encoder.weights={weights}"])
        with pytest.raises(WeightsUnavailableError):
            build_encoder(cfg.model.encoder)
        dims = {"raw_action_dim": 2, "proprio_dim": 2}
        save_checkpoint(tmp_path / "wm.pt", {"model": model.state_dict(), "config": cfg.to_dict(), "dims": dims})
        loaded, _, _ = load_world_model(tmp_path / "wm.pt")
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
