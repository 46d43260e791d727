"""Training windows: T frames ``frameskip`` env steps apart, with the actions between them, as torch batches.

A window (episode e, start t) keeps frames t, t + k, ..., t + (T-1)·k (k = frameskip) and, between kept
frames j and j+1, the k raw env actions taken in between, z-normalised and concatenated in time order
(one model action of width k·A). Only the window's own frames are read, never the whole episode. With a latent
cache (see ``latents.py``) a window carries its frames' cached encoder tokens instead of their pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from jepa_wms.datasets.normalize import Normalizer
from jepa_wms.datasets.storage import TrajectoryStore

if TYPE_CHECKING:
    from jepa_wms.datasets.latents import LatentCache
    from jepa_wms.datasets.video_windows import VideoStore

__all__ = ["WindowDataset", "split_episodes"]


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random split of episode ids into (train_ids, val_ids), each sorted; val gets at least one episode.

    Splitting by episode, not by window, keeps overlapping windows of one episode out of both sets.
    """
    if num_episodes < 2:
        raise ValueError(f"split_episodes: need at least 2 episodes to split, got {num_episodes}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"split_episodes: val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(num_episodes)
    n_val = min(max(1, round(val_fraction * num_episodes)), num_episodes - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class WindowDataset:
    """Every window of ``num_frames`` frames, ``frameskip`` steps apart, inside the chosen episodes.

    Args:
        store: the trajectories: our HDF5 file, or a robot video folder read as one (`VideoStore`).
        num_frames: T, frames per window (>= 1).
        frameskip: k, env steps between consecutive kept frames (>= 1).
        episodes: episode ids to draw windows from (default: all).
        latents: a complete latent cache of ``store``; batches then hold ``latents`` instead of ``pixels``.
        pixels: False leaves frames out of the batches entirely (a state-encoder model reads only ``state``).
        action_stats: what actions are normalised by (default the store's; a model's own stats when it takes
            them raw, ``data.normalize_actions=false``).
    """

    def __init__(
        self,
        store: TrajectoryStore | VideoStore,
        num_frames: int,
        frameskip: int,
        episodes: Sequence[int] | np.ndarray | None = None,
        latents: LatentCache | None = None,
        pixels: bool = True,
        action_stats: Normalizer | None = None,
    ):
        if num_frames < 1 or frameskip < 1:
            raise ValueError(f"WindowDataset: need num_frames >= 1 and frameskip >= 1, got {num_frames}, {frameskip}")
        if latents is not None and (latents.shape[0] != store.num_frames or not latents.complete):
            raise ValueError(
                f"WindowDataset: latent cache {latents.folder} ({latents.frames_done}/{latents.shape[0]} frames "
                f"done) does not cover the {store.num_frames} frames of {store.path}"
            )
        self.store = store
        self.action_stats = store.action_stats if action_stats is None else action_stats
        self.latents = latents
        self.pixels = bool(pixels)
        self.num_frames = int(num_frames)
        self.frameskip = int(frameskip)
        ids = np.arange(store.num_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= store.num_episodes)):
            raise ValueError(
                f"WindowDataset: episode ids must be in [0, {store.num_episodes}) for {store.path}, got {ids}"
            )
        self.episodes = ids
        span = (self.num_frames - 1) * self.frameskip  # a window covers frames t .. t + span
        counts = np.maximum(store.episode_lengths[ids] - span, 0)
        # Global index of each window's first frame; windows end at or before the episode's last frame,
        # so the NaN action stored on that last frame is never used.
        self._first = np.concatenate(
            [store.episode_starts[e] + np.arange(n) for e, n in zip(ids.tolist(), counts.tolist(), strict=True)]
            or [np.zeros(0, dtype=np.int64)]
        ).astype(np.int64)
        if len(self._first) == 0:
            raise ValueError(
                f"WindowDataset: no window of {num_frames} frames with frameskip {frameskip} "
                f"(span {span + 1} frames) fits in the selected episodes of {store.path} (longest has "
                f"{int(store.episode_lengths[ids].max()) if ids.size else 0} frames)"
            )
        self._frame_offsets = np.arange(self.num_frames) * self.frameskip  # (T,)
        self._action_offsets = np.arange(span)  # ((T-1)·k,)

    def __len__(self) -> int:
        return len(self._first)

    def frame_indices(self, indices: np.ndarray) -> np.ndarray:
        """Window ids (B,) -> global frame indices (B, T) of their kept frames."""
        return self._first[np.asarray(indices, dtype=np.int64)][:, None] + self._frame_offsets

    def get(self, indices: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """Windows ``indices`` (B,) as a batch.

        Returns:
            pixels: uint8 (B, T, H, W, 3); without a latent cache, unless ``pixels=False``.
            latents: float32 (B, T, N, D), the cached encoder tokens; with a latent cache, instead of pixels.
            proprio: float32 (B, T, P), normalised.
            actions: float32 (B, T-1, k·A), normalised; the k raw actions between kept frames, in time order.
            state: float32 (B, T, S), raw.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)})")
        store, t, k = self.store, self.num_frames, self.frameskip
        frames = self.frame_indices(idx)  # (B, T)
        action_rows = self._first[idx][:, None] + self._action_offsets  # (B, (T-1)·k)
        actions = self.action_stats.normalize(store.actions[action_rows])  # (B, (T-1)·k, A)
        b = len(idx)
        if not self.pixels:
            visual = {}
        elif self.latents is None:
            visual = {"pixels": torch.from_numpy(store.read_pixels(frames))}
        else:
            visual = {"latents": torch.from_numpy(self.latents.read(frames))}
        return {
            **visual,
            "proprio": torch.from_numpy(store.proprio_stats.normalize(store.proprio[frames]).astype(np.float32)),
            "actions": torch.from_numpy(actions.reshape(b, t - 1, k * store.action_dim).astype(np.float32)),
            "state": torch.from_numpy(np.array(store.state[frames], dtype=np.float32)),
        }

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full global batches per epoch (the remainder is dropped)."""
        if batch_size < 1:
            raise ValueError(f"steps_per_epoch: batch_size must be >= 1, got {batch_size}")
        return len(self) // batch_size

    def batches(
        self, batch_size: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch of shuffled batches; ``batch_size`` is the global batch, split over ranks.

        The permutation comes from a generator seeded by (seed, epoch): every epoch has a fresh order, every
        rank computes the same one, and a resumed run replays it exactly. Rank r takes rows r::world_size of
        each global batch, so the ranks together see exactly the single-process batch. ``start`` skips the epoch's
        first batches without reading them (a run resumed from a checkpoint inside the epoch).
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"batches: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if batch_size % world_size:
            raise ValueError(f"batches: batch_size {batch_size} must be divisible by world_size {world_size}")
        steps = self.steps_per_epoch(batch_size)
        if steps == 0:
            raise ValueError(f"batches: batch_size {batch_size} exceeds the {len(self)} windows of the dataset")
        # Mixing (seed, epoch) through SeedSequence avoids seed=1,epoch=0 and seed=0,epoch=1 colliding.
        mixed = int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0])
        gen = torch.Generator().manual_seed(mixed & 0x7FFF_FFFF_FFFF_FFFF)
        perm = torch.randperm(len(self), generator=gen).numpy()
        for step in range(start, steps):
            rows = perm[step * batch_size : (step + 1) * batch_size]
            yield self.get(rows[rank::world_size])
