"""Latent cache: every frame of a dataset encoded once by a frozen encoder, so training reads latents, not pixels.

Layout, next to the dataset's ``trajectories.h5``::

    latents/<key>/latents.npy   float16|float32 (F, N, D), memory-mapped; row i = tokens of global frame i
    latents/<key>/meta.json     format, fingerprint, shape, dtype, frames_done, dataset stamp (written atomically)

``<key>`` is a hash of the fingerprint: everything that changes the latents — the encoder's concrete type and
preset name, its input size, grid and width, the preprocessing (mean/std and pipeline version) and a SHA-256 of
its weights. A different encoder therefore never reads another encoder's cache, and moving the weight file does
not invalidate one. Encoding is resumable: ``meta.json`` counts the frames already flushed to disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jepa_wms.checkpoint import atomic_write_bytes, remove_stale_temporaries
from jepa_wms.config import EncoderConfig, ExperimentConfig
from jepa_wms.datasets.storage import TrajectoryStore, resolve_path
from jepa_wms.encoders import Encoder, build_encoder
from jepa_wms.encoders.from_checkpoint import encoder_source
from jepa_wms.runlock import folder_lock

__all__ = [
    "CACHE_FORMAT",
    "LatentCache",
    "LatentCacheError",
    "build_cache_encoder",
    "cache_dir",
    "dataset_stamp",
    "encode_dataset",
    "encoder_fingerprint",
    "resolve_latents",
]

CACHE_FORMAT = "jepa-wms-latents"
CACHE_VERSION = 1
# Bump when Encoder.preprocess changes what a frame turns into: old caches must stop matching.
PREPROCESS_VERSION = 1
DTYPES = ("float16", "float32")
_META, _ARRAY = "meta.json", "latents.npy"


class LatentCacheError(ValueError):
    """A latent cache that is missing, incomplete or made for another encoder or dataset."""


# ----- identity -------------------------------------------------------------------------------------------------
def _weights_sha256(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        # Viewed as bytes so that bf16 (which numpy lacks) hashes too.
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoder_fingerprint(encoder: Encoder, cfg: EncoderConfig) -> dict[str, Any]:
    """Everything that changes the latents of ``encoder`` (built from ``cfg``), as a JSON-able dict."""
    source = encoder_source(encoder, cfg)
    return {
        "type": source.type,
        "name": source.name,
        "class": type(encoder).__name__,
        "img_size": encoder.img_size,
        "grid_size": list(encoder.grid_size),
        "embed_dim": encoder.embed_dim,
        "mean": list(encoder.mean),
        "std": list(encoder.std),
        "normalize_output": encoder.normalize_output,
        "preprocess_version": PREPROCESS_VERSION,
        "weights_sha256": _weights_sha256(encoder),
    }


def _key(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def dataset_stamp(store: TrajectoryStore) -> dict[str, Any]:
    """What identifies the frames of a dataset; a rewritten dataset gets a new ``created`` time."""
    return {
        "frames": store.num_frames,
        "episodes": store.num_episodes,
        "image_shape": list(store.image_shape),
        "created": store.created,
    }


def cache_dir(data_dir: str | os.PathLike, fingerprint: dict[str, Any]) -> Path:
    """``<dataset folder>/latents/<key>`` for an encoder fingerprint."""
    return resolve_path(data_dir).parent / "latents" / _key(fingerprint)


def build_cache_encoder(cfg: ExperimentConfig) -> Encoder:
    """The encoder training builds for ``cfg``, in eval mode.

    Seeded with ``train.seed`` exactly as ``train`` seeds its model, so a randomly initialised encoder (weights "")
    gets the same weights here as in training and its cache matches.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        encoder = build_encoder(cfg.model.encoder)
    return encoder.eval()


