import pytest
import torch

from jepa_wms.config import LossConfig, load_config
from jepa_wms.runtime import seeded_generator
from jepa_wms.training.losses import latent_distance, world_model_loss
from jepa_wms.world_model import LatentState, build_world_model
from tests.conftest import TINY


def _setup(num_frames=4):
    torch.manual_seed(0)
    cfg = load_config("wall", TINY)
    m = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2)
    batch = {
        "pixels": torch.randint(0, 256, (3, num_frames, 16, 16, 3), dtype=torch.uint8),
        "proprio": torch.randn(3, num_frames, 2),
        "actions": torch.randn(3, num_frames - 1, 4),
    }
    return m, batch


def test_distances():
    a, b = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert latent_distance(a, b, "l2") == 4.0
    assert latent_distance(a, b, "l1") == 2.0
    assert latent_distance(a, b, "smooth_l1") == 1.5
    with pytest.raises(ValueError, match="huber"):
        latent_distance(a, b, "huber")


def test_teacher_forcing_only_when_one_rollout_step():
    m, batch = _setup()
    cfg = LossConfig(rollout_steps=1, regularizer="none")
    loss, stats = world_model_loss(m, batch, cfg, seeded_generator(0))
    z = m.encoder.encode_frames(batch["pixels"])
    pred = m.predict(LatentState(z[:, :-1], batch["proprio"][:, :-1]), batch["actions"])
    vis = torch.nn.functional.mse_loss(pred.visual, z[:, 1:])
    prop = torch.nn.functional.mse_loss(pred.proprio, batch["proprio"][:, 1:])
    assert loss.item() == pytest.approx((vis + prop).item(), rel=1e-5)
    assert "loss_rollout_last" not in stats


def test_rollout_terms_are_weighted_like_teacher_forcing():
    """With R = 3 steps on 4 frames (context = frame 0): loss = mean(TF, 2-step error, 3-step error)."""
    m, batch = _setup()
    cfg = LossConfig(rollout_steps=3, regularizer="none", proprio_weight=0.0)
    loss, _ = world_model_loss(m, batch, cfg, seeded_generator(0))
    z = m.encoder.encode_frames(batch["pixels"])
    p = batch["proprio"]
    tf = torch.nn.functional.mse_loss(m.predict(LatentState(z[:, :-1], p[:, :-1]), batch["actions"]).visual, z[:, 1:])
    rolled = m.rollout(LatentState(z[:, :1], p[:, :1]), batch["actions"]).visual
    r2 = torch.nn.functional.mse_loss(rolled[:, 1], z[:, 2])
    r3 = torch.nn.functional.mse_loss(rolled[:, 2], z[:, 3])
    assert loss.item() == pytest.approx(((tf + r2 + r3) / 3).item(), rel=1e-5)


def test_regularizer_pushes_against_collapse():
    m, batch = _setup()
    loss_reg, stats = world_model_loss(
        m, batch, LossConfig(regularizer="vicreg", vicreg_var_weight=10.0), seeded_generator(0)
    )
    loss_none, _ = world_model_loss(m, batch, LossConfig(regularizer="none"), seeded_generator(0))
    assert stats["latent_std"] < 1.0 and loss_reg.item() > loss_none.item()
    loss_sig, stats_sig = world_model_loss(m, batch, LossConfig(regularizer="sigreg"), seeded_generator(0))
    assert stats_sig["loss_reg"] > 0


def test_gradients_reach_encoder_predictor_and_proprio():
    m, batch = _setup()
    loss, _ = world_model_loss(m, batch, LossConfig(), seeded_generator(0))
    loss.backward()
    for name in ("encoder", "predictor", "proprio_encoder", "proprio_decoder"):
        grads = [p.grad for p in getattr(m, name).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name


def test_reconstruction_term_decodes_each_windows_first_frame():
    torch.manual_seed(0)
    cfg = load_config("wall", [*TINY, "model.pixel_decoder=[8]", "loss.recon_weight=0.5"])
    m = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2)
    assert m.pixel_decoder is not None and m.pixel_decoder.img_size == 16
    _, batch = _setup()
    loss, stats = world_model_loss(m, batch, cfg.loss, seeded_generator(0))
    target = m.encoder.preprocess(batch["pixels"][:, 0])
    recon = torch.nn.functional.mse_loss(m.pixel_decoder(m.encoder.encode_frames(batch["pixels"])[:, 0]), target)
    assert stats["loss_recon"] == pytest.approx(recon.item(), rel=1e-5)
    m.pixel_decoder = None  # the same model without the term
    base, _ = world_model_loss(m, batch, cfg.loss, seeded_generator(0))
    assert loss.item() == pytest.approx(base.item() + 0.5 * recon.item(), rel=1e-5)


def test_reconstruction_needs_pixels():
    cfg = load_config("wall", [*TINY, "model.pixel_decoder=[8]"])
    m = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=2)
    m.encoder.set_trainable(False)  # cached latents come from a frozen encoder
    _, batch = _setup()
    batch["latents"] = m.encoder.encode_frames(batch.pop("pixels"))
    with pytest.raises(ValueError, match="pixel_decoder reconstructs pixels"):
        world_model_loss(m, batch, cfg.loss, seeded_generator(0))
