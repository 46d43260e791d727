"""Open-loop imagined rollouts decoded next to what happened (``jepa-wms decode --data|--env``).

From the first frames of dataset episodes (the world model's validation episodes first: held out from its training),
or of fresh episodes of the env's data policy (``sources.py``), the predictor rolls out ``steps`` steps with the
recorded actions, fed only its own predictions. Each predicted latent is decoded by the heads: an image head draws
it (a video per episode: real | imagined, step by step), a state head reads the env state from it (error in env
units per step and dimension: how far ahead the model stays accurate). Each head is also read on the encoded real
frames, the floor its own error sets for the imagined ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import atomic_write_bytes
from ..config import ExperimentConfig
from ..evaluation.media import plot_step_errors, tile_row, write_frames
from ..saved_model import load_world_model
from ..world_model import LatentState, WorldModel
from .image import ImageHead, unit_to_uint8
from .objective import HeadModel, load_head
from .sources import Clips, Source, load_clips, source_clips, source_record

__all__ = ["Clips", "decode_rollouts", "load_clips", "load_model_and_heads", "open_loop", "rollout_errors"]


@torch.no_grad()
def open_loop(model: WorldModel, clips: Clips) -> tuple[LatentState, LatentState]:
    """(the encoded real frames (B, C + H, ...), the H imagined ones) with the recorded actions."""
    batch, c = clips.batch, clips.context
    device = model.proprio_mean.device
    z = model.encoder.encode_frames(batch[model.observation_key].to(device))
    proprio = batch["proprio"].to(device)
    real = LatentState(z, proprio)
    actions = batch["actions"].to(device)
    context = LatentState(z[:, :c], model.proprio_latent(proprio[:, :c]) if model.uses_proprio else None)
    imagined = model.rollout(context, actions[:, c - 1 :], actions[:, : c - 1])
    return real, imagined


def _decode_state(head: HeadModel, visual: Tensor, proprio: Tensor | None) -> Tensor:
    """Env-unit states (B, T, S) of latents (B, T, N, D) [+ normalised proprio (B, T, P)]."""
    b, t = visual.shape[:2]
    flat_p = None if proprio is None else proprio.flatten(0, 1)
    return head.head.denormalize(head.head(visual.flatten(0, 1), flat_p)).unflatten(0, (b, t))


@torch.no_grad()
def rollout_errors(model: WorldModel, heads: Sequence[HeadModel], clips: Clips) -> dict[str, Any]:
    """Per-step errors of the imagined frames and of the encoded real ones, and the frames an image head draws:
    ``pixel_error`` (mean |Δ| in [0, 1] RGB), ``state_error`` (mean |Δ| per dimension, env units) and
    ``state_distance`` (Euclidean over the state, env units), each a list over the H steps."""
    real, imagined = open_loop(model, clips)
    c = clips.context
    out: dict[str, Any] = {"episodes": clips.episodes, "context": c, "steps": imagined.visual.shape[1]}
    for head in heads:
        if isinstance(head.head, ImageHead):
            decoded = head.head.to_unit(head.head(imagined.visual.flatten(0, 1))).clamp(0, 1)
            recon = head.head.to_unit(head.head(real.visual[:, c:].flatten(0, 1))).clamp(0, 1)
            pixels = clips.batch["pixels"][:, c:].to(decoded.device)
            target = head.head.to_unit(head.encoder.preprocess(pixels.flatten(0, 1)))
            b = pixels.shape[0]
            err = (decoded - target).abs().mean((1, 2, 3)).unflatten(0, (b, -1)).mean(0)
            floor = (recon - target).abs().mean((1, 2, 3)).unflatten(0, (b, -1)).mean(0)
            out["pixel_error"] = {"imagined": err.tolist(), "reconstruction": floor.tolist()}
            out["frames"] = {
                name: unit_to_uint8(x).unflatten(0, (b, -1)).cpu().numpy()
                for name, x in (("real", target), ("imagined", decoded))
            }
        else:
            truth = clips.batch["state"][:, c:].to(imagined.visual.device)
            uses = head.head.uses_proprio
            guess = _decode_state(head, imagined.visual, imagined.proprio if uses else None)
            floor = _decode_state(head, real.visual[:, c:], real.proprio[:, c:] if uses else None)
            out["state_error"] = {
                "imagined": (guess - truth).abs().mean(0).tolist(),
                "reconstruction": (floor - truth).abs().mean(0).tolist(),
            }
            out["state_distance"] = {
                "imagined": (guess - truth).norm(dim=-1).mean(0).tolist(),
                "reconstruction": (floor - truth).norm(dim=-1).mean(0).tolist(),
            }
    return out


def load_model_and_heads(
    checkpoint: str | Path, head_paths: Sequence[str | Path], device: str = "cpu"
) -> tuple[WorldModel, ExperimentConfig, list[HeadModel]]:
    """The world model and its heads (each checked to be trained on this model's encoder); at most one per kind.
    The config's ``env_kwargs`` are the checkpoint's: the env options of its data (frame size), which ``--env``
    episodes must be rendered with."""
    model, cfg, ckpt = load_world_model(checkpoint, device)
    cfg = dataclasses.replace(cfg, env_kwargs=dict(ckpt.get("env_kwargs", cfg.env_kwargs)))
    heads = [load_head(p, model, checkpoint, cfg) for p in head_paths]
    kinds = [h.spec.kind for h in heads]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"give at most one image head and one state head, got kinds {kinds}")
    return model, cfg, heads


def decode_rollouts(
    checkpoint: str | Path,
    head_paths: Sequence[str | Path],
    source: Source,
    out_dir: str | Path,
    *,
    episodes: int = 4,
    context: int = 1,
    steps: int = 8,
    fps: int = 4,
    video_format: str = "gif",
) -> dict[str, Any]:
    """Write ``decode.json`` (per-step errors) to ``out_dir``; with an image head also ``videos/episode_EEE.gif``
    (real | imagined per step) and ``pixel_error.png``, with a state head ``state_error.png``. Returns the JSON's
    content. ``source``: a dataset folder, or an :class:`EnvSource` (fresh episodes of the env)."""
    model, cfg, heads = load_model_and_heads(checkpoint, head_paths)
    clips = source_clips(model, cfg, source, episodes, context, steps)
    result = rollout_errors(model, heads, clips)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = result.pop("frames", None)
    if frames is not None:
        for i, episode in enumerate(clips.episodes):
            pairs = zip(frames["real"][i], frames["imagined"][i], strict=True)
            write_frames(out / "videos" / f"episode_{episode:03d}.{video_format}", [tile_row(p) for p in pairs], fps)
        plot_step_errors(out / "pixel_error.png", result["pixel_error"], "mean |Δ| pixel, [0, 1]", "image head")
    if "state_distance" in result:
        plot_step_errors(out / "state_error.png", result["state_distance"], "‖Δ state‖, env units", "state head")
    result.update(checkpoint=str(checkpoint), heads=[str(p) for p in head_paths], env=cfg.env, **source_record(source))
    atomic_write_bytes(out / "decode.json", json.dumps(result, indent=1).encode())
    return result
