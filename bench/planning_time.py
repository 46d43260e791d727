"""Planning time per episode with the full reference CEM protocol (300 samples × 30 iterations, H = 6), batched over
episodes; prints one JSON object. Uses a checkpoint when given, else a randomly initialised model of the config
(the cost of planning does not depend on the weights).

    python bench/planning_time.py [--checkpoint runs/demo/train/checkpoints/last.pt] [--episodes 32]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from jepa_wms.config import load_config
from jepa_wms.evaluation import plan_episodes
from jepa_wms.runtime import resolve_device
from jepa_wms.saved_model import load_world_model
from jepa_wms.world_model import build_world_model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--config", default="wall")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    if args.checkpoint:
        model, cfg, ckpt = load_world_model(args.checkpoint, device)
        env_kwargs = ckpt.get("env_kwargs", {})
    else:
        cfg = load_config(args.config)
        torch.manual_seed(0)
        model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=2, frameskip=cfg.data.frameskip)
        model = model.to(device).eval()
        env_kwargs = {"img_size": cfg.collect.img_size}
    out = {
        "bench": "planning_time",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "episodes": args.episodes,
        "samples": cfg.plan.num_samples,
        "iterations": cfg.plan.iterations,
        "horizon": cfg.plan.horizon,
    }
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        t0 = time.perf_counter()
        _, _, _, traces = plan_episodes(model, cfg, env_kwargs, range(args.episodes), 0, device, dtype)
        out[f"{name}_seconds_per_episode"] = round((time.perf_counter() - t0) / args.episodes, 4)
        out[f"{name}_plan_seconds_per_episode"] = round(float(np.mean([t.plan_seconds for t in traces])), 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
