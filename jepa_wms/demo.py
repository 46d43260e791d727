"""``run_demo``: collect → train → evaluate on the embedded offline config, resuming whatever a killed run left."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import embedded_configs, load_config

DEMO_ENVS = ("wall", "pointmaze", "pusht", "metaworld")


def demo_config_name(env: str, quick: bool = False) -> str:
    """The embedded config of the demo for ``env``: ``<env>_quick`` (2-core CPU size) when asked and present."""
    if env not in DEMO_ENVS:
        raise ValueError(f"unknown demo env {env!r}; expected one of: {', '.join(DEMO_ENVS)}")
    return f"{env}_quick" if quick and f"{env}_quick" in embedded_configs() else env


def run_demo(
    env: str = "wall",
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    show_progress: bool = True,
    *,
    quick: bool = False,
    task: str | None = None,
) -> dict[str, Any]:
    """Run the whole loop for ``env`` into ``out``: ``out/data``, ``out/train/checkpoints/last.pt`` and
    ``out/eval/results.json``. Each stage is skipped or resumed when a previous run already did (part of) it.

    ``quick`` picks the CPU-sized config; ``task`` selects the Metaworld task (default ``reach``). ``out``
    defaults to ``runs/demo`` for Wall and ``runs/demo-<env>[-<task>][-quick]`` otherwise.
    """
    from .datasets import collect_for_config
    from .evaluation import evaluate
    from .training import train

    if task is not None and env != "metaworld":
        raise ValueError(f"--task applies to the metaworld demo only, not {env!r}")
    overrides = list(overrides)
    if env == "metaworld":
        overrides.insert(0, f"env=metaworld-{task or 'reach'}")
    cfg = load_config(demo_config_name(env, quick), overrides)
    if out is None:
        name = cfg.env if env != "wall" else ""
        out = Path("runs") / "-".join(x for x in ("demo", name, "quick" if quick and env != "wall" else "") if x)
    out = Path(out)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data_dir = out / "data"
    collect_for_config(cfg, data_dir, show_progress)
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
