"""Shared machinery for reading published dataset layouts: the layout registry, safe loaders, frame decoding.

A `PublishedLayout` says which files a layout must contain and how to turn it into episodes of our format
(``pixels`` uint8 (T, H, W, 3), ``actions`` (T-1, A), ``proprio`` (T, P), ``state`` (T, S), in the units of our
env of the same name). `jepa_wms.datasets.formats.convert` writes them to a `TrajectoryWriter`.

Published files are read without executing code: ``.pth`` tensors through ``torch.load(weights_only=True)`` and
``.pkl`` lists through an unpickler that only accepts plain containers and numbers.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jepa_wms.datasets.storage import DatasetError

__all__ = [
    "Episode",
    "PublishedLayout",
    "register_layout",
    "layouts",
    "get_layout",
    "episode_file",
    "load_pth",
    "load_plain_pickle",
    "read_video",
    "resize_frames",
]

Episode = dict[str, np.ndarray]


@dataclass(frozen=True)
class PublishedLayout:
    """A published dataset layout we can read.

    Attributes:
        name: registry name, e.g. ``"dino_wm_point_maze"``.
        env: our env the data belongs to (its actions/proprio/state conventions are what ``read`` returns).
        description: one line for ``jepa-wms convert --help`` and error messages.
        required: paths relative to the dataset root that must exist; the first missing ones are named in errors.
        read: ``read(root, **options) -> (num_episodes, iterator of Episode)``.
        env_kwargs: ``env_kwargs(root, **options)`` → constructor kwargs of ``env`` that match the data (besides
            ``img_size``), e.g. the wall position stored with the data.
        options: names of the options ``read`` requires (e.g. ``("task",)`` for a multi-task file); ``env`` may
            refer to them as ``{task}``.
        optional: names of the options ``read`` accepts besides ``options`` (e.g. ``camera`` for robot data).
        resizes: ``read`` takes ``img_size`` and returns frames at that size itself (robot readers crop and
            resize each video as it decodes, so full-resolution episodes are never held in memory).
    """

    name: str
    env: str
    description: str
    required: tuple[str, ...]
    read: Callable[..., tuple[int, Iterator[Episode]]]
    env_kwargs: Callable[..., dict[str, Any]] | None = None
    options: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    resizes: bool = False

    def env_name(self, options: dict[str, Any]) -> str:
        missing = [o for o in self.options if o not in options]
        unknown = sorted(set(options) - set(self.options) - set(self.optional))
        if missing or unknown:
            raise DatasetError(
                f"layout {self.name} takes options {list(self.options)} (optional: {list(self.optional)}); "
                f"missing {missing}, unknown {unknown}"
            )
        return self.env.format(**options)

    def missing(self, root: Path) -> list[str]:
        """Required paths absent under ``root`` (a path may use one ``|`` for alternatives)."""
        return [rel for rel in self.required if not any((root / alt).exists() for alt in rel.split("|"))]

    def check(self, root: Path) -> None:
        missing = self.missing(root)
        if missing:
            raise DatasetError(
                f"{root} is not a {self.name} dataset ({self.description}): missing {', '.join(missing)}"
            )


_LAYOUTS: dict[str, PublishedLayout] = {}


def register_layout(layout: PublishedLayout) -> PublishedLayout:
    if layout.name in _LAYOUTS and _LAYOUTS[layout.name] != layout:
        raise ValueError(f"dataset layout {layout.name!r} is already registered")
    _LAYOUTS[layout.name] = layout
    return layout


def layouts() -> dict[str, PublishedLayout]:
    """All registered layouts by name."""
    return dict(_LAYOUTS)


def get_layout(name: str) -> PublishedLayout:
    if name not in _LAYOUTS:
        raise DatasetError(f"unknown dataset layout {name!r}; expected one of: {', '.join(sorted(_LAYOUTS))}")
    return _LAYOUTS[name]


def episode_file(root: Path, index: int, suffix: str) -> Path:
    """DINO-WM per-trajectory frames, ``obses/episode_007.pth`` (or ``.mp4``); unpadded ``episode_7`` works too."""
    for name in (f"episode_{index:03d}{suffix}", f"episode_{index}{suffix}"):
        path = root / "obses" / name
        if path.exists():
            return path
    expected = root / "obses" / f"episode_{index:03d}{suffix}"
    raise DatasetError(f"missing frames of trajectory {index}: expected {expected}")


def load_pth(path: Path) -> Any:
    """A tensor file (``.pth``) as saved by the original code, loaded without unpickling code."""
    import torch

    from jepa_wms.checkpoint import refused_pickle_reason

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except pickle.UnpicklingError as exc:
        raise DatasetError(
            f"{path}: cannot read as a tensor file ({refused_pickle_reason(exc)}; only tensors and plain containers "
            f"are loaded, never code)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or code-carrying files
        raise DatasetError(f"{path}: cannot read as a tensor file ({type(exc).__name__}: {exc})") from None


_PLAIN_TYPES = {("builtins", n) for n in ("list", "tuple", "dict", "int", "float", "str", "set", "frozenset")}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_TYPES:
            return super().find_class(module, name)
        if module.startswith("numpy") and name in ("dtype", "scalar", "_reconstruct", "ndarray"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain lists/numbers/arrays allowed")


def load_plain_pickle(path: Path) -> Any:
    """A ``.pkl`` holding lists, dicts, numbers, strings or numpy arrays; anything else is refused."""
    try:
        return _PlainUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{path}: not a plain pickle ({exc})") from None


def read_video(source: str | Path | bytes) -> np.ndarray:
    """All frames of an MP4 (path or bytes) as uint8 (T, H, W, 3), decoded with imageio's ffmpeg plugin."""
    import imageio.v3 as iio

    what = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        frames = iio.imread(source, extension=".mp4", index=None)
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for missing or corrupt files
        raise DatasetError(f"{what}: cannot decode video ({type(exc).__name__}: {exc})") from None
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DatasetError(f"{what}: expected RGB video frames (T, H, W, 3), got shape {frames.shape}")
    return frames.astype(np.uint8, copy=False)


def resize_frames(frames: np.ndarray, size: int | None) -> np.ndarray:
    """Square ``size``×``size`` frames (antialiased area-style resize); ``None`` or the same size is a no-op."""
    if size is None or frames.shape[1:3] == (size, size):
        return frames
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
