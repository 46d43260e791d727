import json
import shutil

import numpy as np
import pytest
import torch

from jepa_wms.cli import main
from jepa_wms.config import load_config
from jepa_wms.datasets import TrajectoryStore, WindowDataset
from jepa_wms.datasets.latents import LatentCache, LatentCacheError, cache_dir
from jepa_wms.training.encode import build_cache_encoder, encode_dataset, encoder_fingerprint, resolve_latents
from tests.conftest import TINY


@pytest.fixture
def data(tiny_dataset, tmp_path):
    """A private copy of the tiny dataset: caches are written next to it."""
    out = tmp_path / "data"
    out.mkdir()
    shutil.copy(tiny_dataset, out / tiny_dataset.name)
    return out


@pytest.fixture
def cfg(tiny_checkpoint):
    """The tiny config with the (frozen) conv encoder of the session's tiny checkpoint."""
    return load_config("wall", TINY + ["model.encoder.type=checkpoint", f"model.encoder.weights={tiny_checkpoint}"])


def _reference(cfg, data) -> np.ndarray:
    store = TrajectoryStore(data)
    with torch.no_grad():
        pixels = torch.from_numpy(store.read_pixels(np.arange(store.num_frames)))
        return build_cache_encoder(cfg).encode_frames(pixels[None])[0].numpy()


def test_cache_matches_encoder_outputs(cfg, data):
    ref = _reference(cfg, data)
    folder = encode_dataset(cfg, data, batch_size=32, device="cpu", show_progress=False)
    assert folder.parent == data / "latents"
    cache = LatentCache(folder)
    assert cache.complete and cache.shape == ref.shape and cache.dtype == np.float16
    np.testing.assert_allclose(cache.read(np.arange(ref.shape[0])), ref, rtol=2e-3, atol=1e-3 * np.abs(ref).max())
    assert np.abs(ref).max() > 0.1, "latents must not be trivially zero"

    folder32 = encode_dataset(cfg, data, batch_size=32, dtype="float32", device="cpu", show_progress=False)
    assert folder32 == folder, "the storage type is not part of the key: the cache is re-encoded in float32"
    np.testing.assert_allclose(LatentCache(folder).read(np.arange(ref.shape[0])), ref, rtol=1e-5, atol=1e-6)


def test_resume_after_interruption_gives_the_identical_file(cfg, data, tmp_path):
    def stop_after_two(done):
        if done == 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_dataset(cfg, data, batch_size=16, device="cpu", show_progress=False, on_chunk=stop_after_two)
    folder = next((data / "latents").iterdir())
    assert json.loads((folder / "meta.json").read_text())["frames_done"] == 32
    calls = []
    encode_dataset(cfg, data, batch_size=16, device="cpu", show_progress=False, on_chunk=calls.append)
    assert calls[0] == 48 and calls[-1] == TrajectoryStore(data).num_frames, "resumes after the frames done"

    other = tmp_path / "other"
    shutil.copytree(data, other, ignore=shutil.ignore_patterns("latents"))
    one_shot = encode_dataset(cfg, other, batch_size=16, device="cpu", show_progress=False)
    assert (folder / "latents.npy").read_bytes() == (one_shot / "latents.npy").read_bytes()

    again = []
    encode_dataset(cfg, data, batch_size=16, device="cpu", show_progress=False, on_chunk=again.append)
    assert again == [], "a complete cache is not encoded again"


