"""Speed of the video window reader (`jepa_wms.datasets.video_windows`); prints one JSON object.

Writes synthetic data into a temporary folder: one DROID-layout episode with a 720p (1280×720) 15 fps H.264 MP4 and a
LeRobot v3.0 dataset whose episodes share one 640×480 30 fps H.264 file. Then reads training windows of
``--num-frames`` kept frames (every ⌈fps/4⌉-th frame) cropped and resized to ``--img-size`` in a random order, as
training draws them, and reports windows/s, frames decoded per window and, for scale, the seconds `convert` spends
decoding the whole DROID episode. The frames are a moving texture (so the codec has real work), keyframes every
``--gop`` frames (DROID's own files: check yours with ffprobe).

    OMP_NUM_THREADS=1 python bench/reader_speed.py
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (n, h, w, 3): a blotchy texture (8-px cells, plus faint pixel noise) drifting 3 px per frame over a
    moving colour gradient: camera-like detail, at a bitrate between a static scene and pure noise."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 160, (h // 8 + 1, (w + 3 * n) // 8 + 1, 3), dtype=np.uint8)
    tex = np.kron(cells, np.ones((8, 8, 1), np.uint8))[:h] + rng.integers(0, 16, (h, cells.shape[1] * 8, 3), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        grad = ((xx + yy + 5 * i) % 256).astype(np.uint8)[..., None]
        out[i] = tex[:, 3 * i : 3 * i + w] // 2 + grad // 2
    return out


def _write_mp4(path: Path, frames: np.ndarray, fps: int, gop: int) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _poses(t: int) -> np.ndarray:
    k = np.arange(t, dtype=np.float64)[:, None]
    return np.concatenate([0.002 * k * [1, -1, 0.5], 0.01 * k * [0.2, 0.1, -0.3], np.linspace(0, 1, t)[:, None]], 1)


def _droid(root: Path, frames: int, gop: int, seed: int) -> Path:
    import h5py

    ep = root / "ep0"
    ep.mkdir(parents=True)
    with h5py.File(ep / "trajectory.h5", "w") as f:
        f["observation/robot_state/cartesian_position"] = _poses(frames)[:, :6]
        f["observation/robot_state/gripper_position"] = _poses(frames)[:, 6]
    (ep / "metadata_ep0.json").write_text(json.dumps({"left_mp4_path": "recordings/MP4/111.mp4"}))
    _write_mp4(ep / "recordings/MP4/111.mp4", _frames(frames, 720, 1280, seed), 15, gop)
    return root


def _lerobot_v3(root: Path, lengths: list[int], gop: int, seed: int) -> Path:
    cam, fps = "observation.images.front", 30
    info = {
        "codebase_version": "v3.0",
        "fps": fps,
        "features": {cam: {"dtype": "video"}, "observation.state": {"dtype": "float32", "shape": [7]}},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    }
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    cols: dict[str, list] = {"timestamp": [], "episode_index": [], "observation.state": []}
    meta, start = [], 0
    for e, t in enumerate(lengths):
        cols["timestamp"] += (np.arange(t) / fps).tolist()
        cols["episode_index"] += [e] * t
        cols["observation.state"] += _poses(t).tolist()
        meta.append(
            {"episode_index": e, "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": start}
            | {"dataset_to_index": start + t, f"videos/{cam}/chunk_index": 0, f"videos/{cam}/file_index": 0}
            | {f"videos/{cam}/from_timestamp": start / fps}
        )
        start += t
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(cols), root / "data/chunk-000/file-000.parquet")
    pq.write_table(pa.Table.from_pylist(meta), root / "meta/episodes/chunk-000/file-000.parquet")
    _write_mp4(root / f"videos/{cam}/chunk-000/file-000.mp4", _frames(start, 480, 640, seed), fps, gop)
    return root


def _time_windows(root: Path, args: argparse.Namespace) -> dict[str, float]:
    from jepa_wms.datasets.video_windows import VideoWindowDataset

    ds = VideoWindowDataset(root, args.num_frames, img_size=args.img_size)
    order = np.random.default_rng(args.seed).permutation(np.resize(np.arange(len(ds)), args.windows))
    ds.window(int(order[0]))  # opens the file (demux pass): outside the timing, as an LRU hit in training
    before = ds.decoded
    t0 = time.perf_counter()
    for w in order:
        ds.window(int(w))
    seconds = time.perf_counter() - t0
    return {
        "windows": len(order),
        "windows_per_s": round(len(order) / seconds, 2),
        "decoded_frames_per_window": round((ds.decoded - before) / len(order), 1),
        "distinct_windows": len(ds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-frames", type=int, default=4, help="kept frames per window (droid preset: 4)")
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=120, help="raw frames of the 720p DROID episode (15 fps)")
    parser.add_argument("--gop", type=int, default=15, help="frames between keyframes in the written videos")
    parser.add_argument("--windows", type=int, default=40, help="windows timed per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from jepa_wms.datasets.formats.robot_video import decode_video, kept_indices

    with tempfile.TemporaryDirectory() as tmp:
        droid = _droid(Path(tmp) / "droid", args.frames, args.gop, args.seed)
        lerobot = _lerobot_v3(Path(tmp) / "lerobot", [90, 120, 150], args.gop, args.seed)
        mp4 = droid / "ep0/recordings/MP4/111.mp4"
        t0 = time.perf_counter()
        decode_video(mp4, kept_indices(args.frames, 15), size=args.img_size)
        convert_s = time.perf_counter() - t0
        result = {
            "bench": "reader_speed",
            "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "num_frames": args.num_frames,
            "img_size": args.img_size,
            "gop": args.gop,
            "droid_720p_h264_15fps": {
                **_time_windows(droid, args),
                "raw_frames": args.frames,
                "video_kbit_s": round(mp4.stat().st_size * 8 / 1e3 / (args.frames / 15)),
            },
            "convert_whole_droid_episode_s": round(convert_s, 3),
            "lerobot_v3_480p_h264_30fps": _time_windows(lerobot, args),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
