"""What does an encoder keep? Linear probes from a checkpoint's frame latents to each simulator-state column.

    python experiments/probe_latents.py --checkpoint RUN/train/checkpoints/last.pt --data RUN/data [--angles 4]

Encodes ``--frames`` random frames of the dataset, fits a ridge regression from the flattened tokens to every column
of the stored ``state`` on 5/6 of them and prints, as JSON, the R² on the other 1/6 (1 = read exactly, 0 = no better
than the mean). Columns listed in ``--angles`` are probed as (cos, sin) pairs, so wrapping does not count as error.
A column the planner must steer (Push-T's block pose, for example) that probes near 0 is not in the latent cost.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from jepa_wms.checkpoint import load_world_model
from jepa_wms.datasets import TrajectoryStore


def ridge_r2(x: np.ndarray, y: np.ndarray, train: int, reg: float = 1e-3) -> np.ndarray:
    """Held-out R² per column of ``y`` for a ridge fit on the first ``train`` rows (features get a bias column)."""
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    w = np.linalg.solve(x[:train].T @ x[:train] + reg * np.eye(x.shape[1]), x[:train].T @ y[:train])
    resid = y[train:] - x[train:] @ w
    return 1.0 - (resid**2).sum(0) / ((y[train:] - y[train:].mean(0)) ** 2).sum(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--angles", type=int, nargs="*", default=[], help="state columns that are angles")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, _, _ = load_world_model(args.checkpoint)
    store = TrajectoryStore(args.data, preload=False)
    total = store.num_frames
    rows = np.sort(np.random.default_rng(args.seed).choice(total, min(args.frames, total), replace=False))
    state = np.asarray(store.state[rows], dtype=np.float64)
    with torch.no_grad():
        latents = [
            model.encoder.encode_frames(torch.from_numpy(store.read_pixels(rows[i : i + 256]))[:, None]).flatten(1)
            for i in range(0, len(rows), 256)
        ]
    x = torch.cat(latents).float().numpy()
    order = np.random.default_rng(args.seed + 1).permutation(len(x))  # held-out rows from all episodes
    x, state = x[order], state[order]
    train = len(x) * 5 // 6
    report = {}
    for col in range(state.shape[1]):
        if col in args.angles:
            target = np.stack([np.cos(state[:, col]), np.sin(state[:, col])], axis=1)
            report[f"state[{col}] (cos, sin)"] = round(float(ridge_r2(x, target, train).mean()), 3)
        else:
            report[f"state[{col}]"] = round(float(ridge_r2(x, state[:, col : col + 1], train)[0]), 3)
    print(json.dumps({"checkpoint": args.checkpoint, "frames": len(x), "r2": report}, indent=1))


if __name__ == "__main__":
    main()
