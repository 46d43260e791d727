"""The offline DROID action score: plan one 3-step CEM plan per recorded clip and compare its summed actions with
the expert's (``jepa-wms eval --protocol action-score --data DIR --checkpoint CK --out OUT``).

Protocol (JEPA-WMs paper, DROID column of Table 1; `PROTOCOL`): episode k draws a recorded episode, a window of
F = 5 kept frames in it and an offset o in [0, F − 4] from (seed, k) alone, so every model is scored on the same
clips whatever the batching. The context is frame o (one frame: the model's own encoding of it and its proprio),
the goal frame o + 3, the expert actions o … o + 2. One CEM plan (300 samples, 10 elites, 15 iterations, H = 3,
init std 0.1, L2 on the final latent, α = 0, a 2-frame predictor window, actions clipped per dim to DROID's 0.1
m / rad and 0.75 gripper) gives â; in raw action units

    E_xyz = Σ_{d<3} |Σ_t â_t[d] − Σ_t a*_t[d]|   (E_rot: dims 3–5, E_grip: dim 6)
    score = max(0, 800 · (0.1 − mean over episodes of E_xyz))

so a perfect plan scores 80 and E_xyz ≥ 0.1 m scores 0. The zero plan (â = 0, E = Σ|Σ a*|) is the baseline a model
must beat. ``OUT/results.json`` (atomic) has the score, the mean errors, the zero plan's and the planning seconds;
``OUT/episodes.csv`` one row per clip.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import atomic_write_bytes
from ..config import DataConfig, PlanConfig, config_from_dict
from ..datasets import DatasetError
from ..datasets.sources import TrainingData, open_dataset
from ..planning.dynamics import LatentDynamics
from ..planning.memory import eval_batch_sizes
from ..planning.registry import build_planner, model_action_stats
from ..runtime import autocast, resolve_device, resolve_dtype, seeded_generator

__all__ = [
    "ACTION_DIM",
    "DROID_CLIP",
    "PROTOCOL",
    "ScoreClip",
    "action_errors",
    "action_score",
    "evaluate_action_score",
    "protocol_plan",
    "select_clips",
    "zero_plan_errors",
]

_log = logging.getLogger(__name__)

ACTION_DIM = 7  # Δxyz, ΔEuler xyz, Δgripper (datasets/pose_actions.py)
FRAMES = 5  # F: kept frames per window
STEPS = 3  # goal = init + 3 kept frames; the plan and the expert have 3 actions
EPISODES = 64
DROID_CLIP = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.75]  # the original's DROID max_norms, raw units
PROTOCOL: dict[str, Any] = {
    "planner": "cem",
    "num_samples": 300,
    "num_elites": 10,
    "iterations": 15,
    "horizon": STEPS,
    "execute": STEPS,
    "init_std": 0.1,
    "cost": "L2",
    "alpha": 0.0,
    "kv_window": 2,  # "context 2": the original predictor saw the last 2 frames
    "action_clip": DROID_CLIP,
}
_GROUPS = {"xyz": slice(0, 3), "rot": slice(3, 6), "grip": slice(6, 7)}
_SEED_TAG = 15  # separates these draws from other (seed, k) streams of the package


def protocol_plan(base: PlanConfig | None = None) -> PlanConfig:
    """``base`` (default: `PlanConfig`'s defaults) with the protocol's planning settings."""
    return dataclasses.replace(base or PlanConfig(), **PROTOCOL)


@dataclass(frozen=True)
class ScoreClip:
    """Episode k's clip: a recorded ``episode``, its window's first kept frame ``start`` and the ``offset`` o."""

    index: int
    episode: int
    start: int
    offset: int

    @property
    def init_frame(self) -> int:
        """The context frame, counted from the episode's first frame (the goal is ``init_frame + 3``)."""
        return self.start + self.offset


def select_clips(lengths: Sequence[int], seed: int, indices: Sequence[int]) -> list[ScoreClip]:
    """The clips of episodes ``indices``: each a function of (seed, k) and the episode lengths only. Episodes shorter
    than F frames are never drawn (`usable_episodes`)."""
    usable = usable_episodes(lengths)
    if len(usable) == 0:
        raise ValueError(f"select_clips: no episode has the {FRAMES} kept frames a clip needs")
    clips = []
    for k in indices:
        rng = np.random.default_rng([seed, k, _SEED_TAG])
        ep = int(usable[rng.integers(len(usable))])
        start = int(rng.integers(0, int(lengths[ep]) - FRAMES + 1))
        offset = int(rng.integers(0, FRAMES - STEPS))  # o in [0, F - 4]: the goal stays inside the window
        clips.append(ScoreClip(int(k), ep, start, offset))
    return clips


def usable_episodes(lengths: Sequence[int]) -> np.ndarray:
    return np.flatnonzero(np.asarray(lengths) >= FRAMES)


def action_errors(planned: np.ndarray, expert: np.ndarray) -> dict[str, np.ndarray]:
    """``|Σ_t planned − Σ_t expert|`` summed over each dim group: (N, H, 7) raw actions → {xyz, rot, grip}: (N,)."""
    gap = np.abs(np.asarray(planned, np.float64).sum(axis=1) - np.asarray(expert, np.float64).sum(axis=1))
    return {name: gap[:, dims].sum(axis=1) for name, dims in _GROUPS.items()}


def zero_plan_errors(expert: np.ndarray) -> dict[str, np.ndarray]:
    """The errors of the plan that does nothing: ``Σ|Σ_t a*_t|`` per group."""
    return action_errors(np.zeros_like(expert, dtype=np.float64), expert)


def score_of(e_xyz: np.ndarray) -> float:
    """``max(0, 800 · (0.1 − mean E_xyz))``: 80 for a perfect plan, 0 from a 10 cm mean error on."""
    return max(0.0, 800.0 * (0.1 - float(np.mean(e_xyz))))


def _open_data(data: str | Path, model: Any, data_config: DataConfig, img_size: int) -> tuple[TrainingData, np.ndarray]:
    store = open_dataset(data, data_config, img_size=img_size, frameskip=1)
    if store.action_dim != ACTION_DIM:
        raise DatasetError(
            f"{store.path}: '/actions' has {store.action_dim} values per step; the action score needs 7-D pose "
            "actions (Δxyz, ΔEuler xyz, Δgripper), as `jepa-wms convert` writes for robot layouts"
        )
    raw_dim = model.action_mean.numel()
    if raw_dim != ACTION_DIM or model.frameskip != 1:
        raise ValueError(
            f"action score: the model plans {model.frameskip} × {raw_dim}-D actions per step; the protocol needs one "
            f"7-D pose action per kept frame (a model trained on such data with data.frameskip=1)"
        )
    if getattr(model, "uses_proprio", False) and store.proprio_dim != model.proprio_mean.numel():
        raise DatasetError(
            f"{store.path}: '/proprio' has {store.proprio_dim} values per frame; the model takes "
            f"{model.proprio_mean.numel()}"
        )
    usable = usable_episodes(store.episode_lengths)
    if len(usable) == 0:
        raise DatasetError(
            f"{store.path}: '/episode_length': no episode has the {FRAMES} kept frames an action-score clip needs "
            f"(longest: {int(store.episode_lengths.max())})"
        )
    if len(usable) < store.num_episodes:
        _log.warning(
            "action score: %d of %d episodes in %s have fewer than %d frames and are never drawn",
            store.num_episodes - len(usable),
            store.num_episodes,
            store.path,
            FRAMES,
        )
    return store, usable


def _observations(store: TrainingData, rows: Sequence[int]) -> list[dict[str, np.ndarray]]:
    rows = np.asarray(rows, dtype=np.int64)
    pixels = store.read_pixels(rows)
    return [
        {"pixels": px, "proprio": np.asarray(store.proprio[r]), "state": np.asarray(store.state[r])}
        for px, r in zip(pixels, rows.tolist(), strict=True)
    ]


def _plan_chunk(
    dyn: LatentDynamics, planner: Any, store: TrainingData, clips: Sequence[ScoreClip], plan: PlanConfig, seed: int
) -> tuple[np.ndarray, float]:
    """Raw planned actions (B, H, 7) of ``clips``, planned as one batch, and the seconds the planner took."""
    first = [int(store.episode_starts[c.episode]) + c.init_frame for c in clips]
    current = dyn.observe(_observations(store, first))
    goal = dyn.observe(_observations(store, [r + STEPS for r in first]))
    cost_fn = dyn.cost_fn(current, goal, plan.alpha, plan.cost)
    generators = [seeded_generator(seed, c.index, _SEED_TAG) for c in clips]
    with torch.no_grad():
        result = planner.plan(cost_fn, len(clips), plan.horizon, dyn.action_dim, generators, device=dyn.device)
        raw = dyn.denormalize_actions(result.actions.float()).flatten(2)  # (B, H, 1, 7) -> (B, H, 7)
    return raw.double().cpu().numpy(), result.elapsed_s


def action_score(
    model: Any,
    data: str | Path,
    out_dir: str | Path,
    *,
    plan: PlanConfig | None = None,
    seed: int = 0,
    episodes: int = EPISODES,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    data_config: DataConfig | None = None,
    img_size: int = 256,
) -> dict[str, Any]:
    """Score ``model`` (a `WorldModel`, or anything `LatentDynamics` can drive) on ``episodes`` clips of the 7-D
    pose dataset ``data``: a converted file, or a DROID-raw / LeRobot folder read without conversion at ``img_size``
    (``data_config``'s ``layout`` and ``reader_options``; `jepa_wms.datasets.sources.open_dataset`). ``plan``
    defaults to `protocol_plan()`. Writes ``out_dir/results.json`` and ``out_dir/episodes.csv`` and returns the
    summary."""
    plan = protocol_plan() if plan is None else plan
    if plan.horizon != STEPS:
        raise ValueError(f"action score: plan.horizon must be {STEPS} (init to goal is {STEPS} kept frames)")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"action score: episodes must be a positive int, got {episodes!r}")
    dev = torch.device(device)
    dtype = resolve_dtype(plan.precision, dev, training=False)
    store, _ = _open_data(data, model, data_config or DataConfig(), img_size)
    try:
        clips = select_clips(store.episode_lengths, seed, range(episodes))
        planner = build_planner(plan, model_action_stats(model))
        chunk, max_rows = eval_batch_sizes(model, plan, dev, dtype)
        dyn = LatentDynamics(
            model, dev, lambda: autocast(dev, dtype), plan.kv_window, max_rows, proprio_dynamics=plan.proprio_dynamics
        )
        planned, seconds = [], []
        for i in range(0, len(clips), chunk):
            part = clips[i : i + chunk]
            actions, elapsed = _plan_chunk(dyn, planner, store, part, plan, seed)
            planned.append(actions)
            seconds += [elapsed / len(part)] * len(part)
            _log.info("action score: %d / %d clips planned", i + len(part), len(clips))
        planned_all = np.concatenate(planned)
        rows = [int(store.episode_starts[c.episode]) + c.init_frame for c in clips]
        expert = np.stack([store.actions[r : r + STEPS] for r in rows]).astype(np.float64)
    finally:
        store.close()
    errors, zero = action_errors(planned_all, expert), zero_plan_errors(expert)
    summary = {
        "protocol": "action-score",
        "score": score_of(errors["xyz"]),
        "zero_plan_score": score_of(zero["xyz"]),
        **{f"mean_e_{name}": float(err.mean()) for name, err in errors.items()},
        **{f"zero_plan_mean_e_{name}": float(err.mean()) for name, err in zero.items()},
        "episodes": len(clips),
        "seed": seed,
        "planning_seconds_per_episode": float(np.mean(seconds)),
        "planning_seconds_total": float(np.sum(seconds)),
        "data": str(store.path),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "plan": dataclasses.asdict(plan),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "episodes.csv", clips, planned_all, expert, errors, zero, seconds)
    atomic_write_bytes(out / "results.json", json.dumps(summary, indent=2).encode())
    return summary


