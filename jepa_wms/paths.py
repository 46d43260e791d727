"""Default locations. Relative paths are used as given, unless the matching environment variable is set:
``DATASET_ROOT`` for datasets, ``CHECKPOINT_ROOT`` for training runs and checkpoints (``PRETRAINED_CKPT_ROOT`` is
reserved for published weights). Absolute paths are never rewritten."""

from __future__ import annotations

import os
from pathlib import Path


def _under(env_var: str, path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    root = os.environ.get(env_var)
    return Path(root).expanduser() / p if root and not p.is_absolute() else p


def dataset_path(path: str | os.PathLike) -> Path:
    return _under("DATASET_ROOT", path)


def checkpoint_path(path: str | os.PathLike) -> Path:
    return _under("CHECKPOINT_ROOT", path)
