"""Per-episode records on disk: ``episodes.jsonl``, and one ``episodes.rank{r}.jsonl`` per rank while a sharded
evaluation runs.

Each process appends only to its own file, so ranks never interleave lines and a kill leaves at most one line cut
short per file. Every file is read on a resume, whichever world size wrote it, and the finished evaluation merges
them into ``episodes.jsonl`` (sorted by episode, written atomically) before the rank files go: a kill between the
two leaves records in both places, which the reader deduplicates by episode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ..checkpoint import atomic_write_bytes

RECORDS = "episodes.jsonl"
_RANK_GLOB = "episodes.rank*.jsonl"


def records_file(out_dir: Path, rank: int, world: int) -> Path:
    """The file rank ``rank`` of ``world`` appends to: ``episodes.jsonl`` when alone, else its own."""
    return out_dir / (RECORDS if world == 1 else f"episodes.rank{rank}.jsonl")


def load_records(out_dir: Path) -> dict[int, dict]:
    """Every complete record in ``out_dir``'s episode files, by episode (lines cut short by a kill skipped)."""
    done: dict[int, dict] = {}
    for path in [out_dir / RECORDS, *sorted(out_dir.glob(_RANK_GLOB))]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            done[int(rec["episode"])] = rec
    return done


def append_records(path: Path, records: Sequence[dict]) -> None:
    with open(path, "a+b") as f:
        # A kill mid-write leaves a line without its newline: cut it off, or the next record would be glued to it.
        f.truncate(_complete_length(f))
        f.write("".join(json.dumps(rec) + "\n" for rec in records).encode())
        f.flush()
        os.fsync(f.fileno())


def merge_records(out_dir: Path, done: dict[int, dict]) -> None:
    """Rewrite ``episodes.jsonl`` as ``done`` sorted by episode, then drop the rank files it now holds."""
    text = "".join(json.dumps(done[k]) + "\n" for k in sorted(done))
    atomic_write_bytes(out_dir / RECORDS, text.encode())
    for path in out_dir.glob(_RANK_GLOB):
        path.unlink()


def _complete_length(f: BinaryIO) -> int:
    """Bytes of ``f`` up to and including its last newline (scanned backwards from the end)."""
    pos = f.seek(0, os.SEEK_END)
    while pos > 0:
        size = min(pos, 1 << 16)
        f.seek(pos - size)
        newline = f.read(size).rfind(b"\n")
        if newline >= 0:
            return pos - size + newline + 1
        pos -= size
    return 0


__all__ = ["RECORDS", "append_records", "load_records", "merge_records", "records_file"]
