"""LeRobot datasets, read with pyarrow + PyAV (not the ``lerobot`` package, which pins an older torch).

- v2.0 / v2.1: ``meta/info.json`` (``codebase_version``, ``fps``, ``features``, ``data_path``, ``video_path``,
  ``chunks_size``), ``meta/episodes.jsonl`` and one parquet file (and one MP4 per camera) per episode.
- v3.0: episodes packed into shared files; ``meta/episodes/*/*.parquet`` gives each episode's data file
  (``data/chunk_index``, ``data/file_index``, rows ``dataset_from_index`` … ``dataset_to_index``) and, per camera,
  its video file and ``videos/<key>/from_timestamp``, where its frames start.

Options: ``camera=`` (a ``video`` or ``image`` feature; default the only one), ``state=`` (default
``observation.state``), ``action=`` (``pose-delta`` (default): 7-D deltas of a (x, y, z, rx, ry, rz, gripper) state;
or a feature name, whose value at each kept frame is used), ``fps=`` (default ``info.json``'s). Frames are kept every
⌈fps/4⌉; ``image`` features hold PNG bytes in the parquet. Timestamps must lie on the fps grid (within 1e-4 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, register_layout
from jepa_wms.datasets.formats.robot_video import (
    check_pose,
    crop_resize,
    decode_png,
    decode_video,
    kept_episodes,
    kept_indices,
    pose_episode,
)
from jepa_wms.datasets.storage import DatasetError

__all__ = ["LEROBOT", "Source", "read"]

VERSIONS = ("v2.0", "v2.1", "v3.0")
GRID_TOL = 1e-4  # seconds: LeRobot's own tolerance for timestamps off the frame grid


def _info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing metadata") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise DatasetError(f"{path}: codebase_version: unknown LeRobot version {version!r} (known: {VERSIONS})")
    return info


def _feature(info: dict, name: str, root: Path, what: str) -> dict:
    features = info.get("features", {})
    if name not in features:
        raise DatasetError(
            f"{root / 'meta' / 'info.json'}: features: no {what} feature {name!r} "
            f"(available: {', '.join(sorted(features))})"
        )
    return features[name]


def _episodes(root: Path, info: dict, camera: str, video: bool) -> list[dict[str, Any]]:
    """Per episode: ``index``, ``data`` file, ``rows`` (v3: row range in it), ``video`` file and ``start`` (s)."""
    out = []
    if info["codebase_version"].startswith("v2"):
        path = root / "meta" / "episodes.jsonl"
        if not path.is_file():
            raise DatasetError(f"{path}: missing metadata")
        chunks = int(info.get("chunks_size", 1000))
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            idx = int(json.loads(line)["episode_index"])
            keys = {"episode_chunk": idx // chunks, "episode_index": idx, "video_key": camera}
            out.append(
                {
                    "index": idx,
                    "data": root / info["data_path"].format(**keys),
                    "rows": None,
                    "video": root / info["video_path"].format(**keys) if video else None,
                    "start": 0.0,
                }
            )
        return out
    import pyarrow.parquet as pq

    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise DatasetError(f"{root / 'meta' / 'episodes'}: missing metadata (no *.parquet)")
    for path in files:
        for row in pq.read_table(path).to_pylist():
            ep = {"index": int(row["episode_index"])}
            keys = {"chunk_index": row["data/chunk_index"], "file_index": row["data/file_index"]}
            ep["data"] = root / info["data_path"].format(**keys)
            ep["rows"] = (int(row["dataset_from_index"]), int(row["dataset_to_index"]))
            ep["video"], ep["start"] = None, 0.0
            if video:
                col = f"videos/{camera}/"
                if col + "from_timestamp" not in row:
                    raise DatasetError(f"{path}: missing field {col}from_timestamp")
                vkeys = {"video_key": camera, "chunk_index": row[col + "chunk_index"]}
                ep["video"] = root / info["video_path"].format(**vkeys, file_index=row[col + "file_index"])
                ep["start"] = float(row[col + "from_timestamp"])
            out.append(ep)
    return sorted(out, key=lambda e: e["index"])


class _Tables:
    """Keeps the last parquet file read: v3 packs many episodes in one file, read once for all of them."""

    def __init__(self, columns: list[str]):
        self.columns, self.path, self.table = columns, None, None

    def get(self, path: Path) -> Any:
        import pyarrow.parquet as pq

        if path != self.path:
            if not path.is_file():
                raise DatasetError(f"{path}: missing data file")
            try:
                self.table, self.path = pq.read_table(path, columns=self.columns), path
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
                raise DatasetError(
                    f"{path}: cannot read columns {self.columns} ({type(exc).__name__}: {exc})"
                ) from None
        return self.table


def _column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_pylist(), dtype=np.float64).reshape(table.num_rows, -1)


class Source:
    """A LeRobot dataset with its options resolved and checked, before any frame is decoded (`read` and
    `jepa_wms.datasets.video_windows` share it, so both apply the same checks)."""

    def __init__(
        self, root: Path, camera: str | None = None, state: str = "observation.state",
        action: str = "pose-delta", fps: float | str | None = None,
    ):  # fmt: skip
        self.root = root = Path(root)
        info = _info(root)
        features = info.get("features", {})
        if camera is None:
            cams = sorted(k for k, v in features.items() if v.get("dtype") in ("video", "image"))
            if len(cams) != 1:
                raise DatasetError(f"{root}: pick a camera with camera= (image features: {', '.join(cams) or 'none'})")
            camera = cams[0]
        self.camera, self.state, self.action = camera, state, action
        self.is_video = _feature(info, camera, root, "camera").get("dtype") == "video"
        _feature(info, state, root, "state")
        if action != "pose-delta":
            _feature(info, action, root, "action")
        self.fps = float(fps if fps is not None else info.get("fps", 0))
        kept_indices(2, self.fps)  # a bad fps fails here, before any decoding
        self.episodes = _episodes(root, info, camera, self.is_video)
        if not self.episodes:
            raise DatasetError(f"{root}: no episodes listed in meta/")
        columns = ["timestamp", "episode_index", state] + ([] if self.is_video else [camera])
        columns += [] if action == "pose-delta" else [action]
        self._tables = _Tables(list(dict.fromkeys(columns)))

    def table(self, ep: dict[str, Any]) -> tuple[str, Any, np.ndarray]:
        """(where, rows, timestamps) of one episode; row counts and the fps grid are checked."""
        where = f"{ep['data']} (episode {ep['index']})"
        table = self._tables.get(ep["data"])
        if ep["rows"] is not None:  # v3: this episode's rows of the shared file
            table = table.filter(_eq(table, ep["index"]))
            if table.num_rows != ep["rows"][1] - ep["rows"][0]:
                raise DatasetError(f"{where}: {table.num_rows} rows but meta says {ep['rows'][1] - ep['rows'][0]}")
        fps = self.fps
        ts = _column(table, "timestamp")[:, 0]
        grid = ts[0] + np.arange(len(ts)) / fps
        off = np.abs(ts - grid) > GRID_TOL
        if off.any() or abs(ep["start"] * fps - round(ep["start"] * fps)) > GRID_TOL * fps:
            k = int(np.argmax(off))
            raise DatasetError(f"{where}: timestamp: off the {fps:g} fps grid at frame {k} (t={ts[k]:.6f} s)")
        return where, table, ts

    def episode(self, where: str, table: Any, keep: np.ndarray, frames: np.ndarray) -> Episode:
        """The episode (or window) of kept raw rows ``keep`` whose frames are ``frames``."""
        st = _column(table, self.state)
        if self.action == "pose-delta":
            return pose_episode(frames, check_pose(st, where, self.state)[keep])
        if not np.isfinite(st).all():
            raise DatasetError(f"{where}: {self.state}: NaN or inf")
        acts = _column(table, self.action)[keep[:-1]]
        st = st[keep]
        return {"pixels": frames, "actions": acts, "proprio": st, "state": st}


def read(
    root: Path, img_size: int | None = None, camera: str | None = None, state: str = "observation.state",
    action: str = "pose-delta", fps: float | str | None = None,
) -> tuple[int, Iterator[Episode]]:  # fmt: skip
    src = Source(root, camera, state, action, fps)

    def episode(ep: dict[str, Any]) -> Episode | None:
        where, table, ts = src.table(ep)
        keep = kept_indices(len(ts), src.fps)
        if len(keep) < 2:
            return None
        if src.is_video:
            frames, _ = decode_video(
                ep["video"], keep, size=img_size, start=ep["start"] + ts[0], fps=src.fps, where=f"{ep['video']}"
            )
        else:
            cells = table.column(src.camera).to_pylist()
            raw = [decode_png(_image_bytes(cells[k], where, src.camera), where) for k in keep]
            frames = crop_resize(np.stack(raw), img_size)
        return src.episode(where, table, keep, frames)

    return len(src.episodes), kept_episodes("lerobot", src.episodes, episode, lambda ep: f"episode {ep['index']}")


def _eq(table: Any, index: int) -> Any:
    import pyarrow.compute as pc

    return pc.equal(table.column("episode_index"), index)


def _image_bytes(cell: Any, where: str, camera: str) -> bytes:
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise DatasetError(f"{where}: {camera}: expected PNG bytes (struct with a 'bytes' field)")
    return bytes(data)


LEROBOT = register_layout(
    PublishedLayout(
        name="lerobot",
        env="droid",
        description="LeRobot v2.0/v2.1/v3.0: meta/info.json, data/**.parquet, videos/**.mp4 (pyarrow + PyAV)",
        required=("meta/info.json",),
        read=read,
        optional=("camera", "state", "action", "fps"),
        resizes=True,
    )
)
