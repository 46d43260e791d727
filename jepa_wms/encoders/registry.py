"""``build_encoder(cfg)``: the encoder a config names — a small conv encoder trained end to end, or a frozen
foundation encoder (DINOv2) loaded from its official weight file."""

from __future__ import annotations

from jepa_wms.config import EncoderConfig
from jepa_wms.encoders.base import Encoder
from jepa_wms.encoders.conv import ConvEncoder
from jepa_wms.encoders.dinov2 import DINOV2_MODELS, build_dinov2


def build_encoder(cfg: EncoderConfig) -> Encoder:
    if cfg.type == "conv":
        return ConvEncoder(
            img_size=cfg.img_size,
            channels=tuple(cfg.channels),
            embed_dim=cfg.embed_dim,
            grid_size=cfg.grid_size,
            stem_patch=cfg.stem_patch,
        )
    if cfg.type == "dinov2":
        if cfg.name not in DINOV2_MODELS:
            raise ValueError(
                f"model.encoder.name {cfg.name!r} is not a DINOv2 model; expected one of {sorted(DINOV2_MODELS)}"
            )
        encoder = build_dinov2(cfg.name, img_size=cfg.img_size, trainable=cfg.trainable, weights=cfg.weights or None)
        # The preset fixes width and grid; a config that says otherwise is a mistake, not something to override.
        for key, derived in (("embed_dim", encoder.embed_dim), ("grid_size", encoder.grid_size[0])):
            if getattr(cfg, key) != derived:
                raise ValueError(
                    f"model.encoder.{key}={getattr(cfg, key)} does not match {cfg.name} at img_size {cfg.img_size} "
                    f"(which gives {derived}); set model.encoder.{key}={derived}"
                )
        return encoder
    raise ValueError(f"unknown model.encoder.type {cfg.type!r}; expected 'conv' or 'dinov2'")
