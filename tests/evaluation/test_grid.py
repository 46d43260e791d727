"""Grids of planning settings: one ordinary evaluation per cell, one table, resumable, refused when mixed."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from jepa_wms.cli import main
from jepa_wms.config import ConfigError
from jepa_wms.evaluation import evaluate_grid, load_grid_spec, pivot_table

FIXED = {"eval.episodes": 2, "eval.videos": 0}
GRID = {"plan.cost": ["L1", "L2"], "plan.planner": ["cem", "mppi"], "fixed": FIXED}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def counting(monkeypatch):
    """Count the evaluations the grid starts (in this process), still running them."""
    import jepa_wms.evaluation.grid as grid

    calls = []
    real = grid.evaluate

    def counted(checkpoint, out, **kwargs):
        calls.append(out)
        return real(checkpoint, out, **kwargs)

    monkeypatch.setattr(grid, "evaluate", counted)
    return calls


def fake_evaluate(monkeypatch, rates=None):
    """Replace the evaluation by one that writes a results.json at once (for the grid's own logic)."""
    import jepa_wms.evaluation.grid as grid

    calls = []

    def fake(checkpoint, out, overrides=(), **kwargs):
        calls.append((str(checkpoint), tuple(overrides)))
        settings = dict(o.split("=", 1) for o in overrides)
        res = {
            "success_rate": (rates or {}).get(str(checkpoint), 0.5),
            "episodes": int(settings.get("eval.episodes", 3)),
            "seed": int(settings.get("eval.seed", 0)),
            "mean_final_distance": 1.0,
            "planning_seconds_per_episode": 0.1,
        }
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(grid, "evaluate", fake)
    return calls


def test_a_two_by_two_grid_is_four_evaluations_in_one_table_and_a_rerun_runs_none(
    tiny_checkpoint, tmp_path, monkeypatch
):
    out = tmp_path / "grid"
    calls = counting(monkeypatch)
    rows = evaluate_grid(GRID, out, checkpoint=tiny_checkpoint, device="cpu", show_progress=False)
    assert len(calls) == 4
    cells = sorted(p.name for p in (out / "cells").iterdir())
    assert cells == sorted(f"cost-{c}__planner-{p}" for c in ("L1", "L2") for p in ("cem", "mppi"))
    table = read_csv(out / "results.csv")
    assert [(r["plan.cost"], r["plan.planner"]) for r in table] == [
        ("L1", "cem"),
        ("L1", "mppi"),
        ("L2", "cem"),
        ("L2", "mppi"),
    ]
    for row in table:
        res = json.loads((out / row["path"] / "results.json").read_text())
        assert float(row["success_rate"]) == res["success_rate"] and int(row["episodes"]) == res["episodes"] == 2
        assert res["plan"]["cost"] == row["plan.cost"] and res["plan"]["planner"] == row["plan.planner"]
    assert [r["success_rate"] for r in rows] == [float(r["success_rate"]) for r in table]
    assert (out / "success.png").stat().st_size > 0
    text = pivot_table(rows, ["plan.cost", "plan.planner"])
    assert "cem" in text and "mppi" in text and "L1" in text and "L2" in text

    mtimes = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/results.json")}
    assert evaluate_grid(GRID, out, checkpoint=tiny_checkpoint, device="cpu", show_progress=False) == rows
    assert len(calls) == 4, "finished cells are not evaluated again"
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/results.json")}
    # An unfinished cell (its results.json missing) is run again, and only it.
    (out / "cells" / "cost-L2__planner-cem" / "results.json").unlink()
    evaluate_grid(GRID, out, checkpoint=tiny_checkpoint, device="cpu", show_progress=False)
    assert calls[4:] == [str(out / "cells" / "cost-L2__planner-cem")]
    assert read_csv(out / "results.csv")[2]["success_rate"] == table[2]["success_rate"]


def test_an_unknown_key_is_refused_before_anything_runs(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    calls = fake_evaluate(monkeypatch)
    for grid, named in (
        ({"plan.cost": ["L1"], "plan.horizn": [3, 6]}, "plan.horizn"),
        ({"plan.cost": ["L1", "L3"]}, "plan.cost"),
        ({"plan.cost": ["L1"], "fixed": {"eval.episodez": 2}}, "eval.episodez"),
        ({"model.predictor.depth": [1, 2]}, "model.predictor.depth"),
    ):
        with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
            evaluate_grid(grid, tmp_path / "g", checkpoint=tiny_checkpoint, device="cpu")
    assert calls == [] and not (tmp_path / "g").exists()
    spec = tmp_path / "grid.yaml"
    spec.write_text("plan.cost: [L1, L2]\nplan.planner: [cem, mpi]\n")
    argv = ["grid", "--checkpoint", str(tiny_checkpoint), "--grid", str(spec), "--out", str(tmp_path / "g")]
    assert main(argv) == 2
    assert "plan.planner" in capsys.readouterr().err and calls == []
    for bad, message in (
        ("plan.cost: L1\n", "non-empty list"),
        ("plan.cost: [L1, L1]\n", "twice"),
        ("plan.cost: [L1]\nfixed: {plan.cost: L2}\n", "both an axis and fixed"),
        ("plan.cost: [L1]\nepochs: 0\n", "epochs"),
    ):
        spec.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_grid_spec(spec)


def test_another_grid_in_the_same_out_is_refused_unless_overwrite(tiny_checkpoint, tmp_path, monkeypatch):
    calls = fake_evaluate(monkeypatch)
    out = tmp_path / "g"
    evaluate_grid(GRID, out, checkpoint=tiny_checkpoint, device="cpu")
    assert len(calls) == 4 and (out / "grid.yaml").exists()
    other = {**GRID, "plan.horizon": [3, 6]}
    with pytest.raises(FileExistsError, match="holds another grid.*axes.*--overwrite"):
        evaluate_grid(other, out, checkpoint=tiny_checkpoint, device="cpu")
    with pytest.raises(FileExistsError, match="fixed"):
        evaluate_grid({**GRID, "fixed": {"eval.episodes": 3}}, out, checkpoint=tiny_checkpoint, device="cpu")
    assert len(calls) == 4
    rows = evaluate_grid(other, out, checkpoint=tiny_checkpoint, device="cpu", overwrite=True)
    assert len(calls) == 12 and len(rows) == 8 and len(list((out / "cells").iterdir())) == 8


def test_epochs_of_a_run_are_a_repetition_axis(tiny_checkpoint, tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for e in (1, 2, 3):
        shutil.copy(tiny_checkpoint, run / "checkpoints" / f"epoch_{e:03d}.pt")
    rates = {str(run / "checkpoints" / f"epoch_{e:03d}.pt"): r for e, r in ((2, 0.25), (3, 0.75))}
    calls = fake_evaluate(monkeypatch, rates)
    grid = {"plan.cost": ["L1", "L2"], "epochs": 2, "fixed": FIXED}
    rows = evaluate_grid(grid, tmp_path / "g", run=run, device="cpu", formats=("csv", "parquet"))
    assert [c[0].rsplit("/", 1)[1] for c in calls] == ["epoch_002.pt", "epoch_003.pt"] * 2
    assert [r["epoch"] for r in rows] == [2, 3, 2, 3]
    assert (tmp_path / "g" / "cells" / "cost-L1__epoch-002").is_dir()
    text = pivot_table(rows, ["plan.cost", "epoch"])
    assert "over epoch" in text and "50.0 ± 25.0" in text
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "g" / "results.parquet").to_pylist() == rows
    with pytest.raises(ValueError, match="--run"):
        evaluate_grid(grid, tmp_path / "h", checkpoint=tiny_checkpoint, device="cpu")
    listed = evaluate_grid({**grid, "epochs": [1]}, tmp_path / "i", run=run, device="cpu")
    assert [r["epoch"] for r in listed] == [1, 1]


def test_slurm_submits_each_unfinished_cell_once(tiny_checkpoint, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from jepa_wms.slurm import SlurmOptions

    submitted = []

    def fake_submit(checkpoint, folder, opts, *, overrides=(), device="auto", **kw):
        submitted.append((folder.name, tuple(overrides)))
        return SimpleNamespace(job_id=str(100 + len(submitted)))

    monkeypatch.setattr("jepa_wms.slurm.submit_eval", fake_submit)
    calls = fake_evaluate(monkeypatch)
    out = tmp_path / "g"
    opts = SlurmOptions(gpus_per_node=0)
    assert evaluate_grid(GRID, out, checkpoint=tiny_checkpoint, slurm=opts) == []
    assert len(submitted) == 4 and calls == []
    assert (out / "cells" / "cost-L1__planner-cem" / "slurm_job_id").read_text() == "101\n"
    assert 'plan.planner="mppi"' in submitted[1][1]
    evaluate_grid(GRID, out, checkpoint=tiny_checkpoint, slurm=opts)
    assert len(submitted) == 4, "a submitted cell is not submitted again"


def test_workers_give_the_table_of_one_process(tiny_checkpoint, tmp_path, capsys):
    spec = tmp_path / "grid.yaml"
    spec.write_text("plan.cost: [L1, L2]\nfixed: {eval.episodes: 2, eval.videos: 0}\n")
    base = ["grid", "--checkpoint", str(tiny_checkpoint), "--grid", str(spec), "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    assert "success rate (%)" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0

    def table(name):  # wall-clock seconds aside
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in read_csv(tmp_path / name / "results.csv")]

    assert table("one") == table("two") and len(table("one")) == 2
    assert main([*base, "--out", str(tmp_path / "two"), "--rows", "plan.horizon"]) == 2
