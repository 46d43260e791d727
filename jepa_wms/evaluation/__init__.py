"""Evaluation: seeded planning episodes, success rates, results files, videos and plots."""

from .evaluate import build_planner, evaluate, plan_episodes, summarize
from .goals import DatasetGoals, episode_start_goal

__all__ = ["DatasetGoals", "build_planner", "episode_start_goal", "evaluate", "plan_episodes", "summarize"]
