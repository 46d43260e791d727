"""Data-parallel training under torchrun (two CPU processes, Gloo)."""

import subprocess
import sys

import torch

from jepa_wms.checkpoint import load_checkpoint
from tests.conftest import TINY


def test_torchrun_two_processes(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "jepa_wms.cli",
        "train",
        "--data",
        str(tiny_dataset.parent),
        "--out",
        str(out),
        *TINY,
        "train.epochs=1",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=240,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
