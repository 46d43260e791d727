"""Pictures people would rather look at than numbers: agent-vs-goal videos, planning-cost plots, decoded rollouts
side by side and their per-step errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _upscale(frame: np.ndarray, min_size: int = 192) -> np.ndarray:
    factor = max(1, -(-min_size // frame.shape[0]))
    return frame.repeat(factor, 0).repeat(factor, 1)


def tile_row(frames: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Frames of one size left to right with white gaps, upscaled (nearest) so small renders stay visible."""
    tiles = [_upscale(f) for f in frames]
    sep = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [sep, tile]
    return np.concatenate(row, axis=1)


def side_by_side(frame: np.ndarray, goal: np.ndarray, gap: int = 4) -> np.ndarray:
    """Agent frame | white gap | goal frame, upscaled (nearest) so small renders stay visible."""
    return tile_row([frame, goal], gap)


def write_frames(path: str | Path, images: Sequence[np.ndarray], fps: int = 8) -> Path:
    """Write uint8 images (H, W, 3) as GIF or MP4 (by suffix); the last one is held for a second so the outcome
    can be read."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = list(images) + [images[-1]] * fps
    if path.suffix == ".mp4":
        try:
            imageio.mimwrite(path, images, fps=fps, macro_block_size=1)
        except (ImportError, ValueError, RuntimeError) as exc:
            raise RuntimeError(f"writing {path} needs ffmpeg: pip install 'jepa-wms[video]' ({exc})") from exc
    else:
        imageio.mimwrite(path, images, duration=1000 / fps, loop=0)
    return path


def write_video(path: str | Path, frames: Sequence[np.ndarray], goal: np.ndarray, fps: int = 8) -> Path:
    """Write the episode as GIF or MP4 (by suffix): each frame shows the agent (left) next to the goal (right)."""
    return write_frames(path, [side_by_side(f, goal) for f in frames], fps)


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    """A headless matplotlib figure and its axes (imported here: only plotting needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, dpi=110)


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_step_errors(path: str | Path, series: dict[str, Sequence[float]], ylabel: str, title: str) -> Path:
    """One line per named series of per-rollout-step errors (step 1 = the first prediction)."""
    fig, ax = _figure((6, 4))
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
    ax.set_xlabel("rollout step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_cost_history(path: str | Path, histories: np.ndarray, title: str = "") -> Path:
    """Planning cost of the planner's mean over iterations (first plan of each episode): median, quartiles and a
    few individual episodes."""
    fig, ax = _figure((6, 4))
    iters = np.arange(1, histories.shape[1] + 1)
    for h in histories[:8]:
        ax.plot(iters, h, color="0.75", lw=0.8)
    q25, q50, q75 = np.percentile(histories, [25, 50, 75], axis=0)
    ax.fill_between(iters, q25, q75, alpha=0.3, label="interquartile range")
    ax.plot(iters, q50, lw=2, label=f"median over {len(histories)} episodes")
    ax.set_yscale("log")
    ax.set_xlabel("planner iteration")
    ax.set_ylabel("latent cost of the plan")
    ax.set_title(title or "planning cost over iterations")
    ax.legend()
    return _save(fig, path)


def plot_trajectories(
    path: str | Path, episodes: Sequence[dict], background: np.ndarray | None = None, extent: float | None = None
) -> Path:
    """2-D state paths (first two state dims) of a few episodes over an optional rendering of the scene that spans
    [0, extent]² in state units: start ○, goal ★, green = success, red = failure."""
    fig, ax = _figure((5, 5))
    for ep in episodes:
        xy = np.asarray(ep["states"])[:, :2]
        color = "tab:green" if ep["success"] else "tab:red"
        ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1)
        ax.plot(*xy[0], "o", color=color, ms=4)
        ax.plot(*np.asarray(ep["goal"])[:2], "*", color=color, ms=9)
    if background is not None and extent:
        # Image convention: state y grows downwards like image rows.
        ax.imshow(background, extent=(0, extent, extent, 0), alpha=0.35, zorder=0)
    ax.set_aspect("equal")
    ax.set_title("episode paths (○ start, ★ goal)")
    return _save(fig, path)
