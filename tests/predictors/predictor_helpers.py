"""Helpers shared by the predictor tests: unit-gain weights, random inputs, and reference rollouts."""

from __future__ import annotations

import torch

from jepa_wms.predictors import LatentPredictor


def mix_weights(model: LatentPredictor, seed: int = 0) -> LatentPredictor:
    """Re-draw weights at unit gain: at the official inits residual branches are tiny, so cross-frame influence is
    ~1e-6 and a broken cache or mask would hide in it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=g)
            if "norm" in name or name.endswith("net.0.weight") or name.endswith("net.0.bias"):
                param.add_(0.1 * noise)
            elif param.dim() == 2:
                param.copy_(noise * param.shape[1] ** -0.5)
            else:
                param.copy_(0.1 * noise)
    return model.eval()


def inputs(batch: int, frames: int, tokens: int, dim: int, action_dim: int, proprio_dim: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, frames, tokens, dim, generator=g)
    a = torch.randn(batch, frames, action_dim, generator=g)
    p = torch.randn(batch, frames, proprio_dim, generator=g) if proprio_dim else None
    return z, a, p


def window_rollout(model: LatentPredictor, window: int, z_ctx, a_ctx, p_ctx, actions):
    """Reference for a sliding-window rollout: ``forward`` on the last ``window`` frames (positions from 0), keep
    the last output, feed it back (proprio kept when the model does not predict it)."""
    z_seq, a_seq, p_seq = z_ctx, a_ctx, p_ctx
    zs, ps = [], []
    for h in range(actions.shape[1]):
        a_seq = torch.cat([a_seq, actions[:, h : h + 1]], 1)
        lo = max(z_seq.shape[1] - window, 0)
        z_pred, p_pred = model(z_seq[:, lo:], a_seq[:, lo:], None if p_seq is None else p_seq[:, lo:])
        zs.append(z_pred[:, -1])
        z_seq = torch.cat([z_seq, z_pred[:, -1:]], 1)
        if p_seq is not None:
            p_next = p_seq[:, -1:] if p_pred is None else p_pred[:, -1:]
            if p_pred is not None:
                ps.append(p_pred[:, -1])
            p_seq = torch.cat([p_seq, p_next], 1)
    return torch.stack(zs, 1), torch.stack(ps, 1) if ps else None


def assert_frame_causal(model: LatentPredictor, z, a, p, t: int) -> None:
    """Outputs up to frame t ignore later latents, actions and proprio; later outputs do change."""
    z_pred, p_pred = model(z, a, p)
    z2, a2 = z.clone(), a.clone()
    z2[:, t + 1 :] += 5 * torch.randn_like(z2[:, t + 1 :])
    a2[:, t + 1 :] += 5
    p2 = None
    if p is not None:
        p2 = p.clone()
        p2[:, t + 1 :] -= 5
    z_pred2, p_pred2 = model(z2, a2, p2)
    torch.testing.assert_close(z_pred2[:, : t + 1], z_pred[:, : t + 1], atol=1e-6, rtol=0)
    if p_pred is not None:
        torch.testing.assert_close(p_pred2[:, : t + 1], p_pred[:, : t + 1], atol=1e-6, rtol=0)
    assert (z_pred2[:, t + 1 :] - z_pred[:, t + 1 :]).abs().max() > 1e-3
