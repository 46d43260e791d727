import pytest
import torch

from jepa_wms.checkpoint import load_checkpoint
from jepa_wms.config import EncoderConfig, load_config
from jepa_wms.encoders import ConvEncoder, DinoV2Encoder, build_encoder
from jepa_wms.evaluation import evaluate
from jepa_wms.saved_model import load_world_model
from jepa_wms.training import train
from tests.conftest import TINY

DINO = [
    "model.encoder.type=dinov2",
    "model.encoder.name=dinov2_vits14",
    "model.encoder.img_size=28",
    "model.encoder.embed_dim=384",
    "model.encoder.grid_size=2",
    "train.epochs=1",
]


def test_conv_and_dinov2_from_config():
    assert isinstance(build_encoder(EncoderConfig(img_size=32, channels=[8, 16, 32], grid_size=4)), ConvEncoder)
    enc = build_encoder(EncoderConfig(type="dinov2", name="dinov2_vits14", img_size=28, embed_dim=384, grid_size=2))
    assert isinstance(enc, DinoV2Encoder) and not enc.trainable and enc.grid_size == (2, 2)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"name": "dinov9"}, "dinov2_vits14"),
        ({"name": "dinov2_vits14", "embed_dim": 64}, "embed_dim=384"),
        ({"name": "dinov2_vits14", "embed_dim": 384, "grid_size": 4}, "grid_size=2"),
    ],
)
def test_dinov2_config_mismatch_is_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        build_encoder(EncoderConfig(type="dinov2", img_size=28, **kwargs))


def test_world_model_on_a_frozen_dinov2(tiny_dataset, tmp_path):
    """Train the AdaLN predictor on top of a frozen DINOv2 and plan with it: the encoder must not move."""
    cfg = load_config("wall", TINY + DINO)
    ckpt = train(cfg, tiny_dataset.parent, tmp_path / "run", show_progress=False)
    model, _, _ = load_world_model(ckpt)
    torch.manual_seed(0)
    fresh = build_encoder(cfg.model.encoder)
    state = load_checkpoint(ckpt)["model"]
    assert torch.equal(state["encoder.blocks.0.attn.qkv.weight"], fresh.state_dict()["blocks.0.attn.qkv.weight"])
    res = evaluate(ckpt, tmp_path / "eval", episodes=1, show_progress=False)
    assert res["episodes"] == 1
