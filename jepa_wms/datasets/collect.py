"""Roll an exploration policy in an env and write the episodes to one HDF5 dataset.

Each episode draws all its randomness (start state, goal, policy noise) from a generator seeded by
(seed, episode index), so the dataset is the same whichever worker produced which episode: the file content
does not depend on the worker count.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from jepa_wms.config import CollectConfig, ExperimentConfig
from jepa_wms.datasets.policies import default_policy
from jepa_wms.datasets.storage import TrajectoryWriter, resolve_path
from jepa_wms.envs import env_spec, make_env

__all__ = ["collect", "collect_episode", "collect_for_config", "collect_with", "episode_rng"]

# The defaults live in `CollectConfig` only; the command line's flags and `collect`'s keywords take theirs from it.
_DEFAULTS = CollectConfig()

# One env per worker process, built by the pool initializer and reused for all its episodes.
_WORKER_ENV: Any = None


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(episode)]))


def collect_episode(env: Any, episode: int, seed: int, episode_len: int, policy: str = "") -> dict[str, np.ndarray]:
    """One episode of ``episode_len`` steps (``episode_len + 1`` frames) with the data policy named ``policy``
    ("" = the env's default, see `jepa_wms.datasets.policies.default_policy`).

    Returns raw arrays: pixels uint8 (T, H, W, 3), actions (T-1, A), proprio (T, P), state (T, S).
    """
    rng = episode_rng(seed, episode)
    # Data starts anywhere in the free space when the env can say where that is; planning starts come from
    # sample_start_goal, which is too narrow for training data (it avoids the doorway, for instance).
    start, goal = env.sample_start_goal(rng)
    if hasattr(env, "sample_free_state"):
        start = env.sample_free_state(rng)
    obs, info = env.reset(options={"state": start, "goal": goal})
    actor = default_policy(env, policy)
    actor.reset(rng, info["state"])
    pixels, proprio, states, actions = [obs["pixels"]], [obs["proprio"]], [info["state"]], []
    for _ in range(episode_len):
        action = np.asarray(actor(rng, info["state"]), dtype=np.float32)
        obs, _, _, _, info = env.step(action)
        actions.append(action)
        pixels.append(obs["pixels"])
        proprio.append(obs["proprio"])
        states.append(info["state"])
    return {
        "pixels": np.stack(pixels),
        "actions": np.stack(actions),
        "proprio": np.stack(proprio),
        "state": np.stack(states),
    }


def _init_worker(env_name: str, env_kwargs: dict[str, Any]) -> None:
    global _WORKER_ENV
    _WORKER_ENV = make_env(env_name, **env_kwargs)


def _worker_episode(args: tuple[int, int, int, str]) -> dict[str, np.ndarray]:
    return collect_episode(_WORKER_ENV, *args)


def collect(
    env: str,
    episodes: int,
    out_dir: str | os.PathLike,
    *,
    episode_len: int = _DEFAULTS.episode_len,
    workers: int = _DEFAULTS.workers,
    seed: int = _DEFAULTS.seed,
    img_size: int = _DEFAULTS.img_size,
    show_progress: bool = True,
    overwrite: bool = False,
    policy: str = _DEFAULTS.policy,
) -> Path:
    """Collect ``episodes`` episodes of ``episode_len`` steps into ``out_dir/trajectories.h5``.

    Args:
        env: registered env name or gym id.
        episodes: number of episodes E.
        out_dir: dataset directory (created if missing) or an explicit ``.h5`` path.
        episode_len: env steps per episode; each episode stores ``episode_len + 1`` frames.
        workers: worker processes ("spawn"); 1 runs in this process. The file content does not depend on it.
        seed: base seed; episode i uses a generator seeded by (seed, i).
        img_size: rendered frame side in pixels.
        show_progress: show a tqdm bar over episodes.
        overwrite: replace an existing dataset instead of raising FileExistsError.
        policy: data policy name ("" = the env's default; Push-T: ``noisy_push`` (default), ``expert``,
            ``random_walk``); an unknown name is a ValueError listing the env's names. The collector metadata
            records the policy's ``name`` and ``params()``.
    Returns:
        Path of the written file.
    """
    if episodes < 1 or episode_len < 1 or workers < 1:
        raise ValueError(
            f"collect: episodes, episode_len and workers must be >= 1, got {episodes}, {episode_len}, {workers}"
        )
    spec = env_spec(env)
    path = resolve_path(out_dir)
    if path.exists() and not overwrite:
        raise FileExistsError(f"dataset {path} already exists; pass overwrite=True to replace it")
    env_kwargs = {"img_size": int(img_size)}
    probe = make_env(spec.name, **env_kwargs)
    actor = default_policy(probe, policy)
    collector = {
        "policy": actor.name,
        "params": actor.params(),
        "seed": int(seed),
        "episodes": int(episodes),
        "episode_len": int(episode_len),
    }
    jobs = [(i, int(seed), int(episode_len), str(policy)) for i in range(episodes)]
    with TrajectoryWriter(
        path, env=spec.name, env_kwargs=env_kwargs, collector=collector, overwrite=overwrite
    ) as writer:
        # Only once the output file exists: an --out that cannot be written fails without a bar.
        progress = tqdm(total=episodes, desc=f"collect {spec.name}", unit="ep", disable=not show_progress)
        if workers == 1:
            for job in jobs:
                writer.add_episode(**collect_episode(probe, *job))
                progress.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(spec.name, env_kwargs)) as pool:
                # imap keeps episode order, so the file is laid out identically for any worker count.
                for episode in pool.imap(_worker_episode, jobs, chunksize=max(1, min(8, episodes // (4 * workers)))):
                    writer.add_episode(**episode)
                    progress.update()
    progress.close()
    return path


def collect_with(
    env: str,
    settings: CollectConfig,
    out_dir: str | os.PathLike,
    *,
    show_progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """`collect` with the settings of a config's ``collect`` section, whose fields are `collect`'s keywords."""
    return collect(
        env, out_dir=out_dir, **dataclasses.asdict(settings), show_progress=show_progress, overwrite=overwrite
    )


def collect_for_config(cfg: ExperimentConfig, out_dir: str | os.PathLike, show_progress: bool = True) -> Path:
    """``out_dir/trajectories.h5`` of ``cfg.env`` collected with the config's ``collect`` settings, unless one is
    already there (a demo or simulator evaluation that is run again reuses its data)."""
    path = resolve_path(out_dir)
    if path.exists():
        return path
    return collect_with(cfg.env, cfg.collect, out_dir, show_progress=show_progress)
