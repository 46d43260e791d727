"""SLURM launching through submitit: in-process ("debug") jobs, executor parameters, pickling, DDP env, the CLI."""

import os
import pickle
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

submitit = pytest.importorskip("submitit")

from jepa_wms.checkpoint import load_checkpoint  # noqa: E402
from jepa_wms.cli import main  # noqa: E402
from jepa_wms.config import load_config  # noqa: E402
from jepa_wms.runtime import dist_info  # noqa: E402
from jepa_wms.slurm import (  # noqa: E402
    EvalJob,
    SlurmOptions,
    TrainJob,
    export_distributed_env,
    import_submitit,
    make_executor,
    submit_eval,
    submit_train,
)
from tests.conftest import TINY  # noqa: E402

CPU = SlurmOptions(gpus_per_node=0)


@pytest.fixture
def fake_srun(monkeypatch):
    """Make submitit believe it runs on a SLURM login node (it only checks that `srun` is on the PATH)."""
    real = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: "/usr/bin/srun" if name == "srun" else real(name, *a, **k)
    )


@pytest.fixture
def no_srun(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "srun" else real(name, *a, **k))


def test_train_job_writes_a_checkpoint_and_a_requeued_job_resumes_from_it(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    cfg = load_config("wall", [*TINY, "train.epochs=1", "train.device=cpu"])
    job = submit_train(cfg, tiny_dataset.parent, run, CPU, cluster="debug")
    assert Path(job.result()) == run / "checkpoints" / "last.pt"
    first = load_checkpoint(run / "checkpoints" / "last.pt")
    assert first["epoch"] == 1 and first["step"] > 0
    assert (run / "slurm").is_dir()  # default log folder: OUT/slurm

    # A 2-epoch job that was "preempted" after epoch 1: submitit calls checkpoint() and runs what it returns.
    longer = TrainJob(load_config("wall", [*TINY, "train.epochs=2", "train.device=cpu"]).to_dict(), *job_args(job))
    requeued = longer.checkpoint()
    assert requeued.function is longer
    assert Path(requeued.result()) == run / "checkpoints" / "last.pt"
    second = load_checkpoint(run / "checkpoints" / "last.pt")
    assert second["epoch"] == 2 and second["step"] == 2 * first["step"]  # continued, not restarted


def job_args(job) -> tuple[str, str]:
    submitted = job.submission().function
    assert isinstance(submitted, TrainJob)
    return submitted.data_dir, submitted.out_dir


def test_submit_train_refuses_an_existing_run_without_resume(tmp_path, tiny_dataset):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"x")
    cfg = load_config("wall", TINY)
    with pytest.raises(FileExistsError, match="--resume"):
        submit_train(cfg, tiny_dataset.parent, tmp_path / "run", CPU, cluster="debug")
    with pytest.raises(FileNotFoundError, match="dataset folder"):
        submit_train(cfg, tmp_path / "nope", tmp_path / "other", CPU, cluster="debug")


def test_eval_job_runs_and_writes_results(tmp_path, tiny_checkpoint):
    out = tmp_path / "eval"
    job = submit_eval(tiny_checkpoint, out, CPU, episodes=1, overrides=["eval.videos=0"], device="cpu", cluster="debug")
    assert job.result()["episodes"] == 1
    assert (out / "results.json").exists() and (out / "slurm").is_dir()
    with pytest.raises(Exception, match="plan.horizn"):
        submit_eval(tiny_checkpoint, out, CPU, overrides=["plan.horizn=3"], cluster="debug")


def test_eval_runs_one_task_per_gpu_on_every_node_and_takes_checkpoint_lists(tmp_path, tiny_checkpoint, monkeypatch):
    made = {}

    def fake_executor(opts, folder, tasks_per_node, cluster="slurm"):
        made.update(nodes=opts.nodes, tasks_per_node=tasks_per_node, folder=folder)
        return SimpleNamespace(submit=lambda job: job)

    monkeypatch.setattr("jepa_wms.slurm.make_executor", fake_executor)
    job = submit_eval(tiny_checkpoint, tmp_path / "e", SlurmOptions(nodes=2, gpus_per_node=4))
    assert made == {"nodes": 2, "tasks_per_node": 4, "folder": tmp_path / "e" / "slurm"}
    assert job.checkpoint_path == str(tiny_checkpoint)
    submit_eval([tiny_checkpoint], tmp_path / "e", CPU)
    assert made["tasks_per_node"] == 1
    # Each task is a rank: the job exports the distributed variables before it evaluates.
    exported = []
    monkeypatch.setattr("jepa_wms.slurm.export_distributed_env", lambda: exported.append(True))
    monkeypatch.setattr("jepa_wms.evaluation.evaluate_checkpoints", lambda paths, out, **kw: {"paths": paths})
    listed = submit_eval([tiny_checkpoint], tmp_path / "e", CPU)
    assert listed() == {"paths": (str(tiny_checkpoint),)} and exported == [True]


