"""What the receding-horizon loop (`jepa_wms.evaluation.mpc.run_mpc`) plans with: the `Dynamics` contract and its
world-model side, `LatentDynamics`, which encodes observations and scores candidates in latent space.

The simulator oracle (`jepa_wms.planning.simulator.SimulatorModel`) is the other `Dynamics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ..world_model import LatentState, WorldModel
from .base import CostFn
from .objectives import goal_cost
from .pose_dynamics import check_pose_model, pose_rollout


class Dynamics(Protocol):
    """What the loop needs of a model: the action layout, raw env actions, a planning context per observation and
    a cost over candidate action sequences."""

    @property
    def frameskip(self) -> int:
        """Env steps per model action."""
        ...

    @property
    def action_dim(self) -> int:
        """Width of one model action: frameskip × the env's action dim."""
        ...

    def denormalize_actions(self, actions: Tensor) -> Tensor:
        """Model actions ``(..., frameskip·A)``, normalised → raw env actions ``(..., frameskip, A)``."""
        ...

    def observe(self, obs: Sequence[dict]) -> Any:
        """The planning context of B observations (pixels, proprio and the exact env ``state``)."""
        ...

    def cost_fn(self, current: Any, goal: Any, alpha: float, kind: str) -> CostFn:
        """``(B, S, H, A) → (B, S)``: candidates scored from ``current`` against ``goal``."""
        ...


def latent_goal_cost_fn(
    model: WorldModel,
    context: LatentState,
    goal: LatentState,
    alpha: float,
    kind: str,
    autocast_ctx: Callable,
    kv_window: int = 0,
    max_rows: int = 0,
    proprio_dynamics: str = "predicted",
) -> CostFn:
    """Build ``(B, S, H, A) → (B, S)``: roll every candidate out from the (B, 1) context, score the last step.

    ``kv_window`` is passed to ``WorldModel.rollout``. ``max_rows`` >= 1 rolls the B·S candidates out in
    sub-batches of at most that many rows (``planning.memory`` sizes it from the memory budget) and concatenates
    their last steps: rows are independent, so the costs equal the unsplit rollout's; 0 = one rollout.
    ``proprio_dynamics="pose"`` advances a 7-D pose proprio by composition instead (`pose_rollout`).
    """
    if proprio_dynamics == "pose":
        check_pose_model(model)
    elif proprio_dynamics != "predicted":
        raise ValueError(f"plan.proprio_dynamics must be 'predicted' or 'pose', got {proprio_dynamics!r}")

    def last_step(ctx: LatentState, rows: slice, candidates: Tensor) -> tuple[Tensor, Tensor | None]:
        sub = LatentState(ctx.visual[rows], None if ctx.proprio is None else ctx.proprio[rows])
        with autocast_ctx():
            if proprio_dynamics == "pose":
                pred = pose_rollout(model, sub, candidates[rows], kv_window=kv_window)
            else:
                pred = model.rollout(sub, candidates[rows], kv_window=kv_window)
        return pred.visual[:, -1].float(), None if pred.proprio is None else pred.proprio[:, -1].float()

    def cost(candidates: Tensor) -> Tensor:
        b, s = candidates.shape[:2]

        def rep(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.repeat_interleave(s, dim=0)

        # The repeated context is one frame per row, small next to a rollout's cache; sub-batches slice it.
        ctx, flat, total = LatentState(rep(context.visual), rep(context.proprio)), candidates.flatten(0, 1), b * s
        step = total if max_rows <= 0 else max_rows
        parts = [last_step(ctx, slice(i, min(i + step, total)), flat) for i in range(0, total, step)]
        last_vis = torch.cat([v for v, _ in parts]).unflatten(0, (b, s))
        last_prop = None if parts[0][1] is None else torch.cat([p for _, p in parts]).unflatten(0, (b, s))
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
    """A `WorldModel` as `Dynamics`: observations are encoded, candidates scored in latent space."""

    def __init__(
        self,
        model: WorldModel,
        device: torch.device,
        autocast_ctx: Callable,
        kv_window: int = 0,
        max_rows: int = 0,
        proprio_dynamics: str = "predicted",
    ) -> None:
        self.model, self.device, self.autocast_ctx = model.eval(), device, autocast_ctx
        # Memory knobs of the rollouts (see `latent_goal_cost_fn`): a key/value window and a candidate sub-batch.
        self.kv_window, self.max_rows = kv_window, max_rows
        self.proprio_dynamics = proprio_dynamics
        self.frameskip, self.action_dim = model.frameskip, model.action_dim

    def denormalize_actions(self, actions: Tensor) -> Tensor:
        return self.model.denormalize_actions(actions)

    def observe(self, obs: Sequence[dict]) -> LatentState:
        return _observe(self.model, obs, self.device)

    def cost_fn(self, current: LatentState, goal: LatentState, alpha: float, kind: str) -> CostFn:
        return latent_goal_cost_fn(
            self.model, current, goal, alpha, kind, self.autocast_ctx, self.kv_window, self.max_rows,
            self.proprio_dynamics,
        )  # fmt: skip


def _observe(model: WorldModel, obs: Sequence[dict], device: torch.device) -> LatentState:
    proprio = torch.from_numpy(np.stack([o["proprio"] for o in obs]).astype(np.float32))[:, None].to(device)
    if model.observation_key == "state":
        # A state model encodes the exact env state, in float32 as the dataset's /state rows it was trained on.
        state = torch.from_numpy(np.stack([o["state"] for o in obs]).astype(np.float32))[:, None].to(device)
        return model.encode(None, proprio, state=state)
    pixels = torch.from_numpy(np.stack([o["pixels"] for o in obs]))[:, None].to(device)
    return model.encode(pixels, proprio)
