"""Shared pieces of the real-robot readers (DROID, Franka, LeRobot, RoboCasa): frame subsampling, PyAV decoding of
only the kept frames, centre crop + resize, pose checks and 7-D pose-delta episodes.

The released DROID models saw 4 fps clips: every ⌈video_fps / 4⌉-th frame, centre-cropped to a square and resized
bilinearly *without* antialiasing. Conversion reproduces that exactly, so frames match what the models were
trained on; the actions are `jepa_wms.datasets.pose_actions.pose_deltas` between kept frames.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from jepa_wms.datasets.formats.base import Episode
from jepa_wms.datasets.pose_actions import pose_deltas
from jepa_wms.datasets.storage import DatasetError

__all__ = [
    "KEEP_FPS",
    "keep_stride",
    "kept_indices",
    "crop_resize",
    "decode_video",
    "decode_png",
    "check_pose",
    "pose_episode",
    "SkipLog",
]

KEEP_FPS = 4
log = logging.getLogger(__name__)


def keep_stride(fps: float) -> int:
    """Frames between kept frames, ⌈fps / 4⌉ (15 fps → 4, 30 fps → 8, 20 Hz → 5)."""
    if not fps or fps <= 0:
        raise DatasetError(f"frame rate must be positive, got {fps}")
    return max(1, math.ceil(fps / KEEP_FPS - 1e-9))


def kept_indices(length: int, fps: float) -> np.ndarray:
    return np.arange(0, length, keep_stride(fps))


def crop_resize(frames: np.ndarray, size: int | None) -> np.ndarray:
    """uint8 (T, H, W, 3) → centre square crop, bilinear resize (no antialias) to ``size``² (``None``: crop only)."""
    h, w = frames.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    frames = frames[:, top : top + s, left : left + s]
    if size is None or s == size:
        return np.ascontiguousarray(frames)
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=False, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def decode_video(
    source: str | Path | bytes,
    keep: Iterable[int],
    *,
    size: int | None = None,
    start: float | None = None,
    fps: float | None = None,
    where: str | None = None,
    strict: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode the frames ``keep`` (indices) of an MP4 with PyAV; others are decoded but never converted to RGB.

    Without ``start`` the whole file is decoded (frames are numbered in decode order) and the second value is the
    number of frames in it, so callers can compare it with their state arrays. With ``start`` (seconds, LeRobot
    v3 files holding many episodes) the decoder seeks there, numbers frames by ``round((pts - start) · fps)`` and
    stops after the last kept frame; the second value is then the last decoded index + 1. ``strict=False``
    returns only the kept frames that exist (for DROID, whose MP4 may be one frame shorter than its states).
    """
    import av

    what = where or ("<bytes>" if isinstance(source, bytes) else str(source))
    wanted_set = {int(i) for i in keep}
    wanted = sorted(wanted_set)
    got: dict[int, np.ndarray] = {}
    count = 0
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except FileNotFoundError:
        raise DatasetError(f"{what}: missing video file") from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in many types
        raise DatasetError(f"{what}: cannot open video ({type(exc).__name__}: {exc})") from None
    try:
        with container:
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None:
                raise DatasetError(f"{what}: no video stream")
            if start is not None:
                if not fps:
                    raise DatasetError(f"{what}: decoding from a timestamp needs the frame rate")
                if start > 0:
                    container.seek(int(start / stream.time_base), stream=stream, backward=True)
            last = wanted[-1] if wanted else -1
            for frame in container.decode(stream):
                if start is None:
                    idx = count
                else:
                    idx = round((float(frame.pts * stream.time_base) - start) * fps)
                    if idx < 0:
                        continue
                count = idx + 1
                if idx in wanted_set and idx not in got:
                    got[idx] = frame.to_ndarray(format="rgb24")
                if start is not None and idx >= last:
                    break
            declared = stream.frames
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt packet can raise any av.error subclass
        raise DatasetError(f"{what}: cannot decode video ({type(exc).__name__}: {exc})") from None
    if start is None and declared and count < declared:
        raise DatasetError(f"{what}: truncated video, decoded {count} of {declared} frames")
    if not strict:
        wanted = [i for i in wanted if i < count]
    missing = [i for i in wanted if i not in got]
    if missing:
        raise DatasetError(f"{what}: truncated video, frame {missing[0]} missing (decoded {count} frames)")
    if not wanted:
        return np.zeros((0, size or 0, size or 0, 3), np.uint8), count
    frames = np.stack([got[i] for i in wanted])
    return crop_resize(frames, size), count


def decode_png(data: bytes, where: str) -> np.ndarray:
    """One image stored as PNG (or JPEG) bytes, as uint8 (H, W, 3)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - PIL raises several types for corrupt images
        raise DatasetError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from None


def check_pose(pose: np.ndarray, where: str, field: str, gripper: bool = True) -> np.ndarray:
    """Float64 copy of poses (T, 7); NaN/inf anywhere or a gripper outside [0, 1] is an error naming ``field``."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim != 2 or pose.shape[1] != 7:
        raise DatasetError(f"{where}: {field}: expected poses of shape (T, 7), got {pose.shape}")
    bad = ~np.isfinite(pose).all(axis=1)
    if bad.any():
        raise DatasetError(f"{where}: {field}: NaN or inf pose at frame {int(np.argmax(bad))}")
    g = pose[:, 6]
    out = (g < 0) | (g > 1)
    if gripper and out.any():
        k = int(np.argmax(out))
        raise DatasetError(f"{where}: {field}: gripper {g[k]:.4g} outside [0, 1] at frame {k}")
    return pose


def pose_episode(frames: np.ndarray, pose: np.ndarray, state: np.ndarray | None = None) -> Episode:
    """An episode of kept frames: actions = pose deltas, proprio = the 7-D pose, state = ``state`` or the pose."""
    return {
        "pixels": frames,
        "actions": pose_deltas(pose).astype(np.float32),
        "proprio": pose.astype(np.float32),
        "state": (pose if state is None else state).astype(np.float32),
    }


class SkipLog:
    """Counts episodes skipped as too short (fewer than 2 kept frames) and logs the count once at the end."""

    def __init__(self, layout: str):
        self.layout = layout
        self.skipped: list[str] = []

    def too_short(self, kept: int, where: str) -> bool:
        if kept >= 2:
            return False
        self.skipped.append(where)
        return True

    def report(self) -> None:
        if self.skipped:
            log.warning(
                "%s: skipped %d episode(s) with fewer than 2 kept frames (%d fps): %s",
                self.layout,
                len(self.skipped),
                KEEP_FPS,
                ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else ""),
            )


T = TypeVar("T")


def kept_episodes(
    layout: str, items: Iterable[T], read_one: Callable[[T], Episode | None], where: Callable[[T], str]
) -> Iterator[Episode]:
    """``read_one`` over ``items``, skipping (and counting, `SkipLog`) those it returns None for: too short."""
    skips = SkipLog(layout)
    for item in items:
        ep = read_one(item)
        if ep is None:
            skips.too_short(1, where(item))
            continue
        yield ep
    skips.report()
