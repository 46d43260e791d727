"""The latent cache's encoding pass (``jepa-wms encode``) and the choice of the cache a run trains on.

``encode_dataset`` runs every frame of a dataset once through the frozen encoder a config describes and writes the
cache (``datasets/latents.py``: the format). ``encoder_fingerprint`` is what names a cache: everything that changes
the latents — the encoder's concrete type and preset name, its input size, grid and width, the preprocessing
(mean/std and pipeline version) and a SHA-256 of its weights. ``resolve_latents`` applies ``data.latents`` for a
training run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import EncoderConfig, ExperimentConfig
from ..datasets.latents import (
    DTYPES,
    LatentCache,
    LatentCacheError,
    LatentCacheWriter,
    cache_dir,
    find_cache,
)
from ..datasets.storage import TrajectoryStore
from ..datasets.video_windows import VideoStore
from ..encoders import Encoder, build_encoder
from ..runlock import folder_lock
from ..runtime import resolve_device

__all__ = ["build_cache_encoder", "encode_dataset", "encoder_fingerprint", "resolve_latents"]

# Bump when Encoder.preprocess changes what a frame turns into: old caches must stop matching.
PREPROCESS_VERSION = 1


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
    # A checkpoint encoder is named by the concrete encoder it was built from.
    source = encoder.source_config or cfg
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


def build_cache_encoder(cfg: ExperimentConfig) -> Encoder:
    """The encoder training builds for ``cfg``, in eval mode.

    Seeded with ``train.seed`` exactly as ``train`` seeds its model, so a randomly initialised encoder (weights "")
    gets the same weights here as in training and its cache matches.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        encoder = build_encoder(cfg.model.encoder)
    return encoder.eval()


def resolve_latents(
    setting: str, store: TrajectoryStore | VideoStore, encoder: Encoder, cfg: EncoderConfig
) -> tuple[LatentCache | None, str]:
    """Apply ``data.latents`` (``auto`` | ``off`` | a cache path): the cache to train on, or None, and why.

    ``auto`` takes a complete cache of this dataset for exactly this encoder when the encoder is frozen; an explicit
    path must be such a cache, else ``LatentCacheError`` says what differs. A video folder has no cache (``auto`` is
    ``off``).
    """
    if encoder.observation_key != "pixels":
        # A state encoder is a few arithmetic operations on the dataset's /state rows: nothing worth caching.
        if setting not in ("auto", "off"):
            raise LatentCacheError(
                f"data.latents={setting}: a {cfg.type} encoder reads the dataset's '{encoder.observation_key}' rows, "
                f"not pixels, and has no latent cache; use data.latents=auto or off"
            )
        return None, f"training from the dataset's /{encoder.observation_key} rows (model.encoder.type={cfg.type})"
    if isinstance(store, VideoStore):
        if setting not in ("auto", "off"):
            raise LatentCacheError(
                f"data.latents={setting}: {store.path} is a {store.layout} video folder, decoded on demand, with no "
                f"latent cache; use data.latents=auto or off, or `jepa-wms convert` it and `jepa-wms encode` that"
            )
        return None, f"training from the {store.layout} videos of {store.path}, decoded on demand (no latent cache)"
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
    cache = find_cache(folder)
    if cache is None:
        return None, (
            f"training from pixels (no latent cache for this encoder in {folder.parent}; `jepa-wms encode` makes one)"
        )
    try:
        cache.check(fingerprint, store, encoder.num_tokens, encoder.embed_dim)
    except LatentCacheError as exc:
        return None, f"training from pixels ({exc})"
    return cache, f"training from cached latents {cache.path}"


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
    ``batch_size`` at a time, into ``latents.npy`` (``dtype`` float16 or float32). After each chunk the rows are
    flushed and ``meta.json`` records the frames done, so an interrupted run continues where it stopped; a complete
    cache returns at once. ``on_chunk(frames_done)`` is called after each chunk is recorded.
    """
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
    encoder.to(resolve_device(str(device)))
    fingerprint = encoder_fingerprint(encoder, cfg.model.encoder)
    folder = cache_dir(store.path, fingerprint)
    total = store.num_frames
    # One encoder per cache folder: two would write the same rows and records.
    with folder_lock(folder):
        writer = LatentCacheWriter(folder, fingerprint, store, (total, encoder.num_tokens, encoder.embed_dim), dtype)
        torch_dtype = torch.float16 if dtype == "float16" else torch.float32
        chunks = [(s, min(s + batch_size, total)) for s in range(writer.frames_done, total, batch_size)]
        bar = tqdm(total=total, initial=writer.frames_done, unit="frame", desc="encode", disable=not show_progress)
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
                writer.write(tokens.cpu().numpy())
                bar.update(e - s)
                if on_chunk is not None:
                    on_chunk(e)
        bar.close()
        writer.close()
        store.close()
        return folder
