"""Training throughput of a frozen-encoder world model with and without the latent cache; prints one JSON object.

Writes a synthetic dataset (random frames) to a temporary folder, encodes it once with ``encode_dataset``, then
times optimizer steps of ``world_model_loss`` on the same windows: from pixels (the encoder runs every step) and
from the cached latents (read from the memory map). Data reading is inside the timed loop, as in ``train``.
Default encoder: DINOv2 ViT-S/14 at 224 px with random weights (no download; only speed is measured) under the
config's predictor; ``--conv`` adds the frozen conv encoder of a jepa-wms checkpoint (the config's own encoder).

    OMP_NUM_THREADS=2 python bench/latent_cache.py --steps 3 --batch-size 4 --conv
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import count
from pathlib import Path

import numpy as np
import torch

from jepa_wms.config import load_config
from jepa_wms.datasets import TrajectoryStore, TrajectoryWriter, WindowDataset
from jepa_wms.datasets.latents import LatentCache
from jepa_wms.runtime import autocast, resolve_device, resolve_dtype, seeded_generator
from jepa_wms.saved_model import save_world_model
from jepa_wms.training.encode import encode_dataset
from jepa_wms.training.losses import world_model_loss
from jepa_wms.training.optim import build_optimizer
from jepa_wms.training.train import build_from_store

DINO = [
    "model.encoder.type=dinov2",
    "model.encoder.name=dinov2_vits14",
    "model.encoder.img_size=224",
    "model.encoder.embed_dim=384",
    "model.encoder.grid_size=16",
    "model.encoder.weights=",
]
# Short windows so that a CPU run of a few steps finishes in about a minute; override with key=value.
SMALL = ["data.num_frames=4", "data.frameskip=1", "loss.rollout_steps=2", "optim.warmup_steps=0"]


def write_dataset(folder: Path, episodes: int, length: int, side: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with TrajectoryWriter(folder, env="wall", collector={"bench": "latent_cache"}) as writer:
        for _ in range(episodes):
            writer.add_episode(
                rng.integers(0, 256, (length, side, side, 3), dtype=np.uint8),
                rng.normal(size=(length - 1, 2)),
                rng.normal(size=(length, 2)),
                rng.normal(size=(length, 4)),
            )
    return folder


def samples_per_s(cfg, store: TrajectoryStore, cache: LatentCache | None, steps: int, device: torch.device) -> float:
    """Optimizer steps of world_model_loss, batches read inside the timed loop; one warm-up step first."""
    torch.manual_seed(cfg.train.seed)
    model = build_from_store(cfg, store).to(device).train()
    opt = build_optimizer(model, cfg.optim)
    dtype = resolve_dtype(cfg.train.precision, device, training=True)
    windows = WindowDataset(store, cfg.data.num_frames, cfg.data.frameskip, latents=cache)
    b = cfg.train.batch_size
    batches = (batch for epoch in count() for batch in windows.batches(b, epoch, cfg.train.seed))
    for i in range(steps + 1):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        with autocast(device, dtype):
            loss, _ = world_model_loss(model, batch, cfg.loss, seeded_generator(cfg.train.seed, i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * b / (time.perf_counter() - start)


def run_case(name: str, cfg, data: Path, args, device: torch.device) -> dict:
    start = time.perf_counter()
    folder = encode_dataset(
        cfg, data, device=device, batch_size=args.encode_batch_size, dtype=args.dtype, show_progress=False
    )
    encode_s = time.perf_counter() - start
    store = TrajectoryStore(data)
    cache = LatentCache(folder)
    pixels = samples_per_s(cfg, store, None, args.steps, device)
    latents = samples_per_s(cfg, store, cache, args.steps, device)
    return {
        "encoder": name,
        "encode_s": round(encode_s, 2),  # build + weight hash + every frame: the one-off cost
        "cache_mb": round(cache.path.stat().st_size / 2**20, 1),
        "pixels_samples_per_s": round(pixels, 2),
        "latents_samples_per_s": round(latents, 2),
        "speedup": round(latents / pixels, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="wall", help="base config; its predictor (and with --conv its encoder) is used")
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps per measurement")
    p.add_argument("--batch-size", type=int, default=8, help="windows per step")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--encode-batch-size", type=int, default=64)
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--episode-len", type=int, default=24)
    p.add_argument("--frame-size", type=int, default=224, help="side of the synthetic frames")
    p.add_argument("--conv", action="store_true", help="also measure the config's conv encoder from a checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args()
    device = resolve_device(args.device)
    common = [*SMALL, f"train.batch_size={args.batch_size}", *args.overrides]
    dino = load_config(args.config, DINO + common)
    pred = dino.model.predictor
    out = {
        "bench": "latent_cache",
        "config": args.config,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "precision": str(resolve_dtype(dino.train.precision, device, training=True))[6:],
        "batch_size": args.batch_size,
        "steps": args.steps,
        "num_frames": dino.data.num_frames,
        "rollout_steps": dino.loss.rollout_steps,
        "predictor": f"{pred.type} dim {pred.pred_dim} depth {pred.depth}",
        "cache_dtype": args.dtype,
        "frames": args.episodes * args.episode_len,
        "frame_size": args.frame_size,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="jepa-wms-bench-") as tmp:
        data = write_dataset(Path(tmp) / "data", args.episodes, args.episode_len, args.frame_size)
        out["cases"].append(run_case("dinov2_vits14@224 (random init)", dino, data, args, device))
        if args.conv:
            conv = load_config(args.config, common)
            torch.manual_seed(0)
            store = TrajectoryStore(data)
            model = build_from_store(conv, store)
            ckpt = Path(tmp) / "conv.pt"
            dims = {"raw_action_dim": store.action_dim, "proprio_dim": store.proprio_dim}
            save_world_model(ckpt, model, conv, env_kwargs=store.env_kwargs, **dims)
            enc = conv.model.encoder
            frozen = load_config(
                args.config, [*common, "model.encoder.type=checkpoint", f"model.encoder.weights={ckpt}"]
            )
            name = f"conv {enc.img_size}px grid {enc.grid_size} from checkpoint"
            out["cases"].append(run_case(name, frozen, data, args, device))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
