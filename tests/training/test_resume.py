"""``--resume`` is exact (dropout on, from a mid-epoch checkpoint, after kills anywhere) and refuses another run."""

from __future__ import annotations

import csv
import importlib
import random
import re
from pathlib import Path

import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint
from jepa_wms.config import load_config
from jepa_wms.training import train
from tests.conftest import TINY

train_module = importlib.import_module("jepa_wms.training.train")  # the module (the package exports train())
logger_module = importlib.import_module("jepa_wms.training.logger")
checkpoint_module = importlib.import_module("jepa_wms.checkpoint")

# The shipped *_dino_wm presets train with dropout 0.1; narrow heads keep it fast.
DROPOUT = [
    *TINY,
    "model.predictor.type=dino_wm",
    "model.predictor.dim_head=8",
    "model.predictor.ffn_dim=16",
    "model.predictor.action_emb_dim=4",
    "model.predictor.dropout=0.1",
    "optim.warmup_steps=3",
]


class Killed(BaseException):
    """A simulated SIGKILL: nothing in the code under test catches it."""


def _assert_same_run(a: Path, b: Path) -> None:
    x, y = load_checkpoint(a / "checkpoints" / "last.pt"), load_checkpoint(b / "checkpoints" / "last.pt")
    assert (x["epoch"], x["step"], x.get("epoch_step")) == (y["epoch"], y["step"], y.get("epoch_step"))
    assert x["model"].keys() == y["model"].keys()
    for k in x["model"]:
        assert torch.equal(x["model"][k], y["model"][k]), k
    sx, sy = x["optimizer"]["state"], y["optimizer"]["state"]
    assert sx.keys() == sy.keys() and x["optimizer"]["param_groups"] == y["optimizer"]["param_groups"]
    for i in sx:
        for k in sx[i]:
            assert torch.equal(sx[i][k], sy[i][k]), (i, k)
    assert _log_rows(a) == _log_rows(b)


def _log_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in csv.DictReader(f)]  # wall clock


def _killed_after_checkpoint(cfg, data, run: Path, step: int, monkeypatch) -> None:
    """Train ``run`` until the checkpoint of ``step`` is written, then die."""
    save = train_module.save_checkpoint

    def save_then_die(path, payload):
        save(path, payload)
        if payload["step"] == step:
            raise Killed

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(cfg, data, run, show_progress=False)
    monkeypatch.undo()


def test_resume_with_dropout_is_exact(tiny_dataset, tmp_path, monkeypatch):
    cfg = load_config("wall", DROPOUT)
    train(cfg, tiny_dataset.parent, tmp_path / "full", show_progress=False)
    steps_per_epoch = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["step"] // 2
    _killed_after_checkpoint(cfg, tiny_dataset.parent, tmp_path / "resumed", steps_per_epoch, monkeypatch)
    train(cfg, tiny_dataset.parent, tmp_path / "resumed", resume=True, show_progress=False)
    _assert_same_run(tmp_path / "full", tmp_path / "resumed")


def test_resume_from_a_mid_epoch_checkpoint_is_exact(tiny_dataset, tmp_path, monkeypatch):
    cfg = load_config("wall", [*DROPOUT, "train.checkpoint_every=3"])
    train(cfg, tiny_dataset.parent, tmp_path / "full", show_progress=False)
    _killed_after_checkpoint(cfg, tiny_dataset.parent, tmp_path / "resumed", 6, monkeypatch)
    ckpt = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    steps_per_epoch = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["step"] // 2
    assert steps_per_epoch > 6 and (ckpt["epoch"], ckpt["step"], ckpt["epoch_step"]) == (0, 6, 6)
    train(cfg, tiny_dataset.parent, tmp_path / "resumed", resume=True, show_progress=False)
    _assert_same_run(tmp_path / "full", tmp_path / "resumed")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.seed=1", "train.seed"),
        ("train.batch_size=4", "train.batch_size"),
        ("data.val_fraction=0.3", "data.val_fraction"),
        ("optim.weight_decay=0.5", "optim.weight_decay"),
    ],
)
def test_resume_refuses_a_setting_that_changes_the_run(override, key, tiny_dataset, tiny_checkpoint, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent.parent, run)
    with pytest.raises(CheckpointError, match=re.escape(key) + r" \(checkpoint .*, requested .*\)"):
        train(load_config("wall", [*TINY, override, "train.epochs=3"]), tiny_dataset.parent, run, resume=True)


