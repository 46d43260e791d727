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


def _embedding_model(seed=0):
    """The original's proprio space: embeddings carried per patch by the AdaLN predictor (unit-gain weights, so
    the patches' predicted proprio channels differ clearly)."""
    from tests.predictors.predictor_helpers import mix_weights

    torch.manual_seed(seed)
    cfg = load_config("wall", [*TINY, "model.proprio_space=embedding"])
    m = build_world_model(
        cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2, proprio_mean=torch.tensor([3.0, 4.0])
    )
    mix_weights(m.predictor, seed)
    return m.eval()


def test_embedding_space_rollout_feeds_back_per_patch_proprio():
    m = _embedding_model()
    b, h, n = 2, 4, 16
    pixels = torch.randint(0, 256, (b, 1, 16, 16, 3), dtype=torch.uint8)
    raw = torch.randn(b, 1, 2)
    actions = torch.randn(b, h, m.action_dim)
    with torch.no_grad():
        ctx = m.encode(pixels, raw)
        emb = m.proprio_encoder.proj(raw - torch.tensor([3.0, 4.0]))  # std 1: normalising only shifts
        assert torch.equal(ctx.proprio, emb[:, :, None].expand(-1, -1, n, -1)), "observed: the embedding, tiled"
        rolled = m.rollout(ctx, actions)
        # Reference: the growing window of the predictor's own per-patch predictions (key/value cache = no window).
        vis, prop = ctx.visual, emb[:, :, None].expand(-1, -1, n, -1)
        for k in range(h):
            z_out, p_out = m.predictor(vis, actions[:, : k + 1], prop)
            vis, prop = torch.cat([vis, z_out[:, -1:]], 1), torch.cat([prop, p_out[:, -1:]], 1)
    assert rolled.proprio.shape == (b, h, n, 4)
    torch.testing.assert_close(rolled.visual, vis[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(rolled.proprio, prop[:, 1:], atol=1e-5, rtol=0)
    assert (prop[:, 2:] - prop[:, 2:].mean(2, keepdim=True)).abs().max() > 1e-2, "patches must differ"


def test_embedding_space_cost_and_loss_average_the_per_patch_proprio_error():
    """Planning cost and training loss compare each patch's predicted proprio with the tiled target embedding,
    as the original did: the error of the patch mean would miss the patches' spread."""
    from contextlib import nullcontext

    from jepa_wms.config import LossConfig
    from jepa_wms.planning.dynamics import latent_goal_cost_fn
    from jepa_wms.runtime import seeded_generator
    from jepa_wms.training.losses import world_model_loss

    m = _embedding_model(1)
    pixels = torch.randint(0, 256, (2, 1, 16, 16, 3), dtype=torch.uint8)
    raw = torch.randn(2, 1, 2)
    with torch.no_grad():
        ctx, goal = m.encode(pixels[:1], raw[:1]), m.encode(pixels[1:], raw[1:])
        candidates = torch.randn(1, 3, 2, m.action_dim)
        cost = latent_goal_cost_fn(m, ctx, goal, 0.5, "L2", nullcontext)(candidates)
        pred = m.rollout(
            LatentState(ctx.visual.expand(3, -1, -1, -1), ctx.proprio.expand(3, -1, -1, -1)), candidates[0]
        )
        goal_emb = m.proprio_encoder.proj(raw[1, 0] - torch.tensor([3.0, 4.0]))  # (E,)
        vis = (pred.visual[:, -1] - goal.visual[0, 0]).square().mean((1, 2))
        per_patch = (pred.proprio[:, -1] - goal_emb).square().mean((1, 2))
        of_mean = (pred.proprio[:, -1].mean(1) - goal_emb).square().mean(1)
    torch.testing.assert_close(cost[0], vis + 0.5 * per_patch, atol=1e-5, rtol=1e-5)
    assert (per_patch - of_mean).min() > 1e-3
    batch = {
        "pixels": torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8),
        "proprio": torch.randn(2, 3, 2),
        "actions": torch.randn(2, 2, m.action_dim),
    }
    _, stats = world_model_loss(m, batch, LossConfig(rollout_steps=1), seeded_generator(0))
    with torch.no_grad():
        emb = m.proprio_encoder.proj(batch["proprio"])[:, :, None].expand(-1, -1, 16, -1)  # batches are normalised
        z = m.encoder.encode_frames(batch["pixels"])
        _, p_out = m.predictor(z[:, :-1], batch["actions"], emb[:, :-1])
    assert abs(stats["loss_proprio"] - float((p_out - emb[:, 1:]).square().mean())) < 1e-5