def test_wrong_encoder_dataset_or_shape_is_refused(cfg, data, tiny_checkpoint):
    folder = encode_dataset(cfg, data, device="cpu", show_progress=False)
    store = TrajectoryStore(data)
    encoder = build_cache_encoder(cfg)
    cache, note = resolve_latents("auto", store, encoder, cfg.model.encoder)
    assert cache is not None and "cached latents" in note
    assert resolve_latents(str(folder), store, encoder, cfg.model.encoder)[0].folder == folder

    with torch.no_grad():
        encoder.head.bias.add_(1.0)  # another encoder: same architecture, other weights
    assert resolve_latents("auto", store, encoder, cfg.model.encoder)[0] is None
    with pytest.raises(LatentCacheError, match="another encoder.*weights_sha256"):
        resolve_latents(str(folder), store, encoder, cfg.model.encoder)

    encoder = build_cache_encoder(cfg)
    meta = json.loads((folder / "meta.json").read_text())
    wrong = dict(meta, shape=[meta["shape"][0] + 1, *meta["shape"][1:]])
    (folder / "meta.json").write_text(json.dumps(wrong))
    with pytest.raises(LatentCacheError, match="has shape"):
        resolve_latents(str(folder), store, encoder, cfg.model.encoder)
    stale = dict(meta, dataset=dict(meta["dataset"], created="yesterday"))
    (folder / "meta.json").write_text(json.dumps(stale))
    with pytest.raises(LatentCacheError, match="another version of the dataset"):
        resolve_latents(str(folder / "latents.npy"), store, encoder, cfg.model.encoder)
    cache, note = resolve_latents("auto", store, encoder, cfg.model.encoder)
    assert cache is None and "another version of the dataset" in note
    (folder / "meta.json").write_text(json.dumps(dict(meta, frames_done=16)))
    with pytest.raises(LatentCacheError, match="16 of"):
        resolve_latents(str(folder), store, encoder, cfg.model.encoder)

    trainable = build_cache_encoder(load_config("wall", TINY))
    assert resolve_latents("auto", store, trainable, cfg.model.encoder)[0] is None
    with pytest.raises(LatentCacheError, match="frozen encoder"):
        resolve_latents(str(folder), store, trainable, cfg.model.encoder)
    with pytest.raises(LatentCacheError, match="meta.json"):
        resolve_latents(str(data), store, encoder, cfg.model.encoder)
    assert resolve_latents("off", store, encoder, cfg.model.encoder)[0] is None


def test_fingerprint_follows_the_weights_not_the_file(cfg, tiny_checkpoint, tmp_path):
    moved = tmp_path / "moved.pt"
    shutil.copy(tiny_checkpoint, moved)
    other = load_config("wall", TINY + ["model.encoder.type=checkpoint", f"model.encoder.weights={moved}"])
    a = encoder_fingerprint(build_cache_encoder(cfg), cfg.model.encoder)
    assert a == encoder_fingerprint(build_cache_encoder(other), other.model.encoder)
    assert a["type"] == "conv" and a["img_size"] == 16 and len(a["weights_sha256"]) == 64


def test_window_reads_only_its_rows(cfg, data):
    cache = LatentCache(encode_dataset(cfg, data, device="cpu", show_progress=False))
    store = TrajectoryStore(data)
    windows = WindowDataset(store, 4, 2, latents=cache)

    class Spy:
        def __init__(self, array):
            self.array, self.rows = array, []

        def __getitem__(self, rows):
            self.rows.append(np.asarray(rows))
            return self.array[rows]

    spy = Spy(cache.array)
    cache._array = spy
    batch = windows.get(np.array([3, 10]))
    assert "pixels" not in batch and batch["latents"].dtype == torch.float32
    assert batch["latents"].shape == (2, 4, 16, 8)
    (rows,) = spy.rows
    np.testing.assert_array_equal(rows, windows.frame_indices(np.array([3, 10])).ravel())
    np.testing.assert_array_equal(batch["latents"][1, 2].numpy(), cache.array[windows.frame_indices([10])[0, 2]])


def test_cli_encode(data, capsys, tiny_checkpoint):
    over = TINY + ["model.encoder.type=checkpoint", f"model.encoder.weights={tiny_checkpoint}"]
    assert main(["encode", "--data", str(data), "--config", "wall", "--batch-size", "50", *over]) == 0
    out = capsys.readouterr().out
    assert f"latents: {data / 'latents'}" in out
    assert main(["encode", "--data", str(data), "--config", "wall", *TINY]) == 2
    assert "trainable" in capsys.readouterr().err


def test_a_second_encode_into_one_cache_is_refused(cfg, data):
    from jepa_wms.runlock import FolderLockedError, folder_lock

    folder = cache_dir(data, encoder_fingerprint(build_cache_encoder(cfg), cfg.model.encoder))
    with folder_lock(folder), pytest.raises(FolderLockedError, match="is in use"):
        encode_dataset(cfg, data, device="cpu", show_progress=False)
    assert not (folder / "meta.json").exists()
