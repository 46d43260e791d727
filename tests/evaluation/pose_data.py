"""Test helpers for 7-D pose planning: a tiny DROID-like dataset, a hand-made world model whose latent is the
cumulative pose, and a tiny real world model with pose actions and proprio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jepa_wms.config import load_config
from jepa_wms.datasets import TrajectoryWriter
from jepa_wms.datasets.pose_actions import pose_deltas
from jepa_wms.world_model import LatentState, build_world_model, denormalize_actions
from tests.conftest import TINY
from tests.robot_media import colour_frames


def random_poses(rng: np.random.Generator, length: int, step: float = 0.02) -> np.ndarray:
    """(length, 7) poses: a random walk of at most ``step`` m (or rad) per dim and frame, gripper in [0, 1]."""
    pose = np.concatenate([rng.uniform(-0.3, 0.3, 3), rng.uniform(-0.5, 0.5, 3), rng.uniform(0.2, 0.8, 1)])
    poses = [pose]
    for _ in range(length - 1):
        move = rng.uniform(-step, step, 7)
        nxt = poses[-1] + move
        nxt[6] = np.clip(nxt[6], 0.0, 1.0)
        poses.append(nxt)
    return np.stack(poses)


def write_pose_dataset(path: str | Path, lengths: list[int], seed: int = 0, action_dim: int = 7, img: int = 8) -> Path:
    """A dataset in the layout `jepa-wms convert` writes for robots: actions are the pose deltas, proprio the pose.
    ``action_dim`` other than 7 keeps the first dims (a dataset without 7-D actions)."""
    rng = np.random.default_rng(seed)
    with TrajectoryWriter(path, env="droid") as writer:
        for length in lengths:
            poses = random_poses(rng, length)
            writer.add_episode(colour_frames(length, img, img), pose_deltas(poses)[:, :action_dim], poses, poses)
    return Path(path)


class CumulativePoseModel:
    """A "world model" whose latent is the pose (one 7-D token) and whose rollout adds each raw action to it: the
    goal latent is then reached exactly when the plan's summed actions equal the expert's."""

    observation_key = "pixels"
    uses_proprio = False
    frameskip = 1

    def __init__(self, action_mean: torch.Tensor | None = None, action_std: torch.Tensor | None = None) -> None:
        self.action_mean = torch.zeros(7) if action_mean is None else action_mean
        self.action_std = torch.ones(7) if action_std is None else action_std
        self.proprio_mean, self.proprio_std = torch.zeros(7), torch.ones(7)

    @property
    def action_dim(self) -> int:
        return 7

    def eval(self) -> CumulativePoseModel:
        return self

    def denormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return denormalize_actions(actions, self.action_mean, self.action_std, 1)

    def encode(self, pixels: torch.Tensor, proprio: torch.Tensor) -> LatentState:
        return LatentState(proprio.float().unsqueeze(2), None)  # (B, T, 1, 7)

    def rollout(self, context: LatentState, actions: torch.Tensor, kv_window: int = 0) -> LatentState:
        raw = self.denormalize_actions(actions).flatten(2)  # (B, H, 7)
        return LatentState(context.visual[:, -1:] + raw.cumsum(1).unsqueeze(2), None)


def tiny_pose_model(
    predictor: str = "vjepa2_ac", proprio_space: str = "raw", seed: int = 0, stats: bool = False
) -> tuple[torch.nn.Module, object]:
    """A tiny world model with 7-D pose actions and proprio (frameskip 1, 16-px frames) and its config; ``stats``
    gives it non-trivial action/proprio normalisation."""
    cfg = load_config(
        "wall",
        [
            *TINY,
            "env=droid",
            "data.frameskip=1",
            f"model.predictor.type={predictor}",
            f"model.proprio_space={proprio_space}",
            "model.predictor.predict_proprio=false",
            "model.predictor.pred_dim=16",
            "plan.precision=fp32",
        ],
    )
    torch.manual_seed(seed)
    kw = {}
    if stats:
        kw = {
            "action_mean": torch.linspace(-0.01, 0.01, 7),
            "action_std": torch.linspace(0.02, 0.05, 7),
            "proprio_mean": torch.linspace(-0.2, 0.3, 7),
            "proprio_std": torch.linspace(0.5, 1.5, 7),
        }
    model = build_world_model(cfg.model, raw_action_dim=7, proprio_dim=7, frameskip=1, **kw).eval()
    return model, cfg
