"""Data-parallel training under torchrun (two CPU processes, Gloo) learns what one process learns on the same
global batch: each rank takes every other row of the global batch and the gradients are averaged over ranks, so
the weights after an epoch must match a one-process run. Without the gradient all-reduce, rank 0 would train on
half of each batch and its checkpoint would be far from the one-process weights."""

import socket
import subprocess
import sys

import torch

from jepa_wms.checkpoint import load_checkpoint
from jepa_wms.config import load_config
from jepa_wms.training import train
from tests.conftest import TINY

# The comparison needs a loss that is a mean over samples. VICReg's variance and covariance are batch statistics:
# under data parallelism each rank computes them on its own half batch (as DDP training does), which is not the
# one-process loss, so the anti-collapse term is off for this test. 16 channels in the first conv stage, not TINY's 8:
# with 8 its GroupNorm has one channel per group, which cancels the conv's bias exactly, and Adam turns that bias's
# zero gradient, computed in two summation orders, into different steps of full size.
SETTINGS = [*TINY, "train.epochs=1", "loss.regularizer=none", "model.encoder.channels=[16, 16]"]


def free_port() -> int:
    """A port no one listens on now: the OS picks it for a socket bound to port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_learn_what_one_process_learns(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    cmd += ["-m", "jepa_wms.cli", "train", "--data", str(tiny_dataset.parent), "--out", str(out), *SETTINGS]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=240,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = load_checkpoint(out / "checkpoints" / "last.pt")
    one = load_checkpoint(
        train(load_config("wall", SETTINGS), tiny_dataset.parent, tmp_path / "one", show_progress=False)
    )
    assert two["epoch"] == one["epoch"] == 1 and two["step"] == one["step"]
    assert two["model"].keys() == one["model"].keys()
    for name, weight in one["model"].items():
        # The all-reduce sums the two half-batch gradients in another order than one backward pass over the whole
        # batch, so the weights agree to float32 rounding, not bit for bit. Measured after the epoch's 9 steps: at
        # most 7.5e-9 apart; with the all-reduce removed, up to 7e-4 (rank 0 learns from half of each batch).
        torch.testing.assert_close(two["model"][name], weight, rtol=0, atol=1e-6, msg=name)
