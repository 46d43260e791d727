"""Environments with exact state control for planning; importing this package registers them with gym."""

from jepa_wms.envs.base import EnvSpec, PlanningEnv, env_names, env_spec, make_env, register_env
from jepa_wms.envs.wall import WALL_SPEC, WallConfig, WallEnv, wall_dynamics

__all__ = [
    "WALL_SPEC",
    "EnvSpec",
    "PlanningEnv",
    "WallConfig",
    "WallEnv",
    "env_names",
    "env_spec",
    "make_env",
    "register_env",
    "wall_dynamics",
]
