"""Planning evaluations during training (``train.eval_every``): success rows at the due epochs, weights equal to a
run without them, kills anywhere resume without re-running or re-logging a finished evaluation, and ``separate``
mode's background process / SLURM job and the pick-up of their results."""

from __future__ import annotations

import csv
import importlib
import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from jepa_wms.checkpoint import load_checkpoint
from jepa_wms.config import ConfigError, load_config
from jepa_wms.slurm import SlurmOptions, submit_train
from jepa_wms.training import train
from jepa_wms.training.auto_eval import SUBMITTED, check_auto_eval, eval_command
from tests.training.test_resume import DROPOUT, Killed

auto_eval_module = importlib.import_module("jepa_wms.training.auto_eval")
evaluate_module = importlib.import_module("jepa_wms.evaluation.evaluate")

# Evaluations of 3 episodes (chunks of 2 + 1) without videos: well under a second each.
EVALS = [*DROPOUT, "train.epochs=3", "train.eval_every=1", "eval.videos=0"]
TINY_SEPARATE = [*EVALS, "train.epochs=2", "train.eval_mode=separate", "train.device=cpu"]


def _rows(run: Path, split: str | None = None) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k != "samples_per_s"} for r in csv.DictReader(f)]  # wall clock
    return [r for r in rows if split is None or r["split"] == split]


def _same_weights(a: Path, b: Path) -> None:
    x, y = (load_checkpoint(r / "checkpoints" / "last.pt")["model"] for r in (a, b))
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("evals") / "run"
    train(load_config("wall", EVALS), tiny_dataset.parent, run, show_progress=False)
    return run


def test_inline_evaluations_log_success_at_their_epochs_and_leave_the_weights_alone(
    uninterrupted, tiny_dataset, tmp_path
):
    steps = load_checkpoint(uninterrupted / "checkpoints" / "last.pt")["step"] // 3
    rows = _rows(uninterrupted, "eval")
    assert [(r["epoch"], r["step"]) for r in rows] == [(str(e), str(e * steps)) for e in (1, 2, 3)]
    for r in rows:
        result = json.loads((uninterrupted / "evals" / f"epoch_{int(r['epoch']):03d}" / "results.json").read_text())
        assert float(r["success_rate"]) == pytest.approx(result["success_rate"], abs=1e-6)
        assert float(r["mean_final_distance"]) == pytest.approx(result["mean_final_distance"], rel=1e-5)
        assert result["episodes"] == 3 and result["checkpoint"].endswith(f"epoch_{int(r['epoch']):03d}.pt")
    # Every 2nd epoch with 2 episodes: only epoch 2 is evaluated and keeps its checkpoint; no evaluations at all
    # trains the same weights as with them (dropout on).
    cfg = load_config("wall", [*EVALS, "train.eval_every=2", "train.eval_episodes=2"])
    train(cfg, tiny_dataset.parent, tmp_path / "every2", show_progress=False)
    assert [r["epoch"] for r in _rows(tmp_path / "every2", "eval")] == ["2"]
    assert sorted(p.name for p in (tmp_path / "every2" / "checkpoints").glob("epoch_*")) == ["epoch_002.pt"]
    assert json.loads((tmp_path / "every2" / "evals" / "epoch_002" / "results.json").read_text())["episodes"] == 2
    train(
        load_config("wall", [*EVALS, "train.eval_every=0"]), tiny_dataset.parent, tmp_path / "none", show_progress=False
    )
    assert not _rows(tmp_path / "none", "eval") and not (tmp_path / "none" / "evals").exists()
    for run in (tmp_path / "every2", tmp_path / "none"):
        _same_weights(uninterrupted, run)
        assert [r for r in _rows(run) if r["split"] != "eval"] == [
            r for r in _rows(uninterrupted) if r["split"] != "eval"
        ]


def test_killed_runs_resume_without_rerunning_or_relogging_an_evaluation(
    uninterrupted, tiny_dataset, tmp_path, monkeypatch
):
    cfg, run = load_config("wall", EVALS), tmp_path / "run"
    real_run, real_append = auto_eval_module.run_evaluation, evaluate_module.append_records
    evaluated: list[str] = []

    def run_evaluation(setup, folder, **kw):
        evaluated.append(Path(folder).name)
        summary = real_run(setup, folder, **kw)
        if kill_after_result and Path(folder).name == "epoch_001":
            raise Killed  # results.json is written, its log row is not
        return summary

    def append_once_then_die(path, records):
        real_append(path, records)
        if kill_inside and Path(path).parent.name == "epoch_002":
            raise Killed  # the first chunk of epoch 2's episodes is on disk

    monkeypatch.setattr(auto_eval_module, "run_evaluation", run_evaluation)
    monkeypatch.setattr(evaluate_module, "append_records", append_once_then_die)
    kill_after_result, kill_inside = True, True
    with pytest.raises(Killed):
        train(cfg, tiny_dataset.parent, run, show_progress=False)
    assert evaluated == ["epoch_001"] and not _rows(run, "eval")

    kill_after_result = False
    with pytest.raises(Killed):
        train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False)
    assert evaluated == ["epoch_001", "epoch_002"]  # epoch 1's result was logged, not planned again
    assert [r["epoch"] for r in _rows(run, "eval")] == ["1"]

    kill_inside = False
    planned: list[int] = []

    def append_and_count(path, records):
        planned.extend(r["episode"] for r in records)
        real_append(path, records)

    monkeypatch.setattr(evaluate_module, "append_records", append_and_count)
    train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False)
    assert evaluated == ["epoch_001", "epoch_002", "epoch_002", "epoch_003"]
    assert planned == [2, 0, 1, 2]  # epoch 2 resumed at its third episode; epoch 3 from the start
    assert _rows(run) == _rows(uninterrupted)  # each eval row once, in place, with the same numbers
    _same_weights(uninterrupted, run)