def _write_csv(
    path: Path,
    clips: Sequence[ScoreClip],
    planned: np.ndarray,
    expert: np.ndarray,
    errors: dict[str, np.ndarray],
    zero: dict[str, np.ndarray],
    seconds: Sequence[float],
) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    groups = list(_GROUPS)
    w.writerow(
        ["episode", "data_episode", "window_start", "offset", "init_frame", "goal_frame"]
        + [f"e_{g}" for g in groups]
        + [f"zero_e_{g}" for g in groups]
        + ["plan_seconds", "planned_sum", "expert_sum"]
    )
    for i, c in enumerate(clips):
        w.writerow(
            [c.index, c.episode, c.start, c.offset, c.init_frame, c.init_frame + STEPS]
            + [f"{errors[g][i]:.6g}" for g in groups]
            + [f"{zero[g][i]:.6g}" for g in groups]
            + [f"{seconds[i]:.4g}"]
            + [" ".join(f"{v:.5f}" for v in x[i].sum(axis=0)) for x in (planned, expert)]
        )
    atomic_write_bytes(path, buf.getvalue().encode())


def evaluate_action_score(
    checkpoint: str | Path,
    data: str | Path,
    out_dir: str | Path,
    *,
    seed: int | None = None,
    episodes: int | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
) -> dict[str, Any]:
    """`action_score` of a checkpoint: its ``plan`` section under the protocol's settings, then ``overrides``
    (``plan.*``/``eval.*``; e.g. ``plan.planner=nevergrad`` for the planner table). ``seed`` defaults to
    ``eval.seed``, ``episodes`` to 64."""
    from .setup import load_trained  # loads the saved-model machinery only when a checkpoint is scored

    dev = resolve_device(device)
    trained = load_trained(checkpoint, dev)
    protocol = [f"plan.{k}={json.dumps(v)}" for k, v in PROTOCOL.items()]
    cfg = config_from_dict(trained.cfg.to_dict(), [*protocol, *overrides], only=("plan", "eval"))
    return action_score(
        trained.model,
        data,
        out_dir,
        plan=cfg.plan,
        seed=cfg.eval.seed if seed is None else seed,
        episodes=EPISODES if episodes is None else episodes,
        device=dev,
        checkpoint=checkpoint,
        data_config=trained.cfg.data,
        img_size=trained.cfg.model.encoder.img_size,
    )
