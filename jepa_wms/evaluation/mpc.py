"""The receding-horizon loop: observe, plan H model actions, execute k of them in the envs, replan.

It steps the environments, so it lives with evaluation; what it plans with (a world model encoding frames, or the
true simulator) is a `jepa_wms.planning.dynamics.Dynamics`, and the cost it hands the planner comes from there.

All episodes of a batch are planned together (one batched world-model rollout per planner iteration). The reference
setting for Wall/Maze/Push-T (H = 6, k = 6, frameskip 5, 30 env steps) is a single open-loop plan; Metaworld
(k = 3, 100 steps) replans about 7 times. Between replans the unexecuted tail of the previous plan warm-starts the
planner (the original stored it but never used it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..planning.base import Planner, ReplanningPlanner
from ..planning.dynamics import Dynamics, LatentDynamics
from ..world_model import WorldModel
from .imagined import ImaginedPlan, imagine_plan

__all__ = ["EpisodeTrace", "run_mpc"]


@dataclass
class EpisodeTrace:
    """What happened in one episode: frames seen, states visited, and the planner's view of it."""

    frames: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    cost_histories: list[np.ndarray] = field(default_factory=list)  # one (iterations,) array per plan
    plan_seconds: float = 0.0
    imagined: ImaginedPlan | None = None  # the chosen plans' predictions, where recorded (videos with a head)


@torch.no_grad()
def run_mpc(
    model: WorldModel | Dynamics,
    envs: Sequence,
    first_obs: Sequence[dict],
    goal_obs: Sequence[dict],
    planner: Planner,
    generators: list[torch.Generator],
    *,
    horizon: int,
    execute: int,
    total_steps: int,
    alpha: float,
    cost_kind: str = "L2",
    autocast_ctx: Callable = contextlib.nullcontext,
    device: torch.device | str = "cpu",
    kv_window: int = 0,
    max_rows: int = 0,
    imagine: Sequence[bool] | None = None,
    proprio_dynamics: str = "predicted",
) -> list[EpisodeTrace]:
    """Drive ``envs`` (one per episode, already reset to their start states) towards their goals for ``total_steps``
    env steps. ``goal_obs`` are the goal observations (pixels + proprio, and ``state``: the goal's exact env state).
    ``model`` is a `WorldModel` (wrapped in `LatentDynamics`) or any other `Dynamics`, such as the simulator oracle.
    ``kv_window`` and ``max_rows`` bound a world model's rollout memory and ``proprio_dynamics`` says how its
    proprio advances (`LatentDynamics`). ``imagine[b]`` records
    in episode b's trace what the world model predicts for each chosen plan (``imagined.py``). Returns one trace per
    episode."""
    device = torch.device(device)
    if isinstance(model, WorldModel):
        dyn = LatentDynamics(
            model, device, autocast_ctx, kv_window=kv_window, max_rows=max_rows, proprio_dynamics=proprio_dynamics
        )
    else:
        dyn = model
    traces = [
        EpisodeTrace(frames=[o["pixels"]], states=[env.unwrapped.get_state()])
        for env, o in zip(envs, first_obs, strict=True)
    ]
    # Only where asked (episodes with a video): the extra rollout and the kept latents cost nothing elsewhere.
    imagining = {b: i for i, b in enumerate(b for b, on in enumerate(imagine or ()) if on)}
    for b in imagining:
        traces[b].imagined = ImaginedPlan()
    goal = dyn.observe(goal_obs)
    # Observations carry the exact env state too: state-based models and the simulator oracle read it.
    obs = [{**o, "state": env.unwrapped.get_state()} for env, o in zip(envs, first_obs, strict=True)]
    # A planner that carries its search across replans (iCEM's kept elites) gets a fresh session for this batch.
    session = planner.start_episodes() if isinstance(planner, ReplanningPlanner) else None
    active = planner if session is None else session
    steps_left, warm = total_steps, None
    frameskip = dyn.frameskip
    while steps_left > 0:
        plan_len = min(horizon, math.ceil(steps_left / frameskip))
        current = dyn.observe(obs)
        cost_fn = dyn.cost_fn(current, goal, alpha, cost_kind)
        if warm is not None and warm.shape[1] != plan_len:
            warm = warm[:, :plan_len]
        result = active.plan(cost_fn, len(envs), plan_len, dyn.action_dim, generators, init_mean=warm, device=device)
        k = min(execute, plan_len)
        raw = dyn.denormalize_actions(result.actions[:, :k]).flatten(1, 2).cpu().numpy()  # (B, k·f, A)
        imagined = imagine_plan(dyn, current, result.actions, list(imagining)) if imagining else None
        for b, env in enumerate(envs):
            traces[b].cost_histories.append(result.cost_history[b].cpu().numpy())
            traces[b].plan_seconds += result.elapsed_s / len(envs)
            executed = min(steps_left, raw.shape[1])
            if b in imagining:
                traces[b].imagined.record(imagined[imagining[b]], executed, frameskip)
            for action in raw[b, :executed]:
                o, _, _, _, info = env.step(action)
                obs[b] = {**o, "state": info["state"]}
                traces[b].frames.append(o["pixels"])
                traces[b].states.append(info["state"])
        steps_left -= k * frameskip
        if session is not None:
            session.shift(k)
        # Warm start: the unexecuted tail of this plan, padded with zeros (the normalised data mean).
        tail = result.actions[:, k:]
        warm = torch.cat([tail, torch.zeros_like(result.actions[:, : horizon - tail.shape[1]])], 1)
    return traces
