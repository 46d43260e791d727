"""Evaluation: seeded planning episodes driven by the receding-horizon loop, success rates, results files, videos
and plots."""

from .evaluate import evaluate, plan_episodes, run_evaluation, summarize
from .goals import DatasetGoals, episode_start_goal
from .setup import EvalSetup, TrainedModel, checkpoint_setup, load_trained, simulator_setup

__all__ = [
    "DatasetGoals",
    "EvalSetup",
    "TrainedModel",
    "checkpoint_setup",
    "episode_start_goal",
    "evaluate",
    "load_trained",
    "plan_episodes",
    "run_evaluation",
    "simulator_setup",
    "summarize",
]
