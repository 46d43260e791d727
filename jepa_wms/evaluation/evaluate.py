"""``evaluate(checkpoint, out_dir)``: plan seeded episodes with a trained world model and score them.

``run_evaluation(setup, out_dir)`` is the typed core (a setup from ``setup.py``); ``evaluate`` is its wrapper for
``key=value`` override strings, config names and a checkpoint path.

Episode k's start and goal depend only on (seed, k), and so does its planner noise, so results do not depend on how
episodes are batched or split, nor on how many processes share them. Under torchrun (or a multi-task SLURM job) the
episodes still to do are dealt round robin over the ranks; each rank appends its finished episodes chunk by chunk to
its own file (``records.py``), and a killed evaluation, rerun with any number of processes, resumes from all of
them. At the end rank 0 merges them into ``episodes.jsonl`` and writes ``results.json`` (atomic), ``episodes.csv``,
a cost-over-iterations plot and a path plot; agent-vs-goal videos of the first episodes come from the rank that
planned them.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import atomic_write_bytes, remove_stale_temporaries
from ..config import RANGES, ExperimentConfig, check_range, config_from_dict, load_config
from ..datasets import DatasetError
from ..envs import env_spec, make_env
from ..layers import set_head_padding
from ..planning.memory import eval_batch_sizes
from ..planning.registry import build_planner, model_action_stats
from ..runlock import folder_lock
from ..runtime import EVAL_TIMEOUT, autocast, distributed, on_rank0, resolve_device, resolve_dtype, seeded_generator
from .goals import DatasetGoals, episode_start_goal
from .imagined import load_video_head, write_imagined_video
from .media import plot_cost_history, plot_trajectories, write_video
from .mpc import EpisodeTrace, run_mpc
from .records import append_records, load_records, merge_records, records_file
from .setup import EvalSetup, checkpoint_setup, load_trained, simulator_setup, zero_shot

# Keys that only one family of planners reads. Leaving them out of other planners' fingerprints keeps evaluations
# made before a key existed resumable, and lets a CEM result folder ignore e.g. a changed MPPI temperature.
_PLANNER_ONLY_KEYS = {
    "ng_optimizer": ("nevergrad",),
    "temperature": ("mppi",),
    "lr": ("gd", "adam"),
    "action_noise": ("gd", "adam"),
    "icem_beta": ("icem",),
    "icem_decay": ("icem",),
    "icem_keep_elites": ("icem",),
    "icem_momentum": ("icem",),
}


# Keys that only the simulator oracle reads; `model` stays out of a world model's fingerprint so that folders made
# before it existed still resume.
_SIMULATOR_ONLY_KEYS = ("model", "sim_cost")


def _eval_fingerprint(cfg: ExperimentConfig, identity: dict[str, Any], seed: int) -> str:
    simulator = cfg.plan.model == "simulator"
    key = json.dumps(
        {
            # Batching, worker counts and head padding do not change results (per-episode generators, exact
            # simulator, exact zero padding), so a resume may use others.
            "plan": {
                k: v
                for k, v in cfg.plan.__dict__.items()
                if k not in ("episode_chunk", "sim_workers", "memory_gb", "pad_heads")
                and not (k == "kv_window" and v == 0)  # the default: folders from before the key still resume
                and not (k == "proprio_dynamics" and v == "predicted")  # likewise
                and cfg.plan.planner in _PLANNER_ONLY_KEYS.get(k, (cfg.plan.planner,))
                and (simulator or k not in _SIMULATOR_ONLY_KEYS)
            },
            "seed": seed,
            "goals": [cfg.eval.goal_source, cfg.eval.goal_dataset],
            # Only a budget other than the protocol's enters, so that folders made before eval.max_steps resume.
            **({"env_steps": steps} if (steps := episode_steps(cfg)) != env_spec(cfg.env).eval_steps else {}),
            **identity,
        },
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def episode_steps(cfg: ExperimentConfig) -> int:
    """Env steps per episode: ``eval.max_steps``, else (0) the env's reference protocol budget."""
    return cfg.eval.max_steps or env_spec(cfg.env).eval_steps


