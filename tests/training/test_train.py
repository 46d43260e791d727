import csv

import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint
from jepa_wms.config import load_config
from jepa_wms.saved_model import load_world_model
from jepa_wms.training import TrainingError, train
from tests.conftest import TINY


def test_checkpoint_holds_everything_eval_needs(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt["epoch"] == 2 and ckpt["step"] > 0
    assert ckpt["env"] == "wall" and ckpt["env_kwargs"]["img_size"] == 16
    model, cfg, _ = load_world_model(tiny_checkpoint)
    assert cfg.data.frameskip == 2 and model.action_dim == 4
    assert torch.all(model.action_std > 0.3), "normalisation stats travel with the model"


def test_resume_after_kill_is_exact(tiny_dataset, tmp_path):
    cfg = load_config("wall", TINY)
    full = train(cfg, tiny_dataset.parent, tmp_path / "full", show_progress=False)
    # "Kill" after the first epoch: train one epoch, then resume the same run to two epochs.
    one = load_config("wall", TINY + ["train.epochs=1"])
    train(one, tiny_dataset.parent, tmp_path / "resumed", show_progress=False)
    resumed = train(cfg, tiny_dataset.parent, tmp_path / "resumed", resume=True, show_progress=False)
    a, b = load_checkpoint(full)["model"], load_checkpoint(resumed)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with open(tmp_path / "resumed" / "log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["split"] == "train"]
    assert steps == sorted(set(steps)), "resumed log has no duplicated steps"


def test_existing_run_needs_resume(tiny_dataset, tiny_checkpoint):
    with pytest.raises(FileExistsError, match="--resume"):
        train(load_config("wall", TINY), tiny_dataset.parent, tiny_checkpoint.parent.parent, show_progress=False)


def test_resume_with_other_model_config_is_refused(tiny_dataset, tiny_checkpoint, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent.parent, run)
    cfg = load_config("wall", TINY + ["model.predictor.depth=2", "train.epochs=3"])
    with pytest.raises(CheckpointError, match=r"model\.predictor\.depth \(checkpoint 1, requested 2\)"):
        train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False)


def test_nan_in_training_is_a_clear_error(tiny_dataset, tmp_path):
    cfg = load_config("wall", TINY + ["optim.lr=1e30", "optim.warmup_steps=0", "optim.grad_clip=0"])
    with pytest.raises(TrainingError, match="loss became"):
        train(cfg, tiny_dataset.parent, tmp_path / "nan", show_progress=False)


def test_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="trajectories.h5"):
        train(load_config("wall", TINY), tmp_path / "nothing", tmp_path / "out", show_progress=False)


def test_pixel_decoder_trains_and_reloads(tiny_dataset, tmp_path):
    cfg = load_config("wall", [*TINY, "train.epochs=1", "model.pixel_decoder=[8]"])
    ckpt = train(cfg, tiny_dataset.parent, tmp_path / "run", show_progress=False)
    model, saved, _ = load_world_model(ckpt)
    assert saved.model.pixel_decoder == [8] and model.pixel_decoder is not None
    with open(tmp_path / "run" / "log.csv") as f:
        recon = [float(r["loss_recon"]) for r in csv.DictReader(f) if r["split"] == "val"]
    assert recon and recon[0] > 0


def test_raw_actions_train_with_identity_stats(tiny_dataset, tmp_path):
    from jepa_wms.datasets import Normalizer, TrajectoryStore, WindowDataset

    cfg = load_config("wall", [*TINY, "train.epochs=1", "data.normalize_actions=false"])
    model, _, _ = load_world_model(train(cfg, tiny_dataset.parent, tmp_path / "raw", show_progress=False))
    assert torch.equal(model.action_mean, torch.zeros(2)) and torch.equal(model.action_std, torch.ones(2))
    store = TrajectoryStore(tiny_dataset.parent)
    raw = WindowDataset(store, 2, 1, action_stats=Normalizer.identity(2)).get([0])["actions"]
    zscored = WindowDataset(store, 2, 1).get([0])["actions"]
    assert torch.allclose(raw[0, 0], torch.as_tensor(store.actions[0], dtype=torch.float32))
    assert not torch.allclose(raw, zscored), "the default still z-scores with the store's stats"
