"""The three predictors on one frozen encoder: AdaLN (JEPA-WM) vs feature concatenation (DINO-WM) vs conditioning
tokens (V-JEPA-2-AC).

The encoder comes from one of our own training runs (``model.encoder.type: checkpoint``), the dataset is encoded
once (``jepa-wms encode``), and each predictor is trained with the same loss, optimiser and steps on the cached
latents, then evaluated on the same seeded episodes. Everything resumes: rerun the command after a kill.

    python experiments/compare_predictors.py --env wall --encoder runs/demo/train/checkpoints/last.pt \
        --data runs/demo/data --out runs/compare-wall

Writes ``OUT/<predictor>/{train,eval}`` and ``OUT/results.json``, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jepa_wms import encode_dataset, evaluate, load_config, train
from jepa_wms.checkpoint import atomic_write_bytes
from jepa_wms.saved_model import load_world_model

# CPU-sized predictors of similar width and the same depth; the conditioning is what differs.
PREDICTORS: dict[str, list[str]] = {
    "adaln": ["model.predictor.type=adaln", "model.predictor.pred_dim=112", "model.predictor.num_heads=4"],
    "dino_wm": [
        "model.predictor.type=dino_wm",
        "model.predictor.num_heads=4",
        "model.predictor.dim_head=32",
        "model.predictor.action_emb_dim=16",
    ],
    "vjepa2_ac": ["model.predictor.type=vjepa2_ac", "model.predictor.pred_dim=128", "model.predictor.num_heads=4"],
}
CONFIGS = {"wall": "wall", "pointmaze": "pointmaze_quick"}


def run(env: str, encoder: Path, data: Path, out: Path, predictors: list[str], overrides: list[str]) -> dict:
    results: dict[str, dict] = {}
    results_path = out / "results.json"
    if results_path.exists():
        results = json.loads(results_path.read_text())
    for name in predictors:
        cfg = load_config(
            CONFIGS[env],
            [
                "model.encoder.type=checkpoint",
                f"model.encoder.weights={encoder}",
                "loss.target_stop_grad=true",
                *PREDICTORS[name],
                *overrides,
            ],
        )
        t0 = time.perf_counter()
        encode_dataset(cfg, data)  # once per encoder: the other predictors find the finished cache
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ckpt = train(cfg, data, out / name / "train", resume=True)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = evaluate(ckpt, out / name / "eval")
        eval_s = time.perf_counter() - t0
        model, _, _ = load_world_model(ckpt)
        results[name] = {
            "success_rate": res["success_rate"],
            "episodes": res["episodes"],
            "predictor_parameters": sum(p.numel() for p in model.predictor.parameters()),
            "encode_s": encode_s,
            "train_s": train_s,
            "eval_s": eval_s,
        }
        atomic_write_bytes(results_path, json.dumps(results, indent=2).encode())
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", choices=sorted(CONFIGS), required=True)
    p.add_argument("--encoder", type=Path, required=True, help="jepa-wms checkpoint whose encoder is frozen")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--predictors", nargs="+", default=list(PREDICTORS), choices=list(PREDICTORS))
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.epochs=8")
    args = p.parse_args()
    results = run(args.env, args.encoder, args.data, args.out, args.predictors, args.overrides)
    print(f"| {args.env} predictor | success | predictor params | train min | eval min |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {100 * r['success_rate']:.1f} % ({r['episodes']} ep.) "
            f"| {r['predictor_parameters'] / 1e6:.2f} M | {r['train_s'] / 60:.1f} | {r['eval_s'] / 60:.1f} |"
        )


if __name__ == "__main__":
    main()
