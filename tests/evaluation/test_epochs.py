"""The paper's figure: one evaluation per checkpoint of the last training epochs of several runs, and the mean ±
std of all those per-epoch success rates pooled."""

import json
import math
import shutil

import pytest

from jepa_wms.cli import main
from jepa_wms.evaluation import checkpoint_folders, evaluate_checkpoints, last_epoch_checkpoints, pooled_stats


def fake_run(root, epochs, source=None):
    (root / "checkpoints").mkdir(parents=True)
    for e in epochs:
        path = root / "checkpoints" / f"epoch_{e:03d}.pt"
        shutil.copy(source, path) if source else path.write_bytes(b"x")
    (root / "checkpoints" / "last.pt").write_bytes(b"x")
    return root


def test_last_epochs_are_the_highest_numbers(tmp_path):
    run = fake_run(tmp_path / "run", [1, 2, 98, 99, 100, 101])
    assert [p.name for p in last_epoch_checkpoints(run, 3)] == ["epoch_099.pt", "epoch_100.pt", "epoch_101.pt"]
    with pytest.raises(FileNotFoundError, match="holds 6 epoch checkpoints, not the 7 asked for"):
        last_epoch_checkpoints(run, 7)


def test_pooled_mean_and_std_are_the_papers():
    # 3 training seeds × 2 epochs, pooled: 6 values. Population std (ddof=0), not the std of the 3 seed means.
    values = [0.5, 0.7, 0.6, 0.6, 0.8, 0.4]
    stats = pooled_stats(values)
    assert stats["mean"] == pytest.approx(0.6) and stats["n"] == 6
    assert stats["std"] == pytest.approx(math.sqrt(0.1 / 6))  # squared deviations sum to 0.1
    assert (stats["min"], stats["max"]) == (0.4, 0.8)


def test_each_checkpoint_gets_its_folder_and_the_summary_pools_them(tmp_path, monkeypatch):
    runs = [fake_run(tmp_path / f"seed{s}", [9, 10]) for s in range(2)]
    ckpts = [c for run in runs for c in last_epoch_checkpoints(run, 2)]
    assert [str(f) for f in checkpoint_folders(ckpts)[:2]] == [
        "seed0/checkpoints/epoch_009",
        "seed0/checkpoints/epoch_010",
    ]
    assert [str(f) for f in checkpoint_folders(ckpts[:2])] == ["epoch_009", "epoch_010"]
    rates = iter([0.25, 0.5, 0.75, 0.5])
    seen = []

    def fake_evaluate(path, out, **kwargs):
        seen.append(out)
        return {"episodes": 4, "success_rate": next(rates), "mean_final_distance": 1.0}

    monkeypatch.setattr("jepa_wms.evaluation.epochs.evaluate", fake_evaluate)
    summary = evaluate_checkpoints(ckpts, tmp_path / "eval", device="cpu")
    assert seen[-1] == tmp_path / "eval" / "seed1" / "checkpoints" / "epoch_010"
    assert summary["success_rate"]["mean"] == 0.5
    assert summary["success_rate"]["std"] == pytest.approx(math.sqrt(0.125 / 4))
    assert json.loads((tmp_path / "eval" / "summary.json").read_text()) == summary
    csv = (tmp_path / "eval" / "summary.csv").read_text().splitlines()
    assert csv[0] == "checkpoint,folder,episodes,success_rate,mean_final_distance" and len(csv) == 5
    with pytest.raises(ValueError, match="listed twice"):
        evaluate_checkpoints([ckpts[0], ckpts[0]], tmp_path / "eval", device="cpu")


def test_cli_evaluates_the_last_epochs_of_runs(tiny_checkpoint, tmp_path, capsys):
    runs = [str(fake_run(tmp_path / f"seed{s}", [1, 2], source=tiny_checkpoint)) for s in range(2)]
    argv = ["eval", "--out", str(tmp_path / "eval"), "--episodes", "1", "--device", "cpu", "eval.videos=0"]
    assert main([*argv, "--runs", *runs, "--last-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed1/checkpoints/epoch_002" in out and "mean ± std over 2" in out
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert [r["folder"] for r in summary["checkpoints"]] == [
        "seed0/checkpoints/epoch_002",
        "seed1/checkpoints/epoch_002",
    ]
    assert (tmp_path / "eval" / "seed0" / "checkpoints" / "epoch_002" / "results.json").exists()
    # Same weights in both runs: the same success, so no spread.
    assert summary["success_rate"]["std"] == 0.0
    assert main([*argv, "--runs", *runs]) == 2
    assert "--runs and --last-epochs go together" in capsys.readouterr().err
    assert main([*argv, "--checkpoints", str(tiny_checkpoint), "plan.alpha=1"]) == 2
    assert "put key=value overrides before" in capsys.readouterr().err
