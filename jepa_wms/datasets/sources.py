"""What ``jepa-wms train --data DIR`` reads: our HDF5 trajectory file, or a robot video folder without conversion.

`open_dataset` applies ``data.layout`` and ``data.reader_options`` (``config/schema.py``): a folder holding
``trajectories.h5`` (or an ``.h5`` path) is a `TrajectoryStore`; a DROID-raw or LeRobot (video) folder is a
`VideoStore` (``video_windows.py``), which answers everything training asks a store — env, episodes, the
action/proprio/state rows and their stats, the identity a resume compares — with what `jepa-wms convert` would have
written, and decodes frames only when a window needs them. `WindowDataset` reads either the same way.

A video folder's windows are consecutive kept frames (every ⌈video_fps/4⌉-th video frame) with one 7-D pose-delta
action between them, so windows must use ``frameskip`` 1. Its frames are decoded on demand: neither a latent cache
(``data.latents``: ``auto`` means off) nor ``data.preload`` applies; convert the folder for those.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

from jepa_wms.config import ConfigError, DataConfig
from jepa_wms.datasets.normalize import Normalizer
from jepa_wms.datasets.storage import DatasetError, TrajectoryStore, resolve_path
from jepa_wms.datasets.video_clips import SOURCES
from jepa_wms.datasets.video_windows import VideoStore

__all__ = ["TrainingData", "VIDEO_LAYOUTS", "open_dataset", "training_action_stats"]

TrainingData: TypeAlias = TrajectoryStore | VideoStore
VIDEO_LAYOUTS = tuple(sorted(SOURCES))


def training_action_stats(data: DataConfig, store: TrainingData) -> Normalizer:
    """What actions are normalised by in training: the data's stats, or identity with ``data.normalize_actions``
    false (the model then takes the data's own units)."""
    return store.action_stats if data.normalize_actions else Normalizer.identity(store.action_dim)


def open_dataset(data_dir: str | os.PathLike, data: DataConfig, *, img_size: int, frameskip: int) -> TrainingData:
    """The dataset training reads from ``data_dir``, opened without its pixels (frames are read per window).

    Args:
        data_dir: a dataset folder (or ``.h5`` file) in our format, or a ``droid_raw``/``lerobot`` folder.
        data: the ``data`` section: ``layout`` and ``reader_options`` pick and configure the reader; a video
            folder refuses a latent cache path and ``preload: true``.
        img_size: the frame side of a video folder's frames (the encoder's input size).
        frameskip: env steps between a window's kept frames; a video folder takes 1 only.
    """
    path = Path(data_dir)
    h5 = resolve_path(path)
    layout = data.layout
    if layout == "auto":
        layout = "hdf5" if h5.is_file() or not path.is_dir() else _detect(path, h5)
    if layout == "hdf5":
        if data.reader_options:
            raise ConfigError(
                f"config key 'data.reader_options' applies to video folders ({', '.join(VIDEO_LAYOUTS)}), not to "
                f"the HDF5 dataset {h5}; remove it"
            )
        return TrajectoryStore(path, preload=False)
    what = f"{path} is a {layout} video folder"
    if frameskip != 1:
        raise ConfigError(
            f"config key 'data.frameskip' is {frameskip}, but {what}: its windows are consecutive kept frames "
            f"(every ⌈video_fps/4⌉-th video frame, one pose-delta action between them); set data.frameskip=1"
        )
    if data.latents not in ("auto", "off"):
        raise ConfigError(
            f"config key 'data.latents' is {data.latents!r}, but {what}, whose frames are decoded on demand: it has "
            f"no latent cache; use data.latents=auto or off, or `jepa-wms convert` it and `jepa-wms encode` the result"
        )
    if data.preload == "true":
        raise ConfigError(
            f"config key 'data.preload' is 'true', but {what}, whose frames are decoded on demand, never loaded "
            f"into RAM; use data.preload=auto or false, or `jepa-wms convert` it first"
        )
    try:
        return VideoStore(path, img_size=img_size, layout=layout, **data.reader_options)
    except DatasetError as exc:
        if str(exc).startswith(f"layout {layout} takes options"):  # an option the layout does not read
            raise ConfigError(f"config key 'data.reader_options': {exc}") from None
        raise


def _detect(path: Path, h5: Path) -> str:
    """The video layout of the folder ``path``, or an error that names both formats training reads."""
    from jepa_wms.datasets.formats import detect_layout

    try:
        layout = detect_layout(path).name
    except DatasetError as exc:
        raise FileNotFoundError(
            f"no trajectory file at {h5}, and {path} is not a video folder training reads directly "
            f"({', '.join(VIDEO_LAYOUTS)}): {exc}"
        ) from None
    if layout not in SOURCES:
        raise DatasetError(
            f"{path} is a {layout} dataset, which training does not read directly (it reads our HDF5 and the video "
            f"layouts {', '.join(VIDEO_LAYOUTS)}): `jepa-wms convert` it first"
        )
    return layout
