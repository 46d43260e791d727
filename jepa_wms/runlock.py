"""One process at a time per output folder: an exclusive ``flock`` on ``FOLDER/.lock``.

Training, evaluation and latent encoding write into a folder and resume from what it holds, so two processes on one
folder would interleave their logs and overwrite each other's checkpoints. The kernel drops a ``flock`` when its
holder exits, however it dies (SIGKILL, out of memory, a preempted SLURM job), so the ``.lock`` file that stays
behind never blocks a later run; it holds the holder's pid and host, for the error message only. ``flock`` also works
on NFS (Linux emulates it with byte-range locks there), where several nodes may share one run folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class FolderLockedError(FileExistsError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; raise ``FolderLockedError`` at once,
    naming the folder and the holder, if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").split()
            who = f"pid {holder[0]} on {holder[1]}" if len(holder) == 2 else "pid unknown"
            raise FolderLockedError(
                f"{folder} is in use by another jepa-wms process ({who}): wait for it to finish, or use another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a process opening it)


__all__ = ["LOCK_NAME", "FolderLockedError", "folder_lock"]
