"""``run_demo``: collect → train → evaluate on the embedded offline config, resuming whatever a killed run left."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import load_config


def run_demo(
    env: str = "wall",
    out: str | Path = "runs/demo",
    overrides: Sequence[str] = (),
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the whole loop for ``env`` into ``out``: ``out/data``, ``out/train/checkpoints/last.pt`` and
    ``out/eval/results.json``. Each stage is skipped or resumed when a previous run already did (part of) it."""
    from .datasets import collect
    from .evaluation import evaluate
    from .training import train

    cfg = load_config(env, overrides)
    out = Path(out)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data_dir = out / "data"
    if not (data_dir / "trajectories.h5").exists():
        c = cfg.collect
        collect(
            cfg.env,
            c.episodes,
            data_dir,
            episode_len=c.episode_len,
            workers=c.workers,
            seed=c.seed,
            img_size=c.img_size,
            show_progress=show_progress,
        )
    timings["collect_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ckpt = train(cfg, data_dir, out / "train", resume=True, show_progress=show_progress)
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = evaluate(ckpt, out / "eval", overrides=overrides_for_eval(overrides), show_progress=show_progress)
    timings["eval_s"] = time.perf_counter() - t0

    print_results_table(cfg.env, results, timings)
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    return {**results, **timings}


def overrides_for_eval(overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0].strip().startswith(("plan.", "eval."))]


def print_results_table(env: str, results: dict[str, Any], timings: dict[str, float] | None = None) -> None:
    rows = [
        ("env", env),
        ("episodes", results["episodes"]),
        ("success rate", f"{100 * results['success_rate']:.1f} %"),
        ("mean final distance", f"{results['mean_final_distance']:.2f}"),
        ("planning s / episode", f"{results['planning_seconds_per_episode']:.2f}"),
    ]
    rows += [(k.replace("_s", " time"), f"{v / 60:.1f} min") for k, v in (timings or {}).items()]
    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows) + "\n")
