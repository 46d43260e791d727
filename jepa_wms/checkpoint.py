"""Checkpoints: atomic writes, ``weights_only`` loads, and errors that say which file is wrong and why.

A checkpoint is a plain dict of tensors and primitive types (so ``torch.load(weights_only=True)`` can read it):
``format``, ``format_version``, ``model_type``, ``config`` (the experiment config as a dict), ``env``, ``model``
(state dict), ``optimizer``, ``epoch`` (completed epochs), ``step`` (optimizer steps done), ``epoch_step`` (batches
of the next epoch done: a mid-epoch checkpoint; absent in older files: 0), ``dataset`` (its path and identity, which a
resume checks), ``objective``
(``world_model``, or ``pretrain_encoder`` for an encoder pretrained alone; absent in older files: a world model), and
for a model whose encoder came from another checkpoint ``encoder_source`` (that encoder's concrete ``model.encoder``
config).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import secrets
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = "jepa-wms-checkpoint"
CHECKPOINT_VERSION = 1
MODEL_TYPE = "jepa_wm"


class CheckpointError(ValueError):
    """A file that is not a usable jepa-wms checkpoint for the requested model."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file ``.NAME.*.tmp`` in the same folder, fsync, then rename: readers see the old or the
    new file. The file gets the mode ``open`` would give it (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would make results and checkpoints unreadable to the rest of a group.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporaries that ``atomic_write_bytes`` calls killed mid-write left in ``folder`` (each as large
    as its file). Only while holding the folder's lock (``runlock.folder_lock``): a live writer's would go too."""
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Save ``payload`` (model/optimizer state, config, counters) atomically with the format header."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "model_type": MODEL_TYPE,
            **payload,
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def refused_pickle_reason(exc: pickle.UnpicklingError) -> str:
    """What torch's ``weights_only`` unpickler refused, on one line: the global the file asks for (e.g.
    ``builtins.exec``) or the opcode. Torch's own message advises re-loading with ``weights_only=False``, which would
    run whatever the file holds, so it is never passed on."""
    text = str(exc)
    found = re.search(r"GLOBAL (\S+)", text)  # not allowed, or from a blocked module such as os
    if found:
        return f"global {found.group(1)}"
    lines = (line.replace("Weights only load failed.", "").strip() for line in text.splitlines())
    # What is left once torch's advice, its issue request and its documentation link are dropped.
    reason = [
        line
        for line in lines
        if line and "weights_only" not in line and not line.startswith(("Please file an issue", "Check the doc"))
    ]
    return reason[0] if reason else type(exc).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a jepa-wms checkpoint (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused ({refused_pickle_reason(exc)}): only tensors and plain containers are "
            f"loaded, never code"
        ) from exc
    except Exception as exc:  # the unpickler raises many types (KeyError, EOFError, RuntimeError, ...) on junk
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (truncated or corrupt?): {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a jepa-wms checkpoint: expected a dict with format={CHECKPOINT_FORMAT!r}, found {keys}"
        )
    if ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format_version {ckpt.get('format_version')}, "
            f"this jepa-wms reads {CHECKPOINT_VERSION}"
        )
    for key in ("model_type", "config", "model"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks the key '{key}'")
    if ckpt["model_type"] != MODEL_TYPE:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt['model_type']!r} model, expected {MODEL_TYPE!r}")
    return ckpt


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``load_state_dict(strict=True)`` with an error naming the file, the keys and both shapes."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append("shape mismatch " + "; ".join(mismatched[:3]))
        if missing:
            parts.append(f"missing keys {missing[:3]}{' …' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}{' …' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"checkpoint {source} does not fit this model: " + ", ".join(parts))
    module.load_state_dict(state, strict=True)


def load_world_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the world model stored in a training checkpoint.

    Returns ``(model, config, checkpoint)``: the model in eval mode with its weights and normalisation stats, the
    ``ExperimentConfig`` it was trained with, and the raw checkpoint dict (``env_kwargs``, ``epoch``, ...).
    """
    from .config import ConfigError, config_from_dict
    from .world_model import build_world_model

    ckpt = load_checkpoint(path, map_location)
    if ckpt.get("objective", "world_model") != "world_model":
        raise CheckpointError(
            f"checkpoint {path} holds a {ckpt['objective']!r} model, not a world model; its encoder can be used "
            f"frozen with model.encoder.type=checkpoint model.encoder.weights={path}"
        )
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} has a config this version cannot read: {exc}") from exc
    dims = ckpt.get("dims")
    if not isinstance(dims, dict) or not {"raw_action_dim", "proprio_dim"} <= set(dims):
        raise CheckpointError(f"checkpoint {path} lacks 'dims' (raw_action_dim, proprio_dim)")
    _check_env_dims(path, cfg.env, dims)
    encoder = None
    if cfg.model.encoder.type == "checkpoint":
        from .encoders.from_checkpoint import build_checkpoint_encoder, encoder_config_from_dict

        stored = ckpt.get("encoder_source")
        if not isinstance(stored, dict):
            raise CheckpointError(f"checkpoint {path} uses a checkpoint encoder but lacks 'encoder_source'")
        from .encoders.registry import apply_encoder_settings

        source = encoder_config_from_dict(stored, path)
        # The settings build_encoder applies in training, so the reloaded encoder computes the same latents.
        encoder = apply_encoder_settings(
            build_checkpoint_encoder(cfg.model.encoder, load_weights=False, source=source), cfg.model.encoder
        )
    # The state dict below holds the encoder weights: no weight file or URL is needed to rebuild the model.
    model = build_world_model(
        cfg.model,
        raw_action_dim=dims["raw_action_dim"],
        proprio_dim=dims["proprio_dim"],
        frameskip=cfg.data.frameskip,
        load_weights=False,
        encoder=encoder,
    )
    load_state_strict(model, ckpt["model"], path)
    return model.to(map_location).eval(), cfg, ckpt


def _check_env_dims(path: str | Path, env: str, dims: dict[str, Any]) -> None:
    """A registered env's action and proprio widths must be the model's, or planning fails on its first step.
    An env without a simulator (a released DROID model) has nothing to check against."""
    from .envs import env_spec

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
