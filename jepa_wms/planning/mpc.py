"""The receding-horizon loop: encode the current frame, plan H model actions, execute k of them, replan.

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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..world_model import LatentState, WorldModel
from .base import CostFn, Planner
from .objectives import goal_cost


@dataclass
class EpisodeTrace:
    """What happened in one episode: frames seen, states visited, and the planner's view of it."""

    frames: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    cost_histories: list[np.ndarray] = field(default_factory=list)  # one (iterations,) array per plan
    plan_seconds: float = 0.0


def latent_goal_cost_fn(
    model: WorldModel,
    context: LatentState,
    goal: LatentState,
    alpha: float,
    kind: str,
    autocast_ctx: Callable,
) -> CostFn:
    """Build ``(B, S, H, A) → (B, S)``: roll every candidate out from the (B, 1) context, score the last step."""

    def cost(candidates: Tensor) -> Tensor:
        b, s = candidates.shape[:2]

        def rep(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.repeat_interleave(s, dim=0)

        ctx = LatentState(rep(context.visual), rep(context.proprio))
        with autocast_ctx():
            pred = model.rollout(ctx, candidates.flatten(0, 1))
        last_vis = pred.visual[:, -1].float().unflatten(0, (b, s))
        last_prop = None if pred.proprio is None else pred.proprio[:, -1].float().unflatten(0, (b, s))
        use_prop = last_prop is not None and goal.proprio is not None and alpha > 0
        return goal_cost(
            last_vis,
            goal.visual[:, 0].float(),
            last_prop if use_prop else None,
            goal.proprio[:, 0].float() if use_prop else None,
            alpha if use_prop else 0.0,
            kind,
        )

    return cost


class LatentDynamics:
    """A `WorldModel` as the loop drives it: observations are encoded, candidates scored in latent space. The
    simulator oracle (`jepa_wms.planning.simulator.SimulatorModel`) offers the same four members."""

    def __init__(self, model: WorldModel, device: torch.device, autocast_ctx: Callable) -> None:
        self.model, self.device, self.autocast_ctx = model.eval(), device, autocast_ctx
        self.frameskip, self.action_dim = model.frameskip, model.action_dim

    def denormalize_actions(self, actions: Tensor) -> Tensor:
        return self.model.denormalize_actions(actions)

    def observe(self, obs: Sequence[dict]) -> LatentState:
        return _observe(self.model, obs, self.device)

    def cost_fn(self, current: LatentState, goal: LatentState, alpha: float, kind: str) -> CostFn:
        return latent_goal_cost_fn(self.model, current, goal, alpha, kind, self.autocast_ctx)


def _observe(model: WorldModel, obs: Sequence[dict], device: torch.device) -> LatentState:
    proprio = torch.from_numpy(np.stack([o["proprio"] for o in obs]).astype(np.float32))[:, None].to(device)
    if model.observation_key == "state":
        # A state model encodes the exact env state, in float32 as the dataset's /state rows it was trained on.
        state = torch.from_numpy(np.stack([o["state"] for o in obs]).astype(np.float32))[:, None].to(device)
        return model.encode(None, proprio, state=state)
    pixels = torch.from_numpy(np.stack([o["pixels"] for o in obs]))[:, None].to(device)
    return model.encode(pixels, proprio)


@torch.no_grad()
def run_mpc(
    model: WorldModel | Any,
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
) -> list[EpisodeTrace]:
    """Drive ``envs`` (one per episode, already reset to their start states) towards their goals for ``total_steps``
    env steps. ``goal_obs`` are the goal observations (pixels + proprio, and ``state``: the goal's exact env state).
    ``model`` is a `WorldModel` or the simulator oracle. Returns one trace per episode."""
    device = torch.device(device)
    dyn = LatentDynamics(model, device, autocast_ctx) if isinstance(model, WorldModel) else model
    traces = [
        EpisodeTrace(frames=[o["pixels"]], states=[env.unwrapped.get_state()])
        for env, o in zip(envs, first_obs, strict=True)
    ]
    goal = dyn.observe(goal_obs)
    # Observations carry the exact env state too: state-based models and the simulator oracle read it.
    obs = [{**o, "state": env.unwrapped.get_state()} for env, o in zip(envs, first_obs, strict=True)]
    steps_left, warm = total_steps, None
    frameskip = dyn.frameskip
    while steps_left > 0:
        plan_len = min(horizon, math.ceil(steps_left / frameskip))
        cost_fn = dyn.cost_fn(dyn.observe(obs), goal, alpha, cost_kind)
        if warm is not None and warm.shape[1] != plan_len:
            warm = warm[:, :plan_len]
        result = planner.plan(cost_fn, len(envs), plan_len, dyn.action_dim, generators, init_mean=warm, device=device)
        k = min(execute, plan_len)
        raw = dyn.denormalize_actions(result.actions[:, :k]).flatten(1, 2).cpu().numpy()  # (B, k·f, A)
        for b, env in enumerate(envs):
            traces[b].cost_histories.append(result.cost_history[b].cpu().numpy())
            traces[b].plan_seconds += result.elapsed_s / len(envs)
            for action in raw[b, : min(steps_left, raw.shape[1])]:
                o, _, _, _, info = env.step(action)
                obs[b] = {**o, "state": info["state"]}
                traces[b].frames.append(o["pixels"])
                traces[b].states.append(info["state"])
        steps_left -= k * frameskip
        # Warm start: the unexecuted tail of this plan, padded with zeros (the normalised data mean).
        tail = result.actions[:, k:]
        warm = torch.cat([tail, torch.zeros_like(result.actions[:, : horizon - tail.shape[1]])], 1)
    return traces
