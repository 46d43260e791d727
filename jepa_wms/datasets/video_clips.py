"""The episodes of a robot-video folder and the decoding of their kept frames, for reading windows without conversion.

A `Clip` is one episode: its MP4, where raw frame 0 sits in it, the raw frames `jepa-wms convert` keeps (every
⌈video_fps/4⌉-th) and how its arrays are built. `layout_clips` lists them for a DROID-raw or LeRobot (video) folder,
with the readers' own checks.

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

from jepa_wms.datasets.formats.base import Episode
from jepa_wms.datasets.formats.robot_video import keep_stride, kept_indices, pose_episode
from jepa_wms.datasets.storage import DatasetError

__all__ = ["SOURCES", "Clip", "Video", "VideoCache", "layout_clips"]


@dataclass
class Clip:
    """One episode: its video, where raw frame 0 sits in it, its kept raw frames and how to build its arrays."""

    where: str
    video: Path
    origin: float | None  # seconds of raw frame 0 in the file; None: the file's first frame
    fps: float  # the rate raw frames are numbered at from their presentation times
    keep: np.ndarray  # kept raw frame indices
    arrays: Callable[[np.ndarray, np.ndarray], Episode]  # (kept raw indices, frames) -> episode dict


class Video:
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


def droid_clips(root: Path, camera: str | None = None, fps: float | str | None = None) -> list[Clip]:
    """DROID-raw episodes, with `droid_raw`'s checks: metadata, camera key, MP4, poses, lengths within one frame."""
    import av

    from jepa_wms.datasets.formats import droid_raw as dr

    fps = float(fps if fps is not None else dr.FPS)
    camera = camera or dr.DEFAULT_CAMERA
    keep_stride(fps)  # a bad fps= fails before any file is read
    dirs = dr._listed(root)
    if not dirs:
        raise DatasetError(f"{root}: no DROID episodes (no */trajectory.h5)")
    clips: list[Clip] = []
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
        clips.append(Clip(where, video, None, rate, keep, partial(_pose_arrays, pose)))
    return clips


def _count_frames(video: Path, where: str) -> int:
    """Frames of an MP4 whose header does not say: its packets, counted without decoding."""
    v = Video(video, where)
    v.close()
    return v.num_frames


def _pose_arrays(pose: np.ndarray, keep: np.ndarray, frames: np.ndarray) -> Episode:
    return pose_episode(frames, pose[keep])


def lerobot_clips(
    root: Path, camera: str | None = None, state: str = "observation.state", action: str = "pose-delta",
    fps: float | str | None = None,
) -> list[Clip]:  # fmt: skip
    """LeRobot v2/v3 episodes with a video camera, with `lerobot`'s checks (version, features, rows, fps grid)."""
    from jepa_wms.datasets.formats.lerobot import Source

    src = Source(root, camera, state, action, fps)
    if not src.is_video:
        raise DatasetError(f"{root}: camera {src.camera!r} holds images in the parquet files, not video: use convert")
    clips: list[Clip] = []
    for ep in src.episodes:
        where, table, ts = src.table(ep)
        keep = kept_indices(len(ts), src.fps)
        arrays = partial(src.episode, where, table)
        clips.append(Clip(str(ep["video"]), ep["video"], ep["start"] + ts[0], src.fps, keep, arrays))
    return clips


SOURCES: dict[str, Callable[..., list[Clip]]] = {"droid_raw": droid_clips, "lerobot": lerobot_clips}


def layout_clips(root: Path, layout: str | None, options: dict[str, Any]) -> tuple[str, list[Clip]]:
    """(layout, its episodes in the layout's order); the layout is detected from the files when None."""
    from jepa_wms.datasets.formats import detect_layout, get_layout

    if layout is None:
        layout = detect_layout(root).name
    if layout not in SOURCES:
        raise DatasetError(f"VideoWindowDataset reads layouts {sorted(SOURCES)}, not {layout!r}: use convert")
    get_layout(layout).env_name(options)  # unknown options: the converter's error, naming the valid ones
    return layout, SOURCES[layout](root, **options)


class VideoCache:
    """The open videos, least recently used closed first beyond ``size``, and the frames they decoded/converted."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"VideoWindowDataset: cache_size must be >= 1, got {size}")
        self.size = int(size)
        self.open: OrderedDict[Path, Video] = OrderedDict()
        self._closed_counts = [0, 0]  # decoded / converted frames of videos already closed

    @property
    def decoded(self) -> int:
        return self._closed_counts[0] + sum(v.decoded for v in self.open.values())

    @property
    def converted(self) -> int:
        return self._closed_counts[1] + sum(v.converted for v in self.open.values())

    def read(self, clip: Clip, raw: np.ndarray) -> np.ndarray:
        """uint8 (len(raw), H, W, 3): the raw frames ``raw`` (increasing) of ``clip``, at the video's own size."""
        video = self.open.get(clip.video)
        if video is None:
            video = self.open[clip.video] = Video(clip.video, clip.where)
            while len(self.open) > self.size:
                self._drop(self.open.popitem(last=False)[1])
        self.open.move_to_end(clip.video)
        return video.read(raw, clip.origin, clip.fps)

    def _drop(self, video: Video) -> None:
        self._closed_counts[0] += video.decoded
        self._closed_counts[1] += video.converted
        video.close()

    def close(self) -> None:
        while self.open:
            self._drop(self.open.popitem()[1])

    def __getstate__(self) -> dict[str, Any]:
        # Open containers cannot cross a process boundary (DataLoader workers): each worker opens its own.
        return {**self.__dict__, "open": OrderedDict()}
