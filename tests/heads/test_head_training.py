"""Heads on a tiny world model's frozen latents: training, the checkpoint, and refusal of another model."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint
from jepa_wms.cli import main
from jepa_wms.heads import load_head, train_head
from jepa_wms.saved_model import load_world_model, save_world_model


@pytest.fixture(scope="module")
def heads(tmp_path_factory, tiny_dataset, tiny_checkpoint):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("heads")
    data = tiny_dataset.parent
    overrides = ["train.epochs=4", "optim.lr=3e-3", "optim.warmup_steps=2"]
    image = train_head(tiny_checkpoint, "image", data, out / "image", overrides, channels=[8], show_progress=False)
    state = train_head(tiny_checkpoint, "state", data, out / "state", overrides, hidden=32, show_progress=False)
    return {"image": image, "state": state}


def _train_losses(ckpt) -> list[float]:
    with open(ckpt.parent.parent / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]


@pytest.mark.parametrize("kind", ["image", "state"])
def test_a_head_trains_on_frozen_latents(heads, tiny_checkpoint, kind):
    losses = _train_losses(heads[kind])
    assert losses[-1] < 0.9 * losses[0]
    ckpt = load_checkpoint(heads[kind])
    assert ckpt["objective"] == f"head_{kind}"
    # Only the head: the frozen encoder stays in the world model's file.
    assert ckpt["model"] and all(k.startswith("head.") for k in ckpt["model"])
    assert ckpt["head"]["world_model"] == str(tiny_checkpoint)
    # The optimizer held the head's parameters only (buffers such as the state statistics are not parameters).
    head_params = [k for k in ckpt["model"] if not k.endswith(("state_mean", "state_std"))]
    assert len(ckpt["optimizer"]["state"]) == len(head_params)


def test_a_head_reads_the_model_it_was_trained_on_and_refuses_another(heads, tiny_checkpoint, tmp_path):
    model, cfg, ckpt = load_world_model(tiny_checkpoint)
    # A copy of the same model (same encoder weights) shares its heads.
    same = tmp_path / "same.pt"
    shutil.copy(tiny_checkpoint, same)
    assert load_head(heads["state"], model, same, cfg).spec.kind == "state"
    with torch.no_grad():
        next(model.encoder.parameters()).add_(0.01)
    other = save_world_model(
        tmp_path / "other.pt", model, cfg, raw_action_dim=2, proprio_dim=2, env_kwargs=ckpt["env_kwargs"]
    )
    with pytest.raises(CheckpointError, match=f"trained on world model {tiny_checkpoint}.*that of {other}"):
        load_head(heads["image"], load_world_model(other)[0], other, cfg)
    with pytest.raises(CheckpointError, match="not a head"):
        load_head(tiny_checkpoint, model, other, cfg)


def test_train_head_cli_refuses_model_keys(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    argv = ["train-head", "--checkpoint", str(tiny_checkpoint), "--head", "state", "--data", str(tiny_dataset.parent)]
    assert main([*argv, "--out", str(tmp_path / "h"), "model.proprio_emb_dim=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jepa-wms train-head: error: only train.*") and "\n" not in err
