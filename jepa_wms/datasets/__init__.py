"""Trajectory datasets: collection, the HDF5 on-disk format, normalisation, training windows and the latent cache
format (``training.encode`` writes caches: encoding needs an encoder).

Names load lazily (PEP 562) so that data-collection worker processes, which import
`jepa_wms.datasets.collect`, do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "collect": "collect",
    "collect_episode": "collect",
    "collect_for_config": "collect",
    "collect_with": "collect",
    "Normalizer": "normalize",
    "AR1RandomWalk": "policies",
    "Policy": "policies",
    "default_policy": "policies",
    "policy_names": "policies",
    "FILENAME": "storage",
    "FORMAT": "storage",
    "FORMAT_VERSION": "storage",
    "DatasetError": "storage",
    "TrajectoryStore": "storage",
    "TrajectoryWriter": "storage",
    "resolve_path": "storage",
    "WindowDataset": "windows",
    "VideoStore": "video_windows",
    "VideoWindowDataset": "video_windows",
    "LatentCache": "latents",
    "LatentCacheError": "latents",
    "split_episodes": "windows",
}

__all__ = [
    "AR1RandomWalk",
    "DatasetError",
    "FILENAME",
    "FORMAT",
    "FORMAT_VERSION",
    "LatentCache",
    "LatentCacheError",
    "Normalizer",
    "Policy",
    "TrajectoryStore",
    "TrajectoryWriter",
    "VideoStore",
    "VideoWindowDataset",
    "WindowDataset",
    "collect",
    "collect_episode",
    "collect_for_config",
    "collect_with",
    "default_policy",
    "policy_names",
    "resolve_path",
    "split_episodes",
]

if TYPE_CHECKING:
    from jepa_wms.datasets.collect import collect, collect_episode, collect_for_config, collect_with
    from jepa_wms.datasets.latents import LatentCache, LatentCacheError
    from jepa_wms.datasets.normalize import Normalizer
    from jepa_wms.datasets.policies import AR1RandomWalk, Policy, default_policy, policy_names
    from jepa_wms.datasets.storage import (
        FILENAME,
        FORMAT,
        FORMAT_VERSION,
        DatasetError,
        TrajectoryStore,
        TrajectoryWriter,
        resolve_path,
    )
    from jepa_wms.datasets.video_windows import VideoStore, VideoWindowDataset
    from jepa_wms.datasets.windows import WindowDataset, split_episodes


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jepa_wms.datasets' has no attribute {name!r}")
    loaded = importlib.import_module(f"jepa_wms.datasets.{module}")
    # Importing the submodule `collect` binds the package attribute `collect` to it; rebinding every export of the
    # module keeps `jepa_wms.datasets.collect` the function whichever export was asked for first.
    for export, source in _EXPORTS.items():
        if source == module:
            globals()[export] = getattr(loaded, export)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
