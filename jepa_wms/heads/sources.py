"""Where ``jepa-wms decode`` takes its real trajectories: a dataset (``--data``) or the env itself (``--env``).

Both give :class:`Clips`, the batch ``WindowDataset.get`` returns (uint8 pixels, normalised proprio and actions, raw
states), so the open-loop rollouts, the heads' errors and the counterfactual programs read either the same way.

From the env, episode *i* of seed *S* is a data-collection episode (`jepa_wms.datasets.collect_episode`: a start
drawn as collection draws it, then the env's data policy), in a random stream of its own: a dataset collected with
``--seed S`` holds other episodes, so a model trained on one is not shown its training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import ExperimentConfig
from ..datasets import TrajectoryStore, WindowDataset, collect_episode, split_episodes
from ..datasets.sources import training_action_stats
from ..envs import make_env
from ..world_model import WorldModel

__all__ = [
    "Clips",
    "EnvSource",
    "Source",
    "env_clips",
    "load_clips",
    "source_clips",
    "source_record",
    "trajectory_source",
]

# Mixed into the seed of env episodes so that they are not a collected dataset's episodes of the same seed.
_DECODE_STREAM = 0xDEC0DE


@dataclass
class Clips:
    """Windows of ``context + steps`` frames from dataset episodes: the batch ``WindowDataset.get`` returns."""

    episodes: list[int]
    batch: dict[str, Tensor]
    context: int


@dataclass(frozen=True)
class EnvSource:
    """Fresh episodes of ``env``'s data policy from seeded starts (``seed``: episode i is a function of it and i)."""

    env: str
    seed: int = 0


# A dataset folder, or the env.
Source = str | Path | EnvSource


def trajectory_source(data: str | Path | None, env: str | None, seed: int = 0) -> Source:
    """The source of exactly one of ``data`` (a dataset folder) and ``env`` (an env name, episodes of ``seed``)."""
    if (data is None) == (env is None):
        raise ValueError("give exactly one of --data (a dataset's episodes) and --env (fresh episodes of the env)")
    return EnvSource(env, seed) if env is not None else data


def source_record(source: Source) -> dict[str, Any]:
    """What ``decode.json``/``unroll.json`` say about where the real trajectories came from."""
    if isinstance(source, EnvSource):
        return {"source": "env", "seed": source.seed}
    return {"source": "data", "data": str(source)}


def _check_counts(episodes: int, context: int, steps: int) -> None:
    if context < 1 or steps < 1 or episodes < 1:
        raise ValueError(f"need context, steps and episodes >= 1, got {context}, {steps}, {episodes}")


def source_clips(
    model: WorldModel, cfg: ExperimentConfig, source: Source, episodes: int, context: int, steps: int
) -> Clips:
    """:func:`env_clips` for an :class:`EnvSource`, else :func:`load_clips` of the dataset folder."""
    if isinstance(source, EnvSource):
        return env_clips(model, cfg, source, episodes, context, steps)
    return load_clips(model, cfg, source, episodes, context, steps)


def load_clips(
    model: WorldModel, cfg: ExperimentConfig, data_dir: str | Path, episodes: int, context: int, steps: int
) -> Clips:
    """The first window of up to ``episodes`` episodes long enough for ``context + steps`` frames ``frameskip``
    apart (validation episodes of the model's split first)."""
    _check_counts(episodes, context, steps)
    store = TrajectoryStore(data_dir, preload=False)
    if store.env != cfg.env:
        raise ValueError(f"dataset {store.path} was collected on env {store.env!r}, the world model is for {cfg.env!r}")
    train_eps, val_eps = split_episodes(store.num_episodes, cfg.data.val_fraction, cfg.train.seed)
    span = (context + steps - 1) * cfg.data.frameskip + 1
    order = [int(e) for e in np.concatenate([val_eps, train_eps]) if store.episode_lengths[e] >= span][:episodes]
    if not order:
        raise ValueError(f"no episode of {store.path} has the {span} frames {context} + {steps} steps need")
    pixels = model.observation_key == "pixels"
    windows = WindowDataset(
        store,
        context + steps,
        cfg.data.frameskip,
        order,
        pixels=pixels,
        action_stats=training_action_stats(cfg.data, store),
    )
    firsts = windows.frame_indices(np.arange(len(windows)))[:, 0]
    # Windows are listed episode by episode, start by start: an episode's first window starts at its first frame.
    ids = [int(np.flatnonzero(firsts == store.episode_starts[e])[0]) for e in sorted(order)]
    batch = windows.get(np.asarray(ids))
    return Clips(sorted(order), batch, context)


@torch.no_grad()
def env_clips(
    model: WorldModel, cfg: ExperimentConfig, source: EnvSource, episodes: int, context: int, steps: int
) -> Clips:
    """Episodes 0 .. ``episodes`` − 1 of ``source``, each ``(context + steps − 1) · frameskip`` env steps of the
    data policy, kept every ``frameskip`` steps and normalised with the model's statistics (the env's options are
    ``cfg.env_kwargs``: the checkpoint's, so frames have the size the model was trained on)."""
    _check_counts(episodes, context, steps)
    if source.env != cfg.env:
        raise ValueError(f"--env {source.env!r}: the world model is for env {cfg.env!r}")
    k, t = cfg.data.frameskip, context + steps
    env = make_env(cfg.env, **cfg.env_kwargs)
    seed = int(np.random.SeedSequence([source.seed, _DECODE_STREAM]).generate_state(1)[0])
    runs = [collect_episode(env, i, seed, (t - 1) * k) for i in range(episodes)]
    env.close()
    kept = np.arange(t) * k

    def stack(key: str, rows: np.ndarray | slice) -> Tensor:
        return torch.from_numpy(np.stack([r[key][rows] for r in runs]))

    stats = model.proprio_mean.device
    proprio = model.normalize_proprio(stack("proprio", kept).float().to(stats)).cpu()
    # (B, (T − 1)·k, A) raw env actions → (B, T − 1, k·A) model actions, as WindowDataset concatenates them.
    raw = stack("actions", slice(None)).float().unflatten(1, (t - 1, k)).to(stats)
    batch = {
        "pixels": stack("pixels", kept),
        "proprio": proprio,
        "actions": model.normalize_actions(raw).cpu(),
        "state": stack("state", kept).float(),
    }
    return Clips(list(range(episodes)), batch, context)
