"""``jepa-wms collect|convert|export|droid-index|encode|pretrain|train|eval|grid|hub|demo|train-head|decode``: a thin
command line over the Python API (the flags are in `jepa_wms.cli_args`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .cli_args import build_parser, check_numbers, slurm_options


def _collect(args: argparse.Namespace) -> None:
    from .config import load_config
    from .datasets import collect_with
    from .paths import dataset_path

    cfg = load_config(args.config, args.overrides)
    flags = {k: getattr(args, k) for k in ("episodes", "episode_len", "workers", "seed", "img_size", "policy")}
    settings = dataclasses.replace(cfg.collect, **{k: v for k, v in flags.items() if v is not None})
    path = collect_with(args.env or cfg.env, settings, dataset_path(args.out), overwrite=args.overwrite)
    print(f"wrote {path}")


def _convert(args: argparse.Namespace) -> None:
    from .datasets.formats import convert, layouts
    from .paths import dataset_path

    if args.list:
        for name, lay in sorted(layouts().items()):
            print(f"{name:<22} env={lay.env:<18} {lay.description}")
        return
    if not args.src or not args.out:
        raise ValueError("convert needs SRC and --out (or --list)")
    path = convert(
        args.src,
        dataset_path(args.out),
        layout=args.layout,
        img_size=args.img_size,
        max_episodes=args.max_episodes,
        options=_layout_options(args),
        overwrite=args.overwrite,
    )
    print(f"wrote {path}")


def _layout_options(args: argparse.Namespace) -> dict[str, str] | None:
    options = {"task": args.task} if args.task else {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        options[key] = value
    return options or None


def _export(args: argparse.Namespace) -> None:
    from .datasets.export import export_droid_raw
    from .paths import dataset_path

    episodes = None
    if args.episodes is not None:
        try:
            bounds = [int(b) if b.strip() else None for b in args.episodes.split(":")]
        except ValueError:
            bounds = []
        if len(bounds) != 2:
            raise ValueError(f"--episodes takes START:STOP (a Python slice of episode ids), got {args.episodes!r}")
        episodes = slice(*bounds)
    print(f"wrote {export_droid_raw(dataset_path(args.data), args.out, fps=args.fps, episodes=episodes)}")


def _droid_index(args: argparse.Namespace) -> None:
    from .datasets.formats.droid_raw import build_index

    path = build_index(args.root, camera=args.camera, workers=args.workers, out=args.out)
    print(f"wrote {path}")


def _hub(args: argparse.Namespace) -> None:
    from .hub import PUBLISHED_MODELS, export

    if args.list:
        for name, spec in PUBLISHED_MODELS.items():
            print(f"{name:<18} {spec.predictor:<10} {spec.encoder_name:<14} env={spec.env:<21} {spec.urls[1]}")
        return
    if not args.name or not args.out:
        raise ValueError("hub needs NAME and --out (or --list)")
    path = export(
        args.name, args.out, args.checkpoint, args.encoder_checkpoint, dataset=args.dataset, num_heads=args.num_heads
    )
    print(f"wrote {path}; plan with: jepa-wms eval --checkpoint {path} --out <dir>")


def _encode(args: argparse.Namespace) -> None:
    from .config import load_config
    from .paths import dataset_path
    from .training.encode import encode_dataset

    cfg = load_config(args.config, args.overrides)
    folder = encode_dataset(
        cfg, dataset_path(args.data), device=args.device, batch_size=args.batch_size, dtype=args.dtype
    )
    print(f"latents: {folder}")


def _pretrain(args: argparse.Namespace) -> None:
    from .config import load_config
    from .paths import checkpoint_path, dataset_path
    from .training.pretrain import pretrain

    cfg = load_config(args.config, args.overrides)
    ckpt = pretrain(cfg, dataset_path(args.data), checkpoint_path(args.out), resume=args.resume)
    print(f"checkpoint: {ckpt}; freeze it with model.encoder.type=checkpoint model.encoder.weights={ckpt}")


def _train(args: argparse.Namespace) -> None:
    from .config import load_config
    from .paths import checkpoint_path, dataset_path
    from .training import train

    cfg = load_config(args.config, args.overrides)
    data, out = dataset_path(args.data), checkpoint_path(args.out)
    slurm = slurm_options(args)
    if slurm is not None:
        from .slurm import submit_train

        job = submit_train(cfg, data, out, slurm, resume=args.resume)
        print(f"submitted SLURM job {job.job_id} (train); logs: {job.paths.folder}")
        return
    print(f"checkpoint: {train(cfg, data, out, resume=args.resume)}")


def _train_head(args: argparse.Namespace) -> None:
    from .heads import train_head
    from .paths import checkpoint_path, dataset_path

    try:
        channels = [int(c) for c in args.channels.split(",")]
    except ValueError:
        raise ValueError(f"--channels must be comma-separated ints, got {args.channels!r}") from None
    ckpt = train_head(
        checkpoint_path(args.checkpoint),
        args.head,
        dataset_path(args.data),
        checkpoint_path(args.out),
        args.overrides,
        channels=channels,
        pixel_loss=args.pixel_loss,
        ssim_weight=args.ssim_weight,
        hidden=args.hidden,
        proprio=not args.no_proprio,
        resume=args.resume,
    )
    print(f"head: {ckpt}")


def _decode(args: argparse.Namespace) -> None:
    from .heads import decode_rollouts, trajectory_source, unroll_decode
    from .paths import checkpoint_path, dataset_path

    data = trajectory_source(None if args.data is None else dataset_path(args.data), args.env, args.seed)
    checkpoint, heads = checkpoint_path(args.checkpoint), [checkpoint_path(h) for h in args.head]
    media = {"fps": args.fps, "video_format": args.video_format, "context": args.context}
    if args.programs is not None:
        if len(heads) != 1:
            raise ValueError(f"--programs draws frames with one image head, got {len(heads)} heads")
        unroll_decode(checkpoint, heads[0], data, args.programs, args.out, repeat=args.repeat, **media)
        print(f"unroll: {args.out}/unroll.{args.video_format}, {args.out}/unroll.json")
        return
    result = decode_rollouts(checkpoint, heads, data, args.out, episodes=args.episodes, steps=args.steps, **media)
    for key in ("pixel_error", "state_distance"):
        if key in result:
            print(f"{key} per step (imagined): " + " ".join(f"{v:.4g}" for v in result[key]["imagined"]))
    print(f"decoded: {args.out}/decode.json")


def _eval(args: argparse.Namespace) -> None:
    from .evaluation import evaluate, evaluate_checkpoints, summary_table
    from .paths import checkpoint_path, dataset_path
    from .runtime import dist_info

    checkpoint = None if args.checkpoint is None else checkpoint_path(args.checkpoint)
    if args.protocol == "action-score":
        _action_score(args)
        return
    if args.head is not None:
        # As the config key, so that SLURM jobs and several checkpoints carry it like any other override.
        args.overrides = [*args.overrides, f"eval.head={checkpoint_path(args.head)}"]
    several = _eval_checkpoint_list(args)
    slurm = slurm_options(args)
    if slurm is not None:
        from .slurm import submit_eval

        if checkpoint is None and several is None:
            raise ValueError("eval --slurm needs --checkpoint (simulator-only evaluations run locally)")
        job = submit_eval(
            checkpoint if several is None else several,
            args.out,
            slurm,
            episodes=args.episodes,
            seed=args.seed,
            overrides=args.overrides,
            device=args.device,
        )
        print(f"submitted SLURM job {job.job_id} (eval); logs: {job.paths.folder}")
        return
    talk = dist_info()[0] == 0  # under torchrun every rank returns the results; one prints them
    options: dict[str, Any] = dict(episodes=args.episodes, seed=args.seed, overrides=args.overrides, device=args.device)
    data = None if args.data is None else dataset_path(args.data)
    if several is not None:
        if args.env is not None or args.config is not None:
            raise ValueError("--env/--config go with one --checkpoint or none; the checkpoints have their own")
        summary = evaluate_checkpoints(several, args.out, data=data, **options)
        if talk:
            print(summary_table(summary))
            print(f"summary: {args.out}/summary.json")
        return
    res = evaluate(checkpoint, args.out, env=args.env, config=args.config, data=data, **options)
    if talk:
        print(_results_table(res["env"], res))
        print(f"results: {args.out}/results.json")


def _action_score(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_action_score
    from .paths import checkpoint_path, dataset_path

    unused = [f for f in ("checkpoints", "runs", "last_epochs", "env", "config", "head", "slurm") if getattr(args, f)]
    if unused:
        raise ValueError(f"--protocol action-score takes --checkpoint and --data, not --{unused[0].replace('_', '-')}")
    if args.checkpoint is None or args.data is None:
        raise ValueError("--protocol action-score needs --checkpoint CK and --data DIR (a 7-D pose dataset)")
    res = evaluate_action_score(
        checkpoint_path(args.checkpoint),
        dataset_path(args.data),
        args.out,
        seed=args.seed,
        episodes=args.episodes,
        overrides=args.overrides,
        device=args.device,
    )
    rows = [
        ("episodes", res["episodes"]),
        ("action score", f"{res['score']:.1f}  (zero plan {res['zero_plan_score']:.1f})"),
        ("mean E_xyz", f"{res['mean_e_xyz']:.4f} m  (zero plan {res['zero_plan_mean_e_xyz']:.4f})"),
        ("mean E_rot / E_grip", f"{res['mean_e_rot']:.4f} rad / {res['mean_e_grip']:.4f}"),
        ("planning s / episode", f"{res['planning_seconds_per_episode']:.2f}"),
    ]
    print("\n" + "\n".join(f"  {k:<20}  {v}" for k, v in rows) + "\n")
    print(f"results: {args.out}/results.json, episodes: {args.out}/episodes.csv")


def _grid(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_grid, load_grid_spec, pivot_table
    from .evaluation.grid_report import setting_axes
    from .paths import checkpoint_path

    spec = load_grid_spec(args.grid)
    axes = [*spec.axes, *(["epoch"] if spec.epochs is not None else [])]
    for flag, axis in (("--rows", args.rows), ("--cols", args.cols)):
        if axis is not None and axis not in setting_axes(axes):
            raise ValueError(f"{flag} {axis!r} is not a setting axis of the grid (axes: {', '.join(axes)})")
    rows = evaluate_grid(
        args.grid,
        args.out,
        checkpoint=None if args.checkpoint is None else checkpoint_path(args.checkpoint),
        run=None if args.run is None else checkpoint_path(args.run),
        workers=args.workers,
        device=args.device,
        overwrite=args.overwrite,
        formats=("csv", args.format),
        slurm=slurm_options(args),
    )
    if rows:
        print(pivot_table(rows, axes, args.rows, args.cols))
        print(f"results: {args.out}/results.csv, plot: {args.out}/success.png")


def _eval_checkpoint_list(args: argparse.Namespace) -> list[str] | None:
    """The checkpoints of ``--checkpoints`` or of ``--runs`` with ``--last-epochs``; None for one evaluation."""
    from .evaluation import last_epoch_checkpoints
    from .paths import checkpoint_path

    if sum(v is not None for v in (args.checkpoint, args.checkpoints, args.runs)) > 1:
        raise ValueError("eval takes one of --checkpoint, --checkpoints, --runs")
    if (args.runs is None) != (args.last_epochs is None):
        raise ValueError("--runs and --last-epochs go together")
    if args.runs is not None:
        return [str(c) for run in args.runs for c in last_epoch_checkpoints(checkpoint_path(run), args.last_epochs)]
    return None if args.checkpoints is None else [str(checkpoint_path(c)) for c in args.checkpoints]


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    res = run_demo(args.env, args.out, args.overrides, quick=args.quick, task=args.task, config=args.config)
    # run_demo's summary carries each stage's seconds as `<stage>_s`; no result key ends that way.
    print(_results_table(res["env"], res, {k: v for k, v in res.items() if k.endswith("_s")}))


def _results_table(env: str, results: dict[str, Any], timings: dict[str, float] | None = None) -> str:
    rows = [
        ("env", env),
        ("episodes", results["episodes"]),
        ("success rate", f"{100 * results['success_rate']:.1f} %"),
        ("mean final distance", f"{results['mean_final_distance']:.2f}"),
        ("planning s / episode", f"{results['planning_seconds_per_episode']:.2f}"),
    ]
    rows += [(k.replace("_s", " time"), f"{v / 60:.1f} min") for k, v in (timings or {}).items()]
    width = max(len(k) for k, _ in rows)
    return "\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows) + "\n"


_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "collect": _collect,
    "convert": _convert,
    "droid-index": _droid_index,
    "export": _export,
    "encode": _encode,
    "pretrain": _pretrain,
    "train": _train,
    "eval": _eval,
    "grid": _grid,
    "hub": _hub,
    "demo": _demo,
    "train-head": _train_head,
    "decode": _decode,
}


@contextlib.contextmanager
def _console_logging() -> Iterator[None]:
    """While a command runs, the library's log lines are its output: INFO and below on stdout, warnings on stderr,
    the message alone (as the lines were printed before they were logged)."""
    log = logging.getLogger("jepa_wms")
    out, err = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err.setLevel(logging.WARNING)
    level = log.level
    log.setLevel(logging.INFO)
    for handler in (out, err):
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(out)
        log.removeHandler(err)
        log.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .training import TrainingError

    try:
        with _console_logging():
            check_numbers(args)
            _COMMANDS[args.command](args)
    except (
        ValueError,
        ImportError,  # an optional extra is missing (nevergrad, submitit): the message names it
        OSError,  # a missing input, an existing output, an --out that cannot be written: the message names the path
        CheckpointError,
        ConfigError,
        TrainingError,
    ) as exc:
        print(f"jepa-wms {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jepa-wms {args.command}: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
