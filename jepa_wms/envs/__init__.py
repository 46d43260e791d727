"""Environments with exact state control for planning; importing this package registers them with gym."""

from jepa_wms.envs.base import EnvSpec, PlanningEnv, env_names, env_spec, make_env, register_env
from jepa_wms.envs.franka_tabletop import FRANKA_TABLETOP_SPECS, FrankaTabletopEnv
from jepa_wms.envs.metaworld import (
    METAWORLD_SPECS,
    METAWORLD_TASKS,
    MW42_TASKS,
    MetaworldEnv,
    NoisyExpertPolicy,
    metaworld_env,
)
from jepa_wms.envs.pointmaze import POINTMAZE_SPEC, PointMazeEnv
from jepa_wms.envs.pusht import PUSHT_SPEC, PushTEnv
from jepa_wms.envs.robocasa import ROBOCASA_SPECS, RobocasaEnv, robocasa_missing
from jepa_wms.envs.wall import WALL_SPEC, WallConfig, WallEnv, wall_dynamics

__all__ = [
    "FRANKA_TABLETOP_SPECS",
    "FrankaTabletopEnv",
    "ROBOCASA_SPECS",
    "RobocasaEnv",
    "robocasa_missing",
    "METAWORLD_SPECS",
    "METAWORLD_TASKS",
    "MW42_TASKS",
    "MetaworldEnv",
    "NoisyExpertPolicy",
    "metaworld_env",
    "POINTMAZE_SPEC",
    "PointMazeEnv",
    "PUSHT_SPEC",
    "PushTEnv",
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
