"""Latent cache format: every frame of a dataset encoded once by a frozen encoder, so training reads latents, not
pixels. The encoding pass itself, which needs the encoder, is ``training/encode.py``.

Layout, next to the dataset's ``trajectories.h5``::

    latents/<key>/latents.npy   float16|float32 (F, N, D), memory-mapped; row i = tokens of global frame i
    latents/<key>/meta.json     format, fingerprint, shape, dtype, frames_done, dataset stamp (written atomically)

``<key>`` is a hash of the encoder's fingerprint: everything that changes the latents (see
``training.encode.encoder_fingerprint``). A different encoder therefore never reads another encoder's cache, and
moving the weight file does not invalidate one. Writing is resumable: ``meta.json`` counts the frames already flushed
to disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.checkpoint import atomic_write_bytes, remove_stale_temporaries
from jepa_wms.datasets.storage import TrajectoryStore, resolve_path

__all__ = [
    "CACHE_FORMAT",
    "DTYPES",
    "LatentCache",
    "LatentCacheError",
    "LatentCacheWriter",
    "cache_dir",
    "dataset_stamp",
    "find_cache",
]

CACHE_FORMAT = "jepa-wms-latents"
CACHE_VERSION = 1
DTYPES = ("float16", "float32")
_META, _ARRAY = "meta.json", "latents.npy"


class LatentCacheError(ValueError):
    """A latent cache that is missing, incomplete or made for another encoder or dataset."""


# ----- identity -------------------------------------------------------------------------------------------------
def _key(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def dataset_stamp(store: TrajectoryStore) -> dict[str, Any]:
    """What identifies the frames of a dataset; a rewritten dataset gets a new ``created`` time (a video folder's,
    `VideoStore`'s, is a digest of its episodes and poses)."""
    return {
        "frames": store.num_frames,
        "episodes": store.num_episodes,
        "image_shape": list(store.image_shape),
        "created": store.created,
    }


def cache_dir(data_dir: str | os.PathLike, fingerprint: dict[str, Any]) -> Path:
    """``<dataset folder>/latents/<key>`` for an encoder fingerprint."""
    return resolve_path(data_dir).parent / "latents" / _key(fingerprint)


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


def find_cache(folder: Path) -> LatentCache | None:
    """The cache in ``folder``, or None when none was ever written there (a damaged one raises)."""
    return LatentCache(folder) if (folder / _META).is_file() else None


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


class LatentCacheWriter:
    """Fills the cache in ``folder`` with the rows of ``store``'s frames (``shape`` = (frames, N, D)), in order.

    A cache already there for the same fingerprint, dataset, shape and dtype is continued from its ``frames_done``;
    anything else there is replaced. After each :meth:`write` the rows are flushed and then ``meta.json`` records
    them, so a kill loses at most the block being written. Hold ``runlock.folder_lock(folder)`` while writing: two
    writers would write the same rows and records.
    """

    def __init__(
        self,
        folder: Path,
        fingerprint: dict[str, Any],
        store: TrajectoryStore,
        shape: tuple[int, int, int],
        dtype: str,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"latent cache dtype must be one of {DTYPES}, got {dtype!r}")
        self.folder = folder
        self.meta = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "fingerprint": fingerprint,
            "shape": list(shape),
            "dtype": dtype,
            "dataset": dataset_stamp(store),
            "frames_done": 0,
        }
        remove_stale_temporaries(folder)  # of meta.json writes that a kill cut short
        start = _reusable(folder, self.meta)
        if start is None:
            # meta.json goes first: a crash while the new file is created must not leave an old "complete" record.
            (folder / _META).unlink(missing_ok=True)
            self._array = np.lib.format.open_memmap(folder / _ARRAY, mode="w+", dtype=dtype, shape=shape)
            _write_meta(folder, self.meta)
            start = 0
        else:
            self._array = np.lib.format.open_memmap(folder / _ARRAY, mode="r+")
        self.meta["frames_done"] = start

    @property
    def frames_done(self) -> int:
        return self.meta["frames_done"]

    def write(self, rows: np.ndarray) -> None:
        """Append the rows of the next ``len(rows)`` frames, from ``frames_done`` on, and record them."""
        start, end = self.frames_done, self.frames_done + len(rows)
        self._array[start:end] = rows
        self._array.flush()  # data on disk before the record that says it is there
        self.meta["frames_done"] = end
        _write_meta(self.folder, self.meta)

    def close(self) -> None:
        """Drop the memory map (every written row is already flushed and recorded)."""
        del self._array
