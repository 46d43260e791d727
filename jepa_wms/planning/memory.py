"""How much memory planning one chunk of episodes takes, and how many episodes / candidates fit a budget.

Planning with a world model rolls every candidate out at once: R = episodes × candidates rows. With a key/value
cache (``LatentPredictor.supports_kv_cache``, ``context_window = 0``) the peak of one rollout is, in bytes::

    kv      = R · F · N · depth · 2 · width · b          the cache: K and V of F frames in every attention layer
    step    = R · S · N · (8 · width + mlp_hidden) · b   one block's activations for the S frames a step runs
    outputs = R · (H + 1) · N · D · b                    the context frame and the H predicted frames

with N tokens per frame (patches, plus conditioning tokens), ``width`` the attention width, ``b`` the bytes of
the planning dtype (4 in fp32, 2 under bf16 autocast) and D the encoder's token width. A planning rollout starts
from C = 1 encoded frame and feeds H − 1 predictions back, so the cache ends holding F = C + H − 1 frames, or
F = min(W, C + H − 1) with ``plan.kv_window = W``. A key/value predictor runs S = 1 frame per step; a
frame-window predictor (``context_window = W' >= 1``, DINO-WM) caches only its inputs (kv = 0 here) and re-runs
S = W' frames per step, whose transient keys/values the "8 · width" covers. Only one block's activations are
alive at a time (no autograd in evaluation), and the fused attention kernels (flash / memory-efficient) never
materialise the score matrix, so neither is counted; gradient planners (``gd``/``adam``) keep activations for
backward and need more than this.

Paper size (AdaLN, depth 6, width 384 + 16 proprio channels, 16×16 patches, H = 6, 300 candidates, fp32): the
cache is 300 · 6 · 256 · 6 · 2 · 400 · 4 B = 8.85 GB per episode, 2.95 GB with W = 2 (half of each under bf16);
so 32 episodes at once would need 283 GB of cache alone.

Every term is proportional to R, so the budget divides into whole episodes (:func:`plan_batch_sizes`), and when
not even one episode's candidates fit, into a number of candidate rows per sub-batch rollout.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from ..config import PlanConfig
from ..layers.attention import padded_head_dim

__all__ = [
    "RolloutShape",
    "auto_budget_bytes",
    "bytes_per_row",
    "cache_frames",
    "eval_batch_sizes",
    "format_bytes",
    "kv_cache_bytes",
    "plan_batch_sizes",
    "retain_freed_memory",
    "rollout_shape",
]

#: Share of the free memory the planner may plan into: the rest absorbs allocator fragmentation, the encoder
#: and planner tensors the estimate leaves out, and other processes.
SAFETY_FRACTION = 0.7

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutShape:
    """What sizes a predictor's rollout memory (see the module docstring for the formula)."""

    depth: int  # attention layers
    width: int  # attention width: each token stores `width` keys and `width` values per layer
    tokens_per_frame: int  # N: patches plus conditioning tokens
    mlp_hidden: int  # hidden width of a block's MLP
    embed_dim: int  # D: width of the predicted latent tokens
    context_window: int  # 0: key/value cache; W' >= 1: frame-window predictor, S = W' frames per step


