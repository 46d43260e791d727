"""Each predictor type selected by config inside a full world model: builds, trains a step, plans."""

import pytest
import torch

from jepa_wms.config import ConfigError, LossConfig, load_config
from jepa_wms.predictors import AdaLNPredictor, DinoWMPredictor, VJepa2ACPredictor, build_predictor
from jepa_wms.runtime import seeded_generator
from jepa_wms.training.losses import world_model_loss
from jepa_wms.world_model import LatentState, build_world_model
from tests.conftest import TINY

TYPES = {
    "adaln": (AdaLNPredictor, []),
    "dino_wm": (DinoWMPredictor, ["model.predictor.dim_head=8", "model.predictor.action_emb_dim=6"]),
    "vjepa2_ac": (VJepa2ACPredictor, []),
}


def _world_model(kind: str, extra: tuple[str, ...] = ()):
    torch.manual_seed(0)
    cfg = load_config("wall", [*TINY, f"model.predictor.type={kind}", *TYPES[kind][1], *extra])
    return build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2), cfg


@pytest.mark.parametrize("kind", list(TYPES))
def test_config_selects_the_predictor_and_it_trains_and_plans(kind):
    model, cfg = _world_model(kind)
    assert type(model.predictor) is TYPES[kind][0]
    if kind == "dino_wm":
        assert cfg.model.predictor.num_frames == cfg.data.num_frames == 4
        assert model.predictor.pos_embedding.shape == (1, 4 * 16, 8 + 4 + 6)
    batch = {
        "pixels": torch.randint(0, 256, (3, 4, 16, 16, 3), dtype=torch.uint8),
        "proprio": torch.randn(3, 4, 2),
        "actions": torch.randn(3, 3, 4),
    }
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.predictor.named_parameters()}
    loss, stats = world_model_loss(model, batch, LossConfig(rollout_steps=3), seeded_generator(0))
    loss.backward()
    assert torch.isfinite(loss) and "loss_rollout_last" in stats and "loss_proprio" in stats
    assert all(p.grad is not None for p in model.predictor.parameters())
    opt.step()
    assert all(not torch.equal(before[n], p) for n, p in model.predictor.named_parameters())
    # Planning: many candidate action sequences rolled out from one observed frame, past the training window.
    model.eval()
    with torch.no_grad():
        ctx = model.encode(torch.randint(0, 256, (1, 1, 16, 16, 3), dtype=torch.uint8), torch.randn(1, 1, 2))
        ctx = LatentState(ctx.visual.expand(16, -1, -1, -1), ctx.proprio.expand(16, -1, -1))
        pred = model.rollout(ctx, torch.randn(16, 6, model.action_dim))
    assert pred.visual.shape == (16, 6, 16, 8) and pred.proprio.shape == (16, 6, 2)
    assert torch.isfinite(pred.visual).all()


def test_vjepa2_ac_without_proprio_head_keeps_the_last_proprio():
    model, _ = _world_model("vjepa2_ac", ("model.predictor.predict_proprio=false",))
    assert model.proprio_decoder is None and model.proprio_encoder is not None
    ctx = LatentState(torch.randn(2, 2, 16, 8), torch.randn(2, 2, 2))
    actions, ctx_actions = torch.randn(2, 3, 4), torch.randn(2, 1, 4)
    with torch.no_grad():
        pred = model.rollout(ctx, actions, ctx_actions)
        assert pred.proprio is None
        # Reference: the predictor fed the last context proprio embedding at every step.
        p_emb = model.proprio_encoder(ctx.proprio)
        z_seq, a_seq, p_seq = ctx.visual, ctx_actions, p_emb
        for h in range(3):
            a_seq = torch.cat([a_seq, actions[:, h : h + 1]], 1)
            z_out, p_out = model.predictor(z_seq, a_seq, p_seq)
            assert p_out is None
            torch.testing.assert_close(pred.visual[:, h], z_out[:, -1], atol=1e-5, rtol=1e-5)
            z_seq = torch.cat([z_seq, z_out[:, -1:]], 1)
            p_seq = torch.cat([p_seq, p_emb[:, -1:]], 1)
    batch = {
        "pixels": torch.randint(0, 256, (2, 4, 16, 16, 3), dtype=torch.uint8),
        "proprio": torch.randn(2, 4, 2),
        "actions": torch.randn(2, 3, 4),
    }
    loss, stats = world_model_loss(model, batch, LossConfig(rollout_steps=3), seeded_generator(0))
    assert torch.isfinite(loss) and "loss_proprio" not in stats


def test_context_window_and_rope_reach_the_predictor():
    legacy = ("model.predictor.context_window=2", "model.predictor.rope=legacy", "model.predictor.num_heads=1")
    model, _ = _world_model("adaln", legacy)
    assert model.predictor.context_window == 2 and model.predictor.rope.legacy
    with pytest.raises(ConfigError, match="model.predictor.rope"):
        load_config("wall", [*TINY, "model.predictor.rope=fixed"])
    with pytest.raises(ConfigError, match="model.predictor.type"):
        load_config("wall", [*TINY, "model.predictor.type=transformer"])


def test_dino_wm_needs_a_position_table_size():
    cfg = load_config("wall", [*TINY, "model.predictor.type=dino_wm"]).model.predictor
    cfg.num_frames = 0
    with pytest.raises(ValueError, match="num_frames"):
        build_predictor(cfg, embed_dim=8, grid=(4, 4), action_dim=4, proprio_emb_dim=4)
    assert build_predictor(cfg, embed_dim=8, grid=(4, 4), action_dim=4, proprio_emb_dim=4, num_frames=3).num_frames == 3
