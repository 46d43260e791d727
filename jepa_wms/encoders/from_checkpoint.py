"""Reading the encoder of one of our own training checkpoints (``model.encoder.type: checkpoint``).

``model.encoder.weights`` names a jepa-wms checkpoint; the architecture comes from that checkpoint's ``model.encoder``
config and the weights from the ``encoder.*`` entries of its ``model`` state dict (``registry.build_checkpoint_encoder``
builds it). A model trained on such an encoder stores the concrete encoder config under the checkpoint key
``encoder_source``, so it reloads, and chains of checkpoint encoders resolve, without the earlier files. These are the
parts of a checkpoint the encoders read; ``saved_model.py`` holds the whole schema and writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint
from jepa_wms.config import ConfigError, EncoderConfig, ExperimentConfig, config_from_dict

__all__ = ["checkpoint_encoder_source", "encoder_config_from_dict", "stored_config", "stored_encoder_source"]

_PREFIX = "encoder."


def encoder_config_from_dict(data: dict[str, Any], source: str | Path) -> EncoderConfig:
    """A stored ``model.encoder`` mapping -> validated ``EncoderConfig`` (errors name ``source``)."""
    try:
        return config_from_dict({"model": {"encoder": dict(data)}}).model.encoder
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{source}: stored encoder config cannot be read by this version: {exc}") from exc


def stored_config(ckpt: dict[str, Any], path: str | Path) -> ExperimentConfig:
    """A checkpoint's ``config`` as an ``ExperimentConfig`` (CheckpointError naming ``path`` if this version cannot
    read it)."""
    try:
        return config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} has a config this version cannot read: {exc}") from exc


def stored_encoder_source(ckpt: dict[str, Any], path: str | Path, encoder: EncoderConfig) -> EncoderConfig:
    """The concrete config of the encoder a checkpoint's model was built on, ``encoder`` being its config's
    ``model.encoder``: that config itself, or for a checkpoint encoder the stored ``encoder_source``."""
    if encoder.type != "checkpoint":
        return encoder
    stored = ckpt.get("encoder_source")
    if not isinstance(stored, dict):
        raise CheckpointError(
            f"checkpoint {path} was trained on a checkpoint encoder but lacks 'encoder_source' (the concrete "
            f"encoder config)"
        )
    return encoder_config_from_dict(stored, path)


def checkpoint_encoder_source(path: str | Path) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """The concrete encoder config and the ``encoder.*`` weights (prefix removed) of a training checkpoint."""
    ckpt = load_checkpoint(path)
    source = stored_encoder_source(ckpt, path, stored_config(ckpt, path).model.encoder)
    state = {k[len(_PREFIX) :]: v for k, v in ckpt["model"].items() if k.startswith(_PREFIX)}
    if not state:
        raise CheckpointError(f"checkpoint {path} has no '{_PREFIX}*' weights in its 'model' state dict")
    return source, state
