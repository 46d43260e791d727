import torch

from jepa_wms.config import load_config
from jepa_wms.world_model import LatentState, build_world_model
from tests.conftest import TINY


def _model(seed=0):
    torch.manual_seed(seed)
    cfg = load_config("wall", TINY)
    return build_world_model(
        cfg.model,
        raw_action_dim=2,
        proprio_dim=2,
        frameskip=2,
        action_mean=torch.tensor([0.1, -0.2]),
        action_std=torch.tensor([0.5, 2.0]),
        proprio_mean=torch.tensor([30.0, 30.0]),
        proprio_std=torch.tensor([10.0, 5.0]),
    ).eval()


def test_action_normalisation_round_trip():
    m = _model()
    raw = torch.randn(3, 5, 2, 2)  # (B, H, frameskip, A)
    model_actions = m.normalize_actions(raw)
    assert model_actions.shape == (3, 5, 4)
    assert torch.allclose(m.denormalize_actions(model_actions), raw, atol=1e-6)


def test_rollout_matches_teacher_forcing_on_its_own_predictions():
    """The cached rollout equals re-running the frame-causal predictor on the growing window of its own
    (decoded and re-embedded) predictions."""
    m = _model()
    b, h = 2, 4
    pixels = torch.randint(0, 256, (b, 1, 16, 16, 3), dtype=torch.uint8)
    ctx = m.encode(pixels, torch.randn(b, 1, 2) * 10 + 30)
    actions = torch.randn(b, h, m.action_dim)
    with torch.no_grad():
        rolled = m.rollout(ctx, actions)
        vis, prop = ctx.visual, ctx.proprio
        for k in range(h):
            pred = m.predict(LatentState(vis, prop), actions[:, : k + 1])
            vis = torch.cat([vis, pred.visual[:, -1:]], 1)
            prop = torch.cat([prop, pred.proprio[:, -1:]], 1)
    assert torch.allclose(rolled.visual, vis[:, 1:], atol=1e-5)
    assert torch.allclose(rolled.proprio, prop[:, 1:], atol=1e-5)


def test_predict_is_frame_causal():
    m = _model()
    z = torch.randn(2, 4, 16, 8)
    p = torch.randn(2, 4, 2)
    a = torch.randn(2, 4, 4)
    with torch.no_grad():
        base = m.predict(LatentState(z, p), a)
        z2, p2, a2 = z.clone(), p.clone(), a.clone()
        z2[:, 2:] += 5
        p2[:, 2:] -= 3
        a2[:, 2:] *= -1
        changed = m.predict(LatentState(z2, p2), a2)
    assert torch.allclose(base.visual[:, :2], changed.visual[:, :2], atol=1e-6)
    assert torch.allclose(base.proprio[:, :2], changed.proprio[:, :2], atol=1e-6)
    assert not torch.allclose(base.visual[:, 2:], changed.visual[:, 2:], atol=1e-3)


def test_rollout_with_context_frames_needs_their_actions():
    import pytest

    m = _model()
    ctx = LatentState(torch.randn(1, 2, 16, 8), torch.randn(1, 2, 2))
    with pytest.raises(ValueError, match="context_actions"):
        m.rollout(ctx, torch.randn(1, 3, 4))
    out = m.rollout(ctx, torch.randn(1, 3, 4), torch.randn(1, 1, 4))
    assert out.visual.shape == (1, 3, 16, 8) and out.proprio.shape == (1, 3, 2)
