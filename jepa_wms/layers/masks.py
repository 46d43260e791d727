"""Frame-causal attention masks, built for the actual window size on every call (never a max-length table).

A token of frame t may attend to every token of frames <= t, including all tokens of its own frame. Building
the mask from two index comparisons costs O(Nq·Nk) booleans, so there is no reason to cache a huge one at init
(the original allocated a (512·257)² table for V-JEPA-2-AC).
"""

from __future__ import annotations

import torch

__all__ = ["frame_causal_mask"]


def frame_causal_mask(
    num_frames: int,
    tokens_per_frame: int,
    device: torch.device | str | None = None,
    past_frames: int = 0,
    window: int = 0,
) -> torch.Tensor:
    """Boolean mask ``(Nq, Nk)``, True where a query may attend to a key.

    Queries are the ``num_frames`` frames ``[past_frames, past_frames + num_frames)``, keys are all frames
    ``[0, past_frames + num_frames)`` (cached ones first, as a KV cache stores them), so ``Nq = num_frames·N``
    and ``Nk = (past_frames + num_frames)·N`` with ``N = tokens_per_frame``. ``window = W >= 1`` also hides
    keys more than ``W - 1`` frames before the query's frame (sliding-window attention, W frames seen).
    """
    if num_frames < 1:
        raise ValueError(f"frame_causal_mask: num_frames must be >= 1, got {num_frames}")
    if tokens_per_frame < 1:
        raise ValueError(f"frame_causal_mask: tokens_per_frame must be >= 1, got {tokens_per_frame}")
    if past_frames < 0:
        raise ValueError(f"frame_causal_mask: past_frames must be >= 0, got {past_frames}")
    if window < 0:
        raise ValueError(f"frame_causal_mask: window must be >= 0 (0 = unlimited), got {window}")
    q_frame = torch.arange(num_frames, device=device).repeat_interleave(tokens_per_frame) + past_frames
    k_frame = torch.arange(past_frames + num_frames, device=device).repeat_interleave(tokens_per_frame)
    causal = k_frame.unsqueeze(0) <= q_frame.unsqueeze(1)
    if window == 0:
        return causal
    return causal & (k_frame.unsqueeze(0) > q_frame.unsqueeze(1) - window)
