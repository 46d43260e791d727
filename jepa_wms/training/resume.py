"""A run's checkpoint (the schema is ``saved_model.model_payload``'s), and the checks that make ``--resume`` continue
the same run.

A checkpoint records the optimizer state, the completed epochs, the optimizer steps and ``epoch_step``, the batches of
the current epoch already trained on (non-zero for a ``train.checkpoint_every`` checkpoint inside an epoch). Nothing
else is needed for a bit-exact resume: the data order comes from (seed, epoch), the loss's random draws from
(seed, step) and dropout's from (seed, rank, step) (``seed_step`` in ``train.py``), so no RNG state is saved.

A resume refuses another objective, another dataset, and any config key outside ``RESUME_MAY_CHANGE``: those define
the run (``train.seed`` also picks the train/validation split, ``train.batch_size`` the batches), and
``optim.weight_decay``/``optim.betas`` live in the saved optimizer state, which would silently override new values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.optim import Optimizer

from ..checkpoint import CheckpointError, load_checkpoint, load_state_strict
from ..config import ExperimentConfig
from ..datasets.latents import dataset_stamp
from ..datasets.sources import TrainingData
from ..encoders.from_checkpoint import stored_config
from ..saved_model import model_payload, saved_objective, saved_progress

# Keys (or "section." prefixes) a resume may change; README, "Training", lists them too.
RESUME_MAY_CHANGE = (
    "train.epochs",  # the learning-rate schedule stretches to the new length
    "train.max_steps",
    "train.device",
    "train.precision",
    "train.log_every",
    "train.keep_epoch_checkpoints",
    "train.checkpoint_every",
    "train.eval_every",  # evaluations during training do not change the weights
    "train.eval_mode",
    "train.eval_episodes",
    "data.preload",  # how the same windows are read
    "data.latents",
    # The schedule is recomputed every step: new values apply from the resumed step on.
    "optim.lr",
    "optim.min_lr",
    "optim.warmup_steps",
    "optim.schedule",
    "optim.grad_clip",
    "collect.",  # not read by training
    "plan.",
    "eval.",
)


def checkpoint_payload(
    model: nn.Module,
    opt: Optimizer,
    cfg: ExperimentConfig,
    store: TrainingData,
    objective: str,
    epoch: int,
    step: int,
    epoch_step: int,
) -> dict[str, Any]:
    """Everything a checkpoint of this run holds: ``epoch`` epochs and ``epoch_step`` batches of the next one,
    ``step`` in all."""
    return model_payload(
        model,
        cfg,
        raw_action_dim=store.action_dim,
        proprio_dim=store.proprio_dim,
        env_kwargs=store.env_kwargs,
        objective=objective,
        optimizer=opt,
        dataset={"path": str(store.path), **dataset_stamp(store)},
        epoch=epoch,
        step=step,
        epoch_step=epoch_step,
    )


def resume_from(
    path: Path, model: nn.Module, opt: Optimizer, cfg: ExperimentConfig, store: TrainingData, objective: str
) -> tuple[int, int, int]:
    """Load ``path`` into ``model`` and ``opt`` after checking that it is this run; returns
    ``(epoch, step, epoch_step)``."""
    ckpt = load_checkpoint(path)
    trained_for = saved_objective(ckpt)
    if trained_for != objective:
        raise CheckpointError(
            f"cannot resume from {path}: it was trained with objective {trained_for!r}, not {objective!r} "
            f"(train into a new --out folder)"
        )
    saved = ckpt.get("dataset", {})
    now = dataset_stamp(store)
    other = [f"{k} (checkpoint {saved[k]!r}, requested {v!r})" for k, v in now.items() if k in saved and saved[k] != v]
    if other:
        raise CheckpointError(
            f"cannot resume from {path}: it was trained on another dataset ({saved.get('path')}) than {store.path}: "
            f"{', '.join(other)}; train into a new --out folder"
        )
    changed = config_changes(stored_config(ckpt, path), cfg)
    if changed:
        raise CheckpointError(
            f"cannot resume from {path}: the requested config differs in {'; '.join(changed)}; a resume may change "
            f"only {', '.join(k + '*' if k.endswith('.') else k for k in RESUME_MAY_CHANGE)}: resume with the "
            f"checkpoint's values, or train into a new --out folder"
        )
    load_state_strict(model, ckpt["model"], path)
    opt.load_state_dict(ckpt["optimizer"])
    return saved_progress(ckpt)


def config_changes(saved: ExperimentConfig, requested: ExperimentConfig) -> list[str]:
    """``key (checkpoint X, requested Y)`` for every key outside ``RESUME_MAY_CHANGE`` whose value differs."""
    a, b = _flatten(saved.to_dict()), _flatten(requested.to_dict())
    keys = list(b) + [k for k in a if k not in b]
    return [
        f"{k} (checkpoint {a.get(k)!r}, requested {b.get(k)!r})"
        for k in keys
        if a.get(k) != b.get(k) and not any(k == s or (s.endswith(".") and k.startswith(s)) for s in RESUME_MAY_CHANGE)
    ]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


__all__ = ["RESUME_MAY_CHANGE", "checkpoint_payload", "config_changes", "resume_from"]
