"""Evaluation videos with an image head: agent | goal | the decoded frames of the plan the planner chose."""

from __future__ import annotations

import importlib
import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from jepa_wms.cli import main
from jepa_wms.envs import make_env
from jepa_wms.evaluation.goals import episode_start_goal
from jepa_wms.heads import load_head
from jepa_wms.saved_model import load_world_model, save_world_model

# The package re-exports functions of these names: the modules themselves are patched.
evaluate_module = importlib.import_module("jepa_wms.evaluation.evaluate")
imagined_module = importlib.import_module("jepa_wms.evaluation.imagined")
PANEL, GAP = 192, 4  # a 16-px Wall frame upscaled 12×, the white gap between panels


class _Recording:
    """The configured planner, keeping every plan it returns."""

    def __init__(self, planner, plans):
        self.planner, self.plans = planner, plans

    def plan(self, *args, **kwargs):
        result = self.planner.plan(*args, **kwargs)
        self.plans.append(result.actions.clone())
        return result


def _eval(checkpoint, out, *extra):
    argv = ["eval", "--checkpoint", str(checkpoint), "--out", str(out), "--episodes", "1", "--device", "cpu"]
    # fp32 planning: the rollout below is computed without autocast, as here.
    assert main([*argv, *extra, "eval.videos=1", "plan.precision=fp32"]) == 0
    (video,) = (out / "videos").glob("episode_000_*.gif")
    return json.loads((out / "results.json").read_text()), imageio.mimread(video)


def test_videos_show_the_imagined_plan(tiny_checkpoint, tiny_image_head, tmp_path, monkeypatch):
    plain, plain_video = _eval(tiny_checkpoint, tmp_path / "plain")
    plans, written = [], []
    build = evaluate_module.build_planner
    monkeypatch.setattr(evaluate_module, "build_planner", lambda cfg, *stats: _Recording(build(cfg, *stats), plans))
    write = imagined_module.write_frames
    monkeypatch.setattr(
        imagined_module, "write_frames", lambda path, images, fps: write(path, written.extend(images) or images, fps)
    )
    with_head, video = _eval(tiny_checkpoint, tmp_path / "head", "--head", str(tiny_image_head))

    # The head changes the videos only.
    assert with_head["success_rate"] == plain["success_rate"]
    assert with_head["mean_final_distance"] == plain["mean_final_distance"]
    assert plain_video[0].shape[1] == 2 * PANEL + GAP and video[0].shape[1] == 3 * PANEL + 2 * GAP
    assert len(written) == 30 + 1  # Wall's 30 env steps and the first frame

    # Independently: the first plan rolled out from the start observation, its first prediction drawn by the head.
    model, cfg, ckpt = load_world_model(tiny_checkpoint)
    head = load_head(tiny_image_head, model, tiny_checkpoint, cfg)
    env = make_env(cfg.env, **ckpt["env_kwargs"])
    start, goal = episode_start_goal(env, cfg.eval.seed, 0)
    obs = env.reset(options={"state": start, "goal": goal})[0]
    with torch.no_grad():
        z = model.encode(torch.from_numpy(obs["pixels"])[None, None], torch.from_numpy(obs["proprio"])[None, None])
        first = head.head.to_uint8(head.head(model.rollout(z, plans[0]).visual[0, :1]))[0].numpy()
    panel = written[0][:, 2 * (PANEL + GAP) :]
    # Equal up to a rounding step: the head drew the episode's predictions as one batch.
    diff = np.abs(panel.astype(int) - first.repeat(12, 0).repeat(12, 1).astype(int))
    assert diff.max() <= 1
    assert np.array_equal(written[0][:, :PANEL], obs["pixels"].repeat(12, 0).repeat(12, 1))


def test_a_head_of_another_encoder_is_refused(tiny_checkpoint, tiny_image_head, tmp_path, capsys):
    model, cfg, ckpt = load_world_model(tiny_checkpoint)
    with torch.no_grad():
        next(model.encoder.parameters()).add_(0.01)
    other = save_world_model(
        tmp_path / "other.pt", model, cfg, raw_action_dim=2, proprio_dim=2, env_kwargs=ckpt["env_kwargs"]
    )
    argv = ["eval", "--checkpoint", str(other), "--out", str(tmp_path / "e"), "--episodes", "1", "--device", "cpu"]
    assert main([*argv, "--head", str(tiny_image_head)]) == 2
    assert f"trained on world model {tiny_checkpoint}" in capsys.readouterr().err
    assert not (tmp_path / "e" / "eval_meta.json").exists()  # refused before the folder was claimed


@pytest.mark.parametrize("executed", [6, 5])
def test_each_frame_shows_the_prediction_of_its_model_step(executed):
    plan = imagined_module.ImaginedPlan()
    latents = torch.arange(3.0)[:, None, None].expand(3, 1, 1)  # (H, N, D): prediction j holds j
    plan.record(latents, executed, frameskip=2)
    assert [float(plan.latents[i]) for i in plan.at] == [0, 0, 0, 1, 1, 2, 2][: executed + 1]
