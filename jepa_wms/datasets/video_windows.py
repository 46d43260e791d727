"""Training windows read straight from robot videos: only the frames a window keeps are decoded, no conversion first.

`VideoWindowDataset` indexes every (episode, start) window of ``num_frames`` kept frames of a DROID-raw or LeRobot
(video) dataset. Kept frames are every ⌈video_fps/4⌉-th raw frame, exactly as `jepa-wms convert` keeps them, so a
window equals the converted episode's frames ``start … start + num_frames - 1``: same centre crop + bilinear resize
(`robot_video.crop_resize`), same 7-D pose-delta actions (`robot_video.pose_episode`), same errors for bad input
(the readers' own checks run on every episode when the dataset is built).

Frames are decoded on demand (``video_clips.py``); open videos live in an LRU of ``cache_size``.

`VideoStore` is the same folder seen as a `TrajectoryStore`: every kept frame of every episode the converter would
write, with the arrays and normalisation stats it would write (built from the poses alone, no frame decoded), and
``read_pixels`` decoding frames on demand. `WindowDataset` over it gives the batches of `WindowDataset` over the
converted file, which is how `jepa-wms train` reads a video folder (``datasets/sources.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_wms.datasets.formats.base import Episode
from jepa_wms.datasets.formats.robot_video import SkipLog, crop_resize
from jepa_wms.datasets.normalize import Normalizer
from jepa_wms.datasets.storage import DatasetError
from jepa_wms.datasets.video_clips import Clip, VideoCache, layout_clips

__all__ = ["VideoWindowDataset", "VideoStore"]


class VideoWindowDataset:
    """Every window of ``num_frames`` consecutive kept frames in a robot video dataset, decoded on demand.

    Args:
        root: the dataset folder (DROID episode folders or a LeRobot dataset).
        num_frames: T, kept frames per window (>= 2: a window needs an action).
        layout: ``"droid_raw"`` or ``"lerobot"``; detected from the files when omitted.
        img_size: side of the square frames (centre crop + bilinear resize, no antialias); None: crop only.
        episodes: episode positions (in the layout's order) to draw windows from; default all.
        cache_size: open videos kept (least recently used closed first).
        options: the layout's reader options (``camera=``, ``fps=``; LeRobot also ``state=``, ``action=``).
    """

    def __init__(
        self,
        root: str | Path,
        num_frames: int,
        *,
        layout: str | None = None,
        img_size: int | None = None,
        episodes: list[int] | np.ndarray | None = None,
        cache_size: int = 8,
        **options: Any,
    ):
        if num_frames < 2:
            raise ValueError(f"VideoWindowDataset: num_frames must be >= 2, got {num_frames}")
        self._videos = VideoCache(cache_size)
        root = Path(root)
        layout, clips = layout_clips(root, layout, options)
        ids = np.arange(len(clips)) if episodes is None else np.asarray(episodes, dtype=np.int64)
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= len(clips))):
            raise ValueError(f"VideoWindowDataset: episode ids must be in [0, {len(clips)}), got {ids}")
        skips = SkipLog(f"{layout} windows")
        self.clips: list[Clip] = []
        for e in ids.tolist():
            clip = clips[e]
            if not skips.too_short(len(clip.keep), clip.where):
                self.clips.append(clip)
        skips.report()
        self.root, self.layout, self.num_frames, self.img_size = root, layout, int(num_frames), img_size
        self.cache_size = self._videos.size
        counts = [max(len(c.keep) - self.num_frames + 1, 0) for c in self.clips]
        self._windows = np.array([(c, s) for c, n in enumerate(counts) for s in range(n)], np.int64).reshape(-1, 2)
        if len(self._windows) == 0:
            raise ValueError(f"VideoWindowDataset: no episode of {root} has {num_frames} kept frames")

    def __len__(self) -> int:
        return len(self._windows)

    @property
    def decoded(self) -> int:
        """Frames the decoder produced so far (kept or on the way to one)."""
        return self._videos.decoded

    @property
    def converted(self) -> int:
        """Frames converted to RGB so far: the kept frames the windows asked for."""
        return self._videos.converted

    def window_ids(self, index: int) -> tuple[int, int]:
        """(episode position among the dataset's episodes, first kept frame) of window ``index``."""
        c, s = self._windows[index]
        return int(c), int(s)

    def window(self, index: int) -> Episode:
        """Window ``index`` as numpy: pixels uint8 (T, H, W, 3), actions (T-1, A), proprio (T, P), state (T, S),
        raw (unnormalised) as the converter writes them."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window index {index} out of range [0, {len(self)})")
        c, s = self.window_ids(index % len(self))
        clip = self.clips[c]
        keep = clip.keep[s : s + self.num_frames]
        return clip.arrays(keep, crop_resize(self._videos.read(clip, keep), self.img_size))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.asarray(v, np.uint8 if k == "pixels" else np.float32)) for k, v in
                self.window(index).items()}  # fmt: skip

    def get(self, indices: np.ndarray | list[int]) -> dict[str, torch.Tensor]:
        """Windows ``indices`` stacked into a batch (keys as `window`, a leading batch dimension)."""
        items = [self[int(i)] for i in np.asarray(indices).reshape(-1)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def close(self) -> None:
        """Close every open video (they reopen on demand)."""
        self._videos.close()


class VideoStore:
    """A robot video dataset read as a `TrajectoryStore`, without conversion: frames are decoded when asked for.

    Its episodes, arrays and stats are what `jepa-wms convert --img-size img_size` would write for the folder: every
    kept frame of every episode with at least two (the same layout readers and checks, the same order), the same
    float32 ``actions`` (NaN on each episode's last frame), ``proprio`` and ``state`` rows, the same
    ``action_stats``/``proprio_stats`` over all episodes, env ``droid``, ``env_kwargs = {"img_size": img_size}``.
    These are built from the poses (and LeRobot's parquet columns) alone when the store opens; no frame is decoded
    until ``read_pixels``, which decodes, crops and resizes exactly as the converter does, so `WindowDataset` over a
    `VideoStore` yields the batches `WindowDataset` yields over the converted file.

    A folder has no creation time: ``created`` is instead the layout and a SHA-256 of the episodes' video paths
    (relative to ``root``), kept-frame counts and arrays, so a resume (``training/resume.py``) notices another folder,
    other reader options or changed poses. Changed video content with the same frame counts is not noticed.

    Args:
        root: the dataset folder (DROID episode folders or a LeRobot dataset).
        img_size: side of the square frames (centre crop + bilinear resize, no antialias), as ``convert --img-size``.
        layout: ``"droid_raw"`` or ``"lerobot"``; detected from the files when omitted.
        cache_size: open videos kept (least recently used closed first).
        options: the layout's reader options (``camera=``, ``fps=``; LeRobot also ``state=``, ``action=``).
    """

    preloaded = False  # frames are never held in RAM

    def __init__(
        self, root: str | Path, *, img_size: int, layout: str | None = None, cache_size: int = 8, **options: Any
    ):
        import hashlib
        import json

        from jepa_wms.datasets.formats import get_layout

        if not isinstance(img_size, int) or img_size < 1:
            raise ValueError(f"VideoStore: img_size must be a positive integer, got {img_size!r}")
        self._videos = VideoCache(cache_size)
        self.path = root = Path(root)
        self.layout, clips = layout_clips(root, layout, options)
        self.options = dict(options)
        self.env = get_layout(self.layout).env_name(self.options)
        self.env_kwargs: dict[str, Any] = {"img_size": img_size}
        self.collector: dict[str, Any] = {"source": self.layout, "path": str(root.resolve()), **self.options}
        self.img_size = img_size
        self.image_shape: tuple[int, int, int] = (img_size, img_size, 3)
        skips = SkipLog(f"{self.layout} store")
        self._clips = [c for c in clips if not skips.too_short(len(c.keep), c.where)]
        skips.report()
        if not self._clips:
            raise DatasetError(f"{root}: no {self.layout} episode has 2 kept frames")
        digest = hashlib.sha256(json.dumps([self.layout, self.options], sort_keys=True, default=str).encode())
        arrays: dict[str, list[np.ndarray]] = {"actions": [], "proprio": [], "state": []}
        for clip in self._clips:
            # The frames are not needed for the arrays: an empty stand-in keeps the video closed.
            ep = clip.arrays(clip.keep, np.zeros((len(clip.keep), 0, 0, 3), np.uint8))
            ep = {k: np.asarray(ep[k], np.float32) for k in arrays}  # as TrajectoryWriter.add_episode stores them
            if not all(np.isfinite(v).all() for v in ep.values()):
                bad = next(k for k, v in ep.items() if not np.isfinite(v).all())
                raise DatasetError(f"{clip.where}: {bad} hold NaN or inf")
            for k, v in ep.items():
                arrays[k].append(v)
            digest.update(f"{_relative(clip.video, root)}:{clip.origin}:{len(clip.keep)};".encode())
        lengths = np.array([len(c.keep) for c in self._clips], np.int64)
        self.episode_lengths = lengths
        self.episode_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.num_episodes, self.num_frames = len(lengths), int(lengths.sum())
        self.action_stats = Normalizer.fit(np.concatenate(arrays["actions"]))
        self.proprio_stats = Normalizer.fit(np.concatenate(arrays["proprio"]))
        nan = np.full((1, arrays["actions"][0].shape[1]), np.nan, np.float32)
        self.actions = np.concatenate([x for a in arrays["actions"] for x in (a, nan)])  # a row per frame
        self.proprio = np.concatenate(arrays["proprio"])
        self.state = np.concatenate(arrays["state"])
        for name in ("actions", "proprio", "state"):
            arr = getattr(self, name)
            arr.flags.writeable = False  # shared by every window, as TrajectoryStore's
            digest.update(f"{name}{arr.shape}".encode() + arr.tobytes())
        self.action_dim, self.proprio_dim, self.state_dim = (
            int(getattr(self, k).shape[1]) for k in ("actions", "proprio", "state")
        )
        self.created = f"{self.layout} sha256:{digest.hexdigest()}"

    @property
    def decoded(self) -> int:
        """Frames the decoder produced so far (kept or on the way to one)."""
        return self._videos.decoded

    def read_pixels(self, frames: np.ndarray) -> np.ndarray:
        """Frames at global indices ``frames`` (any shape) -> uint8 (*frames.shape, H, W, 3), decoded now."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.size and (frames.min() < 0 or frames.max() >= self.num_frames):
            raise IndexError(f"frame index out of range [0, {self.num_frames}) for {self.path}")
        unique, inverse = np.unique(frames.ravel(), return_inverse=True)
        episodes = np.searchsorted(self.episode_starts, unique, side="right") - 1
        out = np.empty((len(unique), *self.image_shape), np.uint8)
        # `unique` is sorted, so each episode's frames are one increasing run: one read per episode.
        firsts, counts = np.unique(episodes, return_index=True, return_counts=True)[1:]
        for first, count in zip(firsts.tolist(), counts.tolist(), strict=True):
            e = int(episodes[first])
            clip, rows = self._clips[e], slice(first, first + count)
            raw = clip.keep[unique[rows] - self.episode_starts[e]]
            out[rows] = crop_resize(self._videos.read(clip, raw), self.img_size)
        return out[inverse].reshape(*frames.shape, *self.image_shape)

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """Episode ``index``, raw: pixels (T, H, W, 3), actions (T-1, A), proprio (T, P), state (T, S)."""
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range [0, {self.num_episodes}) for {self.path}")
        start, length = int(self.episode_starts[index]), int(self.episode_lengths[index])
        return {
            "pixels": self.read_pixels(np.arange(start, start + length)),
            "actions": self.actions[start : start + length - 1],
            "proprio": self.proprio[start : start + length],
            "state": self.state[start : start + length],
        }

    def close(self) -> None:
        """Close every open video (they reopen on demand)."""
        self._videos.close()

    def __enter__(self) -> VideoStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoStore({str(self.path)!r}, layout={self.layout!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, image={self.image_shape})"
        )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
