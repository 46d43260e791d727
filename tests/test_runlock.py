"""One process per run, evaluation or latent-cache folder: the second is refused with the holder's pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from jepa_wms.cli import main
from jepa_wms.config import load_config
from jepa_wms.evaluation import evaluate
from jepa_wms.runlock import FolderLockedError, folder_lock
from jepa_wms.training import train
from tests.conftest import TINY

# Another process holding FOLDER/.lock as jepa-wms does (flock, its pid in the file), until it is killed.
HOLDER = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], ".lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()} node7\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


def test_a_held_folder_is_refused_and_a_killed_holder_does_not_block(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "held\n"
        refused = rf"^{re.escape(str(tmp_path))} is in use .*pid {proc.pid} on node7\)"
        with pytest.raises(FolderLockedError, match=refused), folder_lock(tmp_path):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / ".lock").exists()  # the dead holder's file stays, and does not block
    with folder_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    with folder_lock(tmp_path):  # released on exit
        pass


def test_a_second_training_on_one_folder_is_refused(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    with folder_lock(run):
        code = main(["train", "--data", str(tiny_dataset.parent), "--out", str(run), *TINY])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"{run} is in use" in err and f"pid {os.getpid()}" in err
        with pytest.raises(FolderLockedError):  # --resume too
            train(load_config("wall", TINY), tiny_dataset.parent, run, resume=True, show_progress=False)
    assert not (run / "log.csv").exists() and not (run / "checkpoints").exists()


def test_a_second_evaluation_on_one_folder_is_refused_and_the_first_cleans_up(tiny_checkpoint, tmp_path):
    with folder_lock(tmp_path / "eval"), pytest.raises(FolderLockedError, match="is in use"):
        evaluate(tiny_checkpoint, tmp_path / "eval", episodes=1, show_progress=False)
    assert not (tmp_path / "eval" / "eval_meta.json").exists()
    stale = tmp_path / "eval" / ".results.json.3f9a1c.tmp"  # left by a killed write
    stale.write_text("{")
    evaluate(tiny_checkpoint, tmp_path / "eval", episodes=1, show_progress=False)
    assert not stale.exists() and (tmp_path / "eval" / "results.json").exists()
