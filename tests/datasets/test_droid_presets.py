"""The DROID presets: pinned paper values, model sizes, and a tiny `droid_quick` run on converted DROID-layout data."""

from __future__ import annotations

import pytest
import torch

from jepa_wms.config import load_config

DROID_PRESETS = ("droid", "droid_dino_wm", "droid_vjepa2_ac", "droid_quick")


@pytest.mark.parametrize("name", DROID_PRESETS)
def test_every_droid_preset_plans_the_offline_protocol(name):
    cfg = load_config(name)
    # Converted DROID / Franka / LeRobot data is recorded under env `droid` (no simulator): train checks the match.
    assert cfg.env == "droid" and cfg.data.frameskip == 1 and cfg.model.proprio_emb_dim == 0
    assert cfg.optim.betas == [0.9, 0.995]
    plan = cfg.plan
    assert (plan.horizon, plan.execute, plan.iterations, plan.num_samples, plan.num_elites) == (3, 3, 15, 300, 10)
    assert (plan.init_std, plan.alpha, plan.cost) == (0.1, 0.0, "L2")
    assert plan.action_clip == [0.1] * 6 + [0.75] and cfg.eval.episodes == 64


def test_droid_jepa_wm_recipe():
    cfg = load_config("droid")
    enc, pred = cfg.model.encoder, cfg.model.predictor
    assert (enc.type, enc.name, enc.img_size, enc.embed_dim, enc.grid_size) == (
        "dinov3",
        "dinov3_vitl16",
        256,
        1024,
        16,
    )
    assert not enc.trainable and enc.weights == "official"
    assert (pred.type, pred.depth, pred.pred_dim, pred.num_heads) == ("adaln", 12, 1024, 16)
    assert (cfg.data.num_frames, cfg.loss.rollout_steps, cfg.loss.distance) == (4, 2, "l2")
    assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.schedule, cfg.optim.warmup_steps) == (5e-4, 5e-4, "constant", 0)


def test_droid_baselines():
    dwm = load_config("droid_dino_wm")
    assert (dwm.model.encoder.name, dwm.model.encoder.img_size, dwm.model.encoder.pixel_mean) == (
        "dinov2_vits14",
        224,
        [0.5, 0.5, 0.5],
    )
    assert (dwm.model.predictor.type, dwm.model.predictor.depth, dwm.model.predictor.action_emb_dim) == (
        "dino_wm",
        6,
        10,
    )
    assert dwm.loss.rollout_steps == 1 and dwm.data.num_frames == 4
    vj = load_config("droid_vjepa2_ac")
    enc, pred = vj.model.encoder, vj.model.predictor
    assert (enc.type, enc.name, enc.img_size, enc.embed_dim, enc.normalize_output) == (
        "vjepa2",
        "vjepa2_vitg16",
        256,
        1408,
        True,
    )
    assert (pred.type, pred.depth, pred.pred_dim, pred.num_heads) == ("vjepa2_ac", 24, 1024, 16)
    assert (vj.loss.distance, vj.loss.rollout_steps, vj.loss.rollout_stop_grad, vj.data.num_frames) == (
        "l1",
        2,
        False,
        8,
    )
    assert (vj.optim.weight_decay, vj.optim.grad_clip) == (0.04, 0.0)


def test_droid_quick_is_cpu_sized():
    cfg = load_config("droid_quick")
    enc = cfg.model.encoder
    assert (enc.type, enc.img_size, cfg.model.predictor.type, cfg.model.predictor.depth) == ("conv", 64, "adaln", 3)
    assert cfg.loss.target_stop_grad is False and cfg.loss.regularizer == "vicreg"  # trained end to end
    assert (cfg.data.num_frames, cfg.loss.rollout_steps) == (4, 2)


def test_droid_model_sizes():
    """Built on the meta device (no memory): the paper's DROID predictors (228.8 M JEPA-WM, ~300 M V-JEPA-2-AC)."""
    from jepa_wms.world_model import build_world_model

    sizes = {}
    for name in DROID_PRESETS:
        cfg = load_config(name)
        with torch.device("meta"):
            model = build_world_model(cfg.model, raw_action_dim=7, proprio_dim=7, frameskip=1, load_weights=False)
        sizes[name] = sum(p.numel() for p in model.predictor.parameters())
    assert round(sizes["droid"] / 1e5) == 2288
    assert 3.0e8 < sizes["droid_vjepa2_ac"] < 3.1e8
    assert sizes["droid_quick"] < 1e6


@pytest.fixture(scope="module")
def droid_data(tmp_path_factory):
    from jepa_wms.datasets.formats import convert
    from tests.datasets.test_formats_droid import _episode

    root = tmp_path_factory.mktemp("droid") / "droid"
    for e in range(6):
        _episode(root, f"ep{e}", 30)  # 8 kept frames: 5 windows of 4
    return convert(root, root.parent / "data", img_size=64, show_progress=False)


SMALL = ["train.epochs=1", "train.batch_size=8", "train.device=cpu", "data.val_fraction=0.2"]


def test_droid_quick_trains_on_converted_droid_layout(droid_data, tmp_path):
    from jepa_wms.datasets import TrajectoryStore
    from jepa_wms.saved_model import load_world_model
    from jepa_wms.training import train

    torch.set_num_threads(1)
    store = TrajectoryStore(droid_data)
    assert store.env == "droid" and store.action_dim == 7 and store.image_shape[:2] == (64, 64)
    ckpt = train(load_config("droid_quick", SMALL), droid_data, tmp_path / "run", show_progress=False)
    model, saved, _ = load_world_model(ckpt)
    assert saved.env == "droid" and model.action_dim == 7 and saved.model.proprio_emb_dim == 0
    assert torch.equal(model.action_std, torch.ones(7)), "droid presets take raw (unnormalised) actions"


def test_droid_keypoints_freezes_its_pretrained_encoder(droid_data, tmp_path):
    from jepa_wms.checkpoint import load_checkpoint
    from jepa_wms.saved_model import load_world_model
    from jepa_wms.training import pretrain, train

    torch.set_num_threads(1)
    pre = pretrain(load_config("droid_keypoints_encoder", SMALL), droid_data, tmp_path / "pre", show_progress=False)
    cfg = load_config("droid_keypoints", [*SMALL, f"model.encoder.weights={pre}"])
    model, _, _ = load_world_model(train(cfg, droid_data, tmp_path / "run", show_progress=False))
    encoder = {k: v for k, v in load_checkpoint(pre)["model"].items() if k.startswith("encoder.")}
    assert encoder and all(torch.equal(model.state_dict()[k], v) for k, v in encoder.items())
