import pytest
import torch

from jepa_wms.config import ConfigError, EncoderConfig, config_from_dict
from jepa_wms.encoders import (
    DINOV2_MODELS,
    DINOV3_MODELS,
    FOUNDATION_ENCODERS,
    VJEPA_MODELS,
    DinoV3Encoder,
    VJepaEncoder,
    build_dinov3,
    build_encoder,
)
from jepa_wms.encoders.registry import foundation_names, resolve_weights_spec

# The official download addresses (model cards / hub code of each project), written out in full.
OFFICIAL_URLS = {
    "dinov2_vits14": "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
    "dinov2_vitg14_reg": "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitg14/dinov2_vitg14_reg4_pretrain.pth",
    "dinov3_vits16": "https://dl.fbaipublicfiles.com/dinov3/dinov3_vits16/dinov3_vits16_pretrain_lvd1689m-08c60483.pth",
    "dinov3_vitl16": "https://dl.fbaipublicfiles.com/dinov3/dinov3_vitl16/dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth",
    "vjepa_vitl16": "https://dl.fbaipublicfiles.com/jepa/vitl16/vitl16.pth.tar",
    "vjepa2_vitl16": "https://dl.fbaipublicfiles.com/vjepa2/vitl.pt",
    "vjepa2_vitg16": "https://dl.fbaipublicfiles.com/vjepa2/vitg.pt",
}


def test_one_table_lists_every_foundation_name_with_its_family_and_url():
    assert set(FOUNDATION_ENCODERS) == {*DINOV2_MODELS, *DINOV3_MODELS, *VJEPA_MODELS}
    for name, url in OFFICIAL_URLS.items():
        assert FOUNDATION_ENCODERS[name].url == url
    assert foundation_names("vjepa2") == ["vjepa2_vitg16", "vjepa2_vitl16"]
    assert foundation_names("vjepa") == ["vjepa_vitl16"]
    assert foundation_names("dinov3") == ["dinov3_vitl16", "dinov3_vits16"]
    assert len(foundation_names("dinov2")) == 8
    assert resolve_weights_spec("vjepa2_vitg16", "official") == OFFICIAL_URLS["vjepa2_vitg16"]
    assert resolve_weights_spec("vjepa2_vitg16", "") is None
    assert resolve_weights_spec("vjepa2_vitg16", "/data/vitg.pt") == "/data/vitg.pt"


@pytest.mark.parametrize(
    ("family", "name", "img", "dim", "grid", "cls"),
    [
        ("dinov3", "dinov3_vitl16", 256, 1024, 16, DinoV3Encoder),
        ("vjepa2", "vjepa2_vitg16", 256, 1408, 16, VJepaEncoder),
        ("vjepa2", "vjepa2_vitl16", 128, 1024, 8, VJepaEncoder),
        ("vjepa", "vjepa_vitl16", 224, 1024, 14, VJepaEncoder),
    ],
)
def test_build_encoder_builds_every_family(family, name, img, dim, grid, cls):
    cfg = EncoderConfig(type=family, name=name, img_size=img, embed_dim=dim, grid_size=grid, weights="official")
    with torch.device("meta"):
        # load_weights=False: the architecture only, the official file is never looked up.
        encoder = build_encoder(cfg, load_weights=False)
    assert isinstance(encoder, cls) and encoder.embed_dim == dim and encoder.grid_size == (grid, grid)
    assert not encoder.trainable


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"type": "vjepa2", "name": "vjepa_vitl16"}, r"not a vjepa2 model; expected one of \['vjepa2_vitg16'"),
        ({"type": "dinov3", "name": "dinov2_vits14"}, "dinov3_vits16"),
        ({"type": "dinov3", "name": "dinov3_vitl16", "embed_dim": 384, "grid_size": 16}, "embed_dim=1024"),
        ({"type": "vjepa", "name": "vjepa_vitl16", "embed_dim": 1024, "grid_size": 16}, "grid_size=14"),
    ],
)
def test_name_family_and_size_mismatches_are_named(kwargs, needle):
    cfg = EncoderConfig(img_size=224, **kwargs)
    with torch.device("meta"), pytest.raises(ValueError, match=needle):
        build_encoder(cfg)


def test_official_weights_come_from_the_weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINED_CKPT_ROOT", str(tmp_path))
    torch.manual_seed(0)
    source = build_dinov3("dinov3_vits16", img_size=32)
    # As a user with access would have placed the gated file: under its official name, no download needed.
    torch.save(source.state_dict(), tmp_path / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth")
    torch.manual_seed(1)  # another random init: equal outputs can only come from the file
    cfg = EncoderConfig(
        type="dinov3", name="dinov3_vits16", img_size=32, embed_dim=384, grid_size=2, weights="official"
    )
    encoder = build_encoder(cfg)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(encoder(x), source(x), atol=0, rtol=0)


def test_config_accepts_the_new_encoder_types():
    cfg = config_from_dict({}, ["model.encoder.type=vjepa2", "model.encoder.name=vjepa2_vitg16"])
    assert cfg.model.encoder.type == "vjepa2"
    for family in ("dinov3", "vjepa"):
        assert config_from_dict({}, [f"model.encoder.type={family}"]).model.encoder.type == family
    with pytest.raises(ConfigError, match="vjepa2"):
        config_from_dict({}, ["model.encoder.type=vjepa3"])
