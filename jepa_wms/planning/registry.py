"""The planners by name: ``plan.planner`` becomes a planner here, and only here.

Every planner gets the shared budget (``plan.num_samples``, ``plan.iterations``, ``plan.init_std``) and the action
clip (`action_bounds`: a number in data std, a list per dim in the data's own units); each then reads its own keys.
An unknown name is an error that lists the valid ones, never a fallback: a typo must not quietly evaluate another
planner.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from jepa_wms.config import ConfigError, PlanConfig, PlannerName
from jepa_wms.planning.base import BoundLike, Planner
from jepa_wms.planning.cem import CEMPlanner
from jepa_wms.planning.gradient import GradientPlanner
from jepa_wms.planning.icem import ICEMPlanner
from jepa_wms.planning.mppi import MPPIPlanner
from jepa_wms.planning.nevergrad import NevergradPlanner

__all__ = ["PLANNERS", "ActionStats", "action_bounds", "build_planner", "model_action_stats"]

ActionStats = tuple[Tensor, Tensor, int]
"""A model's action normalisation: raw per-step ``mean`` (A,), ``std`` (A,) and its frameskip."""

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


def action_bounds(
    clip: float | Sequence[float], action_stats: ActionStats | None = None
) -> tuple[BoundLike, BoundLike]:
    """``plan.action_clip`` as the planner's ``(action_low, action_high)`` in normalised model units.

    A number c is ±c data std in every dim (0: unbounded). A list bounds each raw action dim of one env step,
    |a_d| <= c_d in the data's own units: with ``action_stats`` = (mean (A,), std (A,), frameskip) of the model's
    normalisation it becomes ``((-c - mean) / std, (c - mean) / std)``, tiled over the frameskip steps of a model
    action. Without stats the list is taken as already normalised (models trained on raw actions, such as the
    released DROID ones, whose stats are mean 0 and std 1); evaluation always passes them.
    """
    if not isinstance(clip, Sequence):
        return (None, None) if clip <= 0 else (-float(clip), float(clip))
    c = torch.as_tensor(list(clip), dtype=torch.float64)
    if action_stats is None:
        return tuple((-c).tolist()), tuple(c.tolist())
    mean, std, frameskip = action_stats
    mean = torch.as_tensor(mean, dtype=torch.float64).flatten().cpu()
    std = torch.as_tensor(std, dtype=torch.float64).flatten().cpu()
    raw_dim = mean.numel()
    if c.numel() == raw_dim * frameskip and frameskip > 1:
        # One bound per dim of the whole model action: each frameskip step gets its own slice.
        mean, std = mean.repeat(frameskip), std.repeat(frameskip)
    elif c.numel() == raw_dim:
        c, mean, std = c.repeat(frameskip), mean.repeat(frameskip), std.repeat(frameskip)
    else:
        also = f" (or {raw_dim * frameskip}, one per dim of a {frameskip}-step model action)" if frameskip > 1 else ""
        raise ConfigError(
            f"config key 'plan.action_clip' has {c.numel()} bounds; expected {raw_dim}, one per action dim of "
            f"this model{also}, or a single number"
        )
    return tuple(((-c - mean) / std).tolist()), tuple(((c - mean) / std).tolist())


def model_action_stats(model: Any) -> ActionStats | None:
    """``(action_mean, action_std, frameskip)`` of a world model or the simulator oracle; None if it has none."""
    if not all(hasattr(model, k) for k in ("action_mean", "action_std", "frameskip")):
        return None
    return model.action_mean, model.action_std, int(model.frameskip)


def build_planner(plan: PlanConfig, action_stats: ActionStats | None = None) -> Planner:
    """The planner ``plan.planner`` names, with the shared sample/iteration budget and the action clip
    (`action_bounds`; a per-dim clip needs the model's ``action_stats`` to be in the data's units)."""
    factory = _FACTORIES.get(plan.planner)
    if factory is None:
        raise ValueError(f"unknown planner {plan.planner!r} (plan.planner); expected one of: {', '.join(PLANNERS)}")
    low, high = action_bounds(plan.action_clip, action_stats)
    shared = {
        "num_samples": plan.num_samples,
        "iterations": plan.iterations,
        "init_std": plan.init_std,
        "action_low": low,
        "action_high": high,
    }
    return factory(plan, shared)
