"""``build_encoder(cfg)``: the encoder a config names — a small conv encoder trained end to end, a keypoint
encoder (pretrained as a keypoint autoencoder), a frozen
foundation encoder (DINOv2, DINOv3, V-JEPA, V-JEPA 2) loaded from its official weight file, the frozen encoder
of a jepa-wms checkpoint (built here from the concrete config it was trained with: ``build_checkpoint_encoder``), or
the env's true state as normalised features (``state``, no pixels).

``FOUNDATION_ENCODERS`` is the one list of foundation names: family (the ``model.encoder.type`` it belongs to),
official weight URL (what ``model.encoder.weights: official`` downloads, see ``jepa_wms.weights``), token width and
patch size. The architectures themselves live in each family's module (``DINOV2_MODELS``, ``DINOV3_MODELS``,
``VJEPA_MODELS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jepa_wms.checkpoint import load_state_strict
from jepa_wms.config import EncoderConfig
from jepa_wms.encoders import dinov2, dinov3, vjepa
from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.conv import ConvEncoder
from jepa_wms.encoders.dinov2 import DINOV2_MODELS, build_dinov2
from jepa_wms.encoders.dinov3 import DINOV3_MODELS, build_dinov3
from jepa_wms.encoders.from_checkpoint import checkpoint_encoder_source
from jepa_wms.encoders.keypoints import KeypointEncoder
from jepa_wms.encoders.state import build_state_encoder
from jepa_wms.encoders.vjepa import VJEPA_MODELS, build_vjepa

_DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2"
# Gated: the files need a signed URL from https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/;
# the unsigned address is the official naming (hub/backbones.py), and the file name is what the cache expects.
_DINOV3_URL = "https://dl.fbaipublicfiles.com/dinov3"
_DINOV3_HASHES = {"dinov3_vits16": "08c60483", "dinov3_vitl16": "8aa4cbdd"}  # LVD-1689M pretrain files


@dataclass(frozen=True)
class FoundationEncoder:
    family: str  # the model.encoder.type this name belongs to
    url: str  # official weight file
    embed_dim: int  # token width D
    patch_size: int  # pixels per token side: an img_size-px frame gives (img_size / patch_size)² tokens


def _dinov2_url(name: str) -> str:
    base = name.removesuffix("_reg")
    return f"{_DINOV2_URL}/{base}/{base}{'_reg4' if name.endswith('_reg') else ''}_pretrain.pth"


_VJEPA_URLS = {
    "vjepa_vitl16": "https://dl.fbaipublicfiles.com/jepa/vitl16/vitl16.pth.tar",
    "vjepa2_vitl16": "https://dl.fbaipublicfiles.com/vjepa2/vitl.pt",
    "vjepa2_vitg16": "https://dl.fbaipublicfiles.com/vjepa2/vitg.pt",
}
FOUNDATION_ENCODERS: dict[str, FoundationEncoder] = {
    **{
        name: FoundationEncoder("dinov2", _dinov2_url(name), spec.embed_dim, dinov2.PATCH_SIZE)
        for name, spec in DINOV2_MODELS.items()
    },
    **{
        name: FoundationEncoder(
            "dinov3",
            f"{_DINOV3_URL}/{name}/{name}_pretrain_lvd1689m-{_DINOV3_HASHES[name]}.pth",
            spec.embed_dim,
            dinov3.PATCH_SIZE,
        )
        for name, spec in DINOV3_MODELS.items()
    },
    **{
        # The family is the name's prefix: vjepa or vjepa2.
        name: FoundationEncoder(name.split("_")[0], _VJEPA_URLS[name], spec.embed_dim, vjepa.PATCH_SIZE)
        for name, spec in VJEPA_MODELS.items()
    },
}

_BUILDERS: dict[str, Callable[..., Encoder]] = {
    "dinov2": build_dinov2,
    "dinov3": build_dinov3,
    "vjepa": build_vjepa,
    "vjepa2": build_vjepa,
}


def foundation_names(family: str) -> list[str]:
    """The foundation encoder names of one ``model.encoder.type``, sorted."""
    return sorted(name for name, entry in FOUNDATION_ENCODERS.items() if entry.family == family)


def resolve_weights_spec(name: str, weights: str) -> str | Path | None:
    """``model.encoder.weights`` as a builder takes it: "" -> None (random init), "official" -> the official URL."""
    if weights == "official":
        return FOUNDATION_ENCODERS[name].url
    return weights or None


def build_encoder(cfg: EncoderConfig, load_weights: bool = True, source: EncoderConfig | None = None) -> Encoder:
    """The encoder ``cfg`` names. ``load_weights=False`` builds the architecture without reading any weight file or
    URL, for callers that load a state dict already holding the weights (``load_world_model``). ``source``: see
    :func:`build_checkpoint_encoder` (``model.encoder.type: checkpoint`` only)."""
    if cfg.type == "checkpoint":
        encoder = build_checkpoint_encoder(cfg, load_weights, source)
    elif source is not None:
        raise ValueError(f"build_encoder: a source config is for model.encoder.type=checkpoint, not {cfg.type!r}")
    else:
        encoder = _build_architecture(cfg, load_weights)
    return apply_encoder_settings(encoder, cfg)


def build_checkpoint_encoder(
    cfg: EncoderConfig, load_weights: bool = True, source: EncoderConfig | None = None
) -> Encoder:
    """The encoder stored in the jepa-wms checkpoint ``cfg.weights``, frozen unless ``cfg.trainable``: built from
    its concrete source config (with the pixel settings it was trained with) and given the checkpoint's weights.

    ``source`` is that config when the caller already knows it (a world-model checkpoint stores it); with
    ``load_weights=False`` as well, the source checkpoint is not read at all, so a trained world model whose weights
    already hold the encoder loads on a machine that lacks the source file.
    """
    if cfg.type != "checkpoint":
        raise ValueError(f"build_checkpoint_encoder: model.encoder.type is {cfg.type!r}, expected 'checkpoint'")
    if not cfg.weights:
        raise ValueError(
            "model.encoder.type=checkpoint needs model.encoder.weights=<a jepa-wms training checkpoint, "
            "e.g. runs/demo/train/checkpoints/last.pt>"
        )
    state = None
    if load_weights or source is None:
        source, state = checkpoint_encoder_source(cfg.weights)
    if source.type == "checkpoint":
        raise ValueError(f"encoder source of {cfg.weights} must be a concrete encoder config, got type 'checkpoint'")
    # A concrete source: the recursion stops here, whatever chain of checkpoints led to it.
    encoder = build_encoder(source, load_weights=False)
    derived = {"img_size": encoder.img_size, "embed_dim": encoder.embed_dim, "grid_size": encoder.grid_size[0]}
    _check_fixed(cfg, derived, f"the {source.type} encoder stored in {cfg.weights}")
    if state is not None:
        load_state_strict(encoder, state, f"{cfg.weights} (its 'encoder.*' weights)", f"its {source.type} encoder")
    encoder.set_trainable(cfg.trainable)
    # Recorded so that a model trained on this encoder stores it (the checkpoint key 'encoder_source').
    encoder.source_config = source
    return encoder


def apply_encoder_settings(encoder: Encoder, cfg: EncoderConfig) -> Encoder:
    """``cfg``'s pixel normalisation and output norm on a built encoder (returned). A checkpoint encoder keeps its
    source's (what it was trained with) unless ``pixel_mean``/``pixel_std`` are given; ``normalize_output`` adds a
    norm, it never removes the source's."""
    if cfg.pixel_mean or cfg.pixel_std:
        if len(cfg.pixel_mean) != 3 or len(cfg.pixel_std) != 3 or min(cfg.pixel_std) <= 0:
            raise ValueError(
                "model.encoder.pixel_mean and pixel_std need 3 values each (std > 0), got "
                f"{cfg.pixel_mean} and {cfg.pixel_std}"
            )
        encoder.mean, encoder.std = tuple(cfg.pixel_mean), tuple(cfg.pixel_std)
    encoder.normalize_output = encoder.normalize_output or cfg.normalize_output
    return encoder


