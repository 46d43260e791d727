"""A model on disk: what its checkpoint holds (the schema, written only by ``model_payload``), ``save_world_model``
and ``load_world_model``. ``checkpoint.py`` is the file format underneath (header, atomic write, safe load).

A checkpoint of a model holds:

- ``objective``: ``world_model``, or ``pretrain_encoder`` for an encoder pretrained alone (``jepa-wms pretrain``);
  absent in older files: a world model
- ``config`` (the ``ExperimentConfig`` as a dict), ``env`` and ``env_kwargs`` (the env options it plans in)
- ``dims``: ``raw_action_dim`` and ``proprio_dim``, the env's action and proprio widths
- ``model``: the state dict; a world model's holds its encoder's weights, so no weight file is needed to reload it
- ``encoder_source``, for a model whose encoder came from another checkpoint: that encoder's concrete
  ``model.encoder`` config (``encoders/from_checkpoint.py`` reads it, and the config, for a checkpoint encoder)
- training state: ``optimizer``, ``epoch`` (completed epochs), ``step`` (optimizer steps done), ``epoch_step``
  (batches of the next epoch done: a mid-epoch checkpoint; absent in older files: 0) and ``dataset`` (its path and
  identity, which a resume checks)
- ``source``: where a converted model came from (``{"published_model": name}`` for a released one)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from .checkpoint import CheckpointError, load_checkpoint, load_state_strict, save_checkpoint
from .config import ExperimentConfig
from .encoders import build_encoder
from .encoders.from_checkpoint import stored_config, stored_encoder_source
from .envs import env_spec
from .world_model import WorldModel, build_world_model

__all__ = ["WORLD_MODEL", "load_world_model", "model_payload", "save_world_model", "saved_objective", "saved_progress"]

WORLD_MODEL = "world_model"


def model_payload(
    model: nn.Module,
    cfg: ExperimentConfig,
    *,
    raw_action_dim: int,
    proprio_dim: int,
    env_kwargs: Mapping[str, Any],
    objective: str = WORLD_MODEL,
    optimizer: Optimizer | None = None,
    dataset: Mapping[str, Any] | None = None,
    epoch: int = 0,
    step: int = 0,
    epoch_step: int = 0,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a checkpoint of ``model`` (a world model, or another objective's module with an ``encoder``)
    holds; ``epoch`` epochs and ``epoch_step`` batches of the next one done, ``step`` optimizer steps in all."""
    payload: dict[str, Any] = {
        "objective": objective,
        "config": cfg.to_dict(),
        "env": cfg.env,
        "env_kwargs": dict(env_kwargs),
        "dims": {"raw_action_dim": raw_action_dim, "proprio_dim": proprio_dim},
        "model": model.state_dict(),
        "epoch": epoch,
        "step": step,
        "epoch_step": epoch_step,
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if dataset is not None:
        payload["dataset"] = dict(dataset)
    if source is not None:
        payload["source"] = dict(source)
    if model.encoder.source_config is not None:
        # The architecture of an encoder taken from another checkpoint, so this one reloads without that file.
        payload["encoder_source"] = dataclasses.asdict(model.encoder.source_config)
    return payload


def save_world_model(path: str | Path, model: WorldModel, cfg: ExperimentConfig, **fields: Any) -> Path:
    """Write ``model`` as a checkpoint (atomically) that ``load_world_model`` and ``jepa-wms eval`` read; ``fields``
    are :func:`model_payload`'s keywords. Returns ``path``."""
    save_checkpoint(path, model_payload(model, cfg, **fields))
    return Path(path)


def saved_objective(ckpt: Mapping[str, Any]) -> str:
    """What the checkpoint's model was trained for (older files, which do not say, hold a world model)."""
    return ckpt.get("objective", WORLD_MODEL)


def saved_progress(ckpt: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(epoch, step, epoch_step)`` of a training checkpoint (older files have no ``epoch_step``: 0)."""
    return int(ckpt["epoch"]), int(ckpt["step"]), int(ckpt.get("epoch_step", 0))


def load_world_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[WorldModel, ExperimentConfig, dict[str, Any]]:
    """Rebuild the world model stored in a checkpoint.

    Returns ``(model, config, checkpoint)``: the model in eval mode with its weights and normalisation stats, the
    ``ExperimentConfig`` it was trained with, and the raw checkpoint dict (``env_kwargs``, ``epoch``, ...).
    """
    ckpt = load_checkpoint(path, map_location)
    objective = saved_objective(ckpt)
    if objective != WORLD_MODEL:
        raise CheckpointError(
            f"checkpoint {path} holds a {objective!r} model, not a world model; its encoder can be used "
            f"frozen with model.encoder.type=checkpoint model.encoder.weights={path}"
        )
    cfg = stored_config(ckpt, path)
    dims = ckpt.get("dims")
    if not isinstance(dims, dict) or not {"raw_action_dim", "proprio_dim"} <= set(dims):
        raise CheckpointError(f"checkpoint {path} lacks 'dims' (raw_action_dim, proprio_dim)")
    _check_env_dims(path, cfg.env, dims)
    encoder = None
    if cfg.model.encoder.type == "checkpoint":
        # From the stored source config: the source checkpoint itself may be gone.
        source = stored_encoder_source(ckpt, path, cfg.model.encoder)
        encoder = build_encoder(cfg.model.encoder, load_weights=False, source=source)
    # The state dict below holds the encoder weights: no weight file or URL is needed to rebuild the model.
    model = build_world_model(
        cfg.model,
        raw_action_dim=dims["raw_action_dim"],
        proprio_dim=dims["proprio_dim"],
        frameskip=cfg.data.frameskip,
        load_weights=False,
        encoder=encoder,
    )
    load_state_strict(model, ckpt["model"], path, "the world model its config describes")
    return model.to(map_location).eval(), cfg, ckpt


def _check_env_dims(path: str | Path, env: str, dims: dict[str, Any]) -> None:
    """A registered env's action and proprio widths must be the model's, or planning fails on its first step.
    An env without a simulator (a released DROID model) has nothing to check against."""
    try:
        spec = env_spec(env)
    except ValueError:
        return
    wrong = [
        f"{key} {dims[key]} (the env has {want})"
        for key, want in (("raw_action_dim", spec.action_dim), ("proprio_dim", spec.proprio_dim))
        if dims[key] != want
    ]
    if wrong:
        raise CheckpointError(f"checkpoint {path} is for env {env!r} but its model has " + " and ".join(wrong))
