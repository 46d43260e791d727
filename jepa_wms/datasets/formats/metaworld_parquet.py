"""The reference's Metaworld parquet layout (Hugging Face ``Metaworld/data/train-*.parquet``).

One row per episode: ``video`` (MP4 bytes, or a struct whose ``bytes`` field holds them, as the Hugging Face
``Video`` feature stores it), ``states`` (T×39 list of lists), ``actions`` ((T-1)×4), ``rewards`` and ``task``
(``"reach-v3"`` or ``"reach"``). The files mix 42 tasks while each of our envs is one task, so the reader keeps
the rows of one task (option ``task``) and writes them for the env ``metaworld-<task>``.

Conversion: pixels are the decoded MP4 frames, proprio = ``states[:, :4]`` (hand xyz, gripper distance), actions
as given. The ``state`` written is the parquet's 39-d Metaworld *observation*, not a simulator state:
`jepa_wms.envs.MetaworldEnv` states are longer (physics, moved bodies, task attributes) and only their first 39
values mean the same thing, so a converted state cannot be passed to ``set_state``. When an episode's video and
states differ in length, the shorter one wins (the extra frames or states are dropped).

The dataset root is the folder that holds ``data/``; the ``data/`` folder itself is accepted too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.datasets.formats.base import Episode, PublishedLayout, read_video, register_layout
from jepa_wms.datasets.storage import DatasetError
from jepa_wms.envs.metaworld_tasks import OBS_DIM, canonical_task

__all__ = ["METAWORLD_PARQUET", "parquet_files", "read"]

PATTERN = "train-*.parquet"
COLUMNS = ("video", "states", "actions", "task")
_BATCH_ROWS = 8  # rows decoded at a time: each row carries a whole MP4


def parquet_files(root: Path) -> list[Path]:
    """``root/data/train-*.parquet``, or ``root/train-*.parquet`` when ``root`` is the data folder itself."""
    for folder in (Path(root) / "data", Path(root)):
        files = sorted(folder.glob(PATTERN))
        if files:
            return files
    return []


def _bare_task(name: Any) -> str:
    """The parquet's task label without ``mw-``/``-v3`` decorations (unknown labels are kept as they are)."""
    try:
        return canonical_task(str(name))
    except ValueError:
        return str(name)


def _wanted_task(task: Any) -> str:
    try:
        return canonical_task(str(task))
    except ValueError as err:
        raise DatasetError(f"metaworld_parquet: option task: {err}") from None


def _matrix(value: Any, where: str, column: str, width: int) -> np.ndarray:
    try:
        arr = np.asarray(value.as_py() if hasattr(value, "as_py") else value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.ndim != 2 or arr.shape[1] != width or len(arr) == 0:
        raise DatasetError(f"{where}: column {column!r} must be a (T, {width}) list of lists, got shape {arr.shape}")
    return arr


def _video_bytes(value: Any, where: str) -> bytes:
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise DatasetError(f"{where}: column 'video' must hold MP4 bytes or a struct with a 'bytes' field")
    return bytes(data)


def _episode(batch: Any, row: int, where: str) -> Episode:
    frames = read_video(_video_bytes(batch.column("video")[row].as_py(), where))
    states = _matrix(batch.column("states")[row], where, "states", OBS_DIM)
    actions = _matrix(batch.column("actions")[row], where, "actions", 4)
    t = min(len(frames), len(states))
    if t < 2 or len(actions) < t - 1:
        raise DatasetError(
            f"{where}: need >= 2 frames and T-1 actions; got {len(frames)} frames, {len(states)} states, "
            f"{len(actions)} actions"
        )
    return {
        "pixels": np.ascontiguousarray(frames[:t]),
        "actions": actions[: t - 1],
        "proprio": states[:t, :4],
        "state": states[:t],
    }


def read(root: Path, task: str) -> tuple[int, Iterator[Episode]]:
    """The episodes of ``task`` in all parquet files under ``root``, in file and row order."""
    import pyarrow.parquet as pq

    want = _wanted_task(task)
    files = parquet_files(root)
    if not files:
        raise DatasetError(f"{root}: no Metaworld parquet files (expected data/{PATTERN})")
    rows: dict[Path, set[int]] = {}
    present: Counter[str] = Counter()
    for path in files:
        try:
            missing = [c for c in COLUMNS if c not in pq.read_schema(path).names]
            labels = pq.read_table(path, columns=["task"]).column("task").to_pylist() if not missing else []
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise DatasetError(f"{path}: cannot read as parquet ({type(exc).__name__}: {exc})") from None
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
        present.update(str(label) for label in labels)
        rows[path] = {i for i, label in enumerate(labels) if _bare_task(label) == want}
    total = sum(len(r) for r in rows.values())
    if total == 0:
        listing = ", ".join(f"{name} ({n})" for name, n in sorted(present.items()))
        raise DatasetError(f"{root}: no episodes of task {task!r}; tasks present (episodes): {listing}")

    def episodes() -> Iterator[Episode]:
        for path, keep in rows.items():
            if not keep:
                continue
            start = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS, columns=list(COLUMNS)):
                for j in range(batch.num_rows):
                    if start + j in keep:
                        yield _episode(batch, j, f"{path} row {start + j}")
                start += batch.num_rows

    return total, episodes()


@dataclass(frozen=True)
class _ParquetLayout(PublishedLayout):
    """`PublishedLayout` whose required files are a glob, found under ``data/`` or in the root itself."""

    def missing(self, root: Path) -> list[str]:
        return [] if parquet_files(Path(root)) else [f"data/{PATTERN}"]

    def env_name(self, options: dict[str, Any]) -> str:
        super().env_name(options)  # checks the option names
        return f"metaworld-{_wanted_task(options['task'])}"


METAWORLD_PARQUET = register_layout(
    _ParquetLayout(
        name="metaworld_parquet",
        env="metaworld-{task}",
        description=f"Metaworld parquet episodes: data/{PATTERN} with video, states, actions, task",
        required=(f"data/{PATTERN}",),
        read=read,
        options=("task",),
    )
)
