"""The one door for weight files from outside: official foundation-encoder files and the released models' original
checkpoints.

A file is resolved (local path or URL, see ``resolve_weights``) and read with ``checkpoint.safe_load``
(``weights_only``, memory-mapped when the format allows, so a 16 GB V-JEPA 2 training checkpoint does not have to fit
in RAM next to the model). ``load_weights`` then picks the state dict out of it and loads it with
``checkpoint.load_state_strict``: every key and shape must match the model before anything is copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jepa_wms.checkpoint import CheckpointError, load_state_strict, safe_load
from jepa_wms.weights import resolve_weights

__all__ = ["is_flat_state_dict", "load_weights", "read_weight_file"]


def read_weight_file(spec: str | os.PathLike) -> tuple[Path, Any]:
    """Resolve ``spec`` to a local file and unpickle it safely; returns ``(path, object)``.

    Raises WeightsUnavailableError (a FileNotFoundError) when the file is neither on disk nor downloadable, and
    CheckpointError (a ValueError) naming the file when it cannot be read with ``weights_only=True``.
    """
    path = resolve_weights(spec)
    return path, safe_load(path, mmap=True)


def is_flat_state_dict(obj: Any) -> bool:
    """True for a non-empty ``{str: Tensor}`` mapping."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def load_weights(
    model: nn.Module,
    spec: str | os.PathLike,
    description: str,
    layout: str,
    *,
    entry: str | None = None,
    rename: Callable[[str], str] | None = None,
    ignore: Iterable[str] = (),
) -> Path:
    """Load the weight file ``spec`` into ``model`` strictly; returns the local file.

    The state dict is the file's ``entry`` when it has one (a training checkpoint), else the whole file, which must
    then be a flat ``{name: tensor}`` dict; ``layout`` says what the family's official files hold, for the error.
    ``rename`` maps the file's keys to the model's (two keys may not become one); keys in ``ignore`` may be in the
    file without the model having them. Errors name the file and ``description`` (the architecture).
    """
    path, obj = read_weight_file(spec)
    source = str(path)
    if entry is not None and isinstance(obj, Mapping) and entry in obj:
        obj, source = obj[entry], f"{path} [{entry}]"
        if not is_flat_state_dict(obj):
            raise CheckpointError(f"{path}: entry {entry!r} is not a state dict of tensors")
    elif not is_flat_state_dict(obj):
        found = sorted(str(k) for k in obj) if isinstance(obj, Mapping) else type(obj).__name__
        no_entry = f"no {entry!r} entry and " if entry is not None else ""
        raise CheckpointError(f"{path}: {no_entry}not a flat state dict of tensors (found {found}); {layout}")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        new = key if rename is None else rename(key)
        if new in state:
            raise CheckpointError(f"{source}: two keys become {new!r} once renamed to this model's names")
        state[new] = value
    load_state_strict(model, state, source, description, ignore)
    return path
