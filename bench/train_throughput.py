"""Training throughput (samples/s) of a config's world model on synthetic windows; prints one JSON object.

python bench/train_throughput.py [--config wall] [--steps 10] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from jepa_wms.config import load_config
from jepa_wms.runtime import autocast, resolve_device, seeded_generator
from jepa_wms.training.losses import world_model_loss
from jepa_wms.training.optim import build_optimizer
from jepa_wms.world_model import build_world_model


def measure(cfg, dtype: torch.dtype, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=cfg.data.frameskip).to(device)
    opt = build_optimizer(model, cfg.optim)
    b, t, img = cfg.train.batch_size, cfg.data.num_frames, cfg.collect.img_size
    batch = {
        "pixels": torch.randint(0, 256, (b, t, img, img, 3), dtype=torch.uint8, device=device),
        "proprio": torch.randn(b, t, 2, device=device),
        "actions": torch.randn(b, t - 1, model.action_dim, device=device),
    }
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            start = time.perf_counter()
        with autocast(device, dtype):
            loss, _ = world_model_loss(model, batch, cfg.loss, seeded_generator(0, i))
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * b / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="wall")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    device = resolve_device(args.device)
    out = {
        "bench": "train_throughput",
        "config": args.config,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": cfg.train.batch_size,
        "num_frames": cfg.data.num_frames,
        "rollout_steps": cfg.loss.rollout_steps,
    }
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        out[f"{name}_samples_per_s"] = round(measure(cfg, dtype, args.steps, device), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
