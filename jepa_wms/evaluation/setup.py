"""What an evaluation plans with: a checkpoint's world model, or the true simulator (``plan.model=simulator``).

Typed values only: the protocol comes as ``PlanConfig``/``EvalConfig`` sections or a whole ``ExperimentConfig``
(``evaluate`` turns ``key=value`` strings into them). The simulator oracle takes the action (and proprio)
statistics of the data the planner's search space is normalised by: the checkpoint's when there is one, else those
of a dataset (``data``, or one collected on the fly into ``OUT/data`` with the config's ``collect`` settings), which
also serves ``dset`` goals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import EvalConfig, ExperimentConfig, PlanConfig, config_from_dict
from ..planning.simulator import SimulatorModel
from ..runtime import on_rank0
from ..saved_model import load_world_model

__all__ = ["EvalSetup", "TrainedModel", "checkpoint_setup", "load_trained", "simulator_setup", "zero_shot"]


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's world model with what evaluation reads from the file: the training config (its ``plan`` and
    ``eval`` sections are the protocol unless the caller gives others), env options and training dataset."""

    path: Path
    model: Any
    cfg: ExperimentConfig
    env_kwargs: dict[str, Any]
    dataset: str
    device: torch.device


@dataclass(frozen=True)
class EvalSetup:
    """The planning model (a `WorldModel` or a `SimulatorModel`), its config, the env options, the dataset the
    goals may come from, what identifies the model in the result folder's fingerprint, the device it runs on and
    the checkpoint it came from (None for the simulator alone)."""

    model: Any
    cfg: ExperimentConfig
    env_kwargs: dict[str, Any]
    dataset: str
    identity: dict[str, Any]
    device: torch.device
    checkpoint: Path | None = None


def load_trained(checkpoint: str | Path, device: torch.device) -> TrainedModel:
    """Load ``checkpoint``'s world model onto ``device``."""
    model, cfg, ckpt = load_world_model(checkpoint, device)
    dataset = ckpt.get("dataset", {}).get("path", "")
    return TrainedModel(Path(checkpoint), model, cfg, dict(ckpt.get("env_kwargs", cfg.env_kwargs)), dataset, device)


def zero_shot(trained: TrainedModel, env: str) -> TrainedModel:
    """``trained`` set to plan in ``env``, an env it was not trained on (e.g. a DROID model in the franka-tabletop
    stand-in): the env's default options, its own goals, and its reference protocol's plan settings
    (``EnvSpec.plan``) over the checkpoint's. The model's actions (and proprio, when it reads it) must have the
    env's width: the DROID pose actions are the stand-in's."""
    from ..envs import env_spec

    if env == trained.cfg.env:
        return trained
    spec, model = env_spec(env), trained.model
    if model.action_mean.numel() != spec.action_dim:
        raise ValueError(
            f"evaluate: {trained.path} was trained on {model.action_mean.numel()}-D actions ({trained.cfg.env}); "
            f"{env} takes {spec.action_dim}-D"
        )
    if model.uses_proprio and model.proprio_mean.numel() != spec.proprio_dim:
        raise ValueError(
            f"evaluate: {trained.path} reads {model.proprio_mean.numel()}-D proprio; {env} gives {spec.proprio_dim}-D"
        )
    cfg = trained.cfg.to_dict()
    cfg.update(env=env, env_kwargs={})
    cfg["plan"].update(spec.plan)
    cfg["eval"].update(goal_source="env", goal_dataset="")
    return dataclasses.replace(trained, cfg=config_from_dict(cfg), env_kwargs={}, dataset="")


def checkpoint_setup(
    trained: TrainedModel, plan: PlanConfig, eval_config: EvalConfig, *, data: str | Path | None = None
) -> EvalSetup:
    """Plan with ``trained`` under the protocol ``plan``/``eval_config`` (a checkpoint's own: ``trained.cfg.plan``,
    ``trained.cfg.eval``). ``dset`` goals come from ``data``, else ``eval_config.goal_dataset``, else the training
    dataset; with ``plan.model=simulator`` the true simulator plans, in the checkpoint's normalisation."""
    # Through the schema: sections built by hand get the checks a config file gets.
    cfg = config_from_dict(dataclasses.replace(trained.cfg, plan=plan, eval=eval_config).to_dict())
    model = trained.model
    if plan.model == "simulator":
        stats = (model.action_mean, model.action_std, model.proprio_mean, model.proprio_std)
        model = _simulator(cfg, trained.env_kwargs, model.frameskip, *(t.cpu() for t in stats))
    dataset = str(data) if data is not None else eval_config.goal_dataset or trained.dataset
    identity = {"ckpt": str(trained.path.resolve()), "mtime": trained.path.stat().st_mtime_ns}
    return EvalSetup(model, cfg, trained.env_kwargs, dataset, identity, trained.device, trained.path)


def simulator_setup(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    device: torch.device,
    *,
    data: str | Path | None = None,
    show_progress: bool = True,
) -> EvalSetup:
    """The true simulator of ``cfg.env`` as the model (``cfg.plan.model`` must say ``simulator``), normalised by the
    statistics of ``data``, else of a dataset collected into ``out_dir/data`` with ``cfg.collect``."""
    from ..datasets import TrajectoryStore, collect_for_config

    if cfg.plan.model != "simulator":
        raise ValueError(
            "evaluate: without a checkpoint only the true simulator can plan; add plan.model=simulator "
            "(or pass --checkpoint)"
        )
    if data is None:
        # Rank 0 collects (or finds) it for all ranks: several processes writing one dataset would clash.
        data = on_rank0(lambda: collect_for_config(cfg, Path(out_dir) / "data", show_progress))
    store = TrajectoryStore(data, preload=False)
    if store.env != cfg.env:
        raise ValueError(f"evaluate: dataset {store.path} holds env {store.env!r}, the config plans {cfg.env!r}")
    actions, proprio = store.action_stats, store.proprio_stats
    model = _simulator(cfg, store.env_kwargs, cfg.data.frameskip, actions.mean, actions.std, proprio.mean, proprio.std)
    store.close()
    # plan/eval keys enter the fingerprint on their own terms (worker counts, chunk sizes excluded).
    config = {k: v for k, v in cfg.to_dict().items() if k not in ("plan", "eval")}
    identity = {"dataset": str(store.path.resolve()), "config": config}
    return EvalSetup(model, cfg, dict(store.env_kwargs), str(store.path), identity, device)


def _simulator(
    cfg: ExperimentConfig,
    env_kwargs: dict[str, Any],
    frameskip: int,
    action_mean: Any,
    action_std: Any,
    proprio_mean: Any,
    proprio_std: Any,
) -> SimulatorModel:
    """The simulator oracle for ``cfg``, in the normalisation of the given action and proprio statistics."""
    return SimulatorModel(
        cfg.env,
        env_kwargs,
        action_mean,
        action_std,
        frameskip,
        cost=cfg.plan.sim_cost,
        proprio_mean=proprio_mean,
        proprio_std=proprio_std,
        workers=cfg.plan.sim_workers,
    )