class FakeProcess:
    """A background evaluation that finishes (writes its results.json) when waited for."""

    launched: list[tuple[list[str], dict]] = []

    def __init__(self, command, **kwargs):
        self.command = command
        FakeProcess.launched.append((command, kwargs))

    def wait(self):
        folder = Path(self.command[self.command.index("--out") + 1])
        epoch = int(folder.name[-3:])
        summary = {"success_rate": epoch / 4, "mean_final_distance": 1.5, "episodes": 2}
        (folder / "results.json").write_text(json.dumps(summary))
        return 0


def test_separate_mode_launches_jepa_wms_eval_and_logs_its_result(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")  # as under torchrun: the background process must not inherit it
    monkeypatch.setattr(FakeProcess, "launched", [])
    monkeypatch.setattr(auto_eval_module.subprocess, "Popen", FakeProcess)
    cfg = load_config("wall", [*TINY_SEPARATE, "train.eval_episodes=2"])
    run = tmp_path / "run"
    train(cfg, tiny_dataset.parent, run, show_progress=False)
    ckpts, evals = (run / "checkpoints").resolve(), (run / "evals").resolve()
    assert [c for c, _ in FakeProcess.launched] == [
        eval_command(ckpts / f"epoch_{e:03d}.pt", evals / f"epoch_{e:03d}", 2, "cpu") for e in (1, 2)
    ]
    assert FakeProcess.launched[0][0][:4] == [sys.executable, "-m", "jepa_wms.cli", "eval"]
    assert all("RANK" not in kw["env"] and kw["start_new_session"] for _, kw in FakeProcess.launched)
    steps = load_checkpoint(run / "checkpoints" / "last.pt")["step"] // 2
    rows = _rows(run, "eval")
    assert [(r["epoch"], r["step"], r["success_rate"]) for r in rows] == [
        ("1", str(steps), "0.25"),
        ("2", str(2 * steps), "0.5"),
    ]
    # A finished run's resume only picks up: nothing is launched again, nothing logged twice.
    train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False)
    assert len(FakeProcess.launched) == 2 and _rows(run, "eval") == rows


def test_separate_mode_runs_a_real_background_evaluation(tiny_dataset, tmp_path):
    cfg = load_config("wall", [*TINY_SEPARATE, "train.epochs=1", "train.eval_episodes=1"])
    train(cfg, tiny_dataset.parent, tmp_path / "run", show_progress=False)
    result = json.loads((tmp_path / "run" / "evals" / "epoch_001" / "results.json").read_text())
    assert result["episodes"] == 1
    assert [r["epoch"] for r in _rows(tmp_path / "run", "eval")] == ["1"]


def test_under_slurm_separate_evaluations_are_jobs_submitted_once(tiny_dataset, tmp_path, monkeypatch, caplog):
    slurm_module = importlib.import_module("jepa_wms.slurm")
    submitted: list[tuple] = []

    class Job:
        job_id = "777"

    def submit_eval(checkpoint, out, opts, **kw):
        submitted.append((Path(checkpoint).name, Path(out).name, opts.nodes, opts.job_name, kw["episodes"]))
        return Job()

    monkeypatch.setattr(slurm_module, "submit_eval", submit_eval)
    cfg, run = load_config("wall", [*TINY_SEPARATE, "train.epochs=1"]), tmp_path / "run"
    opts = SlurmOptions(nodes=2, gpus_per_node=0, job_name="wall")
    with caplog.at_level(logging.WARNING):
        train(cfg, tiny_dataset.parent, run, show_progress=False, slurm=opts)
    assert submitted == [("epoch_001.pt", "epoch_001", 1, "wall-eval", None)]
    assert (run / "evals" / "epoch_001" / SUBMITTED).read_text() == "777\n"
    assert "evaluations not finished" in caplog.text and not _rows(run, "eval")
    # A requeued job does not submit it again; once its result is there, a resume logs it.
    train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False, slurm=opts)
    assert len(submitted) == 1
    (run / "evals" / "epoch_001" / "results.json").write_text(
        json.dumps({"success_rate": 1.0, "mean_final_distance": 0.5, "episodes": 3})
    )
    train(cfg, tiny_dataset.parent, run, resume=True, show_progress=False, slurm=opts)
    assert [(r["epoch"], r["success_rate"]) for r in _rows(run, "eval")] == [("1", "1")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.eval_every=-1"], "train.eval_every"),
        (["train.eval_mode=later"], "train.eval_mode"),
        (["train.eval_episodes=-2"], "train.eval_episodes"),
    ],
)
def test_bad_settings_are_refused_when_the_config_is_read(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("wall", overrides)


def test_a_planner_that_cannot_be_built_fails_before_training(tiny_dataset, tmp_path):
    cfg = load_config("wall", [*EVALS, "plan.planner=nevergrad", "plan.init_std=0"])
    with pytest.raises(ValueError, match="init_std"):
        train(cfg, tiny_dataset.parent, tmp_path / "run", show_progress=False)
    with pytest.raises(ValueError, match="init_std"):  # before the job waits in the queue
        submit_train(cfg, tiny_dataset.parent, tmp_path / "run", SlurmOptions(gpus_per_node=0), cluster="debug")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="train.eval_every"):
        check_auto_eval(load_config("wall", ["train.eval_every=1"]), "pretrain_encoder")