# ----- reading --------------------------------------------------------------------------------------------------
class LatentCache:
    """A latent cache folder opened read-only. ``read(frames)`` returns those rows only, as float32."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        if folder.name in (_META, _ARRAY):
            folder = folder.parent
        self.folder = folder
        meta_path = folder / _META
        if not meta_path.is_file():
            raise LatentCacheError(
                f"{folder} is not a latent cache: {meta_path} (written by `jepa-wms encode`) is missing"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LatentCacheError(f"{meta_path} is not readable JSON: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
            raise LatentCacheError(f"{meta_path} is not a version-{CACHE_VERSION} {CACHE_FORMAT} file")
        self.meta: dict[str, Any] = meta
        self.fingerprint: dict[str, Any] = meta["fingerprint"]
        self.shape: tuple[int, int, int] = tuple(int(s) for s in meta["shape"])
        self.dtype = np.dtype(meta["dtype"])
        self.frames_done = int(meta["frames_done"])
        self._array: np.ndarray | None = None

    @property
    def path(self) -> Path:
        return self.folder / _ARRAY

    @property
    def complete(self) -> bool:
        return self.frames_done == self.shape[0]

    @property
    def array(self) -> np.ndarray:
        """The memory map ``(F, N, D)``; opened on first use (and again in each process after pickling)."""
        if self._array is None:
            try:
                arr = np.load(self.path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise LatentCacheError(f"{self.path} could not be opened as a .npy memory map: {exc}") from exc
            if arr.shape != self.shape or arr.dtype != self.dtype:
                raise LatentCacheError(
                    f"{self.path} holds {arr.dtype} {arr.shape}, but its {_META} says {self.dtype} {self.shape}"
                )
            self._array = arr
        return self._array

    def read(self, frames: np.ndarray) -> np.ndarray:
        """Global frame indices (any shape) -> float32 ``(*frames.shape, N, D)``; reads only those rows."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.size and (frames.min() < 0 or frames.max() >= self.frames_done):
            raise IndexError(f"frame index out of range [0, {self.frames_done}) for {self.path}")
        # Integer indexing of a memory map touches only the pages of the requested rows.
        rows = self.array[frames.reshape(-1)]
        return np.asarray(rows, dtype=np.float32).reshape(*frames.shape, *self.shape[1:])

    def check(self, fingerprint: dict[str, Any], store: TrajectoryStore, num_tokens: int, embed_dim: int) -> None:
        """Raise ``LatentCacheError`` unless this cache is complete and holds ``store`` encoded by that encoder."""
        diffs = [
            f"{k}: cache {self.fingerprint.get(k)!r} vs model {v!r}"
            for k, v in fingerprint.items()
            if self.fingerprint.get(k) != v
        ]
        if diffs:
            raise LatentCacheError(
                f"latent cache {self.folder} was made with another encoder ({'; '.join(diffs[:3])}); "
                f"re-encode with `jepa-wms encode` for this config"
            )
        expected = (store.num_frames, num_tokens, embed_dim)
        if self.shape != expected:
            raise LatentCacheError(
                f"latent cache {self.folder} has shape {self.shape}, expected (frames, N, D) = {expected} "
                f"for {store.path} and this encoder"
            )
        stamp = dataset_stamp(store)
        if self.meta.get("dataset") != stamp:
            raise LatentCacheError(
                f"latent cache {self.folder} was made from another version of the dataset "
                f"({self.meta.get('dataset')} vs {stamp}); re-encode with `jepa-wms encode`"
            )
        if not self.complete:
            raise LatentCacheError(
                f"latent cache {self.folder} holds {self.frames_done} of {self.shape[0]} frames; "
                f"rerun `jepa-wms encode` to finish it"
            )

    def __getstate__(self) -> dict[str, Any]:
        # A pickled memory map would carry a full copy of the data; each process reopens the file instead.
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __repr__(self) -> str:
        return f"LatentCache({str(self.folder)!r}, shape={self.shape}, dtype={self.dtype}, done={self.frames_done})"


def resolve_latents(
    setting: str, store: TrajectoryStore, encoder: Encoder, cfg: EncoderConfig
) -> tuple[LatentCache | None, str]:
    """Apply ``data.latents`` (``auto`` | ``off`` | a cache path): the cache to train on, or None, and why.

    ``auto`` takes a complete cache of this dataset for exactly this encoder when the encoder is frozen; an explicit
    path must be such a cache, else ``LatentCacheError`` says what differs.
    """
    if encoder.observation_key != "pixels":
        # A state encoder is a few arithmetic operations on the dataset's /state rows: nothing worth caching.
        if setting not in ("auto", "off"):
            raise LatentCacheError(
                f"data.latents={setting}: a {cfg.type} encoder reads the dataset's '{encoder.observation_key}' rows, "
                f"not pixels, and has no latent cache; use data.latents=auto or off"
            )
        return None, f"training from the dataset's /{encoder.observation_key} rows (model.encoder.type={cfg.type})"
    if setting == "off":
        return None, "training from pixels (data.latents=off)"
    if encoder.trainable:
        if setting != "auto":
            raise LatentCacheError(
                f"data.latents={setting} needs a frozen encoder, but model.encoder is trainable (type "
                f"{cfg.type!r}); cached latents would go stale as it trains. Use data.latents=off"
            )
        return None, "training from pixels (the encoder is trainable)"
    fingerprint = encoder_fingerprint(encoder, cfg)
    if setting != "auto":
        cache = LatentCache(setting)
        cache.check(fingerprint, store, encoder.num_tokens, encoder.embed_dim)
        return cache, f"training from cached latents {cache.path}"
    folder = cache_dir(store.path, fingerprint)
    if not (folder / _META).is_file():
        return None, (
            f"training from pixels (no latent cache for this encoder in {folder.parent}; `jepa-wms encode` makes one)"
        )
    cache = LatentCache(folder)
    try:
        cache.check(fingerprint, store, encoder.num_tokens, encoder.embed_dim)
    except LatentCacheError as exc:
        return None, f"training from pixels ({exc})"
    return cache, f"training from cached latents {cache.path}"


