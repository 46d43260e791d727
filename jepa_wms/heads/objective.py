"""Training a head on a world model's frozen latents (``jepa-wms train-head``) and loading it back for decoding.

A head trains through ``train``'s own loop (schedule, validation, ``log.csv``, atomic checkpoints, exact resume,
the NaN error) as an :class:`Objective` named ``head_image`` or ``head_state``, on windows of one frame. The world
model's encoder is frozen and is not part of the head's state dict: a head checkpoint holds only the head (a DINOv2
or V-JEPA 2 encoder would otherwise be copied into every head file). When training ends the checkpoint gains a
``head`` record (:class:`HeadSpec`): what to rebuild, the source world model's path and the SHA-256 of its encoder
weights, which ``load_head`` compares so that a head is never read on another model's latents. Two world models that
share one frozen encoder share their heads.

The state head trains from the latent cache when one exists (``data.latents``, as ``train``); the image head's
target is the frame itself, so it always reads pixels and encodes them on the fly (without autograd).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import CheckpointError, load_checkpoint, load_state_strict, save_checkpoint
from ..config import ExperimentConfig, config_from_dict
from ..datasets import TrajectoryStore
from ..encoders import Encoder
from ..saved_model import load_world_model, saved_objective
from ..training.encode import encoder_fingerprint
from ..training.train import Objective, train
from ..world_model import WorldModel
from .image import ImageHead, image_loss
from .state import StateHead

__all__ = ["HEAD_KINDS", "HeadModel", "HeadSpec", "encoder_sha256", "load_head", "train_head"]

HeadKind = Literal["image", "state"]
HEAD_KINDS: tuple[str, ...] = ("image", "state")
# The config sections a head run may override: the model is the world model's, fixed by its checkpoint.
HEAD_OVERRIDABLE = ("train", "optim", "data")


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """A head's architecture, loss and provenance (the checkpoint's ``head`` record)."""

    kind: str
    world_model: str  # the checkpoint the head was trained on
    encoder_sha256: str  # of that model's encoder weights
    channels: tuple[int, ...] = (64, 64, 32, 32, 16, 16)  # image: PixelDecoder stages
    pixel_loss: str = "l1"  # image: l1 | l2
    ssim_weight: float = 0.2  # image: weight of 1 − SSIM
    hidden: int = 256  # state: MLP width
    proprio: bool = False  # state: reads the (predicted) normalised proprio too


def encoder_sha256(model: WorldModel, cfg: ExperimentConfig) -> str:
    return encoder_fingerprint(model.encoder, cfg.model.encoder)["weights_sha256"]


def predicts_proprio(model: WorldModel) -> bool:
    """Whether rollouts return normalised proprio, the space the dataset's ``proprio`` rows are in."""
    return model.proprio_space == "decoded" and model.proprio_decoder is not None


class HeadModel(nn.Module):
    """A head on a frozen encoder: what ``train`` optimises. The encoder is held outside the module tree, so the
    state dict, the optimizer and ``train()`` mode see only the head; ``_apply`` still moves it with the head."""

    def __init__(self, encoder: Encoder, head: ImageHead | StateHead, spec: HeadSpec) -> None:
        super().__init__()
        self._frozen = [encoder.set_trainable(False).eval()]
        self.head = head
        self.spec = spec

    @property
    def encoder(self) -> Encoder:
        return self._frozen[0]

    @property
    def observation_key(self) -> str:
        return self.encoder.observation_key

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> HeadModel:
        self.encoder._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @torch.no_grad()
    def tokens(self, batch: dict[str, Tensor]) -> Tensor:
        """The batch's frame tokens (B, T, N, D): cached latents, or the frozen encoder's."""
        if "latents" in batch:
            return batch["latents"].float()
        return self.encoder.encode_frames(batch[self.observation_key])


def _build_head(spec: HeadSpec, encoder: Encoder, state: np.ndarray, proprio_dim: int) -> ImageHead | StateHead:
    """``state``: the rows the state head's normalisation is fitted on (loading passes placeholders of the right
    width: the checkpoint's statistics replace them)."""
    if spec.kind == "image":
        return ImageHead(encoder, spec.channels)
    return StateHead(encoder.num_tokens, encoder.embed_dim, state, proprio_dim if spec.proprio else 0, spec.hidden)


