"""``train(cfg, data_dir, out_dir)``: the training program, top to bottom.

set-up → data → the run folder's lock → model → optimizer → resume → loop over epochs (lr → seed dropout → forward
under autocast → NaN check → backward → all-reduce (DDP) → clip → step → log → checkpoint every
``train.checkpoint_every`` steps) → validation → atomic checkpoint → a planning evaluation every ``train.eval_every``
epochs (``auto_eval.py``). All randomness comes from generators seeded by (seed, epoch) or (seed, step)
(``resume.py``), so a run resumed from any checkpoint produces the same weights as an uninterrupted one. Launch with
``torchrun --nproc-per-node N`` to train data-parallel.

The data is our HDF5 file or, read without conversion, a DROID-raw or LeRobot video folder (``datasets/sources.py``:
``data.layout``, ``data.reader_options``); `WindowDataset` cuts both into the same batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checkpoint import atomic_write_bytes, remove_stale_temporaries, save_checkpoint
from ..config import ExperimentConfig
from ..datasets import TrajectoryStore, WindowDataset, split_episodes
from ..datasets.sources import TrainingData, open_dataset, training_action_stats
from ..runlock import folder_lock
from ..runtime import autocast, distributed, resolve_device, resolve_dtype, seeded_generator
from ..world_model import WorldModel, build_world_model
from .auto_eval import AutoEval, check_auto_eval, epoch_checkpoint, group_timeout
from .encode import resolve_latents
from .logger import RunLogger
from .losses import world_model_loss
from .optim import build_optimizer, lr_at
from .resume import checkpoint_payload, resume_from

if TYPE_CHECKING:
    from ..slurm import SlurmOptions

# Not `logger`: that name is the run's CSV/TensorBoard logger below.
_log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def build_from_store(cfg: ExperimentConfig, store: TrainingData) -> WorldModel:
    """The model ``cfg`` describes, with the dataset's normalisation stats (a state encoder's too, from ``/state``)."""
    a, p = training_action_stats(cfg.data, store), store.proprio_stats
    model = build_world_model(
        cfg.model,
        raw_action_dim=store.action_dim,
        proprio_dim=store.proprio_dim,
        frameskip=cfg.data.frameskip,
        action_mean=torch.as_tensor(a.mean),
        action_std=torch.as_tensor(a.std),
        proprio_mean=torch.as_tensor(p.mean),
        proprio_std=torch.as_tensor(p.std),
    )
    if model.observation_key == "state":
        # Over every frame, as the writer computes the action/proprio stats; the buffers travel in the checkpoint.
        model.encoder.fit(store.state)
    return model


@dataclasses.dataclass(frozen=True)
class Objective:
    """What ``train`` optimises: the model it builds, its loss on a batch, and the windows that batch holds.

    The loop, schedule, validation, logs, checkpoints, resume and NaN check are the same for every objective; a
    checkpoint records ``objective`` (its name), so a world model and, e.g., a pretrained encoder are not confused.
    """

    name: str
    build: Callable[[ExperimentConfig, TrainingData], nn.Module]  # needs num_parameters(), observation_key
    loss: Callable[[nn.Module, dict, ExperimentConfig, torch.Generator], tuple[torch.Tensor, dict[str, float]]]
    window: Callable[[ExperimentConfig], tuple[int, int]]  # (frames per window, frameskip)
    latents: bool = True  # may train from a `jepa-wms encode` cache (a frozen encoder's)


WORLD_MODEL = Objective(
    "world_model",
    build_from_store,
    lambda model, batch, cfg, generator: world_model_loss(model, batch, cfg.loss, generator),
    lambda cfg: (cfg.data.num_frames, cfg.data.frameskip),
)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _all_reduce_grads(model: torch.nn.Module, world: int) -> None:
    # Plain gradient averaging: the loss is computed through several sub-modules, which DDP's forward hook would
    # not see; a flat all-reduce per step is what DDP does anyway.
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def _validate(
    model, val: WindowDataset, cfg: ExperimentConfig, device, dtype, objective: Objective, max_batches: int = 4
) -> dict:
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    batch_size = min(cfg.train.batch_size, len(val))
    for i, batch in enumerate(val.batches(batch_size, epoch=0, seed=cfg.train.seed)):
        if i >= max_batches:
            break
        with autocast(device, dtype):
            _, stats = objective.loss(model, _to_device(batch, device), cfg, seeded_generator(cfg.train.seed, i))
        for k, v in stats.items():
            totals[k] = totals.get(k, 0.0) + v
        n += 1
    model.train()
    return {k: v / n for k, v in totals.items()} if n else {}


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed the global torch RNGs (CPU and every GPU), which dropout draws from, from (seed, rank, step).

    Derived per step rather than saved in checkpoints: a resume from any checkpoint replays the same dropout masks,
    and every DDP rank draws its own, without gathering per-rank RNG states.
    """
    mixed = np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(1, dtype=np.uint64)[0]
    torch.manual_seed(int(mixed) & 0x7FFF_FFFF_FFFF_FFFF)


