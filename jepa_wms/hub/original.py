"""Reading checkpoints in the original JEPA-WMs layout and renaming them to this package's modules.

The original training script saved ``{"predictor": <DDP state dict>, "opt", "scaler", "epoch"}`` plus, when they
existed outside the predictor, ``"action_encoder"`` (DINO-WM) and ``"proprio_encoder"`` (JEPA-WM and DINO-WM
sim models) as ``Conv1d(kernel 1)`` modules named ``patch_embed``. Encoder weights were never saved.

Differences handled here (everything else already has the official names in our modules):
- ``module.`` is stripped only as a key *prefix* (the original replaced the substring anywhere in a key);
- ``state_encoder.*`` (V-JEPA-2-AC open-source release) is the proprio encoder;
- DINO-WM's per-block causal-mask buffers ``transformer.layers.i.0.bias`` are dropped (we build masks per call);
- ``Conv1d`` weights ``(out, in, 1)`` become ``Linear`` weights ``(out, in)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..encoders.loading import read_weight_file

__all__ = ["OriginalCheckpoint", "detect_predictor_type", "read_original_checkpoint"]

_MASK_BUFFER = re.compile(r"^transformer\.layers\.\d+\.0\.bias$")
# Keys that only one predictor family has: how a wrong model's checkpoint is recognised.
_FAMILY_MARKERS = {
    "dino_wm": "pos_embedding",
    "adaln": "predictor_blocks.0.adaLN_modulation.1.weight",
    "vjepa2_ac": "predictor_blocks.0.attn.qkv.weight",
}


class OriginalCheckpoint:
    """The tensors of one original checkpoint, renamed: ``predictor``, ``action_encoder``, ``proprio_encoder``
    (the last two may be empty) and the stored ``epoch``."""

    def __init__(
        self,
        path: Path,
        predictor: dict[str, torch.Tensor],
        action_encoder: dict[str, torch.Tensor],
        proprio_encoder: dict[str, torch.Tensor],
        epoch: int | None,
    ) -> None:
        self.path = path
        self.predictor = predictor
        self.action_encoder = action_encoder
        self.proprio_encoder = proprio_encoder
        self.epoch = epoch

    @property
    def predictor_type(self) -> str:
        return detect_predictor_type(self.predictor, self.path)


def _strip_prefix(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def _tensor_dict(value: object, path: Path, entry: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise CheckpointError(f"{path}: entry '{entry}' must be a state dict of tensors, got {type(value).__name__}")
    return {_strip_prefix(str(k)): v for k, v in value.items()}


def _conv1d_to_linear(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``patch_embed.{weight (out, in, 1), bias}`` -> ``{weight (out, in), bias}``."""
    out = {}
    for key, value in state.items():
        name = key.removeprefix("patch_embed.")
        if name == key:
            raise CheckpointError(
                f"unexpected key {key!r} in a separate action/proprio encoder (expected patch_embed.weight/bias; "
                "the optional MLP variant was not used by any released model and is not supported)"
            )
        out[name] = value.squeeze(-1) if name == "weight" and value.dim() == 3 else value
    return out


def detect_predictor_type(state: Mapping[str, torch.Tensor], source: object = "checkpoint") -> str:
    """``adaln`` | ``dino_wm`` | ``vjepa2_ac`` from the predictor's keys."""
    if _FAMILY_MARKERS["dino_wm"] in state:
        return "dino_wm"
    if _FAMILY_MARKERS["adaln"] in state:
        return "adaln"
    if _FAMILY_MARKERS["vjepa2_ac"] in state:
        return "vjepa2_ac"
    shown = ", ".join(sorted(state)[:5])
    raise CheckpointError(
        f"{source}: the predictor matches none of the known families (AdaLN, DINO-WM, V-JEPA-2-AC); first keys: {shown}"
    )


def read_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Load a ``.pth.tar`` of the original layout safely (``weights_only``, through ``encoders.loading``) and rename
    its keys.

    Raises FileNotFoundError for a missing file and CheckpointError for a truncated or corrupt file, a pickle that
    holds code or arbitrary objects, or a dict without a ``predictor`` entry.
    """
    path, raw = read_weight_file(path)
    if not isinstance(raw, Mapping) or "predictor" not in raw:
        found = sorted(map(str, raw))[:8] if isinstance(raw, Mapping) else type(raw).__name__
        raise CheckpointError(
            f"{path} is not an original JEPA-WMs checkpoint: expected a dict with a 'predictor' entry "
            f"(and optionally 'action_encoder', 'proprio_encoder'), found {found}"
        )
    predictor = _tensor_dict(raw["predictor"], path, "predictor")
    predictor = {k: v for k, v in predictor.items() if not _MASK_BUFFER.match(k)}
    for key in [k for k in predictor if k.startswith("state_encoder.")]:
        predictor["proprio_encoder." + key.removeprefix("state_encoder.")] = predictor.pop(key)
    if any(k.startswith("extrinsics_encoder.") for k in predictor):
        raise CheckpointError(f"{path}: predictors with camera extrinsics tokens are not supported")
    action = _conv1d_to_linear(_tensor_dict(raw.get("action_encoder", {}), path, "action_encoder"))
    proprio = _conv1d_to_linear(_tensor_dict(raw.get("proprio_encoder", {}), path, "proprio_encoder"))
    epoch = raw.get("epoch")
    return OriginalCheckpoint(path, predictor, action, proprio, int(epoch) if isinstance(epoch, int) else None)