# ----- writing --------------------------------------------------------------------------------------------------
def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    atomic_write_bytes(folder / _META, json.dumps(meta, indent=1).encode())


def _reusable(folder: Path, meta: dict[str, Any]) -> int | None:
    """Frames already done in ``folder`` if its cache matches ``meta`` (all but the count), else None."""
    try:
        old = LatentCache(folder)
    except LatentCacheError:
        return None
    same = {k: v for k, v in old.meta.items() if k != "frames_done"} == {
        k: v for k, v in meta.items() if k != "frames_done"
    }
    if not same or not old.path.is_file():
        return None
    try:
        old.array  # noqa: B018 - opening validates the .npy header against meta.json
    except LatentCacheError:
        return None
    return old.frames_done


def encode_dataset(
    cfg: ExperimentConfig,
    data_dir: str | os.PathLike,
    *,
    device: str | torch.device = "auto",
    batch_size: int = 256,
    dtype: str = "float16",
    show_progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Encode every frame of the dataset in ``data_dir`` with the frozen encoder of ``cfg``; returns the cache folder.

    Frames go through ``Encoder.encode_frames`` (uint8 -> preprocess -> forward) in eval mode without autograd,
    ``batch_size`` at a time, into ``latents.npy`` (``dtype`` float16 or float32). After each chunk the memory map is
    flushed and ``meta.json`` records the frames done, so an interrupted run continues where it stopped; a complete
    cache returns at once. ``on_chunk(frames_done)`` is called after each chunk is recorded.
    """
    from jepa_wms.runtime import resolve_device

    if dtype not in DTYPES:
        raise ValueError(f"encode_dataset: dtype must be one of {DTYPES}, got {dtype!r}")
    if batch_size < 1:
        raise ValueError(f"encode_dataset: batch_size must be >= 1, got {batch_size}")
    encoder = build_cache_encoder(cfg)
    if encoder.observation_key != "pixels":
        raise LatentCacheError(
            f"model.encoder.type={cfg.model.encoder.type} reads the dataset's '{encoder.observation_key}' rows, not "
            f"pixels: there is nothing to encode (training reads them directly)"
        )
    store = TrajectoryStore(data_dir, preload=False)
    if encoder.trainable:
        raise LatentCacheError(
            f"model.encoder (type {cfg.model.encoder.type!r}) is trainable: its latents change while it trains, so "
            f"they cannot be cached; use a frozen encoder (dinov2, or type checkpoint with trainable: false)"
        )
    dev = resolve_device(str(device))
    encoder.to(dev)
    fingerprint = encoder_fingerprint(encoder, cfg.model.encoder)
    folder = cache_dir(store.path, fingerprint)
    shape = (store.num_frames, encoder.num_tokens, encoder.embed_dim)
    meta = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "shape": list(shape),
        "dtype": dtype,
        "dataset": dataset_stamp(store),
        "frames_done": 0,
    }
    # One encoder per cache folder: two would write the same rows and records.
    with folder_lock(folder):
        remove_stale_temporaries(folder)  # of meta.json writes that a kill cut short
        start = _reusable(folder, meta)
        if start is None:
            # meta.json goes first: a crash while the new file is created must not leave an old "complete" record.
            (folder / _META).unlink(missing_ok=True)
            array = np.lib.format.open_memmap(folder / _ARRAY, mode="w+", dtype=dtype, shape=shape)
            _write_meta(folder, meta)
            start = 0
        else:
            array = np.lib.format.open_memmap(folder / _ARRAY, mode="r+")
        torch_dtype = torch.float16 if dtype == "float16" else torch.float32
        chunks = [(s, min(s + batch_size, shape[0])) for s in range(start, shape[0], batch_size)]
        bar = tqdm(total=shape[0], initial=start, unit="frame", desc="encode", disable=not show_progress)
        # One background read ahead: HDF5 decompression of the next chunk overlaps the encoder on the current one.
        with ThreadPoolExecutor(max_workers=1) as pool, torch.no_grad():
            pending = pool.submit(store.read_pixels, np.arange(*chunks[0])) if chunks else None
            for i, (s, e) in enumerate(chunks):
                pixels = pending.result()
                pending = pool.submit(store.read_pixels, np.arange(*chunks[i + 1])) if i + 1 < len(chunks) else None
                tokens = encoder.encode_frames(torch.from_numpy(pixels)[:, None])[:, 0].to(torch_dtype)
                if not bool(torch.isfinite(tokens).all()):
                    raise LatentCacheError(
                        f"frames {s}..{e - 1} of {store.path} encode to non-finite {dtype} latents "
                        f"(beyond the float16 range?); encode with dtype float32"
                    )
                array[s:e] = tokens.cpu().numpy()
                array.flush()  # data on disk before the record that says it is there
                meta["frames_done"] = e
                _write_meta(folder, meta)
                bar.update(e - s)
                if on_chunk is not None:
                    on_chunk(e)
        bar.close()
        del array
        store.close()
        return folder
