"""Run ``train`` and ``eval`` as SLURM jobs through submitit (the ``[slurm]`` extra).

The submitted callables (``TrainJob``, ``EvalJob``) are small picklable dataclasses holding plain data (the config as
a dict, absolute paths), so a job can be requeued and unpickled by a later run of the same code. Both are
resume-safe and implement submitit's ``checkpoint()`` hook: on preemption or timeout submitit calls it and requeues
the same job, and

* ``TrainJob`` always trains with ``resume=True``: a requeued job continues from ``OUT/checkpoints/last.pt``, written
  at the end of each epoch and every ``train.checkpoint_every`` steps (the steps since are redone, exactly); the job
  holds the run folder's lock (``runlock``) while it trains, and a requeued one takes it over; with
  ``train.eval_mode=separate`` it submits each evaluation as a one-node job with its own resources;
* ``EvalJob`` reuses ``evaluate``'s own resume: episodes already recorded in ``OUT`` (by any task) are skipped.

Both use one task per GPU (``tasks_per_node = gpus_per_node``; one per node without GPUs) on every node; each task
turns the SLURM variables into the torchrun-style ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/
``MASTER_PORT`` that ``jepa_wms.runtime.distributed`` reads, so training runs unchanged under DDP and evaluation
shares its episodes over the tasks exactly as under torchrun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import ExperimentConfig, config_from_dict


def import_submitit() -> ModuleType:
    """Import ``submitit`` or explain which optional extra provides it."""
    try:
        import submitit
    except ImportError as exc:
        raise ImportError(
            "--slurm needs the 'submitit' package: pip install 'jepa-wms[slurm]' (or pip install submitit)"
        ) from exc
    return submitit


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of one job. ``None`` leaves a setting to the cluster's defaults.

    Attributes:
        partition, account, qos: ``sbatch --partition/--account/--qos``.
        nodes: nodes of the job.
        gpus_per_node: GPUs per node; one task per GPU (0: a CPU-only job with one task per node).
        cpus_per_task: CPU cores per task (data loading and the host side of planning).
        time_min: wall-clock limit in minutes; on timeout the job checkpoints and requeues (at most
            ``max_requeues`` times).
        mem_gb: memory per node in GB.
        job_name: the SLURM job name.
        log_folder: where submitit writes the sbatch script, pickles and logs (default ``OUT/slurm``).
        max_requeues: how many timeouts a job may be requeued after (preemptions do not count).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_task: int | None = 8
    time_min: int = 24 * 60
    mem_gb: float | None = None
    job_name: str = "jepa-wms"
    log_folder: str | None = None
    max_requeues: int = 3

    def __post_init__(self) -> None:
        for name, value, least in (
            ("nodes", self.nodes, 1),
            ("gpus_per_node", self.gpus_per_node, 0),
            ("cpus_per_task", self.cpus_per_task, 1),
            ("time_min", self.time_min, 1),
            ("max_requeues", self.max_requeues, 0),
        ):
            if value is not None and (not isinstance(value, int) or value < least):
                raise ValueError(f"SLURM option {name} must be an int >= {least}, got {value!r}")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise ValueError(f"SLURM option mem_gb must be > 0, got {self.mem_gb!r}")


def make_executor(opts: SlurmOptions, default_folder: Path, tasks_per_node: int, cluster: str = "slurm") -> Any:
    """A ``submitit.AutoExecutor`` with ``opts`` applied.

    ``cluster`` is ``"slurm"`` for real submissions; ``"debug"`` (in-process) and ``"local"`` are for tests and
    ignore the SLURM-only settings (partition, account, qos).
    """
    submitit = import_submitit()
    folder = Path(opts.log_folder) if opts.log_folder else default_folder
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=opts.max_requeues)
    except RuntimeError as exc:  # submitit's SlurmExecutor refuses to start where there is no `srun`
        raise ValueError(f"cannot submit to SLURM from this machine: {exc} (run --slurm on a login node)") from exc
    executor.update_parameters(
        name=opts.job_name,
        timeout_min=opts.time_min,
        nodes=opts.nodes,
        tasks_per_node=tasks_per_node,
        gpus_per_node=opts.gpus_per_node or None,
        cpus_per_task=opts.cpus_per_task,
        mem_gb=opts.mem_gb,
        slurm_partition=opts.partition,
        slurm_account=opts.account,
        slurm_qos=opts.qos,
    )
    return executor


def export_distributed_env() -> None:
    """Inside a multi-task job, export the torch.distributed variables ``runtime.distributed`` reads.

    Outside a submitit job, or with a single task, nothing is needed: ``runtime.dist_info`` then defaults to one
    process.
    """
    submitit = import_submitit()
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (e.g. a TrainJob called directly)
        return
    if env.num_tasks == 1:
        return
    # overwrite: variables inherited from the submitting shell (e.g. a torchrun session) must not leak in.
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    import torch

    # runtime.distributed selects GPU LOCAL_RANK among the visible ones. SLURM shows every task all of its node's
    # GPUs unless the cluster binds one GPU per task; then the only visible GPU is index 0.
    if torch.cuda.is_available() and torch.cuda.device_count() == 1:
        os.environ["LOCAL_RANK"] = "0"


@dataclass(frozen=True)
class TrainJob:
    """``train(config, data_dir, out_dir, resume=True)`` as a picklable, requeueable SLURM job."""

    config: dict[str, Any]
    data_dir: str
    out_dir: str
    slurm: SlurmOptions | None = None  # this job's resources: train.eval_mode=separate evaluations get them too

    def __call__(self) -> str:
        from .training import train

        export_distributed_env()
        cfg = config_from_dict(self.config)
        return str(train(cfg, self.data_dir, self.out_dir, resume=True, show_progress=False, slurm=self.slurm))

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's preemption/timeout hook: requeue this very job; ``resume=True`` picks up ``last.pt``."""
        return import_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


