"""Reading official foundation-encoder weight files and loading them strictly, with errors that say what is wrong.

Shared by the DINOv3 and V-JEPA loaders: a file is resolved (local path or URL, see ``resolve_weights``), read
with ``torch.load(weights_only=True)`` (memory-mapped when the format allows, so a 16 GB V-JEPA 2 training
checkpoint does not have to fit in RAM next to the model), and its tensors must match the model's state dict
key for key and shape for shape before anything is copied.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jepa_wms.checkpoint import refused_pickle_reason
from jepa_wms.weights import resolve_weights

__all__ = ["is_flat_state_dict", "load_state_strictly", "read_weight_file", "state_dict_mismatch"]


def read_weight_file(spec: str | os.PathLike) -> tuple[Path, Any]:
    """Resolve ``spec`` to a local file and unpickle it safely; returns ``(path, object)``.

    Raises WeightsUnavailableError (a FileNotFoundError) when the file is neither on disk nor downloadable, and
    ValueError naming the file when it cannot be read with ``weights_only=True``.
    """
    path = resolve_weights(spec)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            # Files written with the legacy (pre-1.6, non-zip) serializer cannot be memory-mapped.
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: not a readable PyTorch weight file with weights_only=True ({refused_pickle_reason(exc)}); "
            f"only tensors and plain containers are loaded, never code"
        ) from exc
    except (RuntimeError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable PyTorch weight file (truncated or corrupt?): {exc}") from exc
    return path, obj


def is_flat_state_dict(obj: Any) -> bool:
    """True for a non-empty ``{str: Tensor}`` mapping."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _first(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


def state_dict_mismatch(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], ignore: Iterable[str] = ()
) -> list[str]:
    """Human-readable differences between a model's state dict and a file's: missing keys, unexpected keys and
    shape mismatches (each list cut after a few entries); empty when the file fits exactly. ``ignore`` names file
    keys that may be present without the model having them."""
    ignored = set(ignore)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own) - ignored)
    wrong = [
        f"{k} {tuple(state[k].shape)} vs expected {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    return [
        f"{label}: {_first(keys)}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong))
        if keys
    ]


def load_state_strictly(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str | Path,
    description: str,
    ignore: Iterable[str] = (),
) -> None:
    """Copy ``state`` into ``model`` with ``strict=True`` after checking keys and shapes.

    ``source`` (the file) and ``description`` (the architecture, e.g. "dinov3_vitl16 (D=1024, depth=24)") go into
    the ValueError raised on any mismatch; keys listed in ``ignore`` are dropped from ``state`` first.
    """
    ignored = set(ignore)
    problems = state_dict_mismatch(model.state_dict(), state, ignored)
    if problems:
        raise ValueError(f"{source}: does not fit {description}; " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k not in ignored}, strict=True)
