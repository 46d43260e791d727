"""Anti-collapse regularisers compared on Wall: train the same model with VICReg, SIGReg and none for a few epochs,
then report the latent spread, validation losses and planning success; prints one JSON object.

    python bench/regularizers.py --data runs/demo/data --epochs 5 --episodes 32
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from jepa_wms.config import load_config
from jepa_wms.evaluation import evaluate
from jepa_wms.training import train

SETTINGS = {
    "vicreg": ["loss.regularizer=vicreg"],
    "sigreg": ["loss.regularizer=sigreg"],
    "none": ["loss.regularizer=none"],
}


def _last_val(log: Path) -> dict[str, float]:
    with open(log) as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    return {k: float(v) for k, v in rows[-1].items() if k.startswith(("loss", "latent")) and v}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="a Wall dataset folder (e.g. runs/demo/data)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--only", nargs="*", default=list(SETTINGS))
    args = p.parse_args()
    out: dict[str, dict] = {"bench": "regularizers", "epochs": args.epochs, "episodes": args.episodes}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            cfg = load_config("wall", SETTINGS[name] + [f"train.epochs={args.epochs}"])
            run = Path(tmp) / name
            ckpt = train(cfg, args.data, run, show_progress=False)
            res = evaluate(ckpt, run / "eval", episodes=args.episodes, show_progress=False)
            out[name] = {
                **_last_val(run / "log.csv"),
                "success_rate": res["success_rate"],
                "mean_final_distance": res["mean_final_distance"],
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
