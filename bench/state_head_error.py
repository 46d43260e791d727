"""How far ahead a world model stays accurate: its state head's error per open-loop rollout step; prints one JSON
object.

From the first frames of dataset episodes (the model's validation episodes first) the predictor rolls out
``--steps`` steps with the recorded actions, and the state head (``jepa-wms train-head --head state``) reads the env
state from each imagined latent: mean absolute error per state dimension and mean Euclidean error, in env units, per
step, next to the head's own error on the encoded real frames (its floor).

    python bench/state_head_error.py --checkpoint runs/wall/train/checkpoints/last.pt \\
        --head runs/wall/head_state/checkpoints/last.pt --data runs/wall/data --episodes 32 --steps 10
"""

from __future__ import annotations

import argparse
import json

import torch

from jepa_wms.heads.decode import load_clips, load_model_and_heads, rollout_errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="world model checkpoint")
    p.add_argument("--head", required=True, help="its state head")
    p.add_argument("--data", required=True, help="dataset of the model's env")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--context", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    model, cfg, heads = load_model_and_heads(args.checkpoint, [args.head], args.device)
    if heads[0].spec.kind != "state":
        raise SystemExit(f"{args.head} is a {heads[0].spec.kind} head; this benchmark needs a state head")
    with torch.inference_mode():
        clips = load_clips(model, cfg, args.data, args.episodes, args.context, args.steps)
        result = rollout_errors(model, heads, clips)
    print(json.dumps({"env": cfg.env, "checkpoint": args.checkpoint, "head": args.head, **result}))


if __name__ == "__main__":
    main()
