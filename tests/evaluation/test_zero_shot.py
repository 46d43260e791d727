"""Zero-shot evaluation: a checkpoint trained on one env (DROID data) planning in another (the robosuite stand-in)."""

from __future__ import annotations

import json

import pytest
import torch

from jepa_wms.evaluation import evaluate
from jepa_wms.saved_model import save_world_model
from tests.evaluation.pose_data import tiny_pose_model


def test_droid_model_plans_in_the_stand_in_with_its_protocol(tmp_path):
    pytest.importorskip("robosuite", reason="robosuite not installed (make robosuite)")
    model, cfg = tiny_pose_model()
    ckpt = save_world_model(tmp_path / "droid.pt", model, cfg, raw_action_dim=7, proprio_dim=7, env_kwargs={})
    over = ["plan.num_samples=8", "plan.iterations=1", "plan.num_elites=2", "eval.max_steps=2", "eval.videos=0"]
    res = evaluate(ckpt, tmp_path / "out", env="franka-tabletop-reach", episodes=1, overrides=over, device="cpu",
                   show_progress=False)  # fmt: skip
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["env"] == saved["env"] == "franka-tabletop-reach" and saved["episodes"] == 1
    assert saved["plan"]["execute"] == 1 and saved["plan"]["horizon"] == 3, "the stand-in's protocol: replan every step"
    assert saved["plan"]["action_clip"] == [0.05, 0.05, 0.05, 0.01, 0.01, 0.01, 1.0]
    rec = json.loads((tmp_path / "out" / "episodes.jsonl").read_text().splitlines()[0])
    assert len(rec["states"]) == 3 and len(rec["start"]) == 122


def test_zero_shot_needs_matching_action_and_proprio_widths(tiny_checkpoint, tmp_path):
    # The tiny Wall model: 2-D actions, 2-D proprio. Push-T also has 2-D actions but 4-D proprio.
    with pytest.raises(ValueError, match=r"trained on 2-D actions \(wall\); franka-tabletop-reach takes 7-D"):
        evaluate(tiny_checkpoint, tmp_path / "a", env="franka-tabletop-reach", device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"reads 2-D proprio; pusht gives 4-D"):
        evaluate(tiny_checkpoint, tmp_path / "b", env="pusht", device="cpu", show_progress=False)
    torch.set_num_threads(1)
