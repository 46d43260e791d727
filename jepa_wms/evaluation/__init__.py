"""Evaluation: seeded planning episodes driven by the receding-horizon loop, success rates, results files, videos
and plots; pooled over the last epochs of several runs (``epochs.py``)."""

from .epochs import checkpoint_folders, evaluate_checkpoints, last_epoch_checkpoints, pooled_stats, summary_table
from .evaluate import evaluate, plan_episodes, run_evaluation, summarize
from .goals import DatasetGoals, episode_start_goal
from .setup import EvalSetup, TrainedModel, checkpoint_setup, load_trained, simulator_setup

__all__ = [
    "DatasetGoals",
    "EvalSetup",
    "TrainedModel",
    "checkpoint_folders",
    "checkpoint_setup",
    "episode_start_goal",
    "evaluate",
    "evaluate_checkpoints",
    "last_epoch_checkpoints",
    "load_trained",
    "plan_episodes",
    "pooled_stats",
    "run_evaluation",
    "simulator_setup",
    "summarize",
    "summary_table",
]