@dataclass(frozen=True)
class EvalJob:
    """``evaluate(checkpoint_path, out_dir, ...)`` as a picklable, requeueable SLURM job; with a tuple of paths,
    ``evaluate_checkpoints`` (one evaluation per checkpoint and their pooled summary)."""

    # Not named `checkpoint`: that is submitit's requeue hook below.
    checkpoint_path: str | tuple[str, ...]
    out_dir: str
    episodes: int | None = None
    seed: int | None = None
    overrides: tuple[str, ...] = ()
    device: str = "auto"

    def __call__(self) -> dict[str, Any]:
        from .evaluation import evaluate, evaluate_checkpoints

        export_distributed_env()
        run = evaluate_checkpoints if isinstance(self.checkpoint_path, tuple) else evaluate
        return run(
            self.checkpoint_path,
            self.out_dir,
            episodes=self.episodes,
            seed=self.seed,
            overrides=self.overrides,
            device=self.device,
            show_progress=False,
        )

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's preemption/timeout hook: requeue; ``evaluate`` skips the episodes already recorded."""
        return import_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def submit_train(
    cfg: ExperimentConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    opts: SlurmOptions,
    *,
    resume: bool = False,
    cluster: str = "slurm",
) -> Any:
    """Submit DDP training (one task per GPU on each node) and return the submitit ``Job``.

    The checks ``train`` would make first (an existing run without ``resume``, a missing dataset) are made here,
    before anything is queued.
    """
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    last = out_dir / "checkpoints" / "last.pt"
    if last.exists() and not resume:
        raise FileExistsError(f"{last} already exists: pass --resume to continue it, or choose another --out")
    if not data_dir.exists():
        raise FileNotFoundError(f"dataset folder {data_dir} does not exist")
    from .training.auto_eval import check_auto_eval

    check_auto_eval(cfg, "world_model")  # a bad evaluation setting fails now, not once the job has waited its turn
    executor = make_executor(opts, out_dir / "slurm", tasks_per_node=max(1, opts.gpus_per_node), cluster=cluster)
    return executor.submit(TrainJob(cfg.to_dict(), str(data_dir), str(out_dir), opts))


def submit_eval(
    checkpoint: str | Path | list[str | Path],
    out_dir: str | Path,
    opts: SlurmOptions,
    *,
    episodes: int | None = None,
    seed: int | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    device: str = "auto",
    cluster: str = "slurm",
) -> Any:
    """Submit an evaluation of ``checkpoint`` (a list: each of them, pooled) with one task per GPU on every node,
    sharing the episodes, and return the submitit ``Job``."""
    paths = [Path(c).resolve() for c in (checkpoint if isinstance(checkpoint, list) else [checkpoint])]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
    out_dir = Path(out_dir).resolve()
    # Typos and invalid choices in the overrides fail now rather than after the job waited in the queue.
    config_from_dict(ExperimentConfig().to_dict(), list(overrides))
    executor = make_executor(opts, out_dir / "slurm", tasks_per_node=max(1, opts.gpus_per_node), cluster=cluster)
    target = tuple(map(str, paths)) if isinstance(checkpoint, list) else str(paths[0])
    return executor.submit(EvalJob(target, str(out_dir), episodes, seed, tuple(overrides), device))
