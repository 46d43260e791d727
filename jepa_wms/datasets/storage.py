"""The on-disk trajectory format: one HDF5 file per dataset, written atomically, validated on open.

Why HDF5 (h5py) and not zarr: a dataset is a single file that is easy to copy, checksum and replace
atomically (zarr is a directory of many small chunk files); chunking one frame per chunk lets a training
window read exactly its frames and nothing else; lzf compression is built into h5py and fast, and the
mostly-flat Wall frames shrink several-fold; root attributes hold the metadata (env, collector, format
version) next to the data; and it is the format robot-learning datasets such as robomimic already use, so
users know the tools (h5ls, HDFView). zarr's strengths (cloud object stores, parallel writers) do not matter
for datasets written once by one process.

Layout of ``DIR/trajectories.h5`` (F frames in total over E episodes)::

    /pixels          uint8   (F, H, W, 3)  one frame per chunk, lzf
    /actions         float32 (F, A)        row i = action taken at frame i; NaN on each episode's last frame
    /proprio         float32 (F, P)
    /state           float32 (F, S)
    /episode_start   int64   (E,)          index of each episode's first frame
    /episode_length  int64   (E,)          frames per episode
    /stats/{action,proprio}_{mean,std}     float64, over all episodes (actions without the NaN rows)
    attrs: format="jepa-wms-trajectories", format_version=1, env, env_kwargs (JSON), collector (JSON), created
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jepa_wms.datasets.normalize import Normalizer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FILENAME",
    "DatasetError",
    "TrajectoryWriter",
    "TrajectoryStore",
    "resolve_path",
]

FORMAT = "jepa-wms-trajectories"
FORMAT_VERSION = 1
FILENAME = "trajectories.h5"
_PRELOAD_LIMIT = 4 * 2**30  # bytes of pixels kept in RAM under preload="auto"
_STATS_KEYS = ("action_mean", "action_std", "proprio_mean", "proprio_std")


class DatasetError(ValueError):
    """A dataset file exists but is not a valid jepa-wms trajectory file."""


def resolve_path(path_or_dir: str | os.PathLike) -> Path:
    """``DIR`` -> ``DIR/trajectories.h5``; a path ending in ``.h5``/``.hdf5`` is used as is."""
    path = Path(path_or_dir)
    return path if path.suffix in (".h5", ".hdf5") else path / FILENAME


class TrajectoryWriter:
    """Append episodes to ``<path>.tmp``; `close` writes the stats and moves the file into place.

    Use as a context manager: an exception inside the block deletes the temporary file, so a crashed
    collection never leaves a half-written dataset under the final name.

    Args:
        path_or_dir: destination file or directory (see `resolve_path`).
        env: registry name of the env the data comes from.
        env_kwargs: constructor kwargs of that env (JSON-serialisable).
        collector: how the data was made (policy, params, seed, ...; JSON-serialisable).
        overwrite: replace an existing dataset; otherwise an existing file raises FileExistsError.
    """

    def __init__(
        self,
        path_or_dir: str | os.PathLike,
        *,
        env: str,
        env_kwargs: dict[str, Any] | None = None,
        collector: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.path = resolve_path(path_or_dir)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"dataset {self.path} already exists; pass overwrite=True to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._file: h5py.File | None = h5py.File(self._tmp, "w")
        self._file.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            env=env,
            env_kwargs=json.dumps(env_kwargs or {}, sort_keys=True),
            collector=json.dumps(collector or {}, sort_keys=True),
        )
        self._lengths: list[int] = []
        # Kept in RAM for the stats: a few floats per frame, tiny next to the pixels.
        self._actions: list[np.ndarray] = []
        self._proprio: list[np.ndarray] = []
        self._frames = 0
        self._datasets: dict[str, h5py.Dataset] = {}  # cached: each f[name] lookup costs ~0.2 ms

    def add_episode(self, pixels: np.ndarray, actions: np.ndarray, proprio: np.ndarray, state: np.ndarray) -> None:
        """Append one episode of T frames.

        Args:
            pixels: uint8 (T, H, W, 3).
            actions: (T-1, A) actions; action t leads from frame t to frame t+1.
            proprio: (T, P).
            state: (T, S).
        """
        if self._file is None:
            raise ValueError(f"TrajectoryWriter for {self.path} is closed")
        pixels = np.asarray(pixels)
        actions, proprio, state = (np.asarray(x, dtype=np.float32) for x in (actions, proprio, state))
        t = pixels.shape[0] if pixels.ndim == 4 else -1
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3 or t < 2:
            raise ValueError(f"add_episode: pixels must be uint8 (T>=2, H, W, 3), got {pixels.dtype} {pixels.shape}")
        for name, arr, rows in (("actions", actions, t - 1), ("proprio", proprio, t), ("state", state, t)):
            if arr.ndim != 2 or arr.shape[0] != rows:
                raise ValueError(f"add_episode: {name} must have shape ({rows}, dim) for T={t}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"add_episode: {name} holds NaN or inf")
        f, ds = self._file, self._datasets
        if not ds:  # shapes are known only once the first episode arrives
            frame = pixels.shape[1:]
            ds["pixels"] = f.create_dataset(
                "pixels",
                (0, *frame),
                np.uint8,
                maxshape=(None, *frame),
                chunks=(1, *frame),
                compression="lzf",
            )
            for key, arr in (("actions", actions), ("proprio", proprio), ("state", state)):
                dim = arr.shape[1]
                ds[key] = f.create_dataset(key, (0, dim), np.float32, maxshape=(None, dim), chunks=(1024, dim))
        for name, arr in (("pixels", pixels), ("actions", actions), ("proprio", proprio), ("state", state)):
            if arr.shape[1:] != ds[name].shape[1:]:
                raise ValueError(
                    f"add_episode: {name} per-frame shape {arr.shape[1:]} differs from earlier episodes "
                    f"{ds[name].shape[1:]}"
                )
        start, end = self._frames, self._frames + t
        padded = np.concatenate([actions, np.full((1, actions.shape[1]), np.nan, np.float32)])
        for name, arr in (("pixels", pixels), ("actions", padded), ("proprio", proprio), ("state", state)):
            ds[name].resize(end, axis=0)
            ds[name][start:end] = arr
        self._lengths.append(t)
        self._actions.append(actions)
        self._proprio.append(proprio)
        self._frames = end

    def set_env_kwargs(self, env_kwargs: dict[str, Any]) -> None:
        """Replace the recorded env kwargs (a converter learns the frame size only from the data)."""
        if self._file is None:
            raise ValueError(f"TrajectoryWriter for {self.path} is closed")
        self._file.attrs["env_kwargs"] = json.dumps(env_kwargs, sort_keys=True)

    def close(self) -> Path:
        """Write episode index, stats and `created`, then atomically move the file to its final path."""
        if self._file is None:
            return self.path
        if not self._lengths:
            self.abort()
            raise ValueError(f"TrajectoryWriter for {self.path}: no episodes were added")
        f = self._file
        lengths = np.asarray(self._lengths, dtype=np.int64)
        f.create_dataset("episode_length", data=lengths)
        f.create_dataset("episode_start", data=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
        action_stats = Normalizer.fit(np.concatenate(self._actions))
        proprio_stats = Normalizer.fit(np.concatenate(self._proprio))
        for prefix, norm in (("action", action_stats), ("proprio", proprio_stats)):
            f.create_dataset(f"stats/{prefix}_mean", data=norm.mean)
            f.create_dataset(f"stats/{prefix}_std", data=norm.std)
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.close()
        self._file = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class TrajectoryStore:
    """Read-only access to a trajectory file, validated on open.

    Attributes: ``num_episodes``, ``num_frames``, ``episode_starts``/``episode_lengths`` (E,), ``env``,
    ``env_kwargs``, ``collector``, ``image_shape`` (H, W, 3), ``action_dim``/``proprio_dim``/``state_dim``,
    ``action_stats``/``proprio_stats`` (Normalizer), and the raw read-only arrays ``actions`` (F, A),
    ``proprio`` (F, P), ``state`` (F, S).

    Args:
        path_or_dir: the file or its directory (see `resolve_path`).
        preload: "auto" keeps the pixels in RAM when they take under 4 GiB, else frames are read from the
            file per request; True/False force either.
    Raises:
        FileNotFoundError: no file at the path.
        DatasetError: not HDF5, wrong ``format`` attribute, a missing dataset or inconsistent lengths.
    """

    def __init__(self, path_or_dir: str | os.PathLike, preload: bool | str = "auto"):
        self.path = resolve_path(path_or_dir)
        if not self.path.is_file():
            raise FileNotFoundError(f"no trajectory file at {self.path}")
        if preload not in (True, False, "auto"):
            raise ValueError(f"TrajectoryStore: preload must be True, False or 'auto', got {preload!r}")
        if not h5py.is_hdf5(self.path):
            raise DatasetError(f"{self.path} is not an HDF5 file (expected a {FORMAT} file)")
        self._file: h5py.File | None = None
        try:
            f = self._open()
            self._read_metadata(f)
            self.actions = self._load(f, "actions")
            self.proprio = self._load(f, "proprio")
            self.state = self._load(f, "state")
            self._validate_lengths(f)
            self._validate_values()
            stats = {k: np.asarray(f[f"stats/{k}"][()]) for k in _STATS_KEYS}
            self.preloaded = preload is True or (preload == "auto" and f["pixels"].nbytes < _PRELOAD_LIMIT)
            self._pixels = self._load(f, "pixels") if self.preloaded else None
        except OSError as err:  # h5py reports truncated or corrupt files as OSError
            self.close()
            raise DatasetError(f"{self.path} could not be read as a {FORMAT} file: {err}") from err
        except DatasetError:
            self.close()
            raise
        try:
            self.action_stats = Normalizer(stats["action_mean"], stats["action_std"])
            self.proprio_stats = Normalizer(stats["proprio_mean"], stats["proprio_std"])
        except ValueError as err:
            raise DatasetError(f"{self.path}: invalid /stats: {err}") from err
        if self.preloaded:
            self.close()  # everything is in RAM; no handle to leak into worker processes

    # -- opening and validation ----------------------------------------------------------------------------
    def _open(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def _require(self, f: h5py.File, key: str, ndim: int, dtype: type | None = None) -> h5py.Dataset:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise DatasetError(f"{self.path}: missing dataset '/{key}'")
        ds = f[key]
        if ds.ndim != ndim or (dtype is not None and ds.dtype != dtype):
            want = f"{ndim}-D" + (f" {np.dtype(dtype)}" if dtype is not None else "")
            raise DatasetError(f"{self.path}: '/{key}' should be {want}, got shape {ds.shape} dtype {ds.dtype}")
        return ds

    def _read_metadata(self, f: h5py.File) -> None:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise DatasetError(f"{self.path}: attribute 'format' is {fmt!r}, expected {FORMAT!r}")
        version = f.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetError(
                f"{self.path}: attribute 'format_version' is {version}; "
                f"this reader understands version {FORMAT_VERSION}"
            )
        for key in ("env", "env_kwargs", "collector"):
            if key not in f.attrs:
                raise DatasetError(f"{self.path}: missing root attribute '{key}'")
        try:
            self.env_kwargs: dict[str, Any] = json.loads(f.attrs["env_kwargs"])
            self.collector: dict[str, Any] = json.loads(f.attrs["collector"])
        except json.JSONDecodeError as err:
            raise DatasetError(f"{self.path}: attributes 'env_kwargs'/'collector' must be JSON: {err}") from err
        self.env = str(f.attrs["env"])
        self.created = str(f.attrs.get("created", ""))

    def _load(self, f: h5py.File, key: str) -> np.ndarray:
        ndim, dtype = (4, np.uint8) if key == "pixels" else (2, np.float32)
        arr = self._require(f, key, ndim, dtype)[()]
        arr.flags.writeable = False  # shared by every window; a caller's in-place edit would corrupt them
        return arr

    def _validate_lengths(self, f: h5py.File) -> None:
        pixels = self._require(f, "pixels", 4, np.uint8)
        if pixels.shape[-1] != 3:
            raise DatasetError(f"{self.path}: '/pixels' should be (F, H, W, 3), got {pixels.shape}")
        frames = pixels.shape[0]
        for key in ("actions", "proprio", "state"):
            if getattr(self, key).shape[0] != frames:
                raise DatasetError(
                    f"{self.path}: '/{key}' has {getattr(self, key).shape[0]} rows, expected {frames} (as /pixels)"
                )
        starts = self._require(f, "episode_start", 1)[()].astype(np.int64)
        lengths = self._require(f, "episode_length", 1)[()].astype(np.int64)
        expected = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        if (
            len(starts) != len(lengths)
            or len(lengths) == 0
            or np.any(lengths < 1)
            or lengths.sum() != frames
            or not np.array_equal(starts, expected)
        ):
            raise DatasetError(
                f"{self.path}: '/episode_start' and '/episode_length' must describe consecutive episodes "
                f"covering all {frames} frames; got {len(starts)} starts, {len(lengths)} lengths summing to "
                f"{int(lengths.sum())}"
            )
        for key in _STATS_KEYS:
            dim = self.actions.shape[1] if key.startswith("action") else self.proprio.shape[1]
            ds = self._require(f, f"stats/{key}", 1)
            if ds.shape != (dim,):
                raise DatasetError(f"{self.path}: '/stats/{key}' has shape {ds.shape}, expected ({dim},)")
        self.episode_starts, self.episode_lengths = starts, lengths
        self.image_shape: tuple[int, int, int] = tuple(int(d) for d in pixels.shape[1:])
        self.num_episodes, self.num_frames = len(lengths), int(frames)
        self.action_dim, self.proprio_dim, self.state_dim = (
            int(getattr(self, k).shape[1]) for k in ("actions", "proprio", "state")
        )

    def _validate_values(self) -> None:
        """Finite rows (but each episode's last action, NaN by design) and frames of the size the env renders:
        a NaN would surface as a NaN loss many steps later, and a wrong size only as frames the model never saw."""
        last = self.episode_starts + self.episode_lengths - 1
        for key in ("actions", "proprio", "state"):
            bad = ~np.isfinite(getattr(self, key)).all(axis=1)
            if key == "actions":
                bad[last] = False
            if bad.any():
                raise DatasetError(
                    f"{self.path}: '/{key}' holds NaN or inf in {int(bad.sum())} row(s), the first at "
                    f"{self._where(int(np.argmax(bad)))}"
                )
        size = self.env_kwargs.get("img_size")
        if size is not None and self.image_shape[:2] != (size, size):
            raise DatasetError(
                f"{self.path}: attribute env_kwargs has img_size={size!r}, but '/pixels' holds "
                f"{self.image_shape[0]}x{self.image_shape[1]} frames (the env renders img_size x img_size)"
            )

    def _where(self, row: int) -> str:
        ep = int(np.searchsorted(self.episode_starts, row, side="right")) - 1
        return f"frame {row - int(self.episode_starts[ep])} of episode {ep} (row {row})"

    # -- access -------------------------------------------------------------------------------------------
    def read_pixels(self, frames: np.ndarray) -> np.ndarray:
        """Frames at global indices ``frames`` (any shape) -> uint8 (*frames.shape, H, W, 3)."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.size and (frames.min() < 0 or frames.max() >= self.num_frames):
            raise IndexError(f"frame index out of range [0, {self.num_frames}) for {self.path}")
        if self._pixels is not None:
            return self._pixels[frames]
        # One chunk per frame: reading each unique frame decompresses exactly what is needed.
        unique, inverse = np.unique(frames.ravel(), return_inverse=True)
        ds = self._open()["pixels"]
        buf = np.empty((len(unique), *self.image_shape), dtype=np.uint8)
        for i, frame in enumerate(unique.tolist()):
            try:
                ds.read_direct(buf, np.s_[frame : frame + 1], np.s_[i : i + 1])
            except OSError as err:  # h5py's word for a chunk that does not decompress
                raise DatasetError(f"{self.path}: {self._where(frame)} cannot be read (damaged file?): {err}") from err
        return buf[inverse].reshape(*frames.shape, *self.image_shape)

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """Episode ``index``, raw: pixels (T, H, W, 3), actions (T-1, A), proprio (T, P), state (T, S)."""
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range [0, {self.num_episodes}) for {self.path}")
        start, length = int(self.episode_starts[index]), int(self.episode_lengths[index])
        rows = slice(start, start + length)
        return {
            "pixels": self.read_pixels(np.arange(start, start + length)),
            "actions": self.actions[start : start + length - 1],
            "proprio": self.proprio[rows],
            "state": self.state[rows],
        }

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles cannot cross process boundaries; each worker reopens the file lazily.
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"TrajectoryStore({str(self.path)!r}, env={self.env!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, image={self.image_shape}, preloaded={self.preloaded})"
        )
