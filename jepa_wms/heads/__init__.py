"""Heads on a world model's frozen latents: an image decoder and a state regressor (``jepa-wms train-head``), the
open-loop rollouts they decode next to what happened (from a dataset or the env) and counterfactual action programs
(``jepa-wms decode``)."""

from .decode import decode_rollouts, rollout_errors
from .image import ImageHead, ssim
from .objective import HEAD_KINDS, HeadModel, HeadSpec, load_head, train_head
from .sources import EnvSource, trajectory_source
from .state import StateHead
from .unroll import load_programs, unroll_decode, unroll_programs

__all__ = [
    "EnvSource",
    "HEAD_KINDS",
    "HeadModel",
    "HeadSpec",
    "ImageHead",
    "StateHead",
    "decode_rollouts",
    "load_head",
    "load_programs",
    "rollout_errors",
    "ssim",
    "train_head",
    "trajectory_source",
    "unroll_decode",
    "unroll_programs",
]
