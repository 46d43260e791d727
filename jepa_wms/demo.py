"""``run_demo``: collect → [pretrain the frozen encoder → encode] → train → evaluate on the embedded offline config,
resuming whatever a killed run left; ``run_pipeline`` runs the same loop for any typed config."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import ExperimentConfig, embedded_configs, load_config

DEMO_ENVS = ("wall", "pointmaze", "pusht", "metaworld")
# Push-T's CPU demo freezes a pretrained keypoint encoder: an end-to-end conv latent barely sees the block (README).
_QUICK_CONFIGS = {"pusht": "pusht_keypoints"}


def demo_config_name(env: str, quick: bool = False) -> str:
    """The embedded config of the demo for ``env``: the 2-core CPU size when asked (``<env>_quick`` where it exists;
    Push-T: ``pusht_keypoints``), else ``env``."""
    if env not in DEMO_ENVS:
        raise ValueError(f"unknown demo env {env!r}; expected one of: {', '.join(DEMO_ENVS)}")
    if quick and env in _QUICK_CONFIGS:
        return _QUICK_CONFIGS[env]
    return f"{env}_quick" if quick and f"{env}_quick" in embedded_configs() else env


def run_demo(
    env: str = "wall",
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    show_progress: bool = True,
    *,
    quick: bool = False,
    task: str | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Run the whole loop for ``env`` into ``out`` with the embedded demo config and ``key=value`` ``overrides``:
    `run_pipeline` of that config.

    ``quick`` picks the CPU-sized config; ``task`` selects the Metaworld task (default ``reach``); ``config`` names
    another embedded config of ``env`` (e.g. ``pusht_keypoints_5k``, the 2-hour Push-T CPU recipe). ``out``
    defaults to ``runs/demo`` for Wall, ``runs/demo-<config>`` for a named config and
    ``runs/demo-<env>[-<task>][-quick]`` otherwise.
    """
    if task is not None and env != "metaworld":
        raise ValueError(f"--task applies to the metaworld demo only, not {env!r}")
    chosen_env = [f"env=metaworld-{task or 'reach'}"] if env == "metaworld" else []
    cfg = load_config(config or demo_config_name(env, quick), [*chosen_env, *overrides])
    if config is not None and cfg.env.split("-")[0] != env:
        raise ValueError(f"config {config!r} is for env {cfg.env!r}, not the demo's --env {env!r}")
    if out is None:
        name = config or (cfg.env if env != "wall" else "")
        quick_tag = "quick" if quick and env != "wall" and config is None else ""
        out = Path("runs") / "-".join(x for x in ("demo", name, quick_tag) if x)
    return run_pipeline(cfg, out, show_progress)


def run_pipeline(cfg: ExperimentConfig, out: str | Path, show_progress: bool = True) -> dict[str, Any]:
    """Collect → [pretrain the frozen encoder → encode] → train → evaluate ``cfg`` into ``out``: ``out/data``,
    ``out/train/checkpoints/last.pt`` and ``out/eval/results.json``. Each stage is skipped or resumed when a previous
    run already did (part of) it. Returns the evaluation summary with each stage's seconds (``<stage>_s``, also in
    ``out/timings.json``).

    A config whose frozen checkpoint encoder names its pretraining config (``model.encoder.pretrain``) first
    pretrains it on the same data into ``out/pretrain`` and writes the latent cache, so the world model trains on
    cached latents. The evaluation plans with ``cfg.plan`` and ``cfg.eval``.
    """
    from .datasets import collect_for_config
    from .evaluation import checkpoint_setup, load_trained, run_evaluation
    from .runtime import resolve_device
    from .training import train

    out = Path(out)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data_dir = out / "data"
    collect_for_config(cfg, data_dir, show_progress)
    timings["collect_s"] = time.perf_counter() - t0

    if cfg.model.encoder.type == "checkpoint" and cfg.model.encoder.pretrain:
        t0 = time.perf_counter()
        cfg = pretrain_encoder(cfg, data_dir, out / "pretrain", show_progress)
        timings["pretrain_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ckpt = train(cfg, data_dir, out / "train", resume=True, show_progress=show_progress)
    timings["train_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    setup = checkpoint_setup(load_trained(ckpt, resolve_device("auto")), cfg.plan, cfg.eval)
    results = run_evaluation(setup, out / "eval", show_progress=show_progress)
    timings["eval_s"] = time.perf_counter() - t0

    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    return {**results, **timings}


def pretrain_encoder(cfg: ExperimentConfig, data_dir: Path, out: Path, show_progress: bool = True) -> ExperimentConfig:
    """Pretrain ``cfg.model.encoder.pretrain`` on ``data_dir`` into ``out`` (resumed or skipped when done), cache the
    dataset's latents under it, and return ``cfg`` with the encoder's weights pointing at that checkpoint."""
    from .training.encode import encode_dataset
    from .training.pretrain import pretrain

    source = load_config(cfg.model.encoder.pretrain)
    enc_ckpt = pretrain(source, data_dir, out, resume=True, show_progress=show_progress)
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, encoder=dataclasses.replace(cfg.model.encoder, weights=str(enc_ckpt)))
    )
    # float32: keypoint coordinates must stay sub-pixel, which float16 (~5e-4 at 1) only just is.
    encode_dataset(cfg, data_dir, dtype="float32", show_progress=show_progress)
    return cfg
