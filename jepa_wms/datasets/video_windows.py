"""Training windows read straight from robot videos: only the frames a window keeps are decoded, no conversion first.

`VideoWindowDataset` indexes every (episode, start) window of ``num_frames`` kept frames of a DROID-raw or LeRobot
(video) dataset. Kept frames are every ⌈video_fps/4⌉-th raw frame, exactly as `jepa-wms convert` keeps them, so a
window equals the converted episode's frames ``start … start + num_frames - 1``: same centre crop + bilinear resize
(`robot_video.crop_resize`), same 7-D pose-delta actions (`robot_video.pose_episode`), same errors for bad input
(the readers' own checks run on every episode when the dataset is built).

Decoding seeks by timestamp with PyAV. Each open video keeps its keyframe times (one demux pass, no decoding), so a
kept frame is reached from the nearest keyframe at or before it, or by decoding on from the previous kept frame when
no keyframe lies in between. Only kept frames are converted to RGB; in an all-intra video (every frame a keyframe)
only kept frames are decoded at all. ``decoded`` and ``converted`` count both. Open containers live in an LRU of
``cache_size`` (one DROID episode is one file; a LeRobot v3 file holds many episodes).

`VideoStore` is the same folder seen as a `TrajectoryStore`: every kept frame of every episode the converter would
write, with the arrays and normalisation stats it would write (built from the poses alone, no frame decoded), and
``read_pixels`` decoding frames on demand. `WindowDataset` over it gives the batches of `WindowDataset` over the
converted file, which is how `jepa-wms train` reads a video folder (``datasets/sources.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_wms.datasets.formats.base import Episode
from jepa_wms.datasets.formats.robot_video import SkipLog, crop_resize, keep_stride, kept_indices, pose_episode
from jepa_wms.datasets.normalize import Normalizer
from jepa_wms.datasets.storage import DatasetError

__all__ = ["VideoWindowDataset", "VideoStore", "SOURCES"]


@dataclass
class _Clip:
    """One episode: its video, where raw frame 0 sits in it, its kept raw frames and how to build its arrays."""

    where: str
    video: Path
    origin: float | None  # seconds of raw frame 0 in the file; None: the file's first frame
    fps: float  # the rate raw frames are numbered at from their presentation times
    keep: np.ndarray  # kept raw frame indices
    arrays: Callable[[np.ndarray, np.ndarray], Episode]  # (kept raw indices, frames) -> episode dict


class _Video:
    """An open MP4 and its keyframe times; decodes frames by index with as little decoding as the keyframes allow."""

    def __init__(self, path: Path, where: str):
        import av

        self.where = where
        try:
            self.container = av.open(str(path))
        except FileNotFoundError:
            raise DatasetError(f"{where}: missing video file") from None
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in many types
            raise DatasetError(f"{where}: cannot open video ({type(exc).__name__}: {exc})") from None
        try:
            if not self.container.streams.video:
                raise DatasetError(f"{where}: no video stream")
            self.stream = self.container.streams.video[0]
            pts, keys = [], []
            for packet in self.container.demux(self.stream):  # reads packets only: cheap next to decoding
                if packet.pts is not None:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
            declared = self.stream.frames
            if declared and len(pts) < declared:
                raise DatasetError(f"{where}: truncated video, {len(pts)} of {declared} frames in the file")
            if not keys:
                raise DatasetError(f"{where}: no decodable frame (no keyframe)")
        except DatasetError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt file can raise any av.error subclass
            self.close()
            raise DatasetError(f"{where}: cannot read video ({type(exc).__name__}: {exc})") from None
        self.num_frames = len(pts)
        self.time_base = float(self.stream.time_base)
        self.first = min(pts) * self.time_base
        self.keys = np.sort(np.asarray(keys, dtype=np.int64))
        self._frames: Any = None  # the running decoder, positioned after frame `_last`
        self._last: int | None = None
        self._origin: tuple[float, float] | None = None  # (origin, fps) that `_last` is numbered in
        self.decoded = 0
        self.converted = 0

    def close(self) -> None:
        self.container.close()

    def read(self, indices: np.ndarray, origin: float | None, fps: float) -> np.ndarray:
        """uint8 (len(indices), H, W, 3): raw frames ``indices`` (increasing), numbered by
        ``round((t - origin) · fps)`` from their presentation time t."""
        origin = self.first if origin is None else origin
        if self._origin != (origin, fps):
            self._frames, self._last, self._origin = None, None, (origin, fps)
        key_idx = np.round((self.keys * self.time_base - origin) * fps).astype(np.int64)
        out = []
        try:
            for i in indices.tolist():
                k = int(np.searchsorted(key_idx, i, side="right")) - 1
                if k < 0:
                    raise DatasetError(f"{self.where}: truncated video, frame {i} missing (before the first frame)")
                # Decoding on from the previous frame beats a seek unless a keyframe lies in between.
                if self._frames is None or self._last is None or not key_idx[k] <= self._last < i:
                    self.container.seek(int(self.keys[k]), stream=self.stream, backward=True)
                    self._frames, self._last = self.container.decode(self.stream), None
                out.append(self._decode_to(i, origin, fps))
        except DatasetError:
            self._frames = None
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt packet can raise any av.error subclass
            self._frames = None
            raise DatasetError(f"{self.where}: cannot decode video ({type(exc).__name__}: {exc})") from None
        return np.stack(out)

    def _decode_to(self, i: int, origin: float, fps: float) -> np.ndarray:
        for frame in self._frames:
            self.decoded += 1
            j = round((float(frame.pts * self.time_base) - origin) * fps)
            self._last = j
            if j == i:
                self.converted += 1
                return frame.to_ndarray(format="rgb24")
            if j > i:
                break
        self._frames = None
        raise DatasetError(f"{self.where}: truncated video, frame {i} missing")


def _droid_clips(root: Path, camera: str | None = None, fps: float | str | None = None) -> list[_Clip]:
    """DROID-raw episodes, with `droid_raw`'s checks: metadata, camera key, MP4, poses, lengths within one frame."""
    import av

    from jepa_wms.datasets.formats import droid_raw as dr

    fps = float(fps if fps is not None else dr.FPS)
    camera = camera or dr.DEFAULT_CAMERA
    keep_stride(fps)  # a bad fps= fails before any file is read
    dirs = dr._listed(root)
    if not dirs:
        raise DatasetError(f"{root}: no DROID episodes (no */trajectory.h5)")
    clips: list[_Clip] = []
    for ep in dirs:
        video = dr._video_path(ep, camera)
        pose = dr._poses(ep / "trajectory.h5")
        where = f"{video} ({camera})"
        try:  # the header's frame count (the windows' span must be known before anything is decoded)
            with av.open(str(video)) as container:
                stream = container.streams.video[0] if container.streams.video else None
                n_video = stream.frames if stream is not None else 0
                # Frames are numbered at the file's own rate, as `convert` numbers them in decode order; fps= only
                # sets which are kept (a file recorded at another rate reads the same through both).
                rate = float(stream.average_rate) if stream is not None and stream.average_rate else fps
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in many types
            raise DatasetError(f"{where}: cannot open video ({type(exc).__name__}: {exc})") from None
        n_video = n_video or _count_frames(video, where)
        if abs(n_video - len(pose)) > 1:
            raise DatasetError(
                f"{video}: {n_video} video frames but {len(pose)} steps in {ep / 'trajectory.h5'} ({dr.POSE}); "
                f"only a difference of 1 is tolerated"
            )
        keep = kept_indices(min(n_video, len(pose)), fps)
        clips.append(_Clip(where, video, None, rate, keep, partial(_pose_arrays, pose)))
    return clips


