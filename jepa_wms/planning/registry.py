"""The planners by name: ``plan.planner`` becomes a planner here, and only here.

Every planner gets the shared budget (``plan.num_samples``, ``plan.iterations``, ``plan.init_std``) and the action
clip; each then reads its own keys. An unknown name is an error that lists the valid ones, never a fallback: a
typo must not quietly evaluate another planner.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from jepa_wms.config import PlanConfig, PlannerName
from jepa_wms.planning.base import Planner
from jepa_wms.planning.cem import CEMPlanner
from jepa_wms.planning.gradient import GradientPlanner
from jepa_wms.planning.icem import ICEMPlanner
from jepa_wms.planning.mppi import MPPIPlanner
from jepa_wms.planning.nevergrad import NevergradPlanner

__all__ = ["PLANNERS", "build_planner"]

PLANNERS: tuple[str, ...] = typing.get_args(PlannerName)
"""The names ``build_planner`` accepts: the config's ``plan.planner`` choices."""

# name -> factory(plan config, shared keyword arguments), one per name of PLANNERS.
_FACTORIES: dict[str, Callable[[PlanConfig, dict[str, Any]], Planner]] = {
    "cem": lambda plan, shared: CEMPlanner(**shared, num_elites=plan.num_elites),
    "mppi": lambda plan, shared: MPPIPlanner(**shared, temperature=plan.temperature),
    "gd": lambda plan, shared: GradientPlanner(**shared, lr=plan.lr, optimizer="sgd", action_noise=plan.action_noise),
    "adam": lambda plan, shared: GradientPlanner(
        **shared, lr=plan.lr, optimizer="adam", action_noise=plan.action_noise
    ),
    "nevergrad": lambda plan, shared: NevergradPlanner(**shared, optimizer=plan.ng_optimizer),
    "icem": lambda plan, shared: ICEMPlanner(
        **shared,
        num_elites=plan.num_elites,
        beta=plan.icem_beta,
        decay=plan.icem_decay,
        keep_elites=plan.icem_keep_elites,
        momentum=plan.icem_momentum,
    ),
}


def build_planner(plan: PlanConfig) -> Planner:
    """The planner ``plan.planner`` names, with the shared sample/iteration budget and action clip."""
    factory = _FACTORIES.get(plan.planner)
    if factory is None:
        raise ValueError(f"unknown planner {plan.planner!r} (plan.planner); expected one of: {', '.join(PLANNERS)}")
    bound = plan.action_clip if plan.action_clip > 0 else None
    shared = {
        "num_samples": plan.num_samples,
        "iterations": plan.iterations,
        "init_std": plan.init_std,
        "action_low": None if bound is None else -bound,
        "action_high": bound,
    }
    return factory(plan, shared)