def plan_episodes(
    model: Any,
    cfg: ExperimentConfig,
    env_kwargs: dict,
    indices: Sequence[int],
    seed: int,
    device,
    dtype,
    dataset_goals: DatasetGoals | None = None,
    max_rows: int = 0,
    imagine: Sequence[bool] | None = None,
) -> tuple[list, list[tuple[np.ndarray, np.ndarray]], list[dict], list[EpisodeTrace]]:
    """Set up episodes ``indices`` (start and goal from (seed, k)) and drive them with the configured planner;
    ``max_rows`` >= 1 rolls candidates out in sub-batches of that many rows (``planning.memory``); ``imagine``
    (per episode) records the world model's predictions of the chosen plans (``run_mpc``).
    Returns the envs, the (start, goal) states, the goal observations and one trace per episode."""
    envs = [make_env(cfg.env, **env_kwargs) for _ in indices]
    first, goals, specs = [], [], []
    for env, k in zip(envs, indices, strict=True):
        start, goal = episode_start_goal(env, seed, k, dataset_goals)
        goal_obs, info = env.reset(options={"state": goal, "goal": goal})
        goals.append({**goal_obs, "state": info["state"]})
        first.append(env.reset(options={"state": start, "goal": goal})[0])
        specs.append((start, goal))
    if isinstance(model, torch.nn.Module):  # the simulator oracle has no attention
        set_head_padding(model, cfg.plan.pad_heads)  # exact (layers.attention), so not in the fingerprint
    traces = run_mpc(
        model,
        envs,
        first,
        goals,
        build_planner(cfg.plan, model_action_stats(model)),
        [seeded_generator(seed, k, 7) for k in indices],
        horizon=cfg.plan.horizon,
        execute=cfg.plan.execute,
        total_steps=episode_steps(cfg),
        alpha=cfg.plan.alpha,
        cost_kind=cfg.plan.cost,
        autocast_ctx=lambda: autocast(device, dtype),
        device=device,
        kv_window=cfg.plan.kv_window,
        max_rows=max_rows,
        imagine=imagine,
        proprio_dynamics=cfg.plan.proprio_dynamics,
    )
    return envs, specs, goals, traces


def _run_chunk(
    model,
    cfg: ExperimentConfig,
    env_kwargs: dict,
    indices: list[int],
    seed: int,
    device,
    dtype,
    video_dir: Path | None,
    videos: int,
    dataset_goals: DatasetGoals | None,
    max_rows: int = 0,
    head: Any = None,
) -> list[dict]:
    t0 = time.perf_counter()
    # The imagined plans only of episodes that get a video, and only with an image head to draw them.
    imagine = [video_dir is not None and k < videos for k in indices] if head is not None else None
    envs, specs, goals, traces = plan_episodes(
        model, cfg, env_kwargs, indices, seed, device, dtype, dataset_goals, max_rows, imagine
    )
    wall = (time.perf_counter() - t0) / len(indices)
    records = []
    for env, k, (start, goal), trace, g_obs in zip(envs, indices, specs, traces, goals, strict=True):
        final = trace.states[-1]
        rec = {
            "episode": k,
            "success": bool(env.unwrapped.is_success(final, goal)),
            "final_distance": float(env.unwrapped.distance(final, goal)),
            "start_distance": float(env.unwrapped.distance(start, goal)),
            "plan_seconds": trace.plan_seconds,
            "episode_seconds": wall,
            "start": np.asarray(start).tolist(),
            "goal": np.asarray(goal).tolist(),
            "states": np.asarray(trace.states).tolist(),
            "cost_history": trace.cost_histories[0].tolist(),
        }
        records.append(rec)
        if video_dir is not None and k < videos:
            tag = "succ" if rec["success"] else "fail"
            path = video_dir / f"episode_{k:03d}_{tag}.{cfg.eval.video_format}"
            if trace.imagined is not None:
                write_imagined_video(path, trace.frames, g_obs["pixels"], head, trace.imagined)
            else:
                write_video(path, trace.frames, g_obs["pixels"])
    return records


def summarize(records: Sequence[dict]) -> dict[str, Any]:
    dist = np.array([r["final_distance"] for r in records])
    return {
        "success_rate": float(np.mean([r["success"] for r in records])),
        "episodes": len(records),
        "successes": int(sum(r["success"] for r in records)),
        "mean_final_distance": float(dist.mean()),
        "median_final_distance": float(np.median(dist)),
        "planning_seconds_per_episode": float(np.mean([r["plan_seconds"] for r in records])),
        "episode_seconds": float(np.mean([r["episode_seconds"] for r in records])),
    }


