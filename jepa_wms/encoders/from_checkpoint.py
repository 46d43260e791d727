"""A frozen encoder taken from one of our own training checkpoints (``model.encoder.type: checkpoint``).

``model.encoder.weights`` names a jepa-wms checkpoint; the architecture comes from that checkpoint's ``model.encoder``
config and the weights from the ``encoder.*`` entries of its ``model`` state dict. Only ``img_size``, ``embed_dim``,
``grid_size`` and ``trainable`` are read from the new config (the first three must agree with the checkpoint, as for a
DINOv2 preset). A world model trained on such an encoder stores the concrete encoder config under the checkpoint key
``encoder_source``, so it reloads, and chains of checkpoint encoders resolve, without the earlier files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint, load_state_strict
from jepa_wms.config import ConfigError, EncoderConfig, config_from_dict
from jepa_wms.encoders.base import Encoder

__all__ = ["build_checkpoint_encoder", "checkpoint_encoder_source", "encoder_config_from_dict", "encoder_source"]

_PREFIX = "encoder."


def encoder_config_from_dict(data: dict[str, Any], source: str | Path) -> EncoderConfig:
    """A stored ``model.encoder`` mapping -> validated ``EncoderConfig`` (errors name ``source``)."""
    try:
        return config_from_dict({"model": {"encoder": dict(data)}}).model.encoder
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{source}: stored encoder config cannot be read by this version: {exc}") from exc


def checkpoint_encoder_source(path: str | Path) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """The concrete encoder config and the ``encoder.*`` weights (prefix removed) of a training checkpoint."""
    ckpt = load_checkpoint(path)
    try:
        source = config_from_dict(ckpt["config"]).model.encoder
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} has a config this version cannot read: {exc}") from exc
    if source.type == "checkpoint":
        stored = ckpt.get("encoder_source")
        if not isinstance(stored, dict):
            raise CheckpointError(
                f"checkpoint {path} was trained on a checkpoint encoder but lacks 'encoder_source' "
                f"(the concrete encoder config); it cannot serve as an encoder source"
            )
        source = encoder_config_from_dict(stored, path)
    state = {k[len(_PREFIX) :]: v for k, v in ckpt["model"].items() if k.startswith(_PREFIX)}
    if not state:
        raise CheckpointError(f"checkpoint {path} has no '{_PREFIX}*' weights in its 'model' state dict")
    return source, state


def build_checkpoint_encoder(
    cfg: EncoderConfig, load_weights: bool = True, source: EncoderConfig | None = None
) -> Encoder:
    """The encoder stored in the checkpoint ``cfg.weights``, frozen unless ``cfg.trainable``.

    ``source`` is the concrete encoder config when the caller already knows it (a world-model checkpoint stores it);
    with ``load_weights=False`` as well, the source checkpoint is not read at all, so a trained world model whose
    weights already hold the encoder loads on a machine that lacks the source file.
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
    # Imported here: the registry dispatches to this module.
    from jepa_wms.encoders.registry import build_encoder

    encoder = build_encoder(source, load_weights=False)
    # The checkpoint fixes these; a config that says otherwise is a mistake, not something to override.
    for key, derived in (
        ("img_size", encoder.img_size),
        ("embed_dim", encoder.embed_dim),
        ("grid_size", encoder.grid_size[0]),
    ):
        if getattr(cfg, key) != derived:
            raise ValueError(
                f"model.encoder.{key}={getattr(cfg, key)} does not match the {source.type} encoder stored in "
                f"{cfg.weights} (which has {derived}); set model.encoder.{key}={derived}"
            )
    if state is not None:
        load_state_strict(encoder, state, f"{cfg.weights} (its '{_PREFIX}*' weights)")
    encoder.set_trainable(cfg.trainable)
    # Kept so a world model trained on this encoder can record it (train.py saves it as 'encoder_source').
    encoder.source_config = source
    return encoder


def encoder_source(encoder: Encoder, cfg: EncoderConfig) -> EncoderConfig:
    """The concrete config ``encoder`` was built from: ``cfg`` itself, or the source of a checkpoint encoder."""
    source = getattr(encoder, "source_config", None)
    return source if isinstance(source, EncoderConfig) else dataclasses.replace(cfg)
