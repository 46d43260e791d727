"""Training losses: teacher forcing over the whole window plus an autoregressive multistep rollout term.

Weighting is consistent (the original divided teacher forcing by R+1 but the rollout by R): with R rollout steps the
prediction loss is the plain mean of R terms — the teacher-forcing loss (every 1-step prediction in the window) and
the k-step rollout errors for k = 2..R. The 1-step rollout prediction equals a teacher-forcing prediction, so it is
not counted twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import LossConfig
from ..encoders.regularizers import sigreg, vicreg
from ..world_model import LatentState, WorldModel


def latent_distance(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """Mean over every element of the per-element distance (``l2`` = squared error)."""
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    raise ValueError(f"unknown loss distance {kind!r}; expected l2, l1 or smooth_l1")


def _frame_loss(pred: LatentState, target: LatentState, cfg: LossConfig) -> tuple[Tensor, Tensor | None]:
    vis = latent_distance(pred.visual.float(), target.visual.float(), cfg.distance)
    if pred.proprio is None or target.proprio is None:
        return vis, None
    return vis, latent_distance(pred.proprio.float(), target.proprio.float(), cfg.distance)


def _regularizer(z: Tensor, cfg: LossConfig, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
    # Per token position: each patch's features must vary across samples, so the encoder has to keep the small dot
    # (the only thing that changes between Wall frames) instead of satisfying the variance from patch positions.
    flat = z.float().flatten(0, 1).flatten(1)  # (B·T, N·D)
    if cfg.regularizer == "vicreg":
        return vicreg(flat, var_weight=cfg.vicreg_var_weight, cov_weight=cfg.vicreg_cov_weight)
    if cfg.regularizer == "sigreg":
        return sigreg(flat, num_projections=cfg.sigreg_projections, generator=generator)
    return z.new_zeros(()), {"latent_std": float(flat.detach().std(0).mean())}


def _reconstruction(model: WorldModel, batch: dict[str, Tensor], z: Tensor) -> Tensor:
    """MSE between each window's first frame, as the encoder sees it, and its decoding from that frame's tokens."""
    if "pixels" not in batch:
        raise ValueError(
            "world_model_loss: model.pixel_decoder reconstructs pixels, but the batch holds cached latents only; "
            "train with data.latents=off"
        )
    target = model.encoder.preprocess(batch["pixels"][:, 0].to(z.device))
    return F.mse_loss(model.pixel_decoder(z[:, 0]).float(), target)


def world_model_loss(
    model: WorldModel, batch: dict[str, Tensor], cfg: LossConfig, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """Loss on a batch of windows: ``pixels`` (B,T,H,W,3) uint8, or ``latents`` (B,T,N,D) cached by a frozen encoder,
    or for a state encoder ``state`` (B,T,S) raw, and ``proprio`` (B,T,P) and ``actions`` (B,T−1,A) normalised.
    ``generator`` draws the rollout's context length (seeded per step, so resumed runs match)."""
    actions = batch["actions"]
    if "latents" in batch:
        z = batch["latents"]
        enc = model.encoder
        if enc.trainable:
            raise ValueError(
                "world_model_loss: the batch holds cached 'latents', but model.encoder is trainable; cached latents "
                "are only valid for a frozen encoder (train with data.latents=off)"
            )
        if z.dim() != 4 or z.shape[2:] != (enc.num_tokens, enc.embed_dim):
            raise ValueError(
                f"world_model_loss: cached latents have shape {tuple(z.shape)}, expected "
                f"(B, T, N={enc.num_tokens}, D={enc.embed_dim}) for this encoder"
            )
    else:
        key = model.encoder.observation_key  # "pixels", or "state" for a state encoder
        if key not in batch:
            raise ValueError(f"world_model_loss: model.encoder reads '{key}', which the batch lacks ({sorted(batch)})")
        z = model.encoder.encode_frames(batch[key])
    num_frames = z.shape[1]
    proprio = model.proprio_latent(batch["proprio"]) if model.uses_proprio else None
    enc = LatentState(z, proprio)
    # Proprio targets are always detached: in the "embedding" space a target that trains its own encoder can
    # collapse (the original let gradients through it).
    target = LatentState(z.detach() if cfg.target_stop_grad else z, None if proprio is None else proprio.detach())

    def frames(state: LatentState, sl: slice) -> LatentState:
        return LatentState(state.visual[:, sl], None if state.proprio is None else state.proprio[:, sl])

    # Teacher forcing: frames 0..T−2 predict frames 1..T−1 in one frame-causal pass.
    tf_vis, tf_prop = _frame_loss(
        model.predict(frames(enc, slice(0, -1)), actions), frames(target, slice(1, None)), cfg
    )
    vis_terms, prop_terms = [tf_vis], [tf_prop]

    steps = min(cfg.rollout_steps, num_frames - 1)
    if steps > 1:
        # Context frames 0..C−1 (C random), then `steps` predictions fed back autoregressively.
        num_ctx = int(torch.randint(1, num_frames - steps + 1, (1,), generator=generator))
        ctx = frames(enc, slice(0, num_ctx))
        roll_actions = actions[:, num_ctx - 1 : num_ctx - 1 + steps]
        rolled = model.rollout(ctx, roll_actions, actions[:, : num_ctx - 1], stop_grad=cfg.rollout_stop_grad)
        for k in range(1, steps):
            t = num_ctx + k
            rv, rp = _frame_loss(frames(rolled, slice(k, k + 1)), frames(target, slice(t, t + 1)), cfg)
            vis_terms.append(rv)
            prop_terms.append(rp)

    vis_loss = torch.stack(vis_terms).mean()
    loss = vis_loss
    stats = {"loss_tf_visual": float(tf_vis.detach()), "loss_visual": float(vis_loss.detach())}
    if prop_terms[0] is not None:
        prop_loss = torch.stack(prop_terms).mean()
        loss = loss + cfg.proprio_weight * prop_loss
        stats["loss_proprio"] = float(prop_loss.detach())
    if len(vis_terms) > 1:
        stats["loss_rollout_last"] = float(vis_terms[-1].detach())
    if model.pixel_decoder is not None:
        recon = _reconstruction(model, batch, z)
        loss = loss + cfg.recon_weight * recon
        stats["loss_recon"] = float(recon.detach())
    # A frozen encoder cannot collapse: its regulariser would only add a constant.
    reg, reg_stats = _regularizer(z, cfg if model.encoder.trainable else LossConfig(regularizer="none"), generator)
    if cfg.regularizer != "none" and model.encoder.trainable:
        loss = loss + cfg.reg_weight * reg
        stats["loss_reg"] = float(reg.detach())
    stats.update(reg_stats)
    stats["loss"] = float(loss.detach())
    return loss, stats
