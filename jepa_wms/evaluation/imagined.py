"""Evaluation videos with the planner's imagination: what happened | the goal | what the world model imagined.

With an image head on the checkpoint's encoder (``eval.head``, from ``jepa-wms train-head --head image``), the
receding-horizon loop rolls each chosen plan through the world model once more, from the observation it was planned
from, for the episodes that get a video only (the rollout the planner scored it with, kept this time). The image head
draws the predicted latents, and each real frame is shown next to the imagined frame of its model step: the frame
after env step *i* of a plan next to the plan's prediction *i* // frameskip, the frame that model step ends on (so
the two agree at every frameskip-th frame, if the model is right). The episode's first frame shows the first plan's
first prediction, where the agent is heading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..world_model import LatentState, WorldModel
from .media import tile_row, write_frames

if TYPE_CHECKING:
    from ..heads.objective import HeadModel

__all__ = ["ImaginedPlan", "imagine_plan", "imagined_frames", "load_video_head", "write_imagined_video"]

# Latents decoded per image-head call: a few frames' activations at full resolution, whatever the episode length.
_DECODE_BATCH = 16


@dataclass
class ImaginedPlan:
    """An episode's imagined frames as latents: ``latents``, one (N, D) per executed model step, and ``at``, for
    each real frame the index of the latent shown next to it (several frames of one model step share one)."""

    latents: list[Tensor] = field(default_factory=list)
    at: list[int] = field(default_factory=list)

    def record(self, plan: Tensor, executed: int, frameskip: int) -> None:
        """Add the chosen plan's predicted latents ``plan`` (H, N, D) for the ``executed`` env steps taken from it."""
        start = len(self.latents)
        self.latents.extend(plan[: -(-executed // frameskip)].unbind(0))
        if not self.at:
            self.at.append(start)  # the first frame, before any step: the first prediction
        self.at.extend(start + i // frameskip for i in range(executed))


def load_video_head(setup: Any) -> HeadModel | None:
    """The image head ``setup.cfg.eval.head`` names (None without one), refused unless it was trained on the latents
    of ``setup``'s world model's encoder."""
    # Heads are imported where used, not at the top: importing the heads package imports the training loop, whose
    # periodic evaluation imports this package.
    from ..heads.image import ImageHead
    from ..heads.objective import load_head

    path = setup.cfg.eval.head
    if not path:
        return None
    if not isinstance(setup.model, WorldModel) or setup.checkpoint is None:
        raise ValueError(f"eval.head={path}: only a world model's plans are imagined (not plan.model=simulator's)")
    head = load_head(path, setup.model, setup.checkpoint, setup.cfg)
    if not isinstance(head.head, ImageHead):
        raise ValueError(f"eval.head={path} is a {head.spec.kind} head; the videos need an image head (--head image)")
    return head


@torch.no_grad()
def imagine_plan(dynamics: Any, current: LatentState, actions: Tensor, rows: Sequence[int]) -> Tensor:
    """The visual latents (R, H, N, D), float32 on the CPU, that ``dynamics``' world model (a `LatentDynamics`)
    predicts for the plans ``actions`` (B, H, A) of episodes ``rows`` from their observations ``current`` (B, 1, ...),
    rolled out as the planner's cost rolls candidates out (its autocast and key/value window)."""
    if not hasattr(dynamics, "model"):
        raise ValueError("imagined plans need a world model to roll them out, not the simulator")
    idx = torch.as_tensor(list(rows), device=current.visual.device)
    proprio = None if current.proprio is None else current.proprio[idx]
    with dynamics.autocast_ctx():
        pred = dynamics.model.rollout(
            LatentState(current.visual[idx], proprio), actions[idx.to(actions.device)], kv_window=dynamics.kv_window
        )
    return pred.visual.float().cpu()


@torch.no_grad()
def imagined_frames(head: HeadModel, plan: ImaginedPlan, size: tuple[int, int]) -> np.ndarray:
    """uint8 frames (T, H, W, 3), one per real frame: the image head's drawings of ``plan``'s latents, resized to
    the real frames' ``size`` (H, W) where the encoder reads another size."""
    from ..heads.image import unit_to_uint8

    device = head.head.mean.device
    drawn = []
    for i in range(0, len(plan.latents), _DECODE_BATCH):
        tokens = torch.stack(plan.latents[i : i + _DECODE_BATCH]).to(device)
        unit = head.head.to_unit(head.head(tokens)).clamp(0, 1)
        if tuple(unit.shape[-2:]) != tuple(size):
            unit = F.interpolate(unit, size=tuple(size), mode="bilinear", align_corners=False).clamp(0, 1)
        drawn.append(unit_to_uint8(unit).cpu().numpy())
    return np.concatenate(drawn)[np.asarray(plan.at)]


def write_imagined_video(
    path: str | Path,
    frames: Sequence[np.ndarray],
    goal: np.ndarray,
    head: HeadModel,
    plan: ImaginedPlan,
    fps: int = 8,
) -> Path:
    """Write the episode as GIF or MP4 (by suffix): agent | goal | imagined frame of the chosen plan, per frame."""
    imagined = imagined_frames(head, plan, frames[0].shape[:2])
    return write_frames(path, [tile_row([f, goal, i]) for f, i in zip(frames, imagined, strict=True)], fps)
