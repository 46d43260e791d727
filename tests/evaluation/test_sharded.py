"""Evaluation sharded over processes: two torchrun ranks (Gloo on CPU) record exactly the episodes one process
records, a killed run resumes with any number of processes with nothing lost or planned twice, and the rank files
end merged into one ``episodes.jsonl``."""

import json
import shutil
import subprocess
import sys

import pytest

from jepa_wms.evaluation import evaluate
from tests.training.test_distributed import free_port

EPISODES = 5
CLOCK = ("plan_seconds", "episode_seconds")  # wall-clock fields
# The planner's cost history is a float32 model output computed in batches of episodes, and the ranks batch other
# episodes together than one process does: it agrees to rounding (measured: 6e-8 apart), and the plans, hence the
# visited states, exactly.
ROUNDED = ("cost_history",)
SKIPPED = -1.0  # plan_seconds of a pre-written record: still there at the end means the episode was not replanned


@pytest.fixture(scope="module")
def one_process(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    return out, evaluate(tiny_checkpoint, out, episodes=EPISODES, device="cpu", show_progress=False)


def records(folder):
    return [json.loads(line) for line in (folder / "episodes.jsonl").read_text().splitlines()]


def line(rec, **changes):
    return json.dumps({**rec, **changes}) + "\n"


def assert_same_records(folder, reference, kept):
    got, want = records(folder), records(reference)
    assert [r["episode"] for r in got] == list(range(EPISODES))  # merged, sorted, none twice
    for a, b in zip(got, want, strict=True):
        exact = lambda rec: {k: v for k, v in rec.items() if k not in CLOCK + ROUNDED}  # noqa: E731
        assert exact(a) == exact(b)
        assert a["cost_history"] == pytest.approx(b["cost_history"], rel=1e-5)
        assert (a["plan_seconds"] == SKIPPED) == (a["episode"] in kept)
    assert not list(folder.glob("episodes.rank*.jsonl"))


def test_two_processes_resume_and_record_what_one_process_records(tiny_checkpoint, one_process, tmp_path):
    ref, ref_summary = one_process
    done = records(ref)
    out = tmp_path / "two"
    out.mkdir()
    # A killed earlier run: episode 2 finished, rank 1's file ends in a line cut short (its episode is redone).
    shutil.copy(ref / "eval_meta.json", out)
    (out / "episodes.jsonl").write_text(line(done[2], plan_seconds=SKIPPED))
    (out / "episodes.rank1.jsonl").write_text(line(done[4])[:50])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    cmd += ["-m", "jepa_wms.cli", "eval", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    cmd += ["--episodes", str(EPISODES), "--device", "cpu"]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "eval episodes (rank 0 of 2)" in proc.stderr  # the episodes were shared
    assert proc.stdout.count("results:") == 1  # rank 0 reports
    assert_same_records(out, ref, kept={2})
    summary = json.loads((out / "results.json").read_text())
    timing = ("planning_seconds_per_episode", "episode_seconds")
    assert {k: v for k, v in summary.items() if k not in timing} == {
        k: v for k, v in ref_summary.items() if k not in timing
    }
    assert len(list((out / "videos").glob("episode_000_*.gif"))) == 1  # by rank 0, which planned episode 0


def test_a_killed_two_process_run_resumes_in_one_process(tiny_checkpoint, one_process, tmp_path):
    ref, ref_summary = one_process
    done = records(ref)
    shutil.copy(ref / "eval_meta.json", tmp_path)
    (tmp_path / "episodes.rank0.jsonl").write_text(line(done[0], plan_seconds=SKIPPED) + line(done[2])[:30])
    (tmp_path / "episodes.rank1.jsonl").write_text(line(done[1], plan_seconds=SKIPPED))
    res = evaluate(tiny_checkpoint, tmp_path, episodes=EPISODES, device="cpu", show_progress=False)
    assert_same_records(tmp_path, ref, kept={0, 1})
    assert (res["successes"], res["mean_final_distance"]) == (
        ref_summary["successes"],
        ref_summary["mean_final_distance"],
    )
