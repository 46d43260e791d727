"""Checkpoint files: atomic writes, ``weights_only`` loads, strict state-dict loads, and errors that say which file
is wrong and why.

A leaf: it imports nothing else of jepa-wms, so every layer may read and write files through it. What a world-model
checkpoint holds (its schema) is in ``saved_model.py``; here a checkpoint is any dict of tensors and primitive types
with the format header ``format``, ``format_version`` and ``model_type``.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = "jepa-wms-checkpoint"
CHECKPOINT_VERSION = 1
MODEL_TYPE = "jepa_wm"


class CheckpointError(ValueError):
    """A file that is not a usable jepa-wms checkpoint, or a weight file that does not fit the requested model."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file ``.NAME.*.tmp`` in the same folder, fsync, then rename: readers see the old or the
    new file. The file gets the mode ``open`` would give it (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would make results and checkpoints unreadable to the rest of a group.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporaries that ``atomic_write_bytes`` calls killed mid-write left in ``folder`` (each as large
    as its file). Only while holding the folder's lock (``runlock.folder_lock``): a live writer's would go too."""
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Save ``payload`` (model/optimizer state, config, counters) atomically with the format header."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "model_type": MODEL_TYPE,
            **payload,
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def refused_pickle_reason(exc: pickle.UnpicklingError) -> str:
    """What torch's ``weights_only`` unpickler refused, on one line: the global the file asks for (e.g.
    ``builtins.exec``) or the opcode. Torch's own message advises re-loading with ``weights_only=False``, which would
    run whatever the file holds, so it is never passed on."""
    text = str(exc)
    found = re.search(r"GLOBAL (\S+)", text)  # not allowed, or from a blocked module such as os
    if found:
        return f"global {found.group(1)}"
    lines = (line.replace("Weights only load failed.", "").strip() for line in text.splitlines())
    # What is left once torch's advice, its issue request and its documentation link are dropped.
    reason = [
        line
        for line in lines
        if line and "weights_only" not in line and not line.startswith(("Please file an issue", "Check the doc"))
    ]
    return reason[0] if reason else type(exc).__name__


def safe_load(path: Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers, never code. ``mmap`` maps the tensors from
    the file instead of reading them (a 16 GB training checkpoint need not fit in RAM next to the model); files of the
    legacy (pre-1.6, non-zip) format cannot be mapped and are read.

    Raises CheckpointError on one line naming the file: what the unpickler refused, or that it is not readable.
    """
    try:
        try:
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not mmap or "mmap" not in str(exc):
                raise
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} was refused ({refused_pickle_reason(exc)}): only tensors and plain containers are loaded, "
            f"never code"
        ) from exc
    except Exception as exc:  # the unpickler raises many types (KeyError, EOFError, RuntimeError, ...) on junk
        raise CheckpointError(
            f"{path} is not a readable torch file (truncated or corrupt?): {str(exc).splitlines()[0]}"
        ) from exc


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a jepa-wms checkpoint (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a jepa-wms checkpoint: expected a dict with format={CHECKPOINT_FORMAT!r}, found {keys}"
        )
    if ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format_version {ckpt.get('format_version')}, "
            f"this jepa-wms reads {CHECKPOINT_VERSION}"
        )
    for key in ("model_type", "config", "model"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks the key '{key}'")
    if ckpt["model_type"] != MODEL_TYPE:
        raise CheckpointError(f"checkpoint {path} holds a {ckpt['model_type']!r} model, expected {MODEL_TYPE!r}")
    return ckpt


def _first(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


def load_state_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str | Path,
    description: str = "this model",
    ignore: Iterable[str] = (),
) -> None:
    """Copy ``state`` into ``module`` with ``strict=True`` after checking keys and shapes; the one strict load for
    checkpoints and weight files alike.

    On any mismatch a CheckpointError names ``source`` (the file), ``description`` (the architecture) and the first
    missing keys, unexpected keys and shape mismatches. Keys in ``ignore`` may be in ``state`` without ``module``
    having them (they are dropped).
    """
    ignored = set(ignore)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own) - ignored)
    wrong = [
        f"{k} {tuple(state[k].shape)} vs expected {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        f"{label}: {_first(keys)}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{source}: does not fit {description}; " + "; ".join(problems))
    module.load_state_dict({k: v for k, v in state.items() if k not in ignored}, strict=True)
