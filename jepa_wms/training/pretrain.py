"""Self-supervised pretraining of an image encoder alone (``jepa-wms pretrain``): a frame autoencoder.

An encoder trained end to end with the predictor keeps what predicting the next latent and the anti-collapse loss
need; on Push-T that is the agent, not the block (see ``encoders/pixel_decoder.py``). Pretrained alone, the encoder
must let the pixel decoder redraw every frame: encoder → tokens → ``PixelDecoder`` → the frame, an MSE in the
encoder's normalised pixel space, plus ``loss.reg_weight`` × the configured anti-collapse term (``loss.regularizer``).
On Push-T, mostly white frames give a small MSE (the mean frame scores 0.02) that the quick recipes' VICReg outweighs
15–25×: the decoder then only draws a blob at the block. ``loss.regularizer=none`` with
``model.encoder.normalize_output=true`` (tokens layer-normed, so the frozen latents keep a unit scale) redraws the T
with its orientation; README, "Pretrained, frozen encoder", has the probes and planning results.

Each training sample is one frame (windows of 1 frame; every frame of the training episodes, the same episode split
as ``train``), and the training loop is ``train``'s own: schedule, validation, ``log.csv`` (``loss_recon``),
atomic checkpoints, exact resume, the NaN error. The checkpoint holds ``encoder.*`` and ``pixel_decoder.*`` weights
and the full config, with ``objective: pretrain_encoder``; a world model then freezes it with
``model.encoder.type: checkpoint`` and ``model.encoder.weights: OUT/checkpoints/last.pt``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ExperimentConfig
from ..datasets import TrajectoryStore
from ..encoders import Encoder, KeypointDecoder, KeypointEncoder, PixelDecoder, build_encoder
from .losses import _regularizer
from .train import Objective, train

__all__ = ["PRETRAIN_ENCODER", "FrameAutoencoder", "build_autoencoder", "check_pretrain_config", "pretrain"]


class FrameAutoencoder(nn.Module):
    """An image encoder and a pixel decoder; its state dict uses the world model's names (``encoder.*``,
    ``pixel_decoder.*``), so ``model.encoder.type: checkpoint`` reads the encoder from its checkpoint."""

    observation_key = "pixels"

    def __init__(self, encoder: Encoder, pixel_decoder: PixelDecoder | KeypointDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.pixel_decoder = pixel_decoder

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """uint8 frames (B, H, W, 3) → (reconstruction, target, tokens): (B, 3, img, img) twice and (B, N, D)."""
        tokens = self.encoder.encode_frames(pixels[:, None])[:, 0]
        return self.pixel_decoder(tokens), self.encoder.preprocess(pixels), tokens

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def check_pretrain_config(cfg: ExperimentConfig) -> None:
    """Errors naming the key for a config that cannot pretrain an encoder (checked before any data is read)."""
    enc = cfg.model.encoder
    if not cfg.model.pixel_decoder:
        raise ValueError(
            "pretraining reconstructs frames through model.pixel_decoder, which is empty: set it, e.g. "
            "'model.pixel_decoder=[64,64,32,32,16,16]'"
        )
    if enc.type == "state":
        raise ValueError(
            "model.encoder.type=state reads the env state, not pixels: there is no image encoder to pretrain"
        )
    if enc.type not in ("conv", "keypoints") and not enc.trainable:
        raise ValueError(
            f"model.encoder.type={enc.type} is frozen (model.encoder.trainable=false): set "
            f"model.encoder.trainable=true to pretrain it"
        )
    if cfg.loss.recon_weight <= 0:
        raise ValueError(f"loss.recon_weight must be > 0 to pretrain by reconstruction, got {cfg.loss.recon_weight}")


def build_autoencoder(cfg: ExperimentConfig, store: TrajectoryStore | None = None) -> FrameAutoencoder:
    """The configured encoder (``model.encoder``) and pixel decoder (``model.pixel_decoder``); ``store`` is unused
    (the objective interface passes it)."""
    check_pretrain_config(cfg)
    encoder = build_encoder(cfg.model.encoder)
    if isinstance(encoder, KeypointEncoder):
        # Keypoints are coordinates, not features on a grid: the decoder draws them as blobs first.
        decoder = KeypointDecoder(encoder.embed_dim, encoder.img_size, cfg.model.pixel_decoder)
        return FrameAutoencoder(encoder, decoder)
    decoder = PixelDecoder(encoder.embed_dim, encoder.grid_size, encoder.img_size, cfg.model.pixel_decoder)
    return FrameAutoencoder(encoder, decoder)


def reconstruction_loss(
    model: FrameAutoencoder, batch: dict[str, Tensor], cfg: ExperimentConfig, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """``recon_weight`` × MSE(decoded, frame) + ``reg_weight`` × regulariser, on windows of one frame."""
    if "pixels" not in batch:
        raise ValueError(f"pretraining reconstructs pixels, which the batch lacks ({sorted(batch)})")
    recon, target, tokens = model(batch["pixels"][:, 0])
    mse = F.mse_loss(recon.float(), target)
    loss = cfg.loss.recon_weight * mse
    reg, stats = _regularizer(tokens[:, None], cfg.loss, generator)
    if cfg.loss.regularizer != "none":
        loss = loss + cfg.loss.reg_weight * reg
        stats["loss_reg"] = float(reg.detach())
    stats.update(loss_recon=float(mse.detach()), loss=float(loss.detach()))
    return loss, stats


PRETRAIN_ENCODER = Objective(
    "pretrain_encoder", build_autoencoder, reconstruction_loss, window=lambda cfg: (1, 1), latents=False
)


def pretrain(
    cfg: ExperimentConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    show_progress: bool = True,
) -> Path:
    """Pretrain ``cfg.model.encoder`` as a frame autoencoder on the frames in ``data_dir``; returns
    ``out_dir/checkpoints/last.pt`` (``train.epochs`` passes over the training episodes' frames)."""
    check_pretrain_config(cfg)
    return train(cfg, data_dir, out_dir, resume=resume, show_progress=show_progress, objective=PRETRAIN_ENCODER)