def train(
    cfg: ExperimentConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    show_progress: bool = True,
    objective: Objective = WORLD_MODEL,
    slurm: SlurmOptions | None = None,
) -> Path:
    """Train a world model (or another ``objective``) on the dataset in ``data_dir``; checkpoints go to
    ``out_dir/checkpoints/last.pt``. ``slurm``: the resources of the SLURM job this runs in, which
    ``train.eval_mode=separate`` evaluations are submitted with."""
    check_auto_eval(cfg, objective.name)  # before hours of training
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    device = resolve_device(cfg.train.device)
    dtype = resolve_dtype(cfg.train.precision, device, training=True)

    with distributed(device, group_timeout(cfg)) as (rank, world), contextlib.ExitStack() as held:
        # ----- data -----
        preload = {"auto": "auto", "true": True, "false": False}[cfg.data.preload]
        num_frames, frameskip = objective.window(cfg)
        # Pixels go to RAM only once it is known that no latent cache replaces them (see below).
        store = open_dataset(data_dir, cfg.data, img_size=cfg.model.encoder.img_size, frameskip=frameskip)
        if store.env != cfg.env:
            raise ValueError(f"dataset {store.path} was collected on env {store.env!r} but the config says {cfg.env!r}")
        train_eps, val_eps = split_episodes(store.num_episodes, cfg.data.val_fraction, cfg.train.seed)
        train_set = WindowDataset(store, num_frames, frameskip, train_eps)
        steps_per_epoch = train_set.steps_per_epoch(cfg.train.batch_size)
        if steps_per_epoch == 0:
            raise ValueError(
                f"dataset {store.path} has {len(train_set)} training windows, fewer than one batch of "
                f"{cfg.train.batch_size}: collect more episodes or lower train.batch_size"
            )
        total_steps = cfg.train.epochs * steps_per_epoch
        if cfg.train.max_steps:
            total_steps = min(total_steps, cfg.train.max_steps)

        # ----- the run folder: one process at a time (rank 0 holds the lock for all ranks) -----
        if rank == 0:
            held.enter_context(folder_lock(out_dir))
            remove_stale_temporaries(out_dir)
            remove_stale_temporaries(ckpt_path.parent)
        if ckpt_path.exists() and not resume:
            raise FileExistsError(f"{ckpt_path} already exists: pass --resume to continue it, or choose another --out")

        # ----- model and optimizer -----
        torch.manual_seed(cfg.train.seed)
        model = objective.build(cfg, store).to(device)
        opt = build_optimizer(model, cfg.optim)
        epoch, step, epoch_step = 0, 0, 0
        if resume and ckpt_path.exists():
            epoch, step, epoch_step = resume_from(ckpt_path, model, opt, cfg, store, objective.name)
        # A frozen encoder's latents can come from a `jepa-wms encode` cache instead of encoding pixels every step.
        # The pixel decoder's reconstruction term needs the frames themselves.
        setting = "off" if cfg.model.pixel_decoder and cfg.data.latents == "auto" else cfg.data.latents
        setting = setting if objective.latents else "off"
        latents, latents_note = resolve_latents(setting, store, model.encoder, cfg.model.encoder)
        # A state encoder reads the /state rows (always in RAM): its windows never touch the pixels.
        pixels = model.observation_key == "pixels"
        if latents is None and pixels and preload is not False and isinstance(store, TrajectoryStore):
            store.close()
            store = TrajectoryStore(data_dir, preload=preload)
        windows = {"latents": latents, "pixels": pixels, "action_stats": training_action_stats(cfg.data, store)}
        train_set = WindowDataset(store, num_frames, frameskip, train_eps, **windows)
        val_set = WindowDataset(store, num_frames, frameskip, val_eps, **windows)
        logger = RunLogger(out_dir, enabled=rank == 0)
        held.callback(logger.close)
        logger.truncate_after(step)
        if rank == 0:
            atomic_write_bytes(out_dir / "config.yaml", _yaml(cfg).encode())
            resuming = f", resuming at epoch {epoch}" + (f" batch {epoch_step}" if epoch_step else "")
            _log.info(
                f"[train] {model.num_parameters():,} trainable parameters, {len(train_set):,} windows, "
                f"{steps_per_epoch} steps/epoch × {cfg.train.epochs} epochs"
                + (f" (capped at {total_steps} steps)" if total_steps < cfg.train.epochs * steps_per_epoch else "")
                + f", {device} {str(dtype)[6:]}"
                + (resuming if step else "")
            )
            _log.info(f"[train] {latents_note}")
        auto_eval = AutoEval(cfg, out_dir, steps_per_epoch, device, logger, slurm)
        auto_eval.start(epoch)

        # ----- loop -----
        model.train()
        while epoch < cfg.train.epochs and step < total_steps:
            bar = tqdm(
                total=steps_per_epoch,
                initial=epoch_step,
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                disable=not show_progress or rank != 0,
                leave=False,
            )
            t_last, samples = time.perf_counter(), 0
            batches = train_set.batches(cfg.train.batch_size, epoch, cfg.train.seed, rank, world, start=epoch_step)
            for batch in batches:
                lr = lr_at(step, total_steps, cfg.optim)
                for group in opt.param_groups:
                    group["lr"] = lr
                seed_step(cfg.train.seed, rank, step)
                with autocast(device, dtype):
                    loss, stats = objective.loss(
                        model, _to_device(batch, device), cfg, seeded_generator(cfg.train.seed, step)
                    )
                if not math.isfinite(stats["loss"]):
                    raise TrainingError(
                        f"loss became {stats['loss']} at step {step} (epoch {epoch}); the last good checkpoint is "
                        f"{ckpt_path if ckpt_path.exists() else 'not written yet'}. Lower optim.lr or check the data."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:
                    _all_reduce_grads(model, world)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
                )
                opt.step()
                step += 1
                epoch_step += 1
                samples += cfg.train.batch_size
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", std=f"{stats.get('latent_std', 0):.2f}")
                if step % cfg.train.log_every == 0:
                    now = time.perf_counter()
                    stats.update(lr=lr, grad_norm=float(grad_norm), samples_per_s=samples / (now - t_last))
                    t_last, samples = now, 0
                    logger.log(step, epoch, "train", stats)
                every = cfg.train.checkpoint_every
                # The epoch's last step is checkpointed below, after validation.
                if rank == 0 and every and step % every == 0 and epoch_step < steps_per_epoch:
                    save_checkpoint(
                        ckpt_path, checkpoint_payload(model, opt, cfg, store, objective.name, epoch, step, epoch_step)
                    )
                if step >= total_steps:
                    break
            bar.close()
            # train.max_steps may end the run inside an epoch: the checkpoint then records the batches done.
            whole = epoch_step >= steps_per_epoch
            if whole:
                epoch, epoch_step = epoch + 1, 0
            if rank == 0:
                val_stats = _validate(model, val_set, cfg, device, dtype, objective)
                logger.log(step, epoch, "val", val_stats)
                payload = checkpoint_payload(model, opt, cfg, store, objective.name, epoch, step, epoch_step)
                if whole and (cfg.train.keep_epoch_checkpoints or auto_eval.due(epoch)):
                    # Before last.pt: a kill between the two redoes the epoch, which writes this file again.
                    save_checkpoint(epoch_checkpoint(out_dir, epoch), payload)
                save_checkpoint(ckpt_path, payload)
                _log.info(
                    f"[train] epoch {epoch}/{cfg.train.epochs} step {step} "
                    + " ".join(f"val_{k}={v:.4f}" for k, v in val_stats.items() if k.startswith("loss"))
                )
            if whole:
                auto_eval.epoch_end(epoch)
        auto_eval.finish()
    return ckpt_path


def _yaml(cfg: ExperimentConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


__all__ = ["WORLD_MODEL", "Objective", "TrainingError", "build_from_store", "train"]
