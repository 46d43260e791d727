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
from jepa_wms.datasets.storage import DatasetError

__all__ = ["VideoWindowDataset", "SOURCES"]


@dataclass
class _Clip:
    """One episode: its video, where raw frame 0 sits in it, its kept raw frames and how to build its arrays."""

    where: str
    video: Path
    origin: float | None  # seconds of raw frame 0 in the file; None: the file's first frame
    fps: float
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
                n_video = container.streams.video[0].frames if container.streams.video else 0
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in many types
            raise DatasetError(f"{where}: cannot open video ({type(exc).__name__}: {exc})") from None
        n_video = n_video or _count_frames(video, where)
        if abs(n_video - len(pose)) > 1:
            raise DatasetError(
                f"{video}: {n_video} video frames but {len(pose)} steps in {ep / 'trajectory.h5'} ({dr.POSE}); "
                f"only a difference of 1 is tolerated"
            )
        keep = kept_indices(min(n_video, len(pose)), fps)
        clips.append(_Clip(where, video, None, fps, keep, partial(_pose_arrays, pose)))
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
        if cache_size < 1:
            raise ValueError(f"VideoWindowDataset: cache_size must be >= 1, got {cache_size}")
        root = Path(root)
        if layout is None:
            from jepa_wms.datasets.formats import detect_layout

            layout = detect_layout(root).name
        if layout not in SOURCES:
            raise DatasetError(f"VideoWindowDataset reads layouts {sorted(SOURCES)}, not {layout!r}: use convert")
        clips = SOURCES[layout](root, **options)
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
        self.cache_size = int(cache_size)
        counts = [max(len(c.keep) - self.num_frames + 1, 0) for c in self.clips]
        self._windows = np.array([(c, s) for c, n in enumerate(counts) for s in range(n)], np.int64).reshape(-1, 2)
        if len(self._windows) == 0:
            raise ValueError(f"VideoWindowDataset: no episode of {root} has {num_frames} kept frames")
        self._open: OrderedDict[Path, _Video] = OrderedDict()
        self._closed_counts = [0, 0]  # decoded / converted frames of videos already closed

    def __len__(self) -> int:
        return len(self._windows)

    @property
    def decoded(self) -> int:
        """Frames the decoder produced so far (kept or on the way to one)."""
        return self._closed_counts[0] + sum(v.decoded for v in self._open.values())

    @property
    def converted(self) -> int:
        """Frames converted to RGB so far: the kept frames the windows asked for."""
        return self._closed_counts[1] + sum(v.converted for v in self._open.values())

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
        frames = self._video(clip).read(keep, clip.origin, clip.fps)
        return clip.arrays(keep, crop_resize(frames, self.img_size))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.asarray(v, np.uint8 if k == "pixels" else np.float32)) for k, v in
                self.window(index).items()}  # fmt: skip

    def get(self, indices: np.ndarray | list[int]) -> dict[str, torch.Tensor]:
        """Windows ``indices`` stacked into a batch (keys as `window`, a leading batch dimension)."""
        items = [self[int(i)] for i in np.asarray(indices).reshape(-1)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def _video(self, clip: _Clip) -> _Video:
        video = self._open.get(clip.video)
        if video is not None:
            self._open.move_to_end(clip.video)
            return video
        video = _Video(clip.video, clip.where)
        self._open[clip.video] = video
        while len(self._open) > self.cache_size:
            _, old = self._open.popitem(last=False)
            self._closed_counts[0] += old.decoded
            self._closed_counts[1] += old.converted
            old.close()
        return video

    def close(self) -> None:
        """Close every open video (they reopen on demand)."""
        while self._open:
            _, old = self._open.popitem()
            self._closed_counts[0] += old.decoded
            self._closed_counts[1] += old.converted
            old.close()

    def __getstate__(self) -> dict[str, Any]:
        # Open containers cannot cross a process boundary (DataLoader workers): each worker opens its own.
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state
