"""What an evaluation plans with: a checkpoint's world model, or the true simulator (``plan.model=simulator``).

The simulator oracle takes the action (and proprio) statistics of the data the planner's search space is
normalised by: the checkpoint's when there is one, else those of a dataset (``--data``, or one collected on the
fly into ``OUT/data`` with the config's ``collect`` settings), which also serves ``dset`` goals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import load_world_model
from ..config import ExperimentConfig, config_from_dict, load_config
from ..planning.simulator import SimulatorModel

__all__ = ["EvalSetup", "evaluation_setup"]


@dataclass
class EvalSetup:
    """The planning model (a `WorldModel` or a `SimulatorModel`), its config, the env options, the dataset the
    goals may come from, and what identifies the model in the result folder's fingerprint."""

    model: Any
    cfg: ExperimentConfig
    env_kwargs: dict[str, Any]
    dataset: str
    identity: dict[str, Any]


def evaluation_setup(
    checkpoint: str | Path | None,
    out_dir: Path,
    overrides: Sequence[str],
    device: Any,
    *,
    env: str | None = None,
    config: str | Path | None = None,
    data: str | Path | None = None,
    show_progress: bool = True,
) -> EvalSetup:
    """Load ``checkpoint`` (overrides: ``plan.*``/``eval.*`` only), or, without one, build the simulator oracle for
    ``env`` from ``config`` (default: the env's CPU demo config) and its overrides."""
    if checkpoint is not None:
        if env is not None or config is not None:
            raise ValueError("evaluate: --env/--config describe a run without a checkpoint; the checkpoint has its own")
        return _from_checkpoint(Path(checkpoint), overrides, device, data)
    return _without_checkpoint(out_dir, overrides, env, config, data, show_progress)


def _from_checkpoint(checkpoint: Path, overrides: Sequence[str], device: Any, data: str | Path | None) -> EvalSetup:
    model, cfg, ckpt = load_world_model(checkpoint, device)
    bad = [o for o in overrides if not o.split("=", 1)[0].strip().startswith(("plan.", "eval."))]
    if bad:
        raise ValueError(f"evaluation overrides may only change plan.* and eval.* keys, got {bad[0]!r}")
    cfg = config_from_dict(cfg.to_dict(), overrides)
    env_kwargs = dict(ckpt.get("env_kwargs", cfg.env_kwargs))
    dataset = str(data) if data is not None else cfg.eval.goal_dataset or ckpt.get("dataset", {}).get("path", "")
    if cfg.plan.model == "simulator":
        model = SimulatorModel(
            cfg.env,
            env_kwargs,
            model.action_mean.cpu(),
            model.action_std.cpu(),
            model.frameskip,
            cost=cfg.plan.sim_cost,
            proprio_mean=model.proprio_mean.cpu(),
            proprio_std=model.proprio_std.cpu(),
            workers=cfg.plan.sim_workers,
        )
    identity = {"ckpt": str(checkpoint.resolve()), "mtime": checkpoint.stat().st_mtime_ns}
    return EvalSetup(model, cfg, env_kwargs, dataset, identity)


def _without_checkpoint(
    out_dir: Path,
    overrides: Sequence[str],
    env: str | None,
    config: str | Path | None,
    data: str | Path | None,
    show_progress: bool,
) -> EvalSetup:
    from ..datasets import TrajectoryStore, collect_for_config
    from ..demo import DEMO_ENVS, demo_config_name

    if env is None and config is None:
        raise ValueError("evaluate: give a checkpoint, or --env/--config with plan.model=simulator")
    overrides = list(overrides)
    if config is None:
        family = env.split("-", 1)[0]
        if family not in DEMO_ENVS:
            raise ValueError(f"evaluate: no default config for env {env!r}; pass --config (envs: {DEMO_ENVS})")
        config = demo_config_name(family, quick=True)
    if env is not None:
        overrides.insert(0, f"env={env}")
    cfg = load_config(config, overrides)
    if cfg.plan.model != "simulator":
        raise ValueError(
            "evaluate: without a checkpoint only the true simulator can plan; add plan.model=simulator "
            "(or pass --checkpoint)"
        )
    if data is None:
        data = collect_for_config(cfg, out_dir / "data", show_progress)
    store = TrajectoryStore(data, preload=False)
    if store.env != cfg.env:
        raise ValueError(f"evaluate: dataset {store.path} holds env {store.env!r}, the config plans {cfg.env!r}")
    model = SimulatorModel(
        cfg.env,
        store.env_kwargs,
        store.action_stats.mean,
        store.action_stats.std,
        cfg.data.frameskip,
        cost=cfg.plan.sim_cost,
        proprio_mean=store.proprio_stats.mean,
        proprio_std=store.proprio_stats.std,
        workers=cfg.plan.sim_workers,
    )
    store.close()
    # plan/eval keys enter the fingerprint on their own terms (worker counts, chunk sizes excluded).
    config = {k: v for k, v in cfg.to_dict().items() if k not in ("plan", "eval")}
    identity = {"dataset": str(store.path.resolve()), "config": config}
    return EvalSetup(model, cfg, dict(store.env_kwargs), str(store.path), identity)
