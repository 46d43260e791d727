"""Anti-collapse regularisers for end-to-end trained encoders.

Both take latents ``z (M, D)`` (any ``(..., D)`` is flattened: M = every token in the batch) and return
``(loss, stats)``; ``stats["latent_std"]`` (mean per-dimension standard deviation) is the number to log,
because a collapsed model shows a tiny prediction loss and a tiny latent std at the same time.

They run in float32 with autocast disabled: a covariance or an empirical characteristic function summed over
thousands of tokens loses most of its digits in bf16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["sigreg", "vicreg"]


def _as_matrix(z: torch.Tensor, where: str) -> torch.Tensor:
    if z.dim() < 2 or z.shape[-1] < 1:
        raise ValueError(f"{where}: latents must be (M, D) or (..., D), got {tuple(z.shape)}")
    z = z.reshape(-1, z.shape[-1]).float()
    if z.shape[0] < 2:
        raise ValueError(f"{where}: need at least 2 latent vectors to measure spread, got {z.shape[0]}")
    return z


def vicreg(
    z: torch.Tensor, var_weight: float, cov_weight: float, std_target: float = 1.0, eps: float = 1e-4
) -> tuple[torch.Tensor, dict[str, float]]:
    """VICReg variance + covariance terms (the invariance term is the prediction loss itself).

    ``var = mean_d relu(std_target - sqrt(Var[z_d] + eps))`` pushes every dimension's spread up to the target;
    ``cov = sum_{d != d'} Cov[z_d, z_d']² / D`` decorrelates dimensions so the spread cannot sit in one
    direction. ``loss = var_weight · var + cov_weight · cov``.
    """
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = _as_matrix(z, "vicreg")
        num, dim = z.shape
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / (num - 1)
        variance = cov.diagonal()
        std = torch.sqrt(variance + eps)
        var_loss = F.relu(std_target - std).mean()
        off_diagonal = cov - torch.diag_embed(variance)
        cov_loss = off_diagonal.pow(2).sum() / dim
        loss = var_weight * var_loss + cov_weight * cov_loss
    stats = {
        "latent_std": variance.detach().clamp_min(0).sqrt().mean().item(),
        "vicreg_var": var_loss.detach().item(),
        "vicreg_cov": cov_loss.detach().item(),
    }
    return loss, stats


def sigreg(
    z: torch.Tensor,
    num_projections: int = 256,
    generator: torch.Generator | None = None,
    t_max: float = 3.0,
    num_knots: int = 17,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SIGReg (LeJEPA / LeWM): push random 1-D projections of the latents towards N(0, 1).

    For each of K random unit directions u, with projections ``s_j = <z_j, u>`` and their empirical
    characteristic function ``phi(t) = (1/M) sum_j exp(i t s_j)``, the Epps–Pulley statistic is

        EP(u) = M · ∫ |phi(t) - exp(-t²/2)|² · exp(-t²/2) dt,
        |phi(t) - exp(-t²/2)|² = (mean_j cos(t s_j) - exp(-t²/2))² + (mean_j sin(t s_j))²,

    where ``exp(-t²/2)`` is the characteristic function of N(0, 1) and also serves as the weight. The
    integrand is even in t, so we integrate 2·∫_0^t_max with the trapezoid rule on ``num_knots`` knots. The
    factor M makes the statistic O(1) for Gaussian data whatever the batch size. ``loss = mean_u EP(u)``.

    On a fully collapsed batch every sample receives the same gradient (it can move the point, not spread it),
    and near a collapse at the origin the gradient vanishes: from a collapsed start SIGReg needs a symmetry
    breaker first (e.g. a VICReg variance warm-up or a normalised init).
    """
    if num_projections < 1 or num_knots < 2 or t_max <= 0:
        raise ValueError(
            f"sigreg: need num_projections >= 1, num_knots >= 2, t_max > 0; got {num_projections}, {num_knots}, {t_max}"
        )
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = _as_matrix(z, "sigreg")
        num, dim = z.shape
        rng_device = generator.device if generator is not None else z.device
        directions = torch.randn(dim, num_projections, generator=generator, device=rng_device).to(z.device)
        directions = directions / directions.norm(dim=0, keepdim=True)
        proj = z @ directions  # (M, K)
        knots = torch.linspace(0.0, t_max, num_knots).tolist()
        step = t_max / (num_knots - 1)
        statistic = z.new_zeros(num_projections)
        # One knot at a time keeps memory at (M, K) instead of (M, K, knots).
        for i, t in enumerate(knots):
            target = math.exp(-0.5 * t * t)
            angle = proj * t
            err = (angle.cos().mean(dim=0) - target).pow(2) + angle.sin().mean(dim=0).pow(2)
            trapezoid = step * (0.5 if i in (0, num_knots - 1) else 1.0)
            statistic = statistic + (2.0 * trapezoid * target) * err
        loss = (num * statistic).mean()
    stats = {"latent_std": z.detach().std(dim=0).mean().item(), "sigreg": loss.detach().item()}
    return loss, stats
