"""Evaluation: seeded planning episodes, success rates, results files, videos and plots."""

from .evaluate import build_planner, episode_start_goal, evaluate, plan_episodes, summarize

__all__ = ["build_planner", "episode_start_goal", "evaluate", "plan_episodes", "summarize"]