def rollout_shape(predictor: nn.Module, pad_heads: int = 0) -> RolloutShape:
    """Read the sizes of a ``LatentPredictor`` from its modules (any of the three designs); ``pad_heads`` (the
    ``plan.pad_heads`` multiple) widens the cached keys/values of `layers.Attention` as the padding does."""
    widths, hidden = [], []
    for name, module in predictor.named_modules():
        if hasattr(module, "qkv") and isinstance(module.qkv, nn.Linear):  # layers.Attention
            heads = int(getattr(module, "num_heads", 1))
            widths.append(heads * padded_head_dim(module.qkv.out_features // 3 // heads, pad_heads))
        elif hasattr(module, "to_qkv") and isinstance(module.to_qkv, nn.Linear):  # DINO-WM FeatureAttention
            widths.append(module.to_qkv.out_features // 3)
        elif isinstance(module, nn.Linear) and (name.endswith("mlp.fc1") or name.endswith("net.1")):
            hidden.append(module.out_features)
    if not widths:
        raise ValueError(f"rollout_shape: no attention layer found in {type(predictor).__name__}")
    return RolloutShape(
        depth=len(widths),
        width=max(widths),
        tokens_per_frame=int(predictor.tokens_per_frame),
        mlp_hidden=max(hidden, default=4 * max(widths)),
        embed_dim=int(predictor.embed_dim),
        context_window=int(predictor.context_window),
    )


def cache_frames(horizon: int, kv_window: int, context_frames: int = 1) -> int:
    """F: frames in the key/value cache at the last step of a rollout (the last prediction is never fed back)."""
    frames = context_frames + horizon - 1
    return min(frames, kv_window) if kv_window > 0 else frames


def kv_cache_bytes(
    shape: RolloutShape, rows: int, horizon: int, kv_window: int, dtype_bytes: int, context_frames: int = 1
) -> int:
    """``rows · F · N · depth · 2 · width · b``: the key/value cache at its peak (0 for a frame-window predictor)."""
    if shape.context_window > 0:
        return 0
    frames = cache_frames(horizon, kv_window, context_frames)
    return rows * frames * shape.tokens_per_frame * shape.depth * 2 * shape.width * dtype_bytes


def bytes_per_row(shape: RolloutShape, horizon: int, kv_window: int, dtype_bytes: int, context_frames: int = 1) -> int:
    """Peak bytes of one candidate row's rollout: cache + one step's activations + outputs (module docstring)."""
    step_frames = shape.context_window if shape.context_window > 0 else 1
    n, b = shape.tokens_per_frame, dtype_bytes
    kv = kv_cache_bytes(shape, 1, horizon, kv_window, dtype_bytes, context_frames)
    step = step_frames * n * (8 * shape.width + shape.mlp_hidden) * b
    outputs = (horizon + 1) * n * shape.embed_dim * b
    return kv + step + outputs


def auto_budget_bytes(device: torch.device, fraction: float = SAFETY_FRACTION) -> int | None:
    """``fraction`` of the memory free on ``device``: the CUDA device's free memory plus what PyTorch's caching
    allocator holds but does not use; on CPU the system's available RAM. None when it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free * fraction)
    if device.type != "cpu":
        return None
    available = _available_ram()
    return None if available is None else int(available * fraction)


def _available_ram() -> int | None:
    try:
        import psutil  # optional: not a dependency, but more portable than /proc when present

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except OSError:
        pass
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def plan_batch_sizes(row_bytes: int, candidates: int, episode_chunk: int, budget_bytes: int | None) -> tuple[int, int]:
    """``(episodes planned together, candidate rows per rollout)`` within ``budget_bytes``.

    Episodes: ``min(episode_chunk, budget // (candidates · row_bytes))``, at least 1. Rows: 0 (no split) when
    one episode's candidates fit; else the largest sub-batch that fits, at least 1, so a too-small budget still
    plans (slowly, a row at a time) instead of refusing. ``budget_bytes`` None means no limit.
    """
    if row_bytes < 1 or candidates < 1 or episode_chunk < 1:
        raise ValueError(
            f"plan_batch_sizes: row_bytes, candidates and episode_chunk must be >= 1, "
            f"got {row_bytes}, {candidates}, {episode_chunk}"
        )
    if budget_bytes is None:
        return episode_chunk, 0
    episode_bytes = candidates * row_bytes
    if episode_bytes <= budget_bytes:
        return min(episode_chunk, budget_bytes // episode_bytes), 0
    return 1, max(1, budget_bytes // row_bytes)


def retain_freed_memory(max_block_bytes: int = 32 << 20) -> bool:
    """Make the C allocator (glibc) keep freed memory for reuse instead of handing it back to the OS at once.

    A CPU rollout allocates and frees the same tens of MB at every step (MLP activations, the per-rollout
    key/value buffers). By default glibc maps blocks of more than its (adaptive) threshold afresh and trims the
    heap top when it frees them, so every step pays page faults and the zeroing of fresh pages again (about 5 %
    of a CPU plan at the PointMaze paper size, 8×8 tokens, see ``bench/plan_speed.py --keep-freed-memory``).
    This serves blocks up to ``max_block_bytes`` (glibc's ceiling, 32 MiB) from the heap and never trims it:
    the process keeps its peak memory. Numerics are unchanged. Process-wide; returns False where the C library
    has no ``mallopt`` (not glibc) or refuses the values. Same as the environment variables
    ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647`` set before start.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return mallopt(m_mmap_threshold, max_block_bytes) == 1 and mallopt(m_trim_threshold, 2**31 - 1) == 1


def format_bytes(num: float) -> str:
    """``8.85 GB``: decimal units, as ``plan.memory_gb`` counts them."""
    for unit in ("B", "kB", "MB"):
        if abs(num) < 1000:
            return f"{num:.3g} {unit}"
        num /= 1000
    return f"{num:.3g} GB"


def eval_batch_sizes(model: object, plan: PlanConfig, device: torch.device, dtype: torch.dtype) -> tuple[int, int]:
    """``(episodes per chunk, candidate rows per rollout)`` for evaluating ``model`` with ``plan`` on ``device``.

    A ``WorldModel`` is sized from ``plan.memory_gb`` (0: :func:`auto_budget_bytes`); anything else (the
    simulator oracle) keeps ``plan.episode_chunk`` unsplit. The choice is logged.
    """
    from ..world_model import WorldModel  # the world model imports the planning package

    if not isinstance(model, WorldModel):
        return plan.episode_chunk, 0
    shape = rollout_shape(model.predictor, plan.pad_heads)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    row = bytes_per_row(shape, plan.horizon, plan.kv_window, dtype_bytes)
    budget = int(plan.memory_gb * 1e9) if plan.memory_gb > 0 else auto_budget_bytes(device)
    episodes, rows = plan_batch_sizes(row, plan.num_samples, plan.episode_chunk, budget)
    split = f"candidates in sub-batches of {rows} rows" if rows else "candidates unsplit"
    _log.info(
        "planning memory: %s per episode (%d candidates, kv_window %d, %s), budget %s -> %d episodes per chunk, %s",
        format_bytes(row * plan.num_samples),
        plan.num_samples,
        plan.kv_window,
        "bf16" if dtype_bytes == 2 else "fp32",
        "unknown" if budget is None else format_bytes(budget),
        episodes,
        split,
    )
    return episodes, rows
