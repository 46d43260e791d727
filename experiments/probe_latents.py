"""What does an encoder keep? Linear probes from a checkpoint's frame latents to each simulator-state column.

The checkpoint is a world model's or an encoder's pretrained alone (``jepa-wms pretrain``); only its encoder is used.

    python experiments/probe_latents.py --checkpoint RUN/train/checkpoints/last.pt --data RUN/data [--angles 4]

Encodes ``--frames`` random frames of the dataset, fits a ridge regression from the flattened tokens to every column
of the stored ``state`` on 5/6 of them and prints, as JSON, the R² on the other 1/6 (1 = read exactly, 0 = no better
than the mean). Columns listed in ``--angles`` are probed as (cos, sin) pairs, so wrapping does not count as error.
A column the planner must steer (Push-T's block pose, for example) that probes near 0 is not in the latent cost.
``--mlp`` adds the same R² for a small MLP fitted on the same rows (``r2_mlp``): a pose that an autoencoder's
single token keeps but not linearly (the angle, typically) reads high there and near 0 in ``r2``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from jepa_wms.checkpoint import load_state_strict
from jepa_wms.datasets import TrajectoryStore
from jepa_wms.encoders import build_encoder
from jepa_wms.encoders.from_checkpoint import checkpoint_encoder_source


def ridge_r2(x: np.ndarray, y: np.ndarray, train: int, reg: float = 1e-3) -> np.ndarray:
    """Held-out R² per column of ``y`` for a ridge fit on the first ``train`` rows (features get a bias column)."""
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    w = np.linalg.solve(x[:train].T @ x[:train] + reg * np.eye(x.shape[1]), x[:train].T @ y[:train])
    resid = y[train:] - x[train:] @ w
    return 1.0 - (resid**2).sum(0) / ((y[train:] - y[train:].mean(0)) ** 2).sum(0)


def mlp_r2(x: np.ndarray, y: np.ndarray, train: int, seed: int, epochs: int = 60) -> np.ndarray:
    """Held-out R² per column of ``y`` for a 2-layer MLP (256 GELU units) fitted with Adam on the first ``train`` rows
    (inputs and targets standardised with those rows' statistics)."""
    torch.manual_seed(seed)
    xs = torch.tensor((x - x[:train].mean(0)) / (x[:train].std(0) + 1e-6), dtype=torch.float32)
    ys = torch.tensor((y - y[:train].mean(0)) / (y[:train].std(0) + 1e-12), dtype=torch.float32)
    net = torch.nn.Sequential(
        torch.nn.Linear(xs.shape[1], 256),
        torch.nn.GELU(),
        torch.nn.Linear(256, 256),
        torch.nn.GELU(),
        torch.nn.Linear(256, ys.shape[1]),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.randperm(train).split(256):
            loss = torch.nn.functional.mse_loss(net(xs[batch]), ys[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        resid = ((net(xs[train:]) - ys[train:]) ** 2).sum(0)
    return (1.0 - resid / ((ys[train:] - ys[train:].mean(0)) ** 2).sum(0)).numpy()


def load_encoder(path: str):
    """The encoder of any jepa-wms training checkpoint (world model or pretrained encoder), in eval mode."""
    source, state = checkpoint_encoder_source(path)
    encoder = build_encoder(source, load_weights=False)
    load_state_strict(encoder, state, path)
    return encoder.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--angles", type=int, nargs="*", default=[], help="state columns that are angles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mlp", action="store_true", help="also fit an MLP probe per column (r2_mlp)")
    args = parser.parse_args()

    encoder = load_encoder(args.checkpoint)
    store = TrajectoryStore(args.data, preload=False)
    total = store.num_frames
    rows = np.sort(np.random.default_rng(args.seed).choice(total, min(args.frames, total), replace=False))
    state = np.asarray(store.state[rows], dtype=np.float64)
    with torch.no_grad():
        latents = [
            encoder.encode_frames(torch.from_numpy(store.read_pixels(rows[i : i + 256]))[:, None]).flatten(1)
            for i in range(0, len(rows), 256)
        ]
    x = torch.cat(latents).float().numpy()
    order = np.random.default_rng(args.seed + 1).permutation(len(x))  # held-out rows from all episodes
    x, state = x[order], state[order]
    train = len(x) * 5 // 6
    report, report_mlp = {}, {}
    for col in range(state.shape[1]):
        if col in args.angles:
            name, target = f"state[{col}] (cos, sin)", np.stack([np.cos(state[:, col]), np.sin(state[:, col])], axis=1)
        else:
            name, target = f"state[{col}]", state[:, col : col + 1]
        report[name] = round(float(ridge_r2(x, target, train).mean()), 3)
        if args.mlp:
            report_mlp[name] = round(float(mlp_r2(x, target, train, args.seed).mean()), 3)
    result = {"checkpoint": args.checkpoint, "frames": len(x), "r2": report}
    if args.mlp:
        result["r2_mlp"] = report_mlp
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
