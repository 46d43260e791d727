"""Planning evaluations during training (``train.eval_every``): every K epochs the epoch's checkpoint
(``checkpoints/epoch_NNN.pt``, kept for it) is evaluated into ``OUT/evals/epoch_NNN`` (an ordinary evaluation folder,
resumable on its own) and its success rate and mean final distance are logged as a ``split="eval"`` row of
``log.csv`` and TensorBoard scalars at that epoch's last step.

``train.eval_mode``:

* ``inline``: every training rank evaluates before the next epoch starts, the episodes shared as under ``torchrun
  ... eval``; the process group then waits up to ``runtime.EVAL_TIMEOUT`` for the slowest rank.
* ``separate``: rank 0 starts ``jepa-wms eval`` as a background process (under ``--slurm``, submits it as its own
  SLURM job) and training goes on; a result is logged once its ``results.json`` appears, looked for at every epoch
  end. At the end, training waits for its background processes and logs them; SLURM jobs still queued or running
  are logged by a later ``--resume`` of the run (it then only picks up results).

What is logged is the truth about what is done: on start (and resume) the due epochs up to the checkpoint's without
an ``eval`` row are finished first — a ``results.json`` is logged as it is, a missing one is (re)run or
(re)launched, and a half-done folder resumes its episodes — so a kill anywhere neither re-runs a finished evaluation
nor logs one twice. The evaluation reads the checkpoint file, never the training model, and training reseeds its
RNGs every step (``seed_step``), so the weights equal those of a run without evaluations.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config import ConfigError, ExperimentConfig
from ..evaluation import checkpoint_setup, load_trained, run_evaluation
from ..planning.registry import build_planner
from ..runtime import EVAL_TIMEOUT, on_rank0
from .logger import RunLogger

if TYPE_CHECKING:
    from ..slurm import SlurmOptions

_log = logging.getLogger(__name__)

# torchrun's and slurm.export_distributed_env's variables: a background evaluation is a process of its own.
_GROUP_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
SUBMITTED = "slurm_job_id"  # in an evaluation folder: a SLURM job evaluates it (not submitted again on resume)


def eval_folder(out_dir: Path, epoch: int) -> Path:
    return out_dir / "evals" / f"epoch_{epoch:03d}"


def epoch_checkpoint(out_dir: Path, epoch: int) -> Path:
    return out_dir / "checkpoints" / f"epoch_{epoch:03d}.pt"


def group_timeout(cfg: ExperimentConfig) -> datetime.timedelta | None:
    """The process group's timeout: inline evaluations hold the ranks at their merge for as long as planning takes."""
    return EVAL_TIMEOUT if cfg.train.eval_every and cfg.train.eval_mode == "inline" else None


def check_auto_eval(cfg: ExperimentConfig, objective: str) -> None:
    """Refuse evaluation settings that would fail only after the first K epochs of training."""
    if not cfg.train.eval_every:
        return
    if objective != "world_model":
        raise ConfigError(
            f"config key 'train.eval_every' needs a world model to plan with, not objective {objective!r}"
        )
    build_planner(cfg.plan)  # a bad planner setting raises its own one-line error


