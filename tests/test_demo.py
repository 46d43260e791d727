import json

import pytest

from jepa_wms.config import load_config
from jepa_wms.demo import demo_config_name, run_demo

from .conftest import TINY

SMALL_DATA = ["collect.episodes=6", "collect.episode_len=40", "collect.workers=1", "data.val_fraction=0.34"]


def test_demo_config_names():
    assert demo_config_name("pusht", quick=True) == "pusht_keypoints"
    assert demo_config_name("pointmaze", quick=True) == "pointmaze_quick"
    assert demo_config_name("pusht") == "pusht"
    assert demo_config_name("wall", quick=True) == "wall"  # Wall's default already fits a CPU
    with pytest.raises(ValueError, match="unknown demo env 'maze'.*pointmaze"):
        demo_config_name("maze")
    with pytest.raises(ValueError, match="--task applies to the metaworld demo only"):
        run_demo("pusht", task="reach")
    with pytest.raises(ValueError, match="config 'pusht_keypoints_5k' is for env 'pusht', not the demo's --env 'wall'"):
        run_demo("wall", config="pusht_keypoints_5k")


def test_pusht_cpu_recipe_preset():
    """The 2-hour Push-T recipe: the quick recipe on 5k trajectories, its encoder pretrained as long as on 1k."""
    cfg = load_config("pusht_keypoints_5k")
    quick = load_config("pusht_keypoints")
    assert (cfg.collect.episodes, cfg.train.epochs, cfg.train.keep_epoch_checkpoints) == (5000, 10, True)
    assert cfg.model.predictor == quick.model.predictor and cfg.plan == quick.plan and cfg.eval == quick.eval
    encoder = load_config(cfg.model.encoder.pretrain)
    assert (
        encoder.train.max_steps == 750
        and encoder.model.encoder == load_config(quick.model.encoder.pretrain).model.encoder
    )


def test_tiny_metaworld_demo_with_task(tmp_path, monkeypatch):
    pytest.importorskip("metaworld")
    monkeypatch.chdir(tmp_path)
    overrides = [*TINY, *SMALL_DATA, "collect.episodes=4", "collect.episode_len=12", "eval.episodes=1"]
    res = run_demo("metaworld", None, overrides, show_progress=False, quick=True, task="reach-wall")
    out = tmp_path / "runs" / "demo-metaworld-reach-wall-quick"
    assert res["env"] == "metaworld-reach-wall" and (out / "eval" / "results.json").exists()
    rec = json.loads((out / "eval" / "episodes.jsonl").read_text().splitlines()[0])
    assert len(rec["states"]) == 101  # 100 env steps, replanned every plan.execute model actions


def test_tiny_pusht_demo_pretrains_its_keypoint_encoder_and_plans_to_held_out_data_goals(tmp_path):
    """The quick Push-T demo pretrains the encoder its config names (model.encoder.pretrain) on the demo's data,
    caches the latents, trains the predictor on the frozen encoder and plans to held-out data goals."""
    import torch

    from jepa_wms.checkpoint import load_checkpoint

    predictor_only = [o for o in TINY if not o.startswith("model.encoder.")]
    res = run_demo(
        "pusht", tmp_path, [*predictor_only, *SMALL_DATA, "eval.episodes=2"], show_progress=False, quick=True
    )
    assert res["env"] == "pusht" and res["episodes"] == 2 and res["pretrain_s"] > 0
    encoder = load_checkpoint(tmp_path / "pretrain" / "checkpoints" / "last.pt")["model"]
    world_model = load_checkpoint(tmp_path / "train" / "checkpoints" / "last.pt")
    assert world_model["config"]["model"]["encoder"]["weights"] == str(tmp_path / "pretrain/checkpoints/last.pt")
    frozen = {k: v for k, v in world_model["model"].items() if k.startswith("encoder.")}
    assert frozen and all(torch.equal(v, encoder[k]) for k, v in frozen.items())
    assert list((tmp_path / "data" / "latents").glob("*/latents.npy")), "the latents were not cached"
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["success_rate"] == res["success_rate"]
    rec = json.loads((tmp_path / "eval" / "episodes.jsonl").read_text().splitlines()[0])
    assert len(rec["start"]) == 7 and len(rec["states"]) == 31  # Push-T state; 30 env steps
