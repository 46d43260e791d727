"""``jepa-wms decode --env``: open-loop rollouts from fresh, seeded episodes of the env instead of a dataset."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from jepa_wms.cli import main
from jepa_wms.heads import EnvSource, trajectory_source
from jepa_wms.heads.decode import load_model_and_heads
from jepa_wms.heads.sources import env_clips


def test_decode_env_writes_the_video_and_the_per_step_error(tiny_image_head, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "decode"
    argv = ["decode", "--checkpoint", str(tiny_checkpoint), "--head", str(tiny_image_head), "--env", "wall"]
    assert main([*argv, "--out", str(out), "--episodes", "2", "--steps", "3", "--seed", "5", "--fps", "2"]) == 0
    assert "pixel_error per step (imagined):" in capsys.readouterr().out
    result = json.loads((out / "decode.json").read_text())
    assert result["episodes"] == [0, 1] and result["steps"] == 3
    assert result["source"] == "env" and result["seed"] == 5 and result["env"] == "wall"
    assert np.asarray(result["pixel_error"]["imagined"]).shape == (3,)
    assert np.asarray(result["pixel_error"]["reconstruction"]).shape == (3,)
    assert (out / "pixel_error.png").exists()
    videos = sorted(p.name for p in (out / "videos").glob("*.gif"))
    assert videos == ["episode_000.gif", "episode_001.gif"]
    # real | imagined: two 16-px frames (the checkpoint's env options) upscaled 12× and a 4-px gap.
    assert imageio.mimread(out / "videos" / videos[0])[0].shape[:2] == (192, 2 * 192 + 4)


def test_env_episodes_follow_the_seed(tiny_image_head, tiny_checkpoint):
    model, cfg, _ = load_model_and_heads(tiny_checkpoint, [tiny_image_head])
    a, b = (env_clips(model, cfg, EnvSource("wall", 3), 2, 1, 3) for _ in range(2))
    other = env_clips(model, cfg, EnvSource("wall", 4), 2, 1, 3)
    assert a.batch["pixels"].shape == (2, 4, 16, 16, 3) and a.batch["actions"].shape == (2, 3, model.action_dim)
    for key in ("pixels", "proprio", "actions", "state"):
        assert torch.equal(a.batch[key], b.batch[key])
    assert not torch.equal(a.batch["state"], other.batch["state"])
    # The kept states are frameskip env steps apart along one episode: each action moves the dot.
    assert not torch.equal(a.batch["state"][:, 0], a.batch["state"][:, 1])


@pytest.mark.parametrize("given", [("--data", "--env"), ()])
def test_decode_needs_exactly_one_of_data_and_env(tiny_checkpoint, tiny_dataset, tmp_path, capsys, given):
    flags = {"--data": str(tiny_dataset.parent), "--env": "wall"}
    argv = ["decode", "--checkpoint", str(tiny_checkpoint), "--head", "h.pt", "--out", str(tmp_path / "o")]
    assert main([*argv, *(x for flag in given for x in (flag, flags[flag]))]) == 2
    assert "give exactly one of --data" in capsys.readouterr().err
    with pytest.raises(ValueError, match="exactly one"):
        trajectory_source(None, None)


def test_env_of_another_model_is_refused(tiny_image_head, tiny_checkpoint):
    model, cfg, _ = load_model_and_heads(tiny_checkpoint, [tiny_image_head])
    with pytest.raises(ValueError, match="the world model is for env 'wall'"):
        env_clips(model, cfg, EnvSource("pointmaze"), 1, 1, 1)


def test_programs_unroll_from_an_env_episode(tiny_image_head, tiny_checkpoint, tmp_path):
    programs = tmp_path / "programs.yaml"
    programs.write_text("programs:\n  up: [[0, -1]]\n")
    out = tmp_path / "unroll"
    argv = ["decode", "--checkpoint", str(tiny_checkpoint), "--head", str(tiny_image_head), "--env", "wall"]
    assert main([*argv, "--out", str(out), "--programs", str(programs), "--repeat", "2"]) == 0
    result = json.loads((out / "unroll.json").read_text())
    assert result["source"] == "env" and result["episode"] == 0 and result["programs"]["up"]["steps"] == 2
    assert (out / "unroll.gif").exists()