def evaluate(
    checkpoint: str | Path | None,
    out_dir: str | Path,
    *,
    episodes: int | None = None,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    show_progress: bool = True,
    env: str | None = None,
    config: str | Path | None = None,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on seeded episodes; ``overrides`` (``plan.*``, ``eval.*`` keys) change the protocol.
    With ``plan.model=simulator`` the true simulator plans instead of the model (the protocol's ceiling); it needs
    no checkpoint: then ``env`` and/or ``config`` say what to run, and ``data`` (else a dataset collected into
    ``out_dir/data``) gives the action statistics and ``dset`` goals. ``env`` with a checkpoint trained elsewhere
    plans zero-shot in that env (`zero_shot`). Returns the summary that is also written to ``out_dir/results.json``.

    The ``key=value`` strings of the command line end here: this builds the typed setup (`checkpoint_setup`,
    `simulator_setup`) and runs `run_evaluation`, which Python callers with config objects may call directly."""
    _check_counts(episodes, seed)  # before a checkpoint is read or a dataset collected
    dev = resolve_device(device)
    # The group first: under torchrun on GPUs it picks this rank's GPU, which the model is then loaded onto.
    with distributed(dev, EVAL_TIMEOUT):
        if checkpoint is not None:
            if config is not None:
                raise ValueError("evaluate: --config describes a run without a checkpoint; the checkpoint has its own")
            trained = load_trained(checkpoint, dev)
            if env is not None:
                trained = zero_shot(trained, env)
            protocol = config_from_dict(trained.cfg.to_dict(), overrides, only=("plan", "eval"))
            setup = checkpoint_setup(trained, protocol.plan, protocol.eval, data=data)
        else:
            cfg = _simulator_config(env, config, overrides)
            setup = simulator_setup(cfg, out_dir, dev, data=data, show_progress=show_progress)
        return run_evaluation(setup, out_dir, episodes=episodes, seed=seed, show_progress=show_progress)


def _simulator_config(env: str | None, config: str | Path | None, overrides: Sequence[str]) -> ExperimentConfig:
    """The config of an evaluation without a checkpoint: ``config`` (default: the quick demo config of ``env``'s
    family) with ``env`` and the overrides applied."""
    from ..demo import DEMO_ENVS, demo_config_name

    if env is None and config is None:
        raise ValueError("evaluate: give a checkpoint, or --env/--config with plan.model=simulator")
    if config is None:
        family = env.split("-", 1)[0]
        if family not in DEMO_ENVS:
            raise ValueError(f"evaluate: no default config for env {env!r}; pass --config (envs: {DEMO_ENVS})")
        config = demo_config_name(family, quick=True)
    return load_config(config, [f"env={env}", *overrides] if env is not None else overrides)


def _check_counts(episodes: int | None, seed: int | None) -> None:
    for name, value in (("episodes", episodes), ("seed", seed)):
        if value is not None:
            check_range(f"evaluate: {name}", value, RANGES[f"eval.{name}"])


def run_evaluation(
    setup: EvalSetup,
    out_dir: str | Path,
    *,
    episodes: int | None = None,
    seed: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Plan ``episodes`` seeded episodes (default ``eval.episodes``; seed default ``eval.seed``) with ``setup`` into
    ``out_dir``, resuming the episodes already recorded there, and return the summary (also ``results.json``)."""
    _check_counts(episodes, seed)
    out_dir = Path(out_dir)
    model, cfg, env_kwargs, dev = setup.model, setup.cfg, setup.env_kwargs, setup.device
    n = cfg.eval.episodes if episodes is None else episodes
    seed = cfg.eval.seed if seed is None else seed
    dtype = resolve_dtype(cfg.plan.precision, dev, training=False)

    fingerprint = _eval_fingerprint(cfg, setup.identity, seed)

    with distributed(dev, EVAL_TIMEOUT) as (rank, world), contextlib.ExitStack() as held:
        # Settings are refused before the folder is claimed, so that the corrected rerun may use it. Every rank
        # checks them (the same settings give the same refusal), and each needs its own goals anyway.
        build_planner(cfg.plan, model_action_stats(model))
        head = load_video_head(setup)  # refused (another encoder, a state head) before the folder is claimed too
        dataset_goals = _dataset_goals(cfg, setup.dataset)
        on_rank0(lambda: _claim(out_dir, fingerprint, held))
        done = load_records(out_dir)
        todo = [k for k in range(n) if k not in done]
        mine = todo[rank::world]  # round robin: after a resume, what is left is still shared evenly
        jsonl = records_file(out_dir, rank, world)
        # At most plan.episode_chunk episodes, as many as the memory budget holds (logged).
        chunk, max_rows = eval_batch_sizes(model, cfg.plan, dev, dtype)
        bar = tqdm(
            total=n - len(todo) + len(mine),
            initial=n - len(todo),
            desc="eval episodes" if world == 1 else f"eval episodes (rank 0 of {world})",
            disable=not show_progress or rank != 0,
        )
        for i in range(0, len(mine), chunk):
            indices = mine[i : i + chunk]
            records = _run_chunk(
                model,
                cfg,
                env_kwargs,
                indices,
                seed,
                dev,
                dtype,
                out_dir / "videos",
                cfg.eval.videos,
                dataset_goals,
                max_rows,
                head,
            )
            append_records(jsonl, records)
            done.update({r["episode"]: r for r in records})
            bar.update(len(indices))
            bar.set_postfix(success=f"{np.mean([r['success'] for r in done.values()]):.2f}")
        bar.close()
        if hasattr(model, "close"):
            model.close()  # the simulator's worker processes
        if world > 1:
            torch.distributed.barrier()  # every rank's records are on disk before rank 0 reads them
        return on_rank0(lambda: _finish(setup, out_dir, n, seed))


def _claim(out_dir: Path, fingerprint: str, held: contextlib.ExitStack) -> None:
    """Take ``out_dir`` for this evaluation (rank 0, for all ranks): hold its lock until ``held`` closes, and refuse
    a folder that holds an evaluation with other settings."""
    # One evaluation per folder: a second one would plan the same episodes and interleave their records.
    held.enter_context(folder_lock(out_dir))
    remove_stale_temporaries(out_dir)
    meta_path = out_dir / "eval_meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("fingerprint") != fingerprint:
        raise FileExistsError(
            f"{out_dir} holds an evaluation with another checkpoint, seed or planner setting; use a new --out"
        )
    atomic_write_bytes(meta_path, json.dumps({"fingerprint": fingerprint}).encode())


def _finish(setup: EvalSetup, out_dir: Path, n: int, seed: int) -> dict[str, Any]:
    """Merge every rank's records into ``episodes.jsonl`` and write the summary, the table and the plots."""
    cfg = setup.cfg
    done = load_records(out_dir)
    merge_records(out_dir, done)
    records = [done[k] for k in range(n)]
    summary = {
        **summarize(records),
        "seed": seed,
        "checkpoint": None if setup.checkpoint is None else str(setup.checkpoint),
        "env": cfg.env,
        "env_steps": episode_steps(cfg),
        "plan": cfg.plan.__dict__,
    }
    atomic_write_bytes(out_dir / "results.json", json.dumps(summary, indent=2).encode())
    _write_csv(out_dir / "episodes.csv", records)
    plot_cost_history(
        out_dir / "planning_cost.png",
        np.array([r["cost_history"] for r in records]),
        title=f"{cfg.plan.planner.upper()} {cfg.plan.cost} cost, {cfg.env}",
    )
    scene = make_env(cfg.env, **setup.env_kwargs).unwrapped
    extent = getattr(getattr(scene, "config", None), "arena_size", None)
    background = scene.render_state(np.asarray(records[0]["goal"])) if extent else None
    plot_trajectories(out_dir / "paths.png", records[:16], background, extent)
    return summary


def _dataset_goals(cfg: ExperimentConfig, path: str) -> DatasetGoals | None:
    if cfg.eval.goal_source != "dset":
        return None
    if not path:
        raise ValueError("eval.goal_source=dset needs eval.goal_dataset=<dataset folder> for this checkpoint")
    goals = DatasetGoals(path, env_spec(cfg.env).eval_steps, cfg.data.val_fraction, cfg.train.seed)
    if goals.store.env != cfg.env:
        raise DatasetError(f"{goals.store.path}: dset goals need a dataset of env {cfg.env!r}, not {goals.store.env!r}")
    return goals


def _write_csv(path: Path, records: Sequence[dict]) -> None:
    cols = ["episode", "success", "final_distance", "start_distance", "plan_seconds", "episode_seconds"]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + ["start", "goal"])
        for r in records:
            w.writerow(
                [r[c] for c in cols]
                + [" ".join(f"{v:.3f}" for v in r["start"]), " ".join(f"{v:.3f}" for v in r["goal"])]
            )
    os.replace(tmp, path)


__all__ = ["episode_steps", "evaluate", "plan_episodes", "run_evaluation", "summarize"]
