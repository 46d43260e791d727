"""The scripts in experiments/: they run on a tiny checkpoint and measure what they claim to."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from probe_latents import mlp_r2, ridge_r2  # noqa: E402


def test_ridge_r2_reads_linear_columns_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 8))
    y = np.stack([x @ rng.standard_normal(8), rng.standard_normal(600)], axis=1)
    r2 = ridge_r2(x, y, train=500)
    assert r2[0] > 0.999 and r2[1] < 0.05


def test_mlp_r2_reads_what_a_linear_probe_cannot():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1200, 4))
    y = np.stack([x[:, 0] ** 2, rng.standard_normal(1200)], axis=1)  # not linear in x; noise
    assert ridge_r2(x, y, train=1000)[0] < 0.05
    r2 = mlp_r2(x, y, train=1000, seed=0, epochs=40)
    assert r2[0] > 0.9 and r2[1] < 0.1


def test_probe_latents_runs_on_a_checkpoint(tiny_checkpoint, tiny_dataset):
    script = Path(__file__).resolve().parents[1] / "experiments" / "probe_latents.py"
    out = subprocess.run(
        [sys.executable, str(script), "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_dataset.parent)],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    report = json.loads(out.stdout)
    assert report["frames"] == 6 * 21 and set(report["r2"]) == {"state[0]", "state[1]"}
    assert all(np.isfinite(v) for v in report["r2"].values())