def _check_fixed(cfg: EncoderConfig, derived: dict[str, int], what: str) -> None:
    """The sizes a preset, checkpoint or state layout fixes: a config that says otherwise is a mistake, not
    something to override."""
    for key, value in derived.items():
        if getattr(cfg, key) != value:
            raise ValueError(
                f"model.encoder.{key}={getattr(cfg, key)} does not match {what} (which gives {value}); "
                f"set model.encoder.{key}={value}"
            )


def _build_architecture(cfg: EncoderConfig, load_weights: bool) -> Encoder:
    if cfg.type == "conv":
        return ConvEncoder(
            img_size=cfg.img_size,
            channels=tuple(cfg.channels),
            embed_dim=cfg.embed_dim,
            grid_size=cfg.grid_size,
            stem_patch=cfg.stem_patch,
        )
    if cfg.type == "keypoints":
        if cfg.grid_size != 1:
            raise ValueError("model.encoder.type=keypoints makes one token per frame; set model.encoder.grid_size=1")
        return KeypointEncoder(img_size=cfg.img_size, channels=tuple(cfg.channels), embed_dim=cfg.embed_dim)
    if cfg.type in _BUILDERS:
        entry = FOUNDATION_ENCODERS.get(cfg.name)
        if entry is None or entry.family != cfg.type:
            raise ValueError(
                f"model.encoder.name {cfg.name!r} is not a {cfg.type} model; expected one of "
                f"{foundation_names(cfg.type)}"
            )
        weights = resolve_weights_spec(cfg.name, cfg.weights) if load_weights else None
        encoder = _BUILDERS[cfg.type](cfg.name, img_size=cfg.img_size, trainable=cfg.trainable, weights=weights)
        derived = {"embed_dim": encoder.embed_dim, "grid_size": encoder.grid_size[0]}
        _check_fixed(cfg, derived, f"{cfg.name} at img_size {cfg.img_size}")
        return encoder
    if cfg.type == "state":
        if not cfg.state_features:
            raise ValueError(
                "model.encoder.type=state needs model.encoder.state_features=<env name> (a config loaded with "
                "load_config/config_from_dict fills it in from `env`)"
            )
        encoder = build_state_encoder(cfg.state_features, trainable=cfg.trainable)
        what = f"the {cfg.state_features!r} state features"
        _check_fixed(cfg, {"embed_dim": encoder.embed_dim, "grid_size": 1}, what)
        return encoder
    raise ValueError(
        f"unknown model.encoder.type {cfg.type!r}; expected 'conv', 'keypoints', 'checkpoint', 'state' or one of "
        f"{sorted(_BUILDERS)}"
    )
