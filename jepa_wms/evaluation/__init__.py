"""Evaluation: seeded planning episodes driven by the receding-horizon loop, success rates, results files, videos
and plots; pooled over the last epochs of several runs (``epochs.py``); grids of planning settings (``grid.py``);
the offline DROID action score on recorded clips (``action_score.py``)."""

from .action_score import action_score, evaluate_action_score
from .epochs import checkpoint_folders, evaluate_checkpoints, last_epoch_checkpoints, pooled_stats, summary_table
from .evaluate import evaluate, plan_episodes, run_evaluation, summarize
from .goals import DatasetGoals, episode_start_goal
from .grid import GridSpec, evaluate_grid, grid_cells, load_grid_spec
from .grid_report import pivot_table, plot_grid_success
from .setup import EvalSetup, TrainedModel, checkpoint_setup, load_trained, simulator_setup

__all__ = [
    "action_score",
    "DatasetGoals",
    "EvalSetup",
    "GridSpec",
    "TrainedModel",
    "checkpoint_folders",
    "checkpoint_setup",
    "episode_start_goal",
    "evaluate",
    "evaluate_action_score",
    "evaluate_checkpoints",
    "evaluate_grid",
    "grid_cells",
    "last_epoch_checkpoints",
    "load_grid_spec",
    "load_trained",
    "pivot_table",
    "plan_episodes",
    "plot_grid_success",
    "pooled_stats",
    "run_evaluation",
    "simulator_setup",
    "summarize",
    "summary_table",
]
