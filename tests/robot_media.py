"""Test helpers for the real-robot readers: tiny MP4s whose frame index is encoded in the pixel colour."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def colour_frames(n: int, h: int = 24, w: int = 32, first: int = 0) -> np.ndarray:
    """uint8 (n, h, w, 3) flat frames; frame i has red = 10 + 8·(first + i), which survives lossy coding."""
    idx = np.arange(first, first + n)
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0] = (10 + 8 * idx)[:, None, None] % 256
    frames[..., 1] = 128
    frames[..., 2] = 60
    return frames


def frame_ids(pixels: np.ndarray) -> list[int]:
    """Frame indices read back from `colour_frames` pixels (mean red of each frame)."""
    red = pixels[..., 0].reshape(len(pixels), -1).mean(axis=1)
    return [int(round((r - 10) / 8)) for r in red]


def write_mp4(frames: np.ndarray, fps: int, path: str | Path | None = None, codec: str = "mpeg4") -> bytes:
    """Encode frames with PyAV (returns the bytes; also written to ``path`` when given)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 8_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def write_png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()