def head_loss(
    model: HeadModel, batch: dict[str, Tensor], cfg: ExperimentConfig, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """Image: pixel + SSIM terms against the frame as the encoder sees it. State: MSE in normalised state, and the
    mean absolute error in env units as ``state_mae``."""
    tokens = model.tokens(batch)[:, 0]
    head, spec = model.head, model.spec
    if isinstance(head, ImageHead):
        target = model.encoder.preprocess(batch["pixels"][:, 0].to(tokens.device))
        loss, stats = image_loss(head(tokens), target, head, spec.pixel_loss, spec.ssim_weight)
    else:
        pred = head(tokens, batch["proprio"][:, 0] if head.uses_proprio else None)
        loss = F.mse_loss(pred, head.normalize(batch["state"][:, 0]))
        stats = {"state_mae": float((head.denormalize(pred.detach()) - batch["state"][:, 0]).abs().mean())}
    stats["loss"] = float(loss.detach())
    return loss, stats


def train_head(
    world_model: str | Path,
    kind: HeadKind,
    data_dir: str | Path,
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    channels: Sequence[int] = HeadSpec.channels,
    pixel_loss: str = HeadSpec.pixel_loss,
    ssim_weight: float = HeadSpec.ssim_weight,
    hidden: int = HeadSpec.hidden,
    proprio: bool = True,
    resume: bool = False,
    show_progress: bool = True,
) -> Path:
    """Train a ``kind`` head on the frozen latents of ``world_model`` over the frames of ``data_dir``; returns
    ``out_dir/checkpoints/last.pt``. ``overrides`` change ``train.*``, ``optim.*`` and ``data.*`` of the world
    model's config; ``proprio`` (state head) is used only when the model's rollouts predict normalised proprio."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head {kind!r}; expected one of {HEAD_KINDS}")
    if pixel_loss not in ("l1", "l2"):
        raise ValueError(f"pixel loss must be l1 or l2, got {pixel_loss!r}")
    model, wm_cfg, _ = load_world_model(world_model)
    cfg = config_from_dict(wm_cfg.to_dict(), overrides, only=HEAD_OVERRIDABLE)
    spec = HeadSpec(
        kind=kind,
        world_model=str(world_model),
        encoder_sha256=encoder_sha256(model, wm_cfg),
        channels=tuple(int(c) for c in channels),
        pixel_loss=pixel_loss,
        ssim_weight=float(ssim_weight),
        hidden=int(hidden),
        proprio=bool(proprio) and kind == "state" and predicts_proprio(model),
    )

    def build(cfg: ExperimentConfig, store: TrajectoryStore) -> HeadModel:
        # The state statistics over every frame, as the dataset's action/proprio statistics are.
        return HeadModel(model.encoder, _build_head(spec, model.encoder, store.state, store.proprio_dim), spec)

    objective = Objective(f"head_{kind}", build, head_loss, window=lambda cfg: (1, 1), latents=kind == "state")
    ckpt = train(cfg, data_dir, out_dir, resume=resume, show_progress=show_progress, objective=objective)
    payload = load_checkpoint(ckpt)
    payload["head"] = {**dataclasses.asdict(spec), "channels": list(spec.channels)}
    save_checkpoint(ckpt, payload)
    return ckpt


def load_head(path: str | Path, model: WorldModel, world_model: str | Path, cfg: ExperimentConfig) -> HeadModel:
    """The head in ``path`` on ``model`` (loaded from ``world_model`` with config ``cfg``), in eval mode; refused
    unless it was trained on latents of this model's encoder."""
    ckpt = load_checkpoint(path)
    objective = saved_objective(ckpt)
    if objective not in {f"head_{k}" for k in HEAD_KINDS}:
        raise CheckpointError(f"{path} holds a {objective!r} model, not a head (jepa-wms train-head makes one)")
    if "head" not in ckpt:
        raise CheckpointError(f"{path} is an unfinished head (no 'head' record): finish it with train-head --resume")
    record = dict(ckpt["head"])
    spec = HeadSpec(**{**record, "channels": tuple(record["channels"])})
    if spec.encoder_sha256 != encoder_sha256(model, cfg):
        raise CheckpointError(
            f"head {path} was trained on world model {spec.world_model}, whose encoder differs from that of "
            f"{world_model}: train a head on {world_model} with jepa-wms train-head"
        )
    state_dim = ckpt["model"].get("head.state_mean", torch.zeros(0)).shape[0] if spec.kind == "state" else 0
    head = _build_head(spec, model.encoder, np.zeros((2, state_dim), np.float32), model.proprio_mean.numel())
    head_model = HeadModel(model.encoder, head, spec)
    load_state_strict(head_model, ckpt["model"], path, f"a {spec.kind} head on this encoder")
    return head_model.to(model.proprio_mean.device).eval()