def _count_frames(video: Path, where: str) -> int:
    """Frames of an MP4 whose header does not say: its packets, counted without decoding."""
    v = _Video(video, where)
    v.close()
    return v.num_frames


def _pose_arrays(pose: np.ndarray, keep: np.ndarray, frames: np.ndarray) -> Episode:
    return pose_episode(frames, pose[keep])


def _lerobot_clips(
    root: Path, camera: str | None = None, state: str = "observation.state", action: str = "pose-delta",
    fps: float | str | None = None,
) -> list[_Clip]:  # fmt: skip
    """LeRobot v2/v3 episodes with a video camera, with `lerobot`'s checks (version, features, rows, fps grid)."""
    from jepa_wms.datasets.formats.lerobot import Source

    src = Source(root, camera, state, action, fps)
    if not src.is_video:
        raise DatasetError(f"{root}: camera {src.camera!r} holds images in the parquet files, not video: use convert")
    clips: list[_Clip] = []
    for ep in src.episodes:
        where, table, ts = src.table(ep)
        keep = kept_indices(len(ts), src.fps)
        arrays = partial(src.episode, where, table)
        clips.append(_Clip(str(ep["video"]), ep["video"], ep["start"] + ts[0], src.fps, keep, arrays))
    return clips


SOURCES: dict[str, Callable[..., list[_Clip]]] = {"droid_raw": _droid_clips, "lerobot": _lerobot_clips}


