"""The paper's success figure: not one evaluation, but the mean ± std over the last training epochs of several runs.

The paper evaluates the last n epoch checkpoints (10 on the simulated envs, 30 on Metaworld, 100 trained on DROID)
of each of 3 training seeds and reports the mean and the standard deviation of all those per-epoch success rates
pooled together. ``evaluate_checkpoints`` runs one ordinary (resumable, shardable) evaluation per checkpoint, each
in its own subfolder, and writes ``summary.json`` and ``summary.csv``; ``last_epoch_checkpoints`` finds a run's last
n ``epoch_NNN.pt`` (kept with ``train.keep_epoch_checkpoints=true``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write_bytes
from ..runtime import EVAL_TIMEOUT, distributed, on_rank0, resolve_device
from .evaluate import evaluate

_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")


def last_epoch_checkpoints(run: str | Path, n: int) -> list[Path]:
    """The ``n`` latest ``RUN/checkpoints/epoch_NNN.pt`` of training run ``run``, oldest first."""
    folder = Path(run) / "checkpoints"
    found = sorted(
        (int(m.group(1)), path) for path in folder.glob("epoch_*.pt") if (m := _EPOCH_FILE.fullmatch(path.name))
    )
    if n < 1 or len(found) < n:
        raise FileNotFoundError(
            f"{folder} holds {len(found)} epoch checkpoints, not the {n} asked for "
            "(train with train.keep_epoch_checkpoints=true to keep them)"
        )
    return [path for _, path in found[-n:]]


def pooled_stats(values: Sequence[float]) -> dict[str, float | int]:
    """Mean and population standard deviation (numpy's default, ddof=0) of all values pooled, as the paper pools
    every (training seed, epoch) value; also their count, minimum and maximum."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": len(a), "min": float(a.min()), "max": float(a.max())}


def checkpoint_folders(checkpoints: Sequence[Path]) -> list[Path]:
    """Each checkpoint's result subfolder: its path below the checkpoints' deepest common folder, without ``.pt``
    (``epoch_010``; ``seed1/checkpoints/epoch_010`` when several runs are pooled)."""
    resolved = [Path(c).resolve() for c in checkpoints]
    if len(set(resolved)) < len(resolved):
        raise ValueError("evaluate: a checkpoint is listed twice; each one counts once in the mean")
    root = Path(os.path.commonpath([c.parent for c in resolved]))
    return [c.relative_to(root).with_suffix("") for c in resolved]


def evaluate_checkpoints(
    checkpoints: Sequence[str | Path],
    out_dir: str | Path,
    *,
    device: str = "auto",
    **options: Any,
) -> dict[str, Any]:
    """Evaluate every checkpoint into its own subfolder of ``out_dir`` (see `checkpoint_folders`; each resumes on
    its own) with `evaluate`'s ``options`` (``episodes``, ``seed``, ``overrides``, ``show_progress``), then write
    and return the summary: per-checkpoint results and the pooled mean ± std of the success rate and of the mean
    final distance."""
    if not checkpoints:
        raise ValueError("evaluate: no checkpoint to evaluate")
    for path in checkpoints:
        if not Path(path).is_file():
            hint = " (put key=value overrides before --checkpoints/--runs)" if "=" in str(path) else ""
            raise FileNotFoundError(f"checkpoint {path} does not exist{hint}")
    out_dir = Path(out_dir)
    folders = checkpoint_folders([Path(c) for c in checkpoints])
    rows = []
    # One process group for all the evaluations (each joins it) rather than one per checkpoint.
    with distributed(resolve_device(device), EVAL_TIMEOUT):
        for path, folder in zip(checkpoints, folders, strict=True):
            res = evaluate(path, out_dir / folder, device=device, **options)
            rows.append(
                {
                    "checkpoint": str(path),
                    "folder": str(folder),
                    "episodes": res["episodes"],
                    "success_rate": res["success_rate"],
                    "mean_final_distance": res["mean_final_distance"],
                }
            )
        summary = {
            "success_rate": pooled_stats([r["success_rate"] for r in rows]),
            "mean_final_distance": pooled_stats([r["mean_final_distance"] for r in rows]),
            "checkpoints": rows,
        }
        on_rank0(lambda: _write_summary(out_dir, summary))
    return summary


def summary_table(summary: dict[str, Any]) -> str:
    """``evaluate_checkpoints``'s summary as printed lines: each folder's success rate, then the pooled mean ± std."""
    rows = [(r["folder"], f"{100 * r['success_rate']:.1f} %") for r in summary["checkpoints"]]
    s = summary["success_rate"]
    rows.append((f"mean ± std over {s['n']}", f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} %"))
    width = max(len(k) for k, _ in rows)
    return "\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows) + "\n"


def _write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_bytes(out_dir / "summary.json", json.dumps(summary, indent=2).encode())
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(summary["checkpoints"][0]))
    w.writeheader()
    w.writerows(summary["checkpoints"])
    atomic_write_bytes(out_dir / "summary.csv", text.getvalue().encode())


__all__ = ["checkpoint_folders", "evaluate_checkpoints", "last_epoch_checkpoints", "pooled_stats", "summary_table"]
