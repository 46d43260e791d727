"""``train`` on a DROID-layout video folder, without conversion: the run equals training on the converted file, resumes
exactly, and refuses what a video folder cannot do with errors that name the key."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from jepa_wms.checkpoint import CheckpointError, load_checkpoint
from jepa_wms.config import ConfigError, load_config
from jepa_wms.datasets import DatasetError, Normalizer, TrajectoryStore, WindowDataset, split_episodes
from jepa_wms.datasets.formats import convert
from jepa_wms.datasets.sources import open_dataset
from jepa_wms.datasets.video_windows import VideoStore
from jepa_wms.training import train
from tests.conftest import TINY
from tests.datasets.test_formats_droid import _episode
from tests.training.test_resume import _assert_same_run

# droid_quick (raw 7-D pose-delta actions, frameskip 1, 4-frame windows) with a model small enough for 16-px frames.
TINY_DROID = [
    *(o for o in TINY if o.startswith(("model.encoder.", "model.predictor.", "train.")) and "epochs" not in o),
    "data.val_fraction=0.2",
    "train.epochs=2",
    "train.device=cpu",
    "optim.warmup_steps=2",
]


@pytest.fixture(scope="module")
def droid(tmp_path_factory):
    """(video folder, the same folder converted at 16 px): 6 episodes of 8 kept frames, 5 windows of 4 each."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("droid")
    for e in range(6):
        _episode(root, f"ep{e}", 30)
    converted = convert(root, tmp_path_factory.mktemp("converted"), img_size=16, show_progress=False)
    return root, converted.parent


def _cfg(*extra):
    return load_config("droid_quick", [*TINY_DROID, *extra])


def test_batches_equal_the_converted_files(droid):
    root, converted = droid
    cfg = _cfg()
    video = open_dataset(root, cfg.data, img_size=16, frameskip=1)
    store = open_dataset(converted, cfg.data, img_size=16, frameskip=1)
    assert isinstance(video, VideoStore) and isinstance(store, TrajectoryStore)
    raw = Normalizer(np.zeros(7), np.ones(7))  # droid_quick trains on raw actions
    train_eps, _ = split_episodes(video.num_episodes, cfg.data.val_fraction, cfg.train.seed)
    a = WindowDataset(video, 4, 1, train_eps, action_stats=raw)
    b = WindowDataset(store, 4, 1, train_eps, action_stats=raw)
    assert len(a) == len(b) == 5 * len(train_eps)
    for x, y in zip(a.batches(8, 0, cfg.train.seed), b.batches(8, 0, cfg.train.seed), strict=True):
        assert x["pixels"].shape == (8, 4, 16, 16, 3) and x["actions"].shape == (8, 3, 7)
        for k in ("pixels", "actions", "proprio", "state"):
            assert torch.equal(x[k], y[k]), k


def test_training_on_the_video_folder_equals_training_on_the_converted_file(droid, tmp_path, caplog):
    root, converted = droid
    with caplog.at_level("INFO"):
        video_ckpt = train(_cfg(), root, tmp_path / "video", show_progress=False)
    assert "videos of" in caplog.text and "decoded on demand" in caplog.text
    train(_cfg(), converted, tmp_path / "converted", show_progress=False)
    _assert_same_run(tmp_path / "video", tmp_path / "converted")  # weights, optimizer state and logged losses
    ckpt = load_checkpoint(video_ckpt)
    assert ckpt["env"] == "droid" and ckpt["env_kwargs"] == {"img_size": 16}
    assert ckpt["dims"] == {"raw_action_dim": 7, "proprio_dim": 7}
    assert ckpt["dataset"]["path"] == str(root) and ckpt["dataset"]["created"].startswith("droid_raw sha256:")


def test_resume_on_the_video_folder_is_exact_and_checks_the_folder(droid, tmp_path):
    root, converted = droid
    train(_cfg(), root, tmp_path / "full", show_progress=False)
    train(_cfg("train.epochs=1"), root, tmp_path / "resumed", show_progress=False)
    run = tmp_path / "copy"
    shutil.copytree(tmp_path / "resumed", run)
    train(_cfg(), root, tmp_path / "resumed", resume=True, show_progress=False)
    _assert_same_run(tmp_path / "full", tmp_path / "resumed")
    # The converted file, or the folder with other poses, is another dataset.
    with pytest.raises(CheckpointError, match="another dataset"):
        train(_cfg(), converted, run, resume=True, show_progress=False)
    other = tmp_path / "other"
    shutil.copytree(root, other)
    shutil.rmtree(other / "ep5")
    _episode(other, "ep5", 30, pose=np.full((30, 7), 0.5))
    with pytest.raises(CheckpointError, match=r"another dataset .*created"):
        train(_cfg(), other, run, resume=True, show_progress=False)
    # Other reader options read another dataset (here the same frames: fps 16 keeps every 4th frame too).
    with pytest.raises(CheckpointError, match=r"another dataset .*created"):
        train(_cfg("data.reader_options.fps=16"), root, run, resume=True, show_progress=False)


def test_pretraining_reads_single_frames_of_the_video_folder(droid, tmp_path):
    from jepa_wms.training.pretrain import pretrain

    root, converted = droid
    cfg = _cfg("model.pixel_decoder=[8]", "train.max_steps=2")
    pretrain(cfg, root, tmp_path / "video", show_progress=False)
    pretrain(cfg, converted, tmp_path / "converted", show_progress=False)
    _assert_same_run(tmp_path / "video", tmp_path / "converted")


@pytest.mark.parametrize(
    "override, error, message",
    [
        ("data.frameskip=2", ConfigError, r"'data\.frameskip' is 2, but .* droid_raw video folder.*data\.frameskip=1"),
        (
            "data.latents=/some/cache",
            ConfigError,
            r"'data\.latents' is '/some/cache', but .* video folder, .* no latent cache",
        ),
        ("data.preload=true", ConfigError, r"'data\.preload' is 'true', but .* decoded on demand"),
        ("data.reader_options.state=x", ConfigError, r"'data\.reader_options': layout droid_raw takes options"),
        ("data.layout=lerobot", DatasetError, r"meta/info\.json: missing metadata"),
        ("data.layout=hdf5", FileNotFoundError, r"trajectories\.h5"),
    ],
)
def test_what_a_video_folder_cannot_do_is_a_clear_error(droid, tmp_path, override, error, message):
    root, _ = droid
    with pytest.raises(error, match=message):
        train(_cfg(override), root, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_folders_training_cannot_read(droid, tmp_path):
    _, converted = droid
    with pytest.raises(ConfigError, match=r"'data\.reader_options' applies to video folders"):
        train(_cfg("data.reader_options.camera=x"), converted, tmp_path / "run", show_progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no trajectory file at .*trajectories\.h5, and .* not a video folder"):
        train(_cfg(), tmp_path / "empty", tmp_path / "run", show_progress=False)
    wall = tmp_path / "wall_single"
    (wall / "obses").mkdir(parents=True)
    for name in ("states.pth", "actions.pth"):
        (wall / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"is a dino_wm_wall dataset, which training does not read directly"):
        train(_cfg(), wall, tmp_path / "run", show_progress=False)
