"""``jepa-wms decode``: open-loop rollouts decoded next to the real frames, and counterfactual action programs."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from jepa_wms.cli import main
from jepa_wms.heads import load_programs, train_head, unroll_programs
from jepa_wms.heads.decode import load_clips, load_model_and_heads


@pytest.fixture(scope="module")
def heads(tmp_path_factory, tiny_dataset, tiny_checkpoint):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("decode_heads")
    data, overrides = tiny_dataset.parent, ["train.epochs=1"]
    return [
        train_head(tiny_checkpoint, "image", data, out / "image", overrides, channels=[8], show_progress=False),
        train_head(tiny_checkpoint, "state", data, out / "state", overrides, hidden=16, show_progress=False),
    ]


def test_decode_writes_videos_plots_and_per_step_errors(heads, tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "decode"
    argv = ["decode", "--checkpoint", str(tiny_checkpoint), "--head", *map(str, heads)]
    argv += ["--data", str(tiny_dataset.parent), "--out", str(out), "--episodes", "2", "--steps", "3", "--fps", "2"]
    assert main(argv) == 0
    assert "state_distance per step (imagined):" in capsys.readouterr().out
    result = json.loads((out / "decode.json").read_text())
    assert len(result["episodes"]) == 2 and result["steps"] == 3
    for key in ("pixel_error", "state_distance"):
        assert len(result[key]["imagined"]) == len(result[key]["reconstruction"]) == 3
    assert np.asarray(result["state_error"]["imagined"]).shape == (3, 2)  # steps × Wall's (x, y)
    assert (out / "pixel_error.png").exists() and (out / "state_error.png").exists()
    videos = sorted((out / "videos").glob("*.gif"))
    assert [v.name for v in videos] == [f"episode_{e:03d}.gif" for e in result["episodes"]]
    frames = imageio.mimread(videos[0])
    # 3 steps + the last held for fps frames (the GIF writer merges identical neighbours); real | imagined: two
    # 16-px frames upscaled 12× and a 4-px gap.
    assert 1 <= len(frames) <= 3 + 2 and frames[0].shape[:2] == (192, 2 * 192 + 4)


def test_unroll_programs_from_yaml(heads, tiny_checkpoint, tiny_dataset, tmp_path):
    programs = tmp_path / "programs.yaml"
    programs.write_text("programs:\n  up: [[0, -1]]\n  left_then_down: [[-1, 0], [-1, 0], [0, 1]]\n")
    model, cfg, (head,) = load_model_and_heads(tiny_checkpoint, heads[:1])
    loaded = load_programs(programs, 2)
    assert list(loaded) == ["up", "left_then_down"]
    frames = unroll_programs(model, head, load_clips(model, cfg, tiny_dataset.parent, 1, 1, 1), loaded, repeat=3)
    assert frames["up"].shape == (3, 16, 16, 3) and frames["left_then_down"].shape == (9, 16, 16, 3)
    assert frames["up"].dtype == np.uint8

    out = tmp_path / "unroll"
    argv = ["decode", "--checkpoint", str(tiny_checkpoint), "--head", str(heads[0]), "--data", str(tiny_dataset.parent)]
    assert main([*argv, "--out", str(out), "--programs", str(programs), "--repeat", "2", "--fps", "2"]) == 0
    result = json.loads((out / "unroll.json").read_text())
    assert result["columns"] == ["context", "up", "left_then_down"]
    assert {k: v["steps"] for k, v in result["programs"].items()} == {"up": 2, "left_then_down": 6}
    # The context frame, the 6 steps of the longest program, the last held for fps frames; three columns.
    video = imageio.mimread(out / "unroll.gif")
    assert 1 <= len(video) <= 1 + 6 + 2 and video[0].shape[1] == 3 * 192 + 2 * 4


@pytest.mark.parametrize(
    ("text", "message"),
    [("up: [[0, 1]]\n", "needs a non-empty mapping"), ("programs:\n  up: [[0, 1, 2]]\n", "program 'up' in")],
)
def test_bad_programs_file(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_programs(path, 2)


def test_decode_refuses_a_state_head_for_programs(heads, tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    programs = tmp_path / "programs.yaml"
    programs.write_text("programs:\n  up: [[0, -1]]\n")
    argv = ["decode", "--checkpoint", str(tiny_checkpoint), "--head", str(heads[1]), "--data", str(tiny_dataset.parent)]
    assert main([*argv, "--out", str(tmp_path / "u"), "--programs", str(programs)]) == 2
    assert "needs an image head, not a state head" in capsys.readouterr().err
