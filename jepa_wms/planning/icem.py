"""Improved cross-entropy method (iCEM; Pinneri et al., 2020, "Sample-efficient Cross-Entropy Method for Real-time
Planning").

CEM with five changes, each a setting of `ICEMPlanner`:

* coloured noise: candidates are ``mean + std * noise`` where the noise has a power spectrum ~ 1/f^β over the
  horizon (β = 0: white noise, CEM's sampling; β = 2: smooth, strongly time-correlated sequences);
* population decay: iteration i scores ``max(2 K, round(N γ^-i))`` fresh samples, so later, narrower iterations
  cost less;
* elite reuse: the cheapest ``floor(keep_elites · K)`` elites of one iteration are scored again in the next, and
  (through an `ICEMSession`, which `run_mpc` uses) those of a plan's last iteration, shifted by the executed
  steps, join the first iteration of the next replan;
* the mean is a candidate at the last iteration, and mean/std are updated with momentum
  (``new = momentum · old + (1 - momentum) · elite fit``);
* the returned plan is the cheapest candidate seen, not the final mean.

The package's rules hold: one ``cost_fn`` call per iteration on the whole ``(B, S_i, H, A)`` batch, episode b's
draws from ``generators[b]`` only, every other operation row-wise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from jepa_wms.planning.base import (
    BestSoFar,
    CostFn,
    PlannerSettings,
    PlanResult,
    PlanStart,
    check_non_negative,
    clip_actions,
    evaluate_cost,
    sample_normal,
)
from jepa_wms.planning.cem import fit_elites, select_elites

__all__ = ["ICEMPlanner", "ICEMSession", "coloured_noise", "population_sizes"]


def coloured_noise(
    generators: list[torch.Generator],
    num_samples: int,
    horizon: int,
    action_dim: int,
    beta: float,
    device: torch.device,
) -> Tensor:
    """``(B, S, H, A)`` Gaussian noise with power spectrum ~ 1/f^β along H and unit variance per step, row b drawn
    from ``generators[b]`` only.

    The recipe of the ``colorednoise`` package the paper used: a complex Gaussian per frequency scaled by
    f^(-β/2) (frequencies below 1/H get the 1/H scale, so the mean component stays finite), the DC and Nyquist
    terms made real, an inverse real FFT, then division by the exact standard deviation, so every time step has unit
    variance whatever β and H.
    """
    if horizon == 1:
        # No time axis to correlate over: coloured noise is white noise.
        return sample_normal(generators, (num_samples, horizon, action_dim), device)
    freqs = torch.fft.rfftfreq(horizon, device=device, dtype=torch.float64)
    floor = 1.0 / horizon
    scale = torch.where(freqs < floor, torch.full_like(freqs, floor), freqs) ** (-beta / 2.0)
    # Exact std of the result: irfft gives y_t = (X_0 + 2 Re sum_k X_k e^(2πikt/H) + X_nyq (-1)^t) / H; after the √2
    # fixes below the DC and Nyquist terms have variance 2 s², each other frequency contributes 4 s² (the colorednoise
    # package's analytic sigma is only approximate for short horizons, which is all planning uses).
    inner = scale[1:-1] if horizon % 2 == 0 else scale[1:]
    nyquist = 2.0 * scale[-1] ** 2 if horizon % 2 == 0 else 0.0
    sigma = torch.sqrt(2.0 * scale[0] ** 2 + 4.0 * (inner**2).sum() + nyquist) / horizon
    draws = sample_normal(generators, (num_samples, action_dim, 2, freqs.numel()), device).double()
    real, imag = draws[..., 0, :] * scale, draws[..., 1, :] * scale
    # DC (and an even horizon's Nyquist) term is real: its imaginary part is dropped, its real part scaled by √2 so
    # that it carries the variance of the two parts.
    imag[..., 0] = 0.0
    real[..., 0] *= math.sqrt(2.0)
    if horizon % 2 == 0:
        imag[..., -1] = 0.0
        real[..., -1] *= math.sqrt(2.0)
    series = torch.fft.irfft(torch.complex(real, imag), n=horizon, dim=-1) / sigma  # (B, S, A, H)
    return series.transpose(-1, -2).float().contiguous()


def population_sizes(num_samples: int, num_elites: int, decay: float, iterations: int) -> list[int]:
    """Fresh samples per iteration: ``max(2 K, round(N γ^-i))`` (the floor keeps enough non-elites to refit on)."""
    return [max(2 * num_elites, round(num_samples * decay ** (-i))) for i in range(iterations)]


def _fit_horizon(actions: Tensor, horizon: int) -> Tensor:
    """``(B, K, H', A)`` cut or zero-padded (the normalised data mean, as the MPC warm start) to ``H = horizon``."""
    if actions.shape[2] >= horizon:
        return actions[:, :, :horizon]
    pad = actions.new_zeros(*actions.shape[:2], horizon - actions.shape[2], actions.shape[3])
    return torch.cat([actions, pad], dim=2)


@dataclass(frozen=True, kw_only=True)
class ICEMPlanner(PlannerSettings):
    """Batched iCEM over ``(B, S, H, A)`` candidates; a frozen settings object (``plan`` keeps no state: it reuses
    elites within one plan only; `start_episodes` gives the session that carries them across replans).

    Args:
        num_samples: N, fresh samples of the first iteration (later ones decay, see ``decay``).
        iterations: refits per plan.
        num_elites: K, lowest-cost candidates the Gaussian is refitted on (2 <= K <= N).
        init_std: initial per-dim standard deviation.
        action_low, action_high: per-dim bounds; every candidate is clipped.
        beta: coloured-noise exponent over the horizon (>= 0; 0 is white noise, 2 the paper's default).
        decay: population decay γ >= 1 (1: no decay).
        keep_elites: fraction in [0, 1] of the elites carried into the next iteration (and replan).
        momentum: α in [0, 1): weight of the previous mean and std in each update.
        min_std: floor on the std.

    ``PlanResult.actions`` is each episode's cheapest candidate seen and ``PlanResult.cost`` its cost;
    ``PlanResult.cost_history[:, i]`` is the best cost seen up to and including iteration i (non-increasing).
    """

    num_elites: int = 10
    beta: float = 2.0
    decay: float = 1.25
    keep_elites: float = 0.3
    momentum: float = 0.1
    min_std: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "ICEMPlanner"
        if not 2 <= self.num_elites <= self.num_samples:
            raise ValueError(
                f"{owner}: num_elites must be in [2, num_samples={self.num_samples}] (the unbiased std needs two), "
                f"got {self.num_elites}"
            )
        check_non_negative(owner, beta=self.beta, min_std=self.min_std)
        if not (math.isfinite(self.beta) and self.decay >= 1.0 and math.isfinite(self.decay)):
            raise ValueError(
                f"{owner}: beta must be finite and decay >= 1, got beta={self.beta!r} decay={self.decay!r}"
            )
        if not 0.0 <= self.keep_elites <= 1.0:
            raise ValueError(f"{owner}: keep_elites must be a fraction in [0, 1], got {self.keep_elites!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"{owner}: momentum must be in [0, 1), got {self.momentum!r}")

    @property
    def num_kept(self) -> int:
        """Elites carried from one iteration (or replan) to the next."""
        return math.floor(self.keep_elites * self.num_elites)

    def start_episodes(self) -> ICEMSession:
        """A fresh session for one batch of episodes: it carries the kept elites from one replan to the next."""
        return ICEMSession(self)

    def _search(
        self, cost_fn: CostFn, start: PlanStart, generators: list[torch.Generator]
    ) -> tuple[Tensor, Tensor, Tensor]:
        actions, cost, history, _ = self._search_with(cost_fn, start, generators, None)
        return actions, cost, history

    def _search_with(
        self, cost_fn: CostFn, start: PlanStart, generators: list[torch.Generator], kept: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The search, starting with ``kept`` ``(B, k, H, A)`` elites (or none); also returns the last kept ones."""
        low, high, mean = start.low, start.high, start.mean
        batch_size, horizon, action_dim = mean.shape
        std = torch.full_like(mean, self.init_std)
        history = torch.empty(batch_size, self.iterations, device=start.device)
        best = BestSoFar(mean)
        sizes = population_sizes(self.num_samples, self.num_elites, self.decay, self.iterations)
        with torch.no_grad():
            for it, size in enumerate(sizes):
                noise = coloured_noise(generators, size, horizon, action_dim, self.beta, start.device)
                parts = [mean.unsqueeze(1) + std.unsqueeze(1) * noise]
                if kept is not None and kept.shape[1] > 0:
                    parts.append(kept)
                if it == self.iterations - 1:
                    parts.append(mean.unsqueeze(1))  # the paper scores the mean once, at the end
                candidates = clip_actions(torch.cat(parts, dim=1), low, high)
                costs = evaluate_cost(cost_fn, candidates)
                best.update(costs, candidates)
                history[:, it] = best.cost
                elites, _ = select_elites(candidates, costs, self.num_elites)
                fit_mean, fit_std = fit_elites(elites, self.min_std)
                # Momentum: a few lucky elites should not yank the distribution away from where it was.
                mean = self.momentum * mean + (1.0 - self.momentum) * fit_mean
                std = (self.momentum * std + (1.0 - self.momentum) * fit_std).clamp_min(self.min_std)
                kept = elites[:, : self.num_kept]
        return best.actions, best.cost, history, kept


class ICEMSession:
    """iCEM for one batch of episodes across MPC replans: `plan` (the `Planner` protocol) starts each search with
    the elites kept at the end of the previous one, shifted by the steps `shift` was told were executed.

    State is explicit and per session: `ICEMPlanner.start_episodes` makes a new, empty one for each episode batch,
    so a batch never sees another batch's elites; `reset` empties it too.
    """

    def __init__(self, settings: ICEMPlanner) -> None:
        self.settings = settings
        self._kept: Tensor | None = None  # (B, k, H, A) kept elites of the last plan, shifted

    def reset(self) -> None:
        """Forget the kept elites (the next `plan` starts like `ICEMPlanner.plan`)."""
        self._kept = None

    def shift(self, executed: int) -> None:
        """Drop the first ``executed`` steps of the kept elites (executed in the env) and pad their end with zeros,
        as the MPC loop does with the warm-start mean."""
        if self._kept is None:
            return
        if executed < 0:
            raise ValueError(f"ICEMSession.shift: executed must be >= 0, got {executed}")
        horizon = self._kept.shape[2]
        self._kept = _fit_horizon(self._kept[:, :, min(executed, horizon) :], horizon)

    def plan(
        self,
        cost_fn: CostFn,
        batch_size: int,
        horizon: int,
        action_dim: int,
        generators: list[torch.Generator],
        init_mean: Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> PlanResult:
        """`Planner.plan`, starting from the kept elites of this session's previous plan (if any)."""
        kept = self._kept
        if kept is not None and (kept.shape[0] != batch_size or kept.shape[3] != action_dim):
            raise ValueError(
                f"ICEMSession: kept elites are for {kept.shape[0]} episodes of {kept.shape[3]} action dims, "
                f"this plan has {batch_size} of {action_dim}; start a new session for a new episode batch"
            )

        def search(start: PlanStart) -> tuple[Tensor, Tensor, Tensor]:
            fitted = None if kept is None else _fit_horizon(kept.to(start.device), horizon)
            actions, cost, history, self._kept = self.settings._search_with(cost_fn, start, generators, fitted)
            return actions, cost, history

        return self.settings.run_search(search, batch_size, horizon, action_dim, generators, init_mean, device)