def test_resume_refuses_another_dataset(tiny_checkpoint, tmp_path):
    import shutil

    from jepa_wms.datasets import collect

    other = collect("wall", 7, tmp_path / "other", episode_len=20, workers=1, img_size=16, show_progress=False)
    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent.parent, run)
    with pytest.raises(CheckpointError, match=r"another dataset .*episodes"):
        train(load_config("wall", [*TINY, "train.epochs=3"]), other.parent, run, resume=True, show_progress=False)


def test_resume_accepts_the_documented_safe_changes(tiny_dataset, tiny_checkpoint, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent.parent, run)
    safe = ["train.epochs=3", "train.log_every=2", "train.checkpoint_every=5", "optim.lr=5e-4", "data.preload=false"]
    train(load_config("wall", [*TINY, *safe]), tiny_dataset.parent, run, resume=True, show_progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 3


def test_killed_anywhere_resumes_to_the_uninterrupted_run(tiny_dataset, tmp_path, monkeypatch):
    """Kills at random points (after an optimizer step, inside a checkpoint write, inside the log rewrite of a
    resume, inside a log append), each followed by ``--resume``; then the weights, optimizer state and log rows
    equal those of a run that was never interrupted."""
    cfg = load_config("wall", [*DROPOUT, "train.checkpoint_every=4", "train.epochs=3"])
    train(cfg, tiny_dataset.parent, tmp_path / "full", show_progress=False)
    run = tmp_path / "killed"
    target = {"kind": "", "left": 0}

    def maybe_die(kind: str) -> None:
        if kind == target["kind"]:
            target["left"] -= 1
            if target["left"] == 0:
                raise Killed

    step, write, append = torch.optim.AdamW.step, checkpoint_module.atomic_write_bytes, logger_module._append_row

    def killable_step(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        maybe_die("step")  # after the update: the weights in memory are ahead of every file
        return out

    def killable_write(path, data):
        try:
            maybe_die("rewrite" if Path(path).name == "log.csv" else "checkpoint" if str(path).endswith(".pt") else "")
        except Killed:  # a real kill leaves the partly written temporary behind
            Path(path).with_name(f".{Path(path).name}.killed.tmp").write_bytes(data[: len(data) // 2])
            raise
        write(path, data)

    def killable_append(path, text):
        try:
            maybe_die("append")
        except Killed:  # a torn row
            with open(path, "a") as f:
                f.write(text[: len(text) // 2])
            raise
        append(path, text)

    monkeypatch.setattr(torch.optim.AdamW, "step", killable_step)
    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", killable_write)
    monkeypatch.setattr(logger_module, "atomic_write_bytes", killable_write)
    monkeypatch.setattr(logger_module, "_append_row", killable_append)
    rng, killed = random.Random(0), []
    most = {"step": 8, "checkpoint": 3, "rewrite": 1, "append": 8}  # per round: about one epoch ahead at most
    for kind in ["step", "checkpoint", "rewrite", "append"] * 3 + [""]:
        target.update(kind=kind, left=rng.randint(1, most[kind]) if kind else 0)
        try:
            train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False)
        except Killed:
            killed.append(kind)
    assert set(killed) == set(most) and len(killed) >= 9, killed
    assert not list(run.rglob(".*.tmp")), "stale temporaries are removed"
    _assert_same_run(tmp_path / "full", run)


def test_max_steps_ends_mid_epoch_and_resume_is_done(tiny_dataset, tmp_path):
    cfg = load_config("wall", TINY)
    full = load_checkpoint(train(cfg, tiny_dataset.parent, tmp_path / "full", show_progress=False))
    cap = full["step"] // cfg.train.epochs + 1  # one step into the second epoch
    capped_cfg = load_config("wall", [*TINY, f"train.max_steps={cap}"])
    capped = load_checkpoint(train(capped_cfg, tiny_dataset.parent, tmp_path / "capped", show_progress=False))
    assert (capped["epoch"], capped["step"], capped["epoch_step"]) == (1, cap, 1)
    assert capped["model"].keys() == full["model"].keys()
    assert not all(torch.equal(capped["model"][k], full["model"][k]) for k in full["model"])
    rows = _log_rows(tmp_path / "capped")
    assert [r["split"] for r in rows].count("val") == 2  # after epoch 1 and at the cap
    # A resume of a finished capped run trains nothing more.
    resumed = train(capped_cfg, tiny_dataset.parent, tmp_path / "capped", resume=True, show_progress=False)
    again = load_checkpoint(resumed)
    assert again["step"] == cap and _log_rows(tmp_path / "capped") == rows
