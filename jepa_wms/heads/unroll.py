"""Counterfactual unroll-decode: fixed action programs imagined from one context clip, decoded side by side.

A programs file (YAML) names sequences of env actions, in the env's own units (a Wall displacement, a Metaworld
``[dx, dy, dz, gripper]``)::

    programs:
      up: [[0, -1]]
      left_then_down: [[-1, 0], [-1, 0], [0, 1]]

Each action is held for the model's ``frameskip`` env steps (one model step), normalised with the checkpoint's
action statistics, and each program is repeated ``repeat`` times: ``repeat × len(program)`` imagined steps, all
programs from the same context. Programs of different lengths end at different steps; a finished one keeps showing
its last frame.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..checkpoint import atomic_write_bytes
from ..evaluation.media import tile_row, write_frames
from ..world_model import LatentState, WorldModel
from .decode import load_model_and_heads
from .image import ImageHead
from .objective import HeadModel
from .sources import Clips, Source, source_clips, source_record

__all__ = ["load_programs", "unroll_decode", "unroll_programs"]


def load_programs(path: str | Path, action_dim: int) -> dict[str, np.ndarray]:
    """``programs`` of the YAML file ``path``: name → raw env actions (L, action_dim), in file order."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"programs file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    programs = data.get("programs") if isinstance(data, dict) else None
    if not isinstance(programs, dict) or not programs:
        raise ValueError(f"programs file {path} needs a non-empty mapping 'programs: {{name: [[action], ...]}}'")
    out: dict[str, np.ndarray] = {}
    for name, steps in programs.items():
        try:
            actions = np.asarray(steps, dtype=np.float32)
        except (TypeError, ValueError):
            actions = np.zeros((0,))
        if actions.ndim != 2 or actions.shape[0] == 0 or actions.shape[1] != action_dim:
            raise ValueError(
                f"program {name!r} in {path} must be a non-empty list of {action_dim}-number env actions, got {steps!r}"
            )
        out[str(name)] = actions
    return out


@torch.no_grad()
def unroll_programs(
    model: WorldModel, head: HeadModel, clips: Clips, programs: Mapping[str, np.ndarray], repeat: int
) -> dict[str, np.ndarray]:
    """name → uint8 frames (repeat · L, S, S, 3) decoded from the program's imagined rollout, from the context of the
    first clip."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if not isinstance(head.head, ImageHead):
        raise ValueError(f"unroll-decode draws frames and needs an image head, not a {head.spec.kind} head")
    c, device = clips.context, model.proprio_mean.device
    batch = {k: v[:1].to(device) for k, v in clips.batch.items()}
    z = model.encoder.encode_frames(batch[model.observation_key][:, :c])
    proprio = model.proprio_latent(batch["proprio"][:, :c]) if model.uses_proprio else None
    context, context_actions = LatentState(z, proprio), batch["actions"][:, : c - 1]
    frames = {}
    for name, raw in programs.items():
        held = torch.from_numpy(np.tile(raw, (repeat, 1))).to(device)[:, None].expand(-1, model.frameskip, -1)
        actions = model.normalize_actions(held)[None]  # (1, repeat · L, frameskip · A)
        imagined = model.rollout(context, actions, context_actions)
        frames[name] = head.head.to_uint8(head.head(imagined.visual[0])).cpu().numpy()
    return frames


def unroll_decode(
    checkpoint: str | Path,
    head_path: str | Path,
    source: Source,
    programs_path: str | Path,
    out_dir: str | Path,
    *,
    repeat: int = 4,
    context: int = 1,
    fps: int = 4,
    video_format: str = "gif",
) -> dict[str, Any]:
    """Write ``unroll.gif`` (per step: the last context frame, then each program's imagined frame, in file order)
    and ``unroll.json`` (programs, actions, steps) to ``out_dir``; returns the JSON's content. The context clip is
    the first episode of ``source``: a dataset folder, or an :class:`EnvSource` (a fresh episode of the env)."""
    model, cfg, (head,) = load_model_and_heads(checkpoint, [head_path])
    programs = load_programs(programs_path, model.action_mean.numel())
    clips = source_clips(model, cfg, source, 1, context, 1)
    frames = unroll_programs(model, head, clips, programs, repeat)
    start = head.head.to_uint8(head.encoder.preprocess(clips.batch["pixels"][0, context - 1])).numpy()
    longest = max(len(f) for f in frames.values())
    rows = [tile_row([start] + [f[min(t, len(f) - 1)] for f in frames.values()]) for t in range(longest)]
    out = Path(out_dir)
    write_frames(out / f"unroll.{video_format}", [tile_row([start] * (len(frames) + 1))] + rows, fps)
    result = {
        "checkpoint": str(checkpoint),
        "head": str(head_path),
        "episode": clips.episodes[0],
        **source_record(source),
        "context": context,
        "repeat": repeat,
        "columns": ["context", *frames],
        "programs": {name: {"actions": programs[name].tolist(), "steps": len(f)} for name, f in frames.items()},
    }
    atomic_write_bytes(out / "unroll.json", json.dumps(result, indent=1).encode())
    return result