@dataclasses.dataclass
class AutoEval:
    """The evaluations of one training run; every rank holds one (only rank 0's logger writes)."""

    cfg: ExperimentConfig
    out_dir: Path
    steps_per_epoch: int
    device: torch.device
    logger: RunLogger
    slurm: SlurmOptions | None = None  # separate evaluations become SLURM jobs with these resources
    pending: set[int] = dataclasses.field(default_factory=set)  # due epochs whose row is not logged yet
    processes: dict[int, subprocess.Popen] = dataclasses.field(default_factory=dict)

    def due(self, epoch: int) -> bool:
        every = self.cfg.train.eval_every
        return bool(every) and epoch > 0 and epoch % every == 0

    def start(self, epoch: int) -> None:
        """Finish the evaluations due up to ``epoch`` (the resumed checkpoint's) that a kill left unlogged."""
        logged = on_rank0(lambda: self.logger.logged_epochs("eval"))
        for e in range(1, epoch + 1):
            if self.due(e) and e not in logged:
                self._begin(e)
        self._pick_up()

    def epoch_end(self, epoch: int) -> None:
        """After epoch ``epoch``'s checkpoints are written: evaluate it when due, log what finished meanwhile."""
        if self.due(epoch):
            self._begin(epoch)
        self._pick_up()

    def finish(self) -> None:
        """At the end of training: wait for the background evaluations and log them; say what is still out."""
        for process in self.processes.values():
            process.wait()
        self._pick_up()
        if self.pending and self.logger.enabled:
            folders = ", ".join(str(eval_folder(self.out_dir, e)) for e in sorted(self.pending))
            _log.warning(
                f"[train] evaluations not finished: {folders}; once they are, `jepa-wms train --resume` with the same "
                f"arguments logs them (see eval.log or slurm/ in each folder)"
            )

    def _begin(self, epoch: int) -> None:
        folder = eval_folder(self.out_dir, epoch)
        # A collective: it also holds the other ranks until rank 0 has written the checkpoint they will read.
        if on_rank0(lambda: (folder / "results.json").exists()):
            self.pending.add(epoch)  # finished before a kill: logged by _pick_up, not run again
        elif self.cfg.train.eval_mode == "inline":
            self._log_row(epoch, self._run_inline(epoch, folder))
        elif self.logger.enabled:  # separate: rank 0 launches it
            self.pending.add(epoch)
            self._launch(epoch, folder)

    def _run_inline(self, epoch: int, folder: Path) -> dict[str, Any]:
        if self.logger.enabled:
            _log.info(f"[train] epoch {epoch}: evaluating into {folder}")
        # A model of its own, from the file: the training model's mode and state stay untouched.
        trained = load_trained(epoch_checkpoint(self.out_dir, epoch), self.device)
        setup = checkpoint_setup(trained, self.cfg.plan, self.cfg.eval)
        return run_evaluation(setup, folder, episodes=self.cfg.train.eval_episodes or None, show_progress=False)

    def _launch(self, epoch: int, folder: Path) -> None:
        checkpoint = epoch_checkpoint(self.out_dir, epoch).resolve()
        episodes = self.cfg.train.eval_episodes or None
        if self.slurm is not None:
            if (folder / SUBMITTED).exists():
                return  # its job may still be queued: a requeued training job must not submit it twice
            from ..slurm import submit_eval

            folder.mkdir(parents=True, exist_ok=True)
            opts = dataclasses.replace(self.slurm, nodes=1, job_name=f"{self.slurm.job_name}-eval")
            job = submit_eval(checkpoint, folder, opts, episodes=episodes, device=self.cfg.train.device)
            (folder / SUBMITTED).write_text(f"{job.job_id}\n")
            _log.info(f"[train] epoch {epoch}: submitted SLURM job {job.job_id} evaluating into {folder}")
            return
        folder.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _GROUP_VARIABLES}
        with open(folder / "eval.log", "ab") as log:
            # Its own session: a Ctrl-C of training leaves it running; a resume picks up its result.
            self.processes[epoch] = subprocess.Popen(
                eval_command(checkpoint, folder.resolve(), episodes, self.cfg.train.device),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _log.info(f"[train] epoch {epoch}: evaluating in the background into {folder} (log: eval.log)")

    def _pick_up(self) -> None:
        """Log the pending evaluations whose ``results.json`` has appeared (rank 0)."""
        if not self.logger.enabled:
            return
        for epoch in sorted(self.pending):
            results = eval_folder(self.out_dir, epoch) / "results.json"
            if results.exists():
                self._log_row(epoch, json.loads(results.read_text()))

    def _log_row(self, epoch: int, summary: dict[str, Any]) -> None:
        self.pending.discard(epoch)
        values = {k: float(summary[k]) for k in ("success_rate", "mean_final_distance")}
        self.logger.log(epoch * self.steps_per_epoch, epoch, "eval", values)
        if self.logger.enabled:
            _log.info(f"[train] epoch {epoch} success {values['success_rate']:.3f} ({summary['episodes']} episodes)")


def eval_command(checkpoint: Path, folder: Path, episodes: int | None, device: str) -> list[str]:
    """The ``jepa-wms eval`` command line of a background evaluation (plan/eval settings: the checkpoint's)."""
    command = [sys.executable, "-m", "jepa_wms.cli", "eval", "--checkpoint", str(checkpoint), "--out", str(folder)]
    return command + ["--device", device] + ([] if episodes is None else ["--episodes", str(episodes)])


__all__ = ["AutoEval", "check_auto_eval", "eval_command", "eval_folder", "group_timeout"]
