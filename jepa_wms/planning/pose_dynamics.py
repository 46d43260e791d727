"""``plan.proprio_dynamics=pose``: rollouts whose proprio is advanced by composing the 7-D pose with each action.

The released V-JEPA-2-AC DROID model with proprio (``vjepa2_ac_oss``) takes a proprio token per frame but predicts
none; the original planner fed it ``compute_new_pose(pose, action)`` at every imagined step (α = 0: the proprio is
an input, never a cost). `pose_rollout` does the same, batched over candidates in torch
(`jepa_wms.datasets.pose_actions.compose_pose`): the pose is denormalised with the model's proprio stats, advanced
by each of the frameskip raw actions of a model action, and normalised again for the predictor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..datasets.pose_actions import compose_pose
from ..world_model import LatentState, WorldModel

__all__ = ["POSE_DIM", "advance_pose", "check_pose_model", "pose_rollout"]

POSE_DIM = 7  # x, y, z, extrinsic Euler xyz, gripper (datasets/pose_actions.py)


def check_pose_model(model: WorldModel) -> None:
    """Refuse a model whose proprio and actions are not the 7-D pose and pose deltas that composition needs."""
    where = "plan.proprio_dynamics=pose"
    if not model.uses_proprio:
        raise ValueError(f"{where}: this model takes no proprio; use plan.proprio_dynamics=predicted")
    if model.proprio_space == "embedding":
        raise ValueError(
            f"{where}: the model's proprio latent is an embedding (model.proprio_space=embedding), not a pose that "
            "can be composed; use plan.proprio_dynamics=predicted"
        )
    dims = {"proprio": model.proprio_mean.numel(), "action": model.action_mean.numel()}
    for name, dim in dims.items():
        if dim != POSE_DIM:
            raise ValueError(f"{where}: needs {POSE_DIM}-D pose {name}s (x, y, z, Euler xyz, gripper), got {dim}-D")


def advance_pose(model: WorldModel, proprio: Tensor, action: Tensor) -> Tensor:
    """Normalised pose (B, 7) after the normalised model action (B, frameskip·7), normalised again."""
    raw_pose = proprio.double() * model.proprio_std.double() + model.proprio_mean.double()
    for step in model.denormalize_actions(action.double()).unbind(1):  # (B, 7) each, in time order
        raw_pose = compose_pose(raw_pose, step)
    return ((raw_pose - model.proprio_mean.double()) / model.proprio_std.double()).to(proprio.dtype)


def pose_rollout(model: WorldModel, context: LatentState, actions: Tensor, kv_window: int = 0) -> LatentState:
    """`WorldModel.rollout` from one context frame (B, 1, ...), the proprio fed to each step being the context pose
    composed with the actions so far. Returns the H predicted frames and the H poses reached (B, H, 7), normalised.
    """
    if context.proprio is None or context.visual.shape[1] != 1:
        raise ValueError("pose_rollout: needs one context frame with its proprio (B, 1, 7)")
    cache = model.predictor.new_cache(context.visual.shape[0], kv_window)
    cache.reserve(actions.shape[1] * model.predictor.tokens_per_frame)  # grown in place, as in WorldModel.rollout
    z, pose = context.visual[:, -1], context.proprio[:, -1]
    zs, poses = [], []
    for h in range(actions.shape[1]):
        # The pose is normalised proprio: the model's own embedding of it ("decoded" encodes it, "raw" passes it).
        p_in = model._embed_proprio(pose.unsqueeze(1)).squeeze(1)
        z, _ = model.predictor.step(z, actions[:, h], p_in, cache)
        pose = advance_pose(model, pose, actions[:, h])
        zs.append(z)
        poses.append(pose)
    return LatentState(torch.stack(zs, 1), torch.stack(poses, 1))
