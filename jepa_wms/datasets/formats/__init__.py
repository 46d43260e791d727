"""Readers for published dataset layouts and `convert`, which turns them into our HDF5 trajectory format.

Layouts (``jepa-wms convert --list``): DINO-WM's ``wall_single/``, ``point_maze/`` and ``pusht_noise/`` folders,
the Metaworld parquet episodes, and real-robot data (DROID, Franka HDF5, LeRobot, RoboCasa HDF5). Each reader
module registers its `PublishedLayout` on import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from jepa_wms.datasets.formats.base import (
    Episode,
    PublishedLayout,
    get_layout,
    layouts,
    load_plain_pickle,
    load_pth,
    read_video,
    register_layout,
    resize_frames,
)
from jepa_wms.datasets.storage import DatasetError, TrajectoryWriter, resolve_path

from . import (
    dino_wm_point_maze,  # noqa: F401  (registers its layout)
    dino_wm_pusht,  # noqa: F401  (registers its layout)
    dino_wm_wall,  # noqa: F401  (registers its layout)
    droid_raw,  # noqa: F401  (registers its layout)
    franka_h5,  # noqa: F401  (registers its layout)
    lerobot,  # noqa: F401  (registers its layout)
    metaworld_parquet,  # noqa: F401  (registers its layout)
    robocasa_hdf5,  # noqa: F401  (registers its layout)
)

__all__ = [
    "Episode",
    "PublishedLayout",
    "convert",
    "detect_layout",
    "get_layout",
    "layouts",
    "load_plain_pickle",
    "load_pth",
    "read_video",
    "register_layout",
    "resize_frames",
]


def detect_layout(root: str | os.PathLike) -> PublishedLayout:
    """The registered layout whose required files are all present under ``root``.

    When none matches, the error names, for the closest layout (fewest missing files), what is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    candidates = sorted(layouts().values(), key=lambda lay: (len(lay.missing(root)), lay.name))
    complete = [lay for lay in candidates if not lay.missing(root)]
    # point_maze/ holds every file wall_single/ needs plus seq_lengths.pth: the more specific layout wins.
    complete = [a for a in complete if not any(set(a.required) < set(b.required) for b in complete)]
    if len(complete) == 1:
        return complete[0]
    if len(complete) > 1:
        names = ", ".join(lay.name for lay in complete)
        raise DatasetError(f"{root} matches several layouts ({names}); pick one with layout=")
    closest = candidates[0]
    raise DatasetError(
        f"{root}: unrecognised dataset layout. Closest is {closest.name} ({closest.description}), which is "
        f"missing {', '.join(closest.missing(root))}. Known layouts: {', '.join(sorted(layouts()))}"
    )


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    layout: str | None = None,
    img_size: int | None = None,
    max_episodes: int | None = None,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """Convert the published dataset at ``src`` into ``dst/trajectories.h5``.

    Args:
        src: root folder of the published dataset (or the parquet folder for Metaworld).
        dst: output dataset folder or ``.h5`` path.
        layout: layout name; detected from the files when omitted.
        img_size: resize frames to ``img_size``² (e.g. 64 for CPU training); default keeps the published size.
        max_episodes: convert only the first episodes (quick experiments, tests).
        options: layout options, e.g. ``{"task": "reach"}`` for the multi-task Metaworld parquet files.
        overwrite: replace an existing output.
    """
    root = Path(src)
    lay = get_layout(layout) if layout else detect_layout(root)
    lay.check(root)
    options = dict(options or {})
    env = lay.env_name(options)
    total, episodes = lay.read(root, img_size=img_size, **options) if lay.resizes else lay.read(root, **options)
    if max_episodes is not None:
        total = min(total, max_episodes)
    out = resolve_path(dst)
    bar = tqdm(total=total, desc=f"convert {lay.name}", unit="ep", disable=not show_progress)
    writer_kwargs = {"env": env, "collector": {"source": lay.name, "path": str(root.resolve()), **options}}
    with TrajectoryWriter(out, env_kwargs=None, overwrite=overwrite, **writer_kwargs) as writer:
        size = None
        for i, ep in enumerate(episodes):
            if i >= total:
                break
            pixels = resize_frames(ep["pixels"], img_size)
            size = pixels.shape[1]
            writer.add_episode(pixels, ep["actions"], ep["proprio"], ep["state"])
            bar.update()
        extra = lay.env_kwargs(root, **options) if lay.env_kwargs else {}
        writer.set_env_kwargs({**extra, "img_size": int(size or 0)})
    bar.close()
    return out
