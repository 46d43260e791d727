"""The numbers every numeric config key accepts: one table, checked with the choices' ``Literal`` types in one pass.

A bad value is refused when the config is read, with the key, the
value and the range, instead of surfacing later as a ZeroDivisionError, a NaN result or an empty run; the command
line checks its numeric flags against the same ranges (``cli.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .schema import ConfigError

__all__ = ["RANGES", "Range", "check_range"]


@dataclass(frozen=True)
class Range:
    """The numbers a key or flag accepts: finite, ``low <= v <= high`` (strict where ``open_low``/``open_high``);
    None leaves that side unbounded."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or value > self.low or (value == self.low and not self.open_low)
        below = self.high is None or value < self.high or (value == self.high and not self.open_high)
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        low, high = (None if b is None else f"{b:g}" if isinstance(b, float) else str(b) for b in (self.low, self.high))
        if high is None:
            return f"{'>' if self.open_low else '>='} {low}" if low is not None else "a finite number"
        if low is None:
            return f"{'<' if self.open_high else '<='} {high}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


_COUNT, _NON_NEGATIVE, _POSITIVE = Range(1), Range(0), Range(0, open_low=True)
_SEED = Range(0, 2**32 - 1)  # numpy's and most tools' seed range
_FRACTION = Range(0, 1, open_high=True)
# Every numeric config key (a list's range applies to each item). Zero where it means "off" or "default" is allowed.
RANGES: dict[str, Range] = {
    "collect.episodes": _COUNT,
    "collect.episode_len": _COUNT,
    "collect.workers": _COUNT,
    "collect.seed": _SEED,
    "collect.img_size": Range(8),  # the smallest frame the envs render
    "data.val_fraction": _FRACTION,
    "data.num_frames": Range(2),  # a context frame and a predicted one
    "data.frameskip": _COUNT,
    "model.encoder.img_size": _COUNT,
    "model.encoder.channels": _COUNT,
    "model.encoder.embed_dim": _COUNT,
    "model.encoder.grid_size": _COUNT,
    "model.encoder.stem_patch": _NON_NEGATIVE,
    "model.encoder.pixel_mean": Range(),
    "model.encoder.pixel_std": _POSITIVE,
    "model.predictor.pred_dim": _COUNT,
    "model.predictor.depth": _COUNT,
    "model.predictor.num_heads": _COUNT,
    "model.predictor.mlp_ratio": _POSITIVE,
    "model.predictor.init_scale_adaln": _NON_NEGATIVE,
    "model.predictor.context_window": _NON_NEGATIVE,
    "model.predictor.num_frames": _NON_NEGATIVE,
    "model.predictor.action_emb_dim": _COUNT,
    "model.predictor.dim_head": _COUNT,
    "model.predictor.ffn_dim": _NON_NEGATIVE,
    "model.predictor.dropout": _FRACTION,
    "model.proprio_emb_dim": _NON_NEGATIVE,
    "model.pixel_decoder": _COUNT,
    "loss.rollout_steps": _COUNT,
    "loss.proprio_weight": _NON_NEGATIVE,
    "loss.reg_weight": _NON_NEGATIVE,
    "loss.vicreg_var_weight": _NON_NEGATIVE,
    "loss.vicreg_cov_weight": _NON_NEGATIVE,
    "loss.sigreg_projections": _COUNT,
    "loss.recon_weight": _NON_NEGATIVE,
    "optim.lr": _POSITIVE,
    "optim.min_lr": _NON_NEGATIVE,
    "optim.warmup_steps": _NON_NEGATIVE,
    "optim.weight_decay": _NON_NEGATIVE,
    "optim.betas": _FRACTION,
    "optim.grad_clip": _NON_NEGATIVE,
    "train.seed": _SEED,
    "train.epochs": _COUNT,
    "train.max_steps": _NON_NEGATIVE,
    "train.batch_size": _COUNT,
    "train.log_every": _COUNT,
    "train.checkpoint_every": _NON_NEGATIVE,
    "train.eval_every": _NON_NEGATIVE,
    "train.eval_episodes": Range(0, 100_000),  # 0: eval.episodes
    "plan.temperature": _POSITIVE,
    "plan.lr": _POSITIVE,
    "plan.action_noise": _NON_NEGATIVE,
    "plan.num_samples": _COUNT,
    "plan.iterations": _COUNT,
    "plan.num_elites": Range(2),  # CEM refits a std on its elites: the unbiased estimate needs two
    "plan.icem_beta": _NON_NEGATIVE,  # 0: white noise (CEM's); the paper used 2 to 4
    "plan.icem_decay": Range(1),  # 1: no decay; below 1 the population would grow
    "plan.icem_keep_elites": Range(0, 1),
    "plan.icem_momentum": _FRACTION,  # 1 would never move the distribution
    "plan.init_std": _NON_NEGATIVE,  # 0: a deterministic first sample (Nevergrad needs > 0, its planner says so)
    "plan.horizon": _COUNT,
    "plan.execute": _COUNT,
    "plan.alpha": _NON_NEGATIVE,
    "plan.action_clip": _NON_NEGATIVE,
    "plan.episode_chunk": _COUNT,
    "plan.kv_window": _NON_NEGATIVE,
    "plan.memory_gb": _NON_NEGATIVE,
    "plan.pad_heads": _NON_NEGATIVE,
    "plan.sim_workers": _NON_NEGATIVE,
    # Every episode's record is kept for the summary: a bound keeps a typo from filling the memory.
    "eval.episodes": Range(1, 100_000),
    "eval.seed": _SEED,
    "eval.videos": _NON_NEGATIVE,
    "eval.max_steps": Range(0, 100_000),  # 0: the env's protocol budget; a bound keeps a typo from running for days
}


def check_range(name: str, value: float, allowed: Range) -> None:
    """ConfigError naming ``name`` (a config key or a command-line flag), the value and the allowed range."""
    if value not in allowed:
        raise ConfigError(f"{name} is {value!r}; expected {allowed}")