def test_executor_receives_the_slurm_parameters(tmp_path, fake_srun):
    opts = SlurmOptions(
        partition="gpu",
        account="proj",
        qos="high",
        nodes=2,
        gpus_per_node=4,
        cpus_per_task=10,
        time_min=90,
        mem_gb=64,
        job_name="jw",
    )
    executor = make_executor(opts, tmp_path / "slurm", tasks_per_node=4)
    assert executor.cluster == "slurm"
    assert Path(executor.folder) == tmp_path / "slurm"
    assert executor.parameters == {
        "partition": "gpu",
        "account": "proj",
        "qos": "high",
        "nodes": 2,
        "ntasks_per_node": 4,
        "gpus_per_node": 4,
        "cpus_per_task": 10,
        "time": 90,
        "mem": "64GB",
        "job_name": "jw",
    }
    sbatch = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("--partition=gpu", "--account=proj", "--qos=high", "--nodes=2", "--ntasks-per-node=4", "--time=90"):
        assert f"#SBATCH {line}" in sbatch
    assert executor._executor.max_num_timeout == 3
    custom = make_executor(SlurmOptions(log_folder=str(tmp_path / "logs")), tmp_path / "slurm", tasks_per_node=1)
    assert Path(custom.folder) == tmp_path / "logs"
    assert "gpus_per_node" not in make_executor(CPU, tmp_path, tasks_per_node=1).parameters


def test_submitting_without_slurm_is_a_clear_error(tmp_path, tiny_dataset, no_srun):
    with pytest.raises(ValueError, match="cannot submit to SLURM"):
        submit_train(load_config("wall", TINY), tiny_dataset.parent, tmp_path / "run", SlurmOptions())


def test_submitted_objects_pickle(tmp_path):
    train_job = TrainJob(load_config("wall", TINY).to_dict(), "/data/wall", "/runs/wall", CPU)
    eval_job = EvalJob("/runs/wall/checkpoints/last.pt", "/runs/eval", 4, 1, ("plan.alpha=0.1",), "cuda")
    for job in (train_job, eval_job):
        clone = pickle.loads(pickle.dumps(job))
        assert clone == job and type(clone) is type(job)
        assert clone.checkpoint().function == job


def test_multi_task_jobs_export_what_runtime_distributed_reads(monkeypatch):
    slurm_env = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "8",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
    }
    for key, value in slurm_env.items():
        monkeypatch.setenv(key, value)
    # Set (stale) values through monkeypatch so whatever the export writes is undone after the test.
    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.setenv(key, "stale")
    monkeypatch.delenv("MASTER_PORT")  # a MASTER_PORT already set is kept; unset, one is derived from the job id
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    export_distributed_env()
    assert dist_info() == (5, 8, 1)
    assert os.environ["MASTER_ADDR"] == "gpu07"
    assert 20000 <= int(os.environ["MASTER_PORT"]) <= 60000
    assert os.environ["LOCAL_WORLD_SIZE"] == "4"

    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("RANK", "untouched")
    export_distributed_env()  # one task: runtime.distributed needs nothing
    assert os.environ["RANK"] == "untouched"


def test_slurm_options_are_validated():
    with pytest.raises(ValueError, match="nodes"):
        SlurmOptions(nodes=0)
    with pytest.raises(ValueError, match="mem_gb"):
        SlurmOptions(mem_gb=0)


def test_missing_submitit_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ImportError, match=r"jepa-wms\[slurm\]"):
        import_submitit()


def test_cli_maps_flags_to_a_submission(tmp_path, tiny_dataset, monkeypatch, capsys):
    seen = {}

    def fake_submit(cfg, data_dir, out_dir, opts, *, resume):
        seen.update(cfg=cfg, data_dir=data_dir, out_dir=out_dir, opts=opts, resume=resume)
        return SimpleNamespace(job_id="777", paths=SimpleNamespace(folder=out_dir / "slurm"))

    monkeypatch.setattr("jepa_wms.slurm.submit_train", fake_submit)
    argv = ["train", "--data", str(tiny_dataset.parent), "--out", str(tmp_path / "run"), *TINY, "train.epochs=3"]
    slurm = ["--slurm", "--partition", "gpu", "--nodes", "2", "--gpus-per-node", "4", "--time", "90", "--mem", "64"]
    assert main([*argv, *slurm, "--job-name", "jw"]) == 0
    assert "submitted SLURM job 777" in capsys.readouterr().out
    assert seen["opts"] == SlurmOptions(
        partition="gpu", nodes=2, gpus_per_node=4, time_min=90, mem_gb=64.0, job_name="jw"
    )
    assert seen["cfg"].train.epochs == 3 and seen["resume"] is False


def test_cli_slurm_errors_are_one_line(tmp_path, tiny_dataset, capsys, no_srun):
    argv = ["train", "--data", str(tiny_dataset.parent), "--out", str(tmp_path / "run"), *TINY]
    assert main([*argv, "--partition", "gpu", "--time", "60"]) == 2
    assert capsys.readouterr().err.strip() == "jepa-wms train: error: --partition, --time only apply with --slurm"
    assert main([*argv, "--slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot submit to SLURM" in err[0]
