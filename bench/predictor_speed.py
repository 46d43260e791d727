"""Time the AdaLN predictor (training step and cached rollout) and the conv encoder on CPU threads.

Prints one JSON object. Sizes follow the Wall setting: 4×4 tokens of width 64, pred_dim 112 + 16 proprio
channels, depth 3, 4 heads, windows of 7 frames (the predictor sees frames 0..5 and is scored on 1..6), 4096
planning candidates × 6 steps. Random weights: only speed is measured, never asserted.

    python bench/predictor_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable

import torch

from jepa_wms.encoders import ConvEncoder
from jepa_wms.predictors import AdaLNPredictor


def _median_seconds(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _precision(bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()


def bench_train_step(model: AdaLNPredictor, batch: int, frames: int, bf16: bool, repeats: int) -> float:
    """Forward + backward of the teacher-forcing loss on one window; returns milliseconds."""
    z = torch.randn(batch, frames, model.num_tokens, model.embed_dim)
    actions = torch.randn(batch, frames, model.action_dim)
    proprio = torch.randn(batch, frames, model.proprio_emb_dim)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with _precision(bf16):
            z_pred, p_pred = model(z[:, :-1], actions[:, :-1], proprio[:, :-1])
            loss = (z_pred.float() - z[:, 1:]).pow(2).mean() + (p_pred.float() - proprio[:, 1:]).pow(2).mean()
        loss.backward()

    return 1e3 * _median_seconds(step, repeats)


def bench_rollout(model: AdaLNPredictor, samples: int, horizon: int, bf16: bool, repeats: int) -> float:
    """Cached rollout of ``samples`` candidates from a 1-frame context; returns candidate·steps per second."""
    z0 = torch.randn(samples, 1, model.num_tokens, model.embed_dim)
    p0 = torch.randn(samples, 1, model.proprio_emb_dim)
    actions = torch.randn(samples, horizon, model.action_dim)
    no_ctx_actions = actions[:, :0]

    def run() -> None:
        with torch.no_grad(), _precision(bf16):
            model.rollout(z0, no_ctx_actions, p0, actions)

    return samples * horizon / _median_seconds(run, repeats)


def bench_encoder(frames: int, repeats: int) -> float:
    """ConvEncoder forward + backward on ``frames`` images of 32×32; returns milliseconds."""
    encoder = ConvEncoder()
    x = torch.randn(frames, 3, 32, 32)

    def step() -> None:
        encoder.zero_grad(set_to_none=True)
        encoder(x).pow(2).mean().backward()

    return 1e3 * _median_seconds(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frames", type=int, default=7)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--horizon", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AdaLNPredictor(
        embed_dim=64, action_dim=10, proprio_emb_dim=16, pred_dim=112, depth=3, num_heads=4, grid_size=(4, 4)
    )
    result = {
        "threads": args.threads,
        "torch": torch.__version__,
        "predictor_params": sum(p.numel() for p in model.parameters()),
        "window": {"batch": args.batch, "frames": args.frames},
        "train_step_ms_fp32": round(bench_train_step(model, args.batch, args.frames, False, args.repeats), 1),
        "train_step_ms_bf16": round(bench_train_step(model, args.batch, args.frames, True, args.repeats), 1),
        "rollout": {"samples": args.samples, "horizon": args.horizon, "context": 1},
        "rollout_cand_steps_per_s_fp32": round(
            bench_rollout(model.eval(), args.samples, args.horizon, False, args.repeats)
        ),
        "rollout_cand_steps_per_s_bf16": round(
            bench_rollout(model.eval(), args.samples, args.horizon, True, args.repeats)
        ),
        "conv_encoder_fwd_bwd_ms": round(bench_encoder(args.batch * args.frames, args.repeats), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
