"""The command line's grammar: every ``jepa-wms`` subcommand's flags, the SLURM flag group, and the checks on
numeric flags and SLURM flags that run before a command does (`jepa_wms.cli` runs the commands)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .config import RANGES, Range

if TYPE_CHECKING:
    from .slurm import SlurmOptions

__all__ = ["build_parser", "check_numbers", "slurm_options"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jepa-wms", description="Joint-Embedding Predictive World Models")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("collect", help="generate trajectories from an env into an HDF5 dataset")
    c.add_argument("--config", default=None, help="YAML file or embedded config name: its env and collect.* settings")
    c.add_argument("--env", default=None, help="default: the config's (wall without --config)")
    # Unset flags leave the config's collect.* value (CollectConfig's default without --config).
    c.add_argument("--episodes", type=int, default=None)
    c.add_argument("--episode-len", type=int, default=None)
    c.add_argument("--workers", type=int, default=None)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--img-size", type=int, default=None)
    c.add_argument(
        "--policy",
        default=None,
        help="data policy (default: the env's); Push-T: noisy_push | expert | random_walk; "
        "Metaworld: noisy_expert | direct",
    )
    c.add_argument("--out", required=True, help="dataset folder (gets trajectories.h5); under $DATASET_ROOT if set")
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. collect.episodes=100")

    v = sub.add_parser("convert", help="convert a published dataset (DINO-WM, Metaworld parquet) to our format")
    v.add_argument("src", nargs="?", help="root folder of the published dataset")
    v.add_argument("--out", help="dataset folder to write (under $DATASET_ROOT if set and relative)")
    v.add_argument("--layout", default=None, help="layout name (default: detected from the files)")
    v.add_argument("--img-size", type=int, default=None, help="resize frames, e.g. 64 for CPU training")
    v.add_argument("--max-episodes", type=int, default=None)
    v.add_argument("--task", default=None, help="task to keep from a multi-task file (Metaworld parquet)")
    v.add_argument("--overwrite", action="store_true")
    v.add_argument("--list", action="store_true", help="list the known layouts and exit")
    v.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="layout option, repeatable, e.g. -o camera=right_mp4_path (robot layouts: camera, state, action, fps)",
    )  # fmt: skip

    x = sub.add_parser("export", help="write a dataset of ours in a published robot layout (droid_raw)")
    x.add_argument("data", help="dataset folder (trajectories.h5) whose /proprio is the 7-D DROID pose")
    x.add_argument("--out", required=True, help="folder to write the episode folders into")
    x.add_argument("--layout", default="droid_raw", choices=["droid_raw"])
    x.add_argument("--fps", type=float, default=4.0, help="video rate: one frame per dataset frame (stand-in: 4)")
    x.add_argument("--episodes", default=None, metavar="START:STOP", help="a slice of episode ids (default all)")

    di = sub.add_parser("droid-index", help="scan DROID episode folders; write droid_index.json (usable, skipped+why)")
    di.add_argument("root", help="folder of DROID episode folders")
    di.add_argument("--camera", default="left_mp4_path", help="metadata key naming the MP4")
    di.add_argument("--workers", type=int, default=8)
    di.add_argument("--out", default=None, help="index file (default ROOT/droid_index.json)")

    n = sub.add_parser("encode", help="pre-encode a dataset with a frozen encoder; training then reads the latents")
    n.add_argument("--data", required=True, help="dataset folder (under $DATASET_ROOT if set and relative)")
    n.add_argument("--config", required=True, help="YAML file or embedded config name whose encoder is frozen")
    n.add_argument("--device", default="auto")
    n.add_argument("--batch-size", type=int, default=256, help="frames encoded per forward pass")
    n.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="storage type of the latents")
    n.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.seed=1")

    r = sub.add_parser("pretrain", help="pretrain an image encoder alone on a dataset's frames (autoencoder)")
    r.add_argument("--config", required=True, help="YAML file or embedded config name (model.encoder, pixel_decoder)")
    r.add_argument("--data", required=True, help="dataset folder (under $DATASET_ROOT if set and relative)")
    r.add_argument("--out", required=True, help="run folder: checkpoints/, log.csv (under $CHECKPOINT_ROOT if set)")
    r.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. 'model.pixel_decoder=[64,64,32,32,16,16]'")

    t = sub.add_parser("train", help="train a world model on a dataset")
    t.add_argument("--config", default="wall", help="YAML file or embedded config name (default: wall)")
    t.add_argument("--data", required=True, help="dataset folder (under $DATASET_ROOT if set and relative)")
    t.add_argument("--out", required=True, help="run folder: checkpoints/, log.csv (under $CHECKPOINT_ROOT if set)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    _add_slurm_flags(t)

    e = sub.add_parser("eval", help="plan seeded episodes with a checkpoint (or the true simulator) and report success")
    e.add_argument("--checkpoint", default=None, help="a training checkpoint; omit with plan.model=simulator")
    several = "each into its own subfolder of OUT, then summary.json: mean ± std (key=value overrides go before)"
    e.add_argument("--checkpoints", nargs="+", default=None, metavar="CKPT", help=f"several checkpoints, {several}")
    e.add_argument("--runs", nargs="+", default=None, metavar="RUN", help="training runs: --checkpoints of each run's")
    e.add_argument("--last-epochs", type=int, default=None, metavar="N", help="with --runs: last N epoch_NNN.pt")
    e.add_argument(
        "--env", default=None,
        help="without --checkpoint: the env whose simulator plans (e.g. pusht); with one trained on other data: "
        "plan there zero-shot (e.g. a droid model in franka-tabletop-reach)",
    )  # fmt: skip
    e.add_argument("--config", default=None, help="without --checkpoint: config (default: the env's quick demo one)")
    e.add_argument("--data", default=None, help="dataset for action stats and dset goals (default: collect one)")
    e.add_argument(
        "--protocol", default="mpc", choices=("mpc", "action-score"),
        help="mpc: plan and act in the env (default); action-score: the offline DROID score of --checkpoint on the "
        "recorded 7-D pose clips of --data (results.json + episodes.csv)",
    )  # fmt: skip
    e.add_argument("--head", default=None, help="image head: videos show the imagined plan too (eval.head=HEAD)")
    e.add_argument("--episodes", type=int, default=None)
    e.add_argument("--seed", type=int, default=None)
    e.add_argument("--out", required=True)
    e.add_argument("--device", default="auto")
    e.add_argument("overrides", nargs="*", metavar="key=value", help="plan.*/eval.* overrides, e.g. plan.alpha=0.1")
    _add_slurm_flags(e)

    gr = sub.add_parser("grid", help="evaluate a grid of planning settings, one evaluation per cell, into one table")
    gr.add_argument("--checkpoint", default=None, help="the checkpoint every cell plans with")
    gr.add_argument("--run", default=None, help="a training run: its last.pt, or the epochs the grid's 'epochs' names")
    gr.add_argument("--grid", required=True, help="YAML: axes (config key: [values]), optional fixed: and epochs:")
    gr.add_argument("--out", required=True, help="cells/<slug>/ (each an eval folder), results.csv, success.png")
    gr.add_argument("--workers", type=int, default=1, help="cells evaluated at once, each in its own process")
    gr.add_argument("--device", default="auto")
    gr.add_argument("--format", default="csv", choices=("csv", "parquet"), help="parquet: results.parquet too")
    gr.add_argument("--overwrite", action="store_true", help="discard the results of another grid in OUT")
    gr.add_argument("--rows", default=None, metavar="AXIS", help="printed table: the axis down (default: the first)")
    gr.add_argument("--cols", default=None, metavar="AXIS", help="printed table: the axis across (default: the second)")
    _add_slurm_flags(gr)

    h = sub.add_parser("hub", help="convert a released JEPA-WMs model into a jepa-wms checkpoint (for eval)")
    h.add_argument("name", nargs="?", help="e.g. jepa_wm_pusht (see --list)")
    h.add_argument("--out", help="checkpoint file to write")
    h.add_argument("--checkpoint", default=None, help="original .pth.tar (default: the release's URL)")
    h.add_argument("--encoder-checkpoint", default=None, help="encoder weight file (default: its official URL)")
    h.add_argument("--dataset", default=None, help="dataset whose action/proprio stats to use (Wall, Metaworld)")
    h.add_argument(
        "--num-heads", type=int, default=None, help="attention heads (no tensor records it; default: the release's)"
    )
    h.add_argument("--list", action="store_true", help="list the released models and exit")

    hd = sub.add_parser("train-head", help="train an image or state head on a world model's frozen latents")
    hd.add_argument("--checkpoint", required=True, help="world model checkpoint whose encoder's latents it reads")
    hd.add_argument("--head", required=True, choices=("image", "state"), help="image: frames; state: the env state")
    hd.add_argument("--data", required=True, help="dataset folder (under $DATASET_ROOT if set and relative)")
    hd.add_argument("--out", required=True, help="run folder: checkpoints/last.pt is the head (under $CHECKPOINT_ROOT)")
    hd.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    hd.add_argument("--channels", default="64,64,32,32,16,16", help="image head: decoder stage widths")
    hd.add_argument("--pixel-loss", default="l1", choices=("l1", "l2"), help="image head: pixel term")
    hd.add_argument("--ssim-weight", type=float, default=0.2, help="image head: weight of 1 − SSIM")
    hd.add_argument("--hidden", type=int, default=256, help="state head: MLP width")
    hd.add_argument("--no-proprio", action="store_true", help="state head: read the latents only, not proprio")
    hd.add_argument("overrides", nargs="*", metavar="key=value", help="train.*, optim.*, data.*: e.g. train.epochs=5")

    dc = sub.add_parser("decode", help="decode imagined rollouts (or action programs) next to the real frames")
    dc.add_argument("--checkpoint", required=True, help="world model checkpoint")
    dc.add_argument("--head", required=True, nargs="+", help="head checkpoints (an image head, a state head, or both)")
    dc.add_argument("--data", default=None, help="dataset whose episodes give the context and recorded actions")
    dc.add_argument("--env", default=None, help="instead of --data: fresh episodes of the env's data policy")
    dc.add_argument("--seed", type=int, default=0, help="with --env: episode i's start and actions depend on (seed, i)")
    dc.add_argument("--out", required=True, help="output folder")
    dc.add_argument("--episodes", type=int, default=4)
    dc.add_argument("--context", type=int, default=1, help="context frames before the imagined ones")
    dc.add_argument("--steps", type=int, default=8, help="imagined steps (model steps of frameskip env steps)")
    dc.add_argument("--programs", default=None, help="YAML of action programs: counterfactual unroll instead")
    dc.add_argument("--repeat", type=int, default=4, help="with --programs: times each program repeats")
    dc.add_argument("--fps", type=int, default=4)
    dc.add_argument("--video-format", default="gif", choices=("gif", "mp4"))

    d = sub.add_parser("demo", help="collect → train → eval with the embedded offline default config")
    d.add_argument("--env", default="wall", help="wall | pointmaze | pusht | metaworld")
    d.add_argument("--task", default=None, help="Metaworld task (default: reach)")
    d.add_argument("--quick", action="store_true", help="the 2-core CPU size (Wall's default already is)")
    d.add_argument("--config", default=None, help="another embedded config of --env, e.g. pusht_keypoints_5k")
    d.add_argument("--out", default=None, help="default: runs/demo (Wall), runs/demo-<env>[-quick] otherwise")
    d.add_argument("overrides", nargs="*", metavar="key=value")
    return p


_SLURM_FLAGS = {  # flag dest -> SlurmOptions field
    "partition": "partition",
    "account": "account",
    "qos": "qos",
    "nodes": "nodes",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "time": "time_min",
    "mem": "mem_gb",
    "job_name": "job_name",
    "log_folder": "log_folder",
}


def _add_slurm_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SLURM", "with --slurm the command is submitted as a SLURM job (submitit) instead")
    g.add_argument("--slurm", action="store_true", help="submit to SLURM (needs the [slurm] extra); prints the job id")
    g.add_argument("--partition")
    g.add_argument("--account")
    g.add_argument("--qos")
    g.add_argument("--nodes", type=int, help="nodes (train only; default 1)")
    g.add_argument("--gpus-per-node", type=int, help="GPUs per node, one training task each (default 1)")
    g.add_argument("--cpus-per-task", type=int, help="default 8")
    g.add_argument("--time", type=int, metavar="MIN", help="time limit in minutes (default 1440); requeued on timeout")
    g.add_argument("--mem", type=float, metavar="GB", help="memory per node (default: the cluster's)")
    g.add_argument("--job-name", help="default jepa-wms")
    g.add_argument("--log-folder", help="submitit scripts and logs (default OUT/slurm)")


# Numeric flags: the config key's range where a flag stands for one (SlurmOptions checks the SLURM flags).
_FLAG_RANGES: dict[str, dict[str, Range]] = {
    "collect": {d: RANGES[f"collect.{d}"] for d in ("episodes", "episode_len", "workers", "seed", "img_size")},
    "convert": {"img_size": RANGES["collect.img_size"], "max_episodes": Range(1)},
    "encode": {"batch_size": Range(1)},
    "eval": {"episodes": RANGES["eval.episodes"], "seed": RANGES["eval.seed"], "last_epochs": Range(1)},
    "grid": {"workers": Range(1)},
    "hub": {"num_heads": Range(1)},
    "train-head": {"hidden": Range(1), "ssim_weight": Range(0.0)},
    "decode": {**{d: Range(1) for d in ("episodes", "context", "steps", "repeat", "fps")}, "seed": RANGES["eval.seed"]},
}


def check_numbers(args: argparse.Namespace) -> None:
    from .config import check_range

    for dest, allowed in _FLAG_RANGES.get(args.command, {}).items():
        if getattr(args, dest) is not None:
            check_range("--" + dest.replace("_", "-"), getattr(args, dest), allowed)


def slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    given = {field: getattr(args, dest) for dest, field in _SLURM_FLAGS.items() if getattr(args, dest) is not None}
    if not args.slurm:
        if given:
            flags = ", ".join("--" + dest.replace("_", "-") for dest in _SLURM_FLAGS if getattr(args, dest) is not None)
            raise ValueError(f"{flags} only apply with --slurm")
        return None
    from .slurm import SlurmOptions

    return SlurmOptions(**given)
