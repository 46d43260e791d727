"""jepa-wms: Joint-Embedding Predictive World Models.

Data flows env → dataset → encoder → predictor → planner → evaluation. ``import jepa_wms`` registers the envs'
gymnasium ids (``gymnasium.make("jepa_wms/Wall-v0")``); the public API is imported lazily, so the import stays cheap:

- ``make_env`` / ``env_names`` — environments with exact state setting and the reference success rules
- ``collect`` / ``TrajectoryStore`` / ``WindowDataset`` — generate, store and read trajectories
- ``encode_dataset`` — pre-encode a dataset with a frozen encoder (a latent cache training reads instead of pixels)
- ``load_config`` / ``ExperimentConfig`` — typed configs with ``key=value`` overrides
- ``build_world_model`` / ``WorldModel`` — ``encode`` observations, ``rollout`` actions; ``save_world_model`` /
  ``load_world_model`` — a world model as a checkpoint file
- ``train`` — train a world model; ``pretrain`` — pretrain an image encoder alone (frame autoencoder);
  ``evaluate`` — plan seeded episodes and score them; ``evaluate_action_score`` / ``action_score`` — the offline
  DROID action score of a checkpoint / of a model object
- ``CEMPlanner`` / ``goal_cost`` — plan in latent space; ``run_mpc`` — the receding-horizon loop that drives envs
- ``run_demo`` — collect → train → evaluate
- ``resolve_weights`` — a weight file by local path or URL (cached download)
- ``hub`` — the released JEPA-WMs models by name: ``jepa_wms.hub.load("jepa_wm_pusht")``
- ``NevergradPlanner`` — black-box planning with nevergrad (optional extra)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "make_env": "jepa_wms.envs",
    "env_names": "jepa_wms.envs",
    "env_spec": "jepa_wms.envs",
    "collect": "jepa_wms.datasets",
    "TrajectoryStore": "jepa_wms.datasets",
    "WindowDataset": "jepa_wms.datasets",
    "encode_dataset": "jepa_wms.training.encode",
    "load_config": "jepa_wms.config",
    "ExperimentConfig": "jepa_wms.config",
    "ConfigError": "jepa_wms.config",
    "build_world_model": "jepa_wms.world_model",
    "WorldModel": "jepa_wms.world_model",
    "LatentState": "jepa_wms.world_model",
    "load_world_model": "jepa_wms.saved_model",
    "save_world_model": "jepa_wms.saved_model",
    "CheckpointError": "jepa_wms.checkpoint",
    "train": "jepa_wms.training",
    "pretrain": "jepa_wms.training",
    "evaluate": "jepa_wms.evaluation",
    "evaluate_action_score": "jepa_wms.evaluation",
    "action_score": "jepa_wms.evaluation",
    "CEMPlanner": "jepa_wms.planning",
    "NevergradPlanner": "jepa_wms.planning",
    "goal_cost": "jepa_wms.planning",
    "run_mpc": "jepa_wms.evaluation.mpc",
    "run_demo": "jepa_wms.demo",
    "resolve_weights": "jepa_wms.weights",
}

__all__ = sorted(_EXPORTS)


_SUBMODULES = ("hub",)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jepa_wms.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jepa_wms' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*__all__, *_SUBMODULES]


# As `import gym_pusht` does: after `import jepa_wms`, `gymnasium.make("jepa_wms/Wall-v0")` works. The env modules
# register their ids when they load; they are light (the simulators, mujoco and pymunk, load on an env's first use),
# and importing them keeps each id next to its env's spec instead of in a second list.
importlib.import_module("jepa_wms.envs")