def _layout_clips(root: Path, layout: str | None, options: dict[str, Any]) -> tuple[str, list[_Clip]]:
    """(layout, its episodes in the layout's order); the layout is detected from the files when None."""
    from jepa_wms.datasets.formats import detect_layout, get_layout

    if layout is None:
        layout = detect_layout(root).name
    if layout not in SOURCES:
        raise DatasetError(f"VideoWindowDataset reads layouts {sorted(SOURCES)}, not {layout!r}: use convert")
    get_layout(layout).env_name(options)  # unknown options: the converter's error, naming the valid ones
    return layout, SOURCES[layout](root, **options)


class _Videos:
    """The open videos, least recently used closed first beyond ``size``, and the frames they decoded/converted."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"VideoWindowDataset: cache_size must be >= 1, got {size}")
        self.size = int(size)
        self.open: OrderedDict[Path, _Video] = OrderedDict()
        self._closed_counts = [0, 0]  # decoded / converted frames of videos already closed

    @property
    def decoded(self) -> int:
        return self._closed_counts[0] + sum(v.decoded for v in self.open.values())

    @property
    def converted(self) -> int:
        return self._closed_counts[1] + sum(v.converted for v in self.open.values())

    def read(self, clip: _Clip, raw: np.ndarray) -> np.ndarray:
        """uint8 (len(raw), H, W, 3): the raw frames ``raw`` (increasing) of ``clip``, at the video's own size."""
        video = self.open.get(clip.video)
        if video is None:
            video = self.open[clip.video] = _Video(clip.video, clip.where)
            while len(self.open) > self.size:
                self._drop(self.open.popitem(last=False)[1])
        self.open.move_to_end(clip.video)
        return video.read(raw, clip.origin, clip.fps)

    def _drop(self, video: _Video) -> None:
        self._closed_counts[0] += video.decoded
        self._closed_counts[1] += video.converted
        video.close()

    def close(self) -> None:
        while self.open:
            self._drop(self.open.popitem()[1])

    def __getstate__(self) -> dict[str, Any]:
        # Open containers cannot cross a process boundary (DataLoader workers): each worker opens its own.
        return {**self.__dict__, "open": OrderedDict()}


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
        self._videos = _Videos(cache_size)
        root = Path(root)
        layout, clips = _layout_clips(root, layout, options)
        ids = np.arange(len(clips)) if episodes is None else np.asarray(episodes, dtype=np.int64)
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= len(clips))):
            raise ValueError(f"VideoWindowDataset: episode ids must be in [0, {len(clips)}), got {ids}")
        skips = SkipLog(f"{layout} windows")
        self.clips: list[_Clip] = []
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
        self._videos = _Videos(cache_size)
        self.path = root = Path(root)
        self.layout, clips = _layout_clips(root, layout, options)
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
