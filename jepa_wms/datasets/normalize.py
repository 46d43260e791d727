"""Per-dimension z-score normalisation of actions and proprioception, stored with the dataset."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Normalizer"]

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

# Dimensions that never vary in the data (e.g. a fixed gripper) would divide by zero without a floor.
STD_FLOOR = 1e-6


class Normalizer:
    """``(x - mean) / std`` over the last dimension, for numpy arrays and torch tensors alike.

    Args:
        mean: (D,) per-dimension mean.
        std: (D,) per-dimension standard deviation, all > 0.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"Normalizer: mean and std must be 1-D of equal shape, got {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"Normalizer: expected finite mean and finite std > 0, got {mean=} {std=}")
        self.mean = mean
        self.std = std

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        """Mean 0, std 1: values pass unchanged (data taken in its own units)."""
        return cls(np.zeros(dim), np.ones(dim))

    @classmethod
    def fit(cls, array: np.ndarray) -> Normalizer:
        """Statistics of (N, D) samples; std is floored at 1e-6 so constant dims stay finite."""
        arr = np.asarray(array, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"Normalizer.fit: expected a non-empty (N, D) array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("Normalizer.fit: the array holds NaN or inf; drop those rows first")
        return cls(arr.mean(axis=0), np.maximum(arr.std(axis=0), STD_FLOOR))

    def _params(self, x: ArrayT) -> tuple[Any, Any]:
        if x.shape[-1] != self.dim:
            raise ValueError(f"Normalizer: last dim of input is {x.shape[-1]}, expected {self.dim}")
        # torch is looked up, not imported: data-collection workers never load it (saves ~2 s per process),
        # and an input can only be a tensor if torch is already imported.
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.float32
            return (
                torch.as_tensor(self.mean, dtype=dtype, device=x.device),
                torch.as_tensor(self.std, dtype=dtype, device=x.device),
            )
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return self.mean.astype(dtype), self.std.astype(dtype)

    def normalize(self, x: ArrayT) -> ArrayT:
        """(..., D) raw values -> (..., D) z-scores, same type (and float dtype) as the input."""
        mean, std = self._params(x)
        return (x - mean) / std

    def denormalize(self, x: ArrayT) -> ArrayT:
        """(..., D) z-scores -> (..., D) raw values."""
        mean, std = self._params(x)
        return x * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        missing = {"mean", "std"} - set(data)
        if missing:
            raise ValueError(f"Normalizer.from_dict: missing key(s) {sorted(missing)}; expected 'mean' and 'std'")
        return cls(np.asarray(data["mean"]), np.asarray(data["std"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalizer):
            return NotImplemented
        return np.array_equal(self.mean, other.mean) and np.array_equal(self.std, other.std)

    def __repr__(self) -> str:
        return f"Normalizer(mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"
